// The DNS server: UDP and TCP listeners around the pure core. A query is decoded
// (packet.ts), answered from the precomputed zone (answer.ts) or handed to the forwarder
// (forwarder.ts), and the bytes go back. UDP runs on the main thread (udp.ts), or with
// `workers` on that many threads of its own (udp-worker-pool.ts, udp-worker.ts); TCP
// (tcp.ts) and the forwarder stay here. The zone is rebuilt from the record source when it
// signals a change, at most once per turn of the event loop.

import type dgram from 'node:dgram';
import { errorText, logger } from '../mesh/log.ts';
import { LogOnce } from '../mesh/log-once.ts';
import { type Answer, answerFromZone, reply } from './answer.ts';
import { replyFromUpstream } from './cache.ts';
import { Forwarder, type ForwardOutcome } from './forwarder.ts';
import { listenError } from './listen-error.ts';
import { nameToWire, normalizeName } from './names.ts';
import {
  CLASS_IN,
  DEFAULT_MAX_UDP,
  FLAG_RD,
  HEADER_LEN,
  MAX_MESSAGE,
  type Query,
  RCODE,
  RCODE_NAME,
  parseQuery,
  writeHeader,
} from './packet.ts';
import type { DnsRecordSource } from './records.ts';
import { TcpListeners } from './tcp.ts';
import { STAT, STAT_SLOTS, type UdpContext, bindUdp, handlerFailed, onUdpMessage, sendUdp } from './udp.ts';
import { UdpWorkerPool } from './udp-worker-pool.ts';
import type { ToWorker } from './udp-worker.ts';
import { formatUpstream, readResolvConf, type UpstreamAddress } from './upstream-config.ts';
import { SlicedRebuild } from './rebuild.ts';
import { ZoneBuilder } from './zone-builder.ts';
import { DEFAULT_REVERSE, DEFAULT_TTL_S, type Zone, type ZoneOptions } from './zone.ts';

/** Bounded retries to get the same free port for UDP and TCP when the caller asks for 0. */
const SAME_PORT_ATTEMPTS = 20;
/** More UDP threads than this cannot help on the machines weft targets. */
export const MAX_WORKERS = 16;

export interface ListenAddress {
  host: string;
  port: number;
}

export interface DnsServerOptions {
  listen: readonly ListenAddress[];
  source: DnsRecordSource;
  /** Upstream resolvers; default the nameservers of /etc/resolv.conf. With none, names
   *  outside our zones get REFUSED. */
  upstreams?: readonly UpstreamAddress[];
  domain?: string;
  ttl?: number;
  /** IPv4 ranges whose reverse names are ours alone (default the container range). */
  reverse?: readonly string[];
  /** The most we send over UDP and advertise in EDNS (default 1232). */
  maxUdpSize?: number;
  /** UDP threads sharing each address with SO_REUSEPORT; 0 (default) answers UDP on the
   *  calling thread. Workers use Math.random and build their own zone copies. */
  workers?: number;
  upstreamAttemptMs?: number;
  upstreamDeadlineMs?: number;
  cacheEntries?: number;
  /** For shuffling answers on the calling thread (tests pass a seeded one). */
  random?: () => number;
  now?: () => number;
  resolvConf?: string;
}

export interface DnsStats {
  queries: { udp: number; tcp: number };
  /** Responses sent, by RCODE name. */
  responses: Record<string, number>;
  truncated: number;
  /** Messages given no reply (not a query at all: too short, or a response; or from
   *  source port 0). */
  dropped: number;
  /** Datagrams from source port 0, where no reply can be received (also in `dropped`). */
  droppedSourcePort0: number;
  forwarded: number;
  cacheHits: number;
  upstreamFailures: number;
  tcpConnections: number;
  /** Answers written to TCP clients and not yet taken by them, in octets. */
  tcpUnsentBytes: number;
  zoneBuilds: number;
  records: number;
}

export interface DnsStatus {
  domain: string;
  ttl: number;
  listeners: string[];
  upstreams: string[];
  records: number;
  names: number;
  workers: number;
}

const log = logger('dns');

export class DnsServer {
  private readonly opts: DnsServerOptions;
  private readonly forwarder: Forwarder;
  private readonly maxUdp: number;
  private readonly ctx: UdpContext;
  private readonly udp: dgram.Socket[] = [];
  private readonly tcp: TcpListeners;
  private readonly workers: UdpWorkerPool;
  private readonly bound: ListenAddress[] = [];
  private unsubscribe: () => void = () => {};
  private readonly builder: ZoneBuilder;
  private reportedSkipped: Zone['skipped'] | undefined;
  /** Names the source said changed since the last update; undefined: it did not say, so
   *  the whole set is compared. */
  private hinted: Set<string> | undefined;
  private readonly rebuild = new SlicedRebuild(
    (zone) => {
      if (!zone) return; // nothing had changed
      this.ctx.zone = zone;
      this.installed(zone);
    },
    (err) => log.error('DNS records could not be rebuilt; answering from the previous ones', { error: errorText(err) }),
  );
  private serial: number;
  private stopped = false;
  private zoneBuilds = 0;

  private constructor(opts: DnsServerOptions, upstreams: readonly UpstreamAddress[]) {
    this.opts = opts;
    this.maxUdp = opts.maxUdpSize ?? DEFAULT_MAX_UDP;
    if (!(Number.isInteger(this.maxUdp) && this.maxUdp >= 512 && this.maxUdp <= MAX_MESSAGE)) {
      throw new Error(`the DNS UDP size ${this.maxUdp} is not a whole number from 512 to ${MAX_MESSAGE}`);
    }
    const workerCount = opts.workers ?? 0;
    if (!(Number.isInteger(workerCount) && workerCount >= 0 && workerCount <= MAX_WORKERS)) {
      throw new Error(`DNS workers must be a whole number from 0 to ${MAX_WORKERS}, not ${opts.workers}`);
    }
    this.serial = Math.floor(Date.now() / 1000);
    this.builder = new ZoneBuilder(this.zoneOptions());
    this.ctx = {
      zone: this.build(),
      maxUdp: this.maxUdp,
      random: opts.random ?? Math.random,
      counters: new Float64Array(STAT_SLOTS),
      malformed: new LogOnce(),
      delegate: (q, msg, limit, sock, rinfo) => this.answer(q, msg, limit, (a) => {
        if (!this.stopped) sendUdp(sock, a.bytes, rinfo.port, rinfo.address);
      }),
    };
    this.tcp = new TcpListeners({
      counters: this.ctx.counters,
      malformed: this.ctx.malformed,
      answer: (q, msg, maxSize, send) => this.answer(q, msg, maxSize, send),
    });
    this.workers = new UdpWorkerPool({
      size: workerCount,
      init: () => ({
        listen: this.bound.map((b) => ({ ...b })),
        zone: this.zoneOptions(),
        set: { names: this.builder.applied() },
        serial: this.serial,
        maxUdp: this.maxUdp,
      }),
      ask: (msg, limit, replyWith) => this.answerForWorker(msg, limit, replyWith),
    });
    // Right after the first build, in the same turn: no change can fall in between.
    this.unsubscribe = opts.source.subscribe((changed) => this.scheduleRebuild(changed));
    this.forwarder = new Forwarder({
      upstreams,
      ...(opts.upstreamAttemptMs !== undefined ? { attemptMs: opts.upstreamAttemptMs } : {}),
      ...(opts.upstreamDeadlineMs !== undefined ? { deadlineMs: opts.upstreamDeadlineMs } : {}),
      ...(opts.cacheEntries !== undefined ? { cacheEntries: opts.cacheEntries } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    });
  }

  /** Starts listening on every address over UDP and TCP; rejects with one sentence (and
   *  nothing left open) if any address cannot be used. Port 0 picks one free port for both. */
  static async start(opts: DnsServerOptions): Promise<DnsServer> {
    if (opts.listen.length === 0) throw new Error('the DNS server needs at least one address to listen on');
    const listenKeys = new Set(opts.listen.map((l) => `${l.host}:${l.port}`));
    let upstreams = opts.upstreams ?? (await readResolvConf(opts.resolvConf));
    // Forwarding to ourselves would loop until the deadline: leave such entries out.
    const self = upstreams.filter((u) => listenKeys.has(`${u.host}:${u.port}`));
    if (self.length) {
      log.warn('not forwarding to our own listen address', { upstreams: self.map(formatUpstream).join(',') });
      upstreams = upstreams.filter((u) => !listenKeys.has(`${u.host}:${u.port}`));
    }
    const server = new DnsServer(opts, upstreams);
    try {
      for (const l of opts.listen) await server.listenOn(l);
      await server.workers.start();
    } catch (err) {
      await server.stop();
      throw err;
    }
    log.info('DNS listening', {
      domain: server.ctx.zone.domain,
      listen: server.bound.map((b) => `${b.host}:${b.port}`).join(','),
      upstreams: upstreams.map(formatUpstream).join(',') || 'none',
      records: server.ctx.zone.records,
      ...(server.workers.size ? { workers: server.workers.size } : {}),
    });
    return server;
  }

  /**
   * Starts answering on one more address (the bridge address appears when the data plane
   * starts, after the server). Rejects with one sentence if the address cannot be used; the
   * others keep serving. With workers, a new set of workers bound to every address replaces
   * the old one (SO_REUSEPORT lets both serve while they change over).
   */
  async addListener(l: ListenAddress): Promise<ListenAddress> {
    if (this.stopped) throw new Error('the DNS server is stopped');
    const had = this.bound.find((b) => b.host === l.host && b.port === l.port);
    if (had) return { ...had };
    await this.listenOn(l);
    const added = this.bound[this.bound.length - 1]!;
    if (this.workers.size > 0) await this.workers.renew();
    log.info('DNS listening', { listen: `${added.host}:${added.port}` });
    return { ...added };
  }

  /** The addresses actually bound (ports resolved), UDP and TCP alike. */
  addresses(): ListenAddress[] {
    return this.bound.map((b) => ({ ...b }));
  }

  /** The zone answered from now (for `weft dns ls`). */
  get zone(): Zone {
    return this.ctx.zone;
  }

  status(): DnsStatus {
    const zone = this.ctx.zone;
    return {
      domain: zone.domain,
      ttl: zone.ttl,
      listeners: this.bound.flatMap((b) => [`udp ${b.host}:${b.port}`, `tcp ${b.host}:${b.port}`]),
      upstreams: this.forwarder.upstreams.map(formatUpstream),
      records: zone.records,
      names: zone.nodes.size,
      workers: this.workers.size,
    };
  }

  stats(): DnsStats {
    const sum = new Float64Array(STAT_SLOTS);
    for (const c of [this.ctx.counters, ...this.workers.counters()]) for (let i = 0; i < STAT_SLOTS; i++) sum[i]! += c[i]!;
    const responses: Record<string, number> = {};
    for (let rcode = 0; rcode < 32; rcode++) {
      const n = sum[STAT.RCODE + rcode]!;
      if (n) responses[RCODE_NAME[rcode] ?? `RCODE${rcode}`] = n;
    }
    const f = this.forwarder.stats();
    return {
      queries: { udp: sum[STAT.UDP]!, tcp: sum[STAT.TCP]! },
      responses,
      truncated: sum[STAT.TRUNCATED]!,
      dropped: sum[STAT.DROPPED]!,
      droppedSourcePort0: sum[STAT.PORT0]!,
      forwarded: f.forwarded,
      cacheHits: f.cacheHits,
      upstreamFailures: f.failures,
      tcpConnections: this.tcp.connections,
      tcpUnsentBytes: this.tcp.unsentBytes(),
      zoneBuilds: this.zoneBuilds,
      records: this.ctx.zone.records,
    };
  }

  /**
   * Resolves one question in process, through the same path as a query from the network
   * (zone, then cache and upstreams), for `weft dns lookup`. Returns the response message.
   */
  async resolve(name: string, qtype: number): Promise<Buffer> {
    const wire = nameToWire(normalizeName(name));
    const msg = Buffer.allocUnsafe(HEADER_LEN + wire.length + 4);
    writeHeader(msg, 0, FLAG_RD, 1, 0, 0, 0);
    wire.copy(msg, HEADER_LEN);
    msg.writeUInt16BE(qtype, HEADER_LEN + wire.length);
    msg.writeUInt16BE(CLASS_IN, HEADER_LEN + wire.length + 2);
    const q = parseQuery(msg);
    if ('reject' in q) throw new Error(`cannot ask for "${name}": ${q.reason}`);
    return new Promise((resolve) => this.answer(q, msg, MAX_MESSAGE, (a) => resolve(a.bytes)));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe();
    this.rebuild.stop();
    this.forwarder.close();
    this.tcp.dropConnections();
    await Promise.all([
      ...this.udp.map((s) => new Promise<void>((r) => {
        try {
          s.close(() => r());
        } catch {
          r();
        }
      })),
      ...this.tcp.close(),
      this.workers.stop(),
    ]);
  }

  // ---- Zone ----------------------------------------------------------------------------

  private zoneOptions(): ZoneOptions {
    return {
      ...(this.opts.domain !== undefined ? { domain: this.opts.domain } : {}),
      ttl: this.opts.ttl ?? DEFAULT_TTL_S,
      reverse: [...(this.opts.reverse ?? DEFAULT_REVERSE)],
    };
  }

  /** The first zone, built at once before anything listens. */
  private build(): Zone {
    const steps = this.builder.update(this.opts.source.current(), ++this.serial);
    for (let r = steps.next(); !r.done; r = steps.next());
    this.installed(this.builder.zone);
    return this.builder.zone;
  }

  private installed(zone: Zone): void {
    this.zoneBuilds++;
    if (zone.skipped.length && zone.skipped !== this.reportedSkipped) {
      this.reportedSkipped = zone.skipped;
      log.warn('DNS records left out', {
        count: zone.skipped.length,
        first: `${zone.skipped[0]!.name}: ${zone.skipped[0]!.reason}`,
      });
    }
  }

  /** A change of the records: one update per burst, of the names that changed (in place
   *  when few did, in slices otherwise: zone-builder.ts, rebuild.ts). The workers get the
   *  same changes and update their own copies the same way. */
  private scheduleRebuild(changed?: readonly string[]): void {
    if (this.stopped) return;
    if (!changed) this.hinted = undefined;
    else if (this.hinted) for (const raw of changed) this.hinted.add(raw);
    this.rebuild.request(() => {
      const set = this.opts.source.current();
      const changed = this.hinted ? [...this.hinted] : this.builder.changedSince(set);
      this.hinted = new Set();
      if (changed.length === 0) return (function* () { return undefined; })();
      const serial = ++this.serial;
      if (this.workers.running) {
        const m: ToWorker = {
          t: 'patch',
          upserts: changed.filter((raw) => set.names.has(raw)).map((raw) => [raw, set.names.get(raw)!]),
          removes: changed.filter((raw) => !set.names.has(raw)),
          serial,
        };
        this.workers.post(m);
      }
      return this.builder.update(set, serial, changed);
    });
  }

  // ---- Answering -----------------------------------------------------------------------

  /** Answers a decoded query within `maxSize` octets: from the zone at once, else from the
   *  cache at once, else once the upstreams have answered. */
  private answer(q: Query, msg: Buffer, maxSize: number, send: (a: Answer) => void): void {
    let a: Answer | undefined;
    try {
      a = answerFromZone(this.ctx.zone, q, msg, maxSize, this.maxUdp, this.ctx.random);
    } catch (err) {
      log.error('DNS answer failed', { error: errorText(err) });
      a = reply(q, msg, RCODE.SERVFAIL, false, maxSize, this.maxUdp);
    }
    if (a) return this.sent(a, send);
    if (this.forwarder.upstreams.length === 0) return this.sent(reply(q, msg, RCODE.REFUSED, false, maxSize, this.maxUdp), send);
    const now = this.opts.now ?? Date.now;
    const hit = this.forwarder.cached(q);
    if (hit) return this.sent(replyFromUpstream(hit, q, msg, maxSize, this.maxUdp, now()), send);
    let replied = false;
    this.forwarder.forward(q, msg).then((outcome: ForwardOutcome) => {
      if (this.stopped) return;
      let a: Answer;
      if ('failure' in outcome) {
        if (this.ctx.malformed.shouldLog(`upstream:${outcome.failure}`, Date.now()) !== undefined) {
          log.warn('upstream resolvers failed; answering SERVFAIL', { reason: outcome.failure });
        }
        a = reply(q, msg, RCODE.SERVFAIL, false, maxSize, this.maxUdp);
      } else {
        a = replyFromUpstream(outcome.answer, q, msg, maxSize, this.maxUdp, now());
      }
      replied = true;
      this.sent(a, send);
    }).catch((err: unknown) => {
      // Building the reply from what the upstream sent failed (a bug): the client gets
      // SERVFAIL rather than silence, and the process carries on.
      handlerFailed('forwarded answer', err);
      if (!replied && !this.stopped) this.sent(reply(q, msg, RCODE.SERVFAIL, false, maxSize, this.maxUdp), send);
    });
  }

  /** Counts and sends an answer. `send` never throws out of here: it may run in a promise
   *  callback or an event handler, where a throw would end the process. */
  private sent(a: Answer, send: (a: Answer) => void): void {
    this.ctx.counters[STAT.RCODE + (a.rcode & 31)]!++;
    if (a.truncated) this.ctx.counters[STAT.TRUNCATED]!++;
    try {
      send(a);
    } catch (err) {
      handlerFailed('sending an answer', err);
    }
  }

  /** A question a UDP worker's zone did not answer, as the main thread answers UDP's. */
  private answerForWorker(msg: Buffer, limit: number, replyWith: (bytes: Buffer) => void): void {
    if (this.stopped) return;
    const q = parseQuery(msg);
    if ('reject' in q) return;
    this.answer(q, msg, limit, (a) => {
      if (!this.stopped) replyWith(a.bytes);
    });
  }

  // ---- Listening -----------------------------------------------------------------------

  /** Binds UDP and TCP on one address (the same port for both). With workers, the UDP socket
   *  here only proves the port free and is closed again; the workers bind it with
   *  SO_REUSEPORT (a plain bind first, so that we never join another program's group). */
  private async listenOn(l: ListenAddress): Promise<void> {
    const attempts = l.port === 0 ? SAME_PORT_ATTEMPTS : 1;
    for (let i = 1; ; i++) {
      let udp: dgram.Socket;
      try {
        udp = await bindUdp(l.host, l.port, false, (sock, msg, rinfo) => onUdpMessage(this.ctx, sock, msg, rinfo));
      } catch (err) {
        throw listenError(err, l.host, l.port, 'UDP');
      }
      const port = udp.address().port;
      try {
        await this.tcp.listen(l.host, port);
        this.bound.push({ host: l.host, port });
        if (this.workers.size > 0) await new Promise<void>((r) => udp.close(() => r()));
        else this.udp.push(udp);
        return;
      } catch (err) {
        udp.close();
        if (i >= attempts || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw listenError(err, l.host, port, 'TCP');
      }
    }
  }
}
