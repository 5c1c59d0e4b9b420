// The DNS server: UDP and TCP listeners around the pure core. A query is decoded
// (packet.ts), answered from the precomputed zone (answer.ts) or handed to the forwarder
// (forwarder.ts), and the bytes go back. UDP runs on the main thread, or with `workers` on
// that many threads of its own (udp-worker.ts); TCP and the forwarder stay here. The zone
// is rebuilt from the record source when it signals a change, at most once per turn of the
// event loop.

import type dgram from 'node:dgram';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { errorText, logger } from '../mesh/log.ts';
import { LogOnce } from '../mesh/log-once.ts';
import { type Answer, answerFromZone, reply } from './answer.ts';
import { replyFromUpstream } from './cache.ts';
import { Forwarder, type ForwardOutcome } from './forwarder.ts';
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
  headerOnlyReply,
  parseQuery,
  writeHeader,
} from './packet.ts';
import type { DnsRecordSource } from './records.ts';
import { FrameReader, frame } from './tcp-frames.ts';
import { STAT, STAT_SLOTS, type UdpContext, bindUdp, handlerFailed, onUdpMessage, sendUdp } from './udp.ts';
import { type FromWorker, type ToWorker, WORKER_KIND, type WorkerInit } from './udp-worker.ts';
import { formatUpstream, readResolvConf, type UpstreamAddress } from './upstream-config.ts';
import { SlicedRebuild } from './rebuild.ts';
import { ZoneBuilder } from './zone-builder.ts';
import { DEFAULT_REVERSE, DEFAULT_TTL_S, type Zone, type ZoneOptions } from './zone.ts';

/** RFC 7766 §6.2.3 recommends a few seconds idle; a container's resolver reconnects cheaply. */
export const TCP_IDLE_MS = 10_000;
/** A message must arrive whole within this time of its first octet (a client dribbling one
 *  octet at a time would otherwise hold a connection forever). */
export const TCP_MESSAGE_DEADLINE_MS = 5_000;
/** TCP clients at once; UDP is the normal path, TCP is for truncated answers. */
export const MAX_TCP_CONNECTIONS = 256;
/** Unanswered queries per TCP connection before we stop reading from it. */
export const MAX_TCP_PIPELINE = 32;
/** Answers written to one TCP connection and not yet taken by its client, beyond which the
 *  connection is closed: a client that asks and never reads would otherwise have us buffer
 *  without limit (questions of 35 octets can ask for answers of 64 KiB). Room for several
 *  largest answers to a client that reads slowly; 256 connections at most hold 64 MiB. */
export const MAX_TCP_UNSENT_BYTES = 256 * 1024;
/** Bounded retries to get the same free port for UDP and TCP when the caller asks for 0. */
const SAME_PORT_ATTEMPTS = 20;
/** A worker that has not closed its sockets by then is terminated. */
const WORKER_STOP_MS = 2_000;
/** Before a dead worker is replaced: a crash loop costs a log line a second, not a core. */
const WORKER_RESTART_MS = 1_000;
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
  private readonly workerCount: number;
  private readonly ctx: UdpContext;
  private readonly udp: dgram.Socket[] = [];
  private readonly tcp: net.Server[] = [];
  private readonly conns = new Set<net.Socket>();
  private readonly workers: Worker[] = [];
  /** Workers being replaced on purpose: their exit starts no other. */
  private readonly retiring = new Set<Worker>();
  private readonly workerCounters: Float64Array[] = [];
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
  private tcpConnections = 0;
  private zoneBuilds = 0;

  private constructor(opts: DnsServerOptions, upstreams: readonly UpstreamAddress[]) {
    this.opts = opts;
    this.maxUdp = opts.maxUdpSize ?? DEFAULT_MAX_UDP;
    if (!(Number.isInteger(this.maxUdp) && this.maxUdp >= 512 && this.maxUdp <= MAX_MESSAGE)) {
      throw new Error(`the DNS UDP size ${this.maxUdp} is not a whole number from 512 to ${MAX_MESSAGE}`);
    }
    this.workerCount = opts.workers ?? 0;
    if (!(Number.isInteger(this.workerCount) && this.workerCount >= 0 && this.workerCount <= MAX_WORKERS)) {
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
      for (let i = 0; i < server.workerCount; i++) await server.startWorker();
    } catch (err) {
      await server.stop();
      throw err;
    }
    log.info('DNS listening', {
      domain: server.ctx.zone.domain,
      listen: server.bound.map((b) => `${b.host}:${b.port}`).join(','),
      upstreams: upstreams.map(formatUpstream).join(',') || 'none',
      records: server.ctx.zone.records,
      ...(server.workerCount ? { workers: server.workerCount } : {}),
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
    if (this.workerCount > 0) {
      const old = [...this.workers];
      for (const w of old) this.retiring.add(w);
      for (let i = 0; i < this.workerCount; i++) await this.startWorker();
      await Promise.all(old.map((w) => stopWorker(w)));
    }
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
      workers: this.workerCount,
    };
  }

  stats(): DnsStats {
    const sum = new Float64Array(STAT_SLOTS);
    for (const c of [this.ctx.counters, ...this.workerCounters]) for (let i = 0; i < STAT_SLOTS; i++) sum[i]! += c[i]!;
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
      tcpConnections: this.tcpConnections,
      tcpUnsentBytes: [...this.conns].reduce((n, c) => n + c.writableLength, 0),
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
    for (const c of this.conns) c.destroy();
    await Promise.all([
      ...this.udp.map((s) => new Promise<void>((r) => {
        try {
          s.close(() => r());
        } catch {
          r();
        }
      })),
      ...this.tcp.map((s) => new Promise<void>((r) => s.close(() => r()))),
      ...[...this.workers].map((w) => stopWorker(w)),
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
      if (this.workers.length) {
        const m: ToWorker = {
          t: 'patch',
          upserts: changed.filter((raw) => set.names.has(raw)).map((raw) => [raw, set.names.get(raw)!]),
          removes: changed.filter((raw) => !set.names.has(raw)),
          serial,
        };
        for (const w of this.workers) w.postMessage(m);
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

  // ---- TCP -----------------------------------------------------------------------------

  private onTcp(socket: net.Socket): void {
    this.tcpConnections++;
    this.conns.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('error', () => {}); // resets and timeouts end the connection; nothing to report
    socket.on('close', () => this.conns.delete(socket));
    const counters = this.ctx.counters;
    const reader = new FrameReader();
    let outstanding = 0;
    let messageStarted = 0;
    // Reading stops (the socket is paused, and messages already read wait in the reader)
    // while MAX_TCP_PIPELINE questions are unanswered or the client has not taken what was
    // written: a client that never reads costs one read chunk and MAX_TCP_UNSENT_BYTES.
    let blocked = false;
    const from = socket.remoteAddress ?? 'unknown';
    const write = (bytes: Buffer) => {
      if (socket.destroyed) return;
      if (socket.writableLength + bytes.length > MAX_TCP_UNSENT_BYTES + MAX_MESSAGE + 2) {
        // It has not read the answers it already has: it is no DNS client.
        socket.destroy();
        return;
      }
      socket.write(bytes);
    };
    const handle = (msg: Buffer, now: number) => {
      counters[STAT.TCP]!++;
      const q = parseQuery(msg);
      if ('reject' in q) {
        const n = this.ctx.malformed.shouldLog(`${q.reject}:${q.reason}`, now);
        if (n !== undefined) log.debug('malformed DNS message', { from, reason: q.reason, transport: 'tcp' });
        if (q.reject === 'drop') {
          counters[STAT.DROPPED]!++;
          return void socket.destroy(); // not a query: this is no DNS client
        }
        const rcode = q.reject === 'notimp' ? RCODE.NOTIMP : RCODE.FORMERR;
        counters[STAT.RCODE + rcode]!++;
        return write(frame(headerOnlyReply(msg, rcode)));
      }
      outstanding++;
      this.answer(q, msg, MAX_MESSAGE, (a) => {
        outstanding--;
        write(frame(a.bytes));
        // An answer that came later (from upstream) may let us read again.
        if (blocked) pump(Date.now());
      });
    };
    let pumping = false;
    /** Answers the messages read so far, as far as the bounds allow. Not re-entered: an
     *  answer given at once calls back into here, and the loop running already goes on. */
    const pump = (now: number) => {
      if (pumping) return;
      pumping = true;
      try {
        pumpLoop(now);
      } finally {
        pumping = false;
      }
    };
    const pumpLoop = (now: number) => {
      while (!socket.destroyed) {
        if (outstanding >= MAX_TCP_PIPELINE || socket.writableLength >= MAX_TCP_UNSENT_BYTES || socket.writableNeedDrain) {
          if (!blocked) {
            blocked = true;
            socket.pause();
          }
          return;
        }
        const msg = reader.next();
        if (msg === undefined) break;
        messageStarted = now;
        handle(msg, now);
      }
      if (blocked && !socket.destroyed) {
        blocked = false;
        socket.resume();
      }
    };
    socket.on('drain', () => {
      try {
        if (blocked) pump(Date.now());
      } catch (err) {
        handlerFailed('TCP message', err);
        socket.destroy();
      }
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        const now = Date.now();
        if (reader.pending === 0) messageStarted = now;
        else if (now - messageStarted > TCP_MESSAGE_DEADLINE_MS) return void socket.destroy();
        reader.add(chunk);
        pump(now);
      } catch (err) {
        handlerFailed('TCP message', err);
        socket.destroy();
      }
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
        const tcp = await this.listenTcp({ host: l.host, port });
        this.tcp.push(tcp);
        this.bound.push({ host: l.host, port });
        if (this.workerCount > 0) await new Promise<void>((r) => udp.close(() => r()));
        else this.udp.push(udp);
        return;
      } catch (err) {
        udp.close();
        if (i >= attempts || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw listenError(err, l.host, port, 'TCP');
      }
    }
  }

  private listenTcp(l: ListenAddress): Promise<net.Server> {
    const server = net.createServer((s) => this.onTcp(s));
    server.maxConnections = MAX_TCP_CONNECTIONS;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: l.port, host: l.host, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', (err) => log.warn('DNS TCP listener error', { error: errorText(err) }));
        resolve(server);
      });
    });
  }

  private startWorker(): Promise<void> {
    const counters = new SharedArrayBuffer(STAT_SLOTS * Float64Array.BYTES_PER_ELEMENT);
    const init: WorkerInit = {
      kind: WORKER_KIND,
      listen: this.bound.map((b) => ({ ...b })),
      zone: this.zoneOptions(),
      set: { names: this.builder.applied() },
      serial: this.serial,
      maxUdp: this.maxUdp,
      counters,
    };
    const worker = new Worker(new URL('./udp-worker.ts', import.meta.url), { workerData: init, name: 'weft-dns-udp' });
    this.workers.push(worker);
    this.workerCounters.push(new Float64Array(counters));
    return new Promise((resolve, rejectStart) => {
      let ready = false;
      const reject = (err: Error) => {
        void worker.terminate().catch(() => {});
        rejectStart(err);
      };
      const onStart = (m: FromWorker) => {
        if (m.t === 'ready') {
          ready = true;
          worker.off('message', onStart);
          worker.on('message', (msg: FromWorker) => {
            try {
              this.onWorkerMessage(worker, msg);
            } catch (err) {
              handlerFailed('question from a UDP worker', err);
            }
          });
          resolve();
        } else if (m.t === 'error') {
          reject(listenError(Object.assign(new Error(m.message), { code: m.code }), m.host, m.port, 'UDP'));
        }
      };
      worker.on('message', onStart);
      worker.once('error', (err) => reject(new Error(`the DNS UDP worker failed to start: ${errorText(err)}`)));
      worker.on('error', (err) => log.error('DNS UDP worker failed', { error: errorText(err) }));
      // With workers, UDP is answered nowhere else: one that dies is replaced.
      worker.once('exit', (code) => {
        const i = this.workers.indexOf(worker);
        if (i >= 0) this.workers.splice(i, 1);
        if (this.retiring.delete(worker) || this.stopped || !ready) return;
        log.error('DNS UDP worker stopped; starting another', { code });
        setTimeout(() => this.replaceWorker(), WORKER_RESTART_MS).unref();
      });
    });
  }

  private replaceWorker(): void {
    if (this.stopped) return;
    // Through a promise: `new Worker` throws synchronously when a thread cannot be made, and
    // this runs in a timer, where a throw would end the process.
    Promise.resolve().then(() => this.startWorker()).catch((err: unknown) => {
      log.error('DNS UDP worker could not be replaced; trying again', { error: errorText(err) });
      setTimeout(() => this.replaceWorker(), WORKER_RESTART_MS).unref();
    });
  }

  /** A worker's question that the zone does not answer: answered here, sent from there. */
  private onWorkerMessage(worker: Worker, m: FromWorker): void {
    if (m.t !== 'ask' || this.stopped) return;
    const msg = Buffer.from(m.msg.buffer, m.msg.byteOffset, m.msg.byteLength);
    const q = parseQuery(msg);
    if ('reject' in q) return;
    this.answer(q, msg, m.limit, (a) => {
      if (this.stopped) return;
      // A copy of just the reply: Buffers share pooled memory, which would be cloned whole.
      worker.postMessage({ t: 'reply', sock: m.sock, bytes: new Uint8Array(a.bytes), port: m.port, address: m.address } satisfies ToWorker);
    });
  }
}

/** Asks a worker to close its sockets; terminates it if it does not within WORKER_STOP_MS. */
function stopWorker(w: Worker): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => void w.terminate().catch(() => {}), WORKER_STOP_MS);
    w.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    w.postMessage({ t: 'stop' } satisfies ToWorker);
  });
}

/** One sentence for the person at the terminal. */
function listenError(err: unknown, host: string, port: number, proto: 'UDP' | 'TCP'): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const where = `${host}:${port}`;
  if (code === 'EADDRINUSE') {
    return new Error(`the DNS address ${where} is in use over ${proto} (another DNS server such as dnsmasq or systemd-resolved may hold it; stop it or choose another with --dns-listen)`);
  }
  if (code === 'EACCES') return new Error(`serving DNS on ${where} needs root or CAP_NET_BIND_SERVICE (ports below 1024), or choose another port with --dns-listen`);
  if (code === 'EADDRNOTAVAIL') return new Error(`cannot serve DNS on ${where}: ${host} is not an address of this host (check --dns-listen)`);
  return new Error(`cannot serve DNS on ${where} over ${proto}: ${errorText(err)}`);
}
