// Names outside the mesh go to the upstream resolvers: one question at a time per name
// (concurrent clients asking the same thing share one upstream query), each upstream tried
// in turn within a deadline, over UDP and again over TCP when the answer was truncated.
// Answers are cached (cache.ts). Wraps node:dgram and node:net; decides nothing about which
// names are ours.

import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { AnswerCache, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES, questionKey, toUpstreamAnswer, type UpstreamAnswer } from './cache.ts';
import { DEFAULT_MAX_UDP, FLAG_TC, type Query, RCODE, RCODE_NAME, type ScannedResponse, buildUpstreamQuery, scanResponse } from './packet.ts';
import { FrameReader, frame } from './tcp-frames.ts';
import { formatUpstream, type UpstreamAddress } from './upstream-config.ts';

/** Per upstream and attempt. Clients (glibc, musl) wait about 5 s before retrying; one slow
 *  upstream must leave time for the next and for a SERVFAIL well before that. */
export const UPSTREAM_ATTEMPT_MS = 1000;
/** For all upstreams together, after which the client gets SERVFAIL. */
export const UPSTREAM_DEADLINE_MS = 2500;
/** Questions waiting for upstreams at once; beyond it clients get SERVFAIL at once, so a
 *  flood of unique names cannot pile up sockets and memory. */
export const MAX_IN_FLIGHT = 256;

export interface ForwarderOptions {
  upstreams: readonly UpstreamAddress[];
  attemptMs?: number;
  deadlineMs?: number;
  cacheEntries?: number;
  cacheBytes?: number;
  maxInFlight?: number;
  now?: () => number;
}

export type ForwardOutcome = { answer: UpstreamAnswer } | { failure: string };

export interface ForwarderStats {
  forwarded: number;
  cacheHits: number;
  coalesced: number;
  failures: number;
  cacheEntries: number;
}

export class Forwarder {
  readonly upstreams: readonly UpstreamAddress[];
  private readonly cache: AnswerCache;
  private readonly attemptMs: number;
  private readonly deadlineMs: number;
  private readonly maxInFlight: number;
  private readonly now: () => number;
  private readonly inFlight = new Map<string, Promise<ForwardOutcome>>();
  private readonly cancels = new Set<() => void>();
  /** The upstream that answered last is asked first. */
  private preferred = 0;
  private closed = false;
  private readonly counters = { forwarded: 0, cacheHits: 0, coalesced: 0, failures: 0 };

  constructor(opts: ForwarderOptions) {
    this.upstreams = [...opts.upstreams];
    this.attemptMs = opts.attemptMs ?? UPSTREAM_ATTEMPT_MS;
    this.deadlineMs = opts.deadlineMs ?? UPSTREAM_DEADLINE_MS;
    this.maxInFlight = opts.maxInFlight ?? MAX_IN_FLIGHT;
    this.now = opts.now ?? Date.now;
    this.cache = new AnswerCache(opts.cacheEntries ?? DEFAULT_CACHE_ENTRIES, opts.cacheBytes ?? DEFAULT_CACHE_BYTES);
  }

  stats(): ForwarderStats {
    return { ...this.counters, cacheEntries: this.cache.size };
  }

  /** A cached answer to the question, if any is still fresh. */
  cached(q: Query): UpstreamAnswer | undefined {
    const a = this.cache.get(questionKey(q.key, q.qtype, q.qclass), this.now());
    if (a) this.counters.cacheHits++;
    return a;
  }

  /** Asks the upstreams (the caller has checked the cache). Never rejects. */
  forward(q: Query, msg: Buffer): Promise<ForwardOutcome> {
    const key = questionKey(q.key, q.qtype, q.qclass);
    const pending = this.inFlight.get(key);
    if (pending) {
      this.counters.coalesced++;
      return pending;
    }
    if (this.closed) return Promise.resolve({ failure: 'the DNS server is stopping' });
    if (this.upstreams.length === 0) return Promise.resolve({ failure: 'no upstream resolvers are configured' });
    if (this.inFlight.size >= this.maxInFlight) {
      this.counters.failures++;
      return Promise.resolve({ failure: `${this.maxInFlight} questions are already waiting for upstream resolvers` });
    }
    this.counters.forwarded++;
    // ask() settles through event handlers that each catch what they call; should anything
    // still throw, the question fails like any other, and the promise never rejects.
    const p = this.ask(q, msg, key)
      .catch((err: unknown): ForwardOutcome => {
        this.counters.failures++;
        return { failure: `forwarding failed: ${(err as Error)?.message ?? String(err)}` };
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  /** Cancels everything in flight (their outcomes become failures) and refuses new work. */
  close(): void {
    this.closed = true;
    for (const c of [...this.cancels]) c();
    this.cache.clear();
  }

  private async ask(q: Query, msg: Buffer, key: string): Promise<ForwardOutcome> {
    const start = this.now();
    const reasons: string[] = [];
    const n = this.upstreams.length;
    const first = this.preferred;
    for (let i = 0; i < n && !this.closed; i++) {
      const index = (first + i) % n;
      const up = this.upstreams[index] as UpstreamAddress;
      const left = this.deadlineMs - (this.now() - start);
      if (left <= 0) {
        reasons.push(`${formatUpstream(up)}: not asked, the ${this.deadlineMs} ms deadline passed`);
        break;
      }
      const id = randomInt(0x10000);
      const query = buildUpstreamQuery(msg, q.questionEnd, id, DEFAULT_MAX_UDP);
      const timeout = Math.min(this.attemptMs, left);
      let got = await this.exchangeUdp(up, query, id, q, timeout);
      if (typeof got !== 'string' && got.scanned.flags & FLAG_TC) {
        got = await this.exchangeTcp(up, query, id, q, Math.max(1, this.deadlineMs - (this.now() - start)));
      }
      if (typeof got === 'string') {
        reasons.push(`${formatUpstream(up)}: ${got}`);
        continue;
      }
      const rcode = got.scanned.rcode;
      if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) {
        reasons.push(`${formatUpstream(up)}: answered ${RCODE_NAME[rcode] ?? `RCODE ${rcode}`}`);
        continue;
      }
      this.preferred = index;
      const answer = toUpstreamAnswer(got.msg, got.scanned, this.now());
      if (!this.closed) this.cache.set(key, answer);
      return { answer };
    }
    this.counters.failures++;
    return { failure: this.closed ? 'the DNS server is stopping' : reasons.join('; ') };
  }

  /** One query over a fresh, connected UDP socket: a random source port and ID per query, and
   *  the kernel drops datagrams from anyone but the upstream (spoofing needs both guesses). */
  private exchangeUdp(up: UpstreamAddress, query: Buffer, id: number, q: Query, timeoutMs: number): Promise<Exchange | string> {
    return new Promise((resolve) => {
      const sock = dgram.createSocket(net.isIPv6(up.host.split('%')[0] as string) ? 'udp6' : 'udp4');
      let done = false;
      const finish = (r: Exchange | string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.cancels.delete(cancel);
        try {
          sock.close();
        } catch {
          // already closed
        }
        resolve(r);
      };
      const cancel = () => finish('the DNS server is stopping');
      const timer = setTimeout(() => finish(`no answer within ${timeoutMs} ms`), timeoutMs);
      this.cancels.add(cancel);
      sock.on('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED' ? 'nothing answers there (port unreachable)' : err.message));
      sock.on('message', (m) => {
        let s: ScannedResponse | undefined;
        try {
          s = matching(m, id, q);
        } catch (err) {
          return finish(`its answer could not be read: ${(err as Error).message}`);
        }
        if (s) finish({ msg: m, scanned: s });
      });
      // Node passes a failed connect (ENETUNREACH: no route to this upstream; EACCES: a
      // broadcast address) to this callback; sending then would throw out of the event loop.
      // connect and send throw synchronously for what node:dgram refuses outright (a bad
      // port, a closed socket); that too is this upstream failing, not the process.
      try {
        sock.connect(up.port, up.host, (err?: Error) => {
          if (done) return;
          if (err) return finish(`cannot reach it: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
          try {
            sock.send(query, (e) => {
              if (e) finish(e.message);
            });
          } catch (e) {
            finish((e as Error).message);
          }
        });
      } catch (err) {
        finish(`cannot reach it: ${(err as Error).message}`);
      }
    });
  }

  private exchangeTcp(up: UpstreamAddress, query: Buffer, id: number, q: Query, timeoutMs: number): Promise<Exchange | string> {
    return new Promise((resolve) => {
      let sock: net.Socket;
      try {
        sock = net.connect({ host: up.host, port: up.port });
      } catch (err) {
        return resolve(`over TCP: cannot reach it: ${(err as Error).message}`);
      }
      const reader = new FrameReader();
      let done = false;
      const finish = (r: Exchange | string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.cancels.delete(cancel);
        sock.destroy();
        resolve(r);
      };
      const cancel = () => finish('the DNS server is stopping');
      const timer = setTimeout(() => finish(`no answer over TCP within ${timeoutMs} ms`), timeoutMs);
      this.cancels.add(cancel);
      sock.on('error', (err: NodeJS.ErrnoException) => finish(`over TCP: ${err.code === 'ECONNREFUSED' ? 'connection refused' : err.message}`));
      sock.on('close', () => finish('closed the TCP connection without an answer'));
      sock.on('connect', () => sock.write(frame(query)));
      sock.on('data', (chunk) => {
        try {
          for (const m of reader.push(chunk)) {
            const s = matching(m, id, q);
            if (s) return finish({ msg: m, scanned: s });
          }
        } catch (err) {
          finish(`its answer over TCP could not be read: ${(err as Error).message}`);
        }
      });
    });
  }
}

interface Exchange {
  msg: Buffer;
  scanned: ScannedResponse;
}

/** The response, if `m` is one to our question with our ID. */
function matching(m: Buffer, id: number, q: Query): ScannedResponse | undefined {
  const s = scanResponse(m);
  if (typeof s === 'string') return undefined;
  if (s.id !== id || s.key !== q.key || s.qtype !== q.qtype || s.qclass !== q.qclass) return undefined;
  return s;
}
