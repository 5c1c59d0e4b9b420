// Answers from upstream resolvers, kept for as long as their TTLs allow (RFC 1035 §7.4;
// negative answers per RFC 2308) and replayed to later clients with the TTLs counted down.
// Pure: the caller passes the time. Bounded in entries and in bytes; least recently used
// entries go first.

import {
  HEADER_LEN,
  OPT_LEN,
  type Query,
  RCODE,
  type ScannedResponse,
  TYPE,
  responseFlags,
  writeHeader,
  writeOpt,
} from './packet.ts';
import type { Answer } from './answer.ts';

/** Enough for every name a host's containers use in a busy hour; small in memory. */
export const DEFAULT_CACHE_ENTRIES = 10_000;
/** A hostile or broken upstream cannot make us hold more than this. */
export const DEFAULT_CACHE_BYTES = 8 * 1024 * 1024;
/** Upper bound on how long an upstream answer is reused, whatever its TTL says: a day-long
 *  TTL on a changed record should not outlive an hour here. */
export const MAX_CACHE_TTL_S = 3600;

/** An upstream answer without its header, question and OPT: what any client's reply reuses. */
export interface UpstreamAnswer {
  rcode: number;
  an: number;
  ns: number;
  ar: number;
  /** The records, exactly as received (compression pointers stay valid: a client's question
   *  for the same name has the same length). */
  body: Buffer;
  /** Offsets of the TTL fields within `body`, and their values as received. */
  ttlAt: Uint32Array;
  ttls: Uint32Array;
  /** Seconds this answer may be reused; 0: answer this client, keep nothing. */
  lifetime: number;
  receivedAt: number;
}

/**
 * Turns a scanned upstream response into a reusable answer. Only NOERROR and NXDOMAIN are
 * kept: a positive answer for its smallest TTL, a negative one for its SOA's
 * min(TTL, MINIMUM), a negative one without SOA not at all.
 */
export function toUpstreamAnswer(msg: Buffer, s: ScannedResponse, now: number): UpstreamAnswer {
  const records = s.records;
  let keep = records.length;
  let ar = s.ar;
  const firstAdditional = s.an + s.ns;
  for (let i = firstAdditional; i < records.length; i++) {
    if (records[i]!.type !== TYPE.OPT) continue;
    // Our query carried an OPT, so the reply's belongs to the upstream hop only. Dropping the
    // last record is safe; dropping one in the middle could move bytes that later pointers
    // refer to, so then the whole (optional) additional section goes.
    if (i === records.length - 1) {
      keep = i;
      ar -= 1;
    } else {
      keep = firstAdditional;
      ar = 0;
    }
    break;
  }
  const bodyEnd = keep === 0 ? s.questionEnd : records[keep - 1]!.end;
  const body = Buffer.from(msg.subarray(s.questionEnd, bodyEnd));
  const ttlAt = new Uint32Array(keep);
  const ttls = new Uint32Array(keep);
  let minTtl = Infinity;
  let negativeTtl = -1;
  for (let i = 0; i < keep; i++) {
    const r = records[i]!;
    ttlAt[i] = r.ttlAt - s.questionEnd;
    ttls[i] = r.ttl;
    if (i < firstAdditional) minTtl = Math.min(minTtl, r.ttl);
    if (r.type === TYPE.SOA && i >= s.an && i < firstAdditional && r.end - 4 >= r.start) {
      const minimum = msg.readUInt32BE(r.end - 4);
      negativeTtl = Math.min(r.ttl, minimum);
    }
  }
  let lifetime = 0;
  const negative = s.rcode === RCODE.NXDOMAIN || (s.rcode === RCODE.NOERROR && s.an === 0);
  if (negative) lifetime = negativeTtl > 0 ? negativeTtl : 0;
  else if (s.rcode === RCODE.NOERROR) lifetime = Number.isFinite(minTtl) ? minTtl : 0;
  if (s.flags & 0x0200) lifetime = 0; // truncated: never reuse a partial answer
  lifetime = Math.min(lifetime, MAX_CACHE_TTL_S);
  return { rcode: s.rcode, an: s.an, ns: s.ns, ar, body, ttlAt, ttls, lifetime, receivedAt: now };
}

/** The reply to `q` (from `msg`) built from an upstream answer, TTLs counted down to `now`.
 *  If it exceeds `maxSize` the reply is the question alone with TC set, and the client asks
 *  again over TCP (a partial answer from elsewhere could be inconsistent). */
export function replyFromUpstream(a: UpstreamAnswer, q: Query, msg: Buffer, maxSize: number, advertise: number, now: number): Answer {
  const qEnd = q.questionEnd;
  const opt = q.edns ? OPT_LEN : 0;
  const full = qEnd + a.body.length + opt;
  const truncated = full > maxSize;
  const out = Buffer.allocUnsafe(truncated ? qEnd + opt : full);
  const flags = responseFlags(q.flags, false, truncated, a.rcode);
  if (truncated) writeHeader(out, q.id, flags, 1, 0, 0, opt ? 1 : 0);
  else writeHeader(out, q.id, flags, 1, a.an, a.ns, a.ar + (opt ? 1 : 0));
  msg.copy(out, HEADER_LEN, HEADER_LEN, qEnd);
  let o = qEnd;
  if (!truncated) {
    a.body.copy(out, o);
    const elapsed = Math.max(0, Math.floor((now - a.receivedAt) / 1000));
    if (elapsed > 0) {
      for (let i = 0; i < a.ttlAt.length; i++) {
        const t = a.ttls[i]!;
        out.writeUInt32BE(t > elapsed ? t - elapsed : 0, o + a.ttlAt[i]!);
      }
    }
    o += a.body.length;
  }
  if (opt) writeOpt(out, o, advertise, a.rcode, q.edns!.dnssecOk);
  return { bytes: out, rcode: a.rcode, truncated };
}

/** Cache of upstream answers by question (name, type, class). */
export class AnswerCache {
  private readonly entries = new Map<string, { answer: UpstreamAnswer; expiresAt: number }>();
  private bytes = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;

  constructor(maxEntries: number = DEFAULT_CACHE_ENTRIES, maxBytes: number = DEFAULT_CACHE_BYTES) {
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
  }

  get size(): number {
    return this.entries.size;
  }

  get byteSize(): number {
    return this.bytes;
  }

  get(key: string, now: number): UpstreamAnswer | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    if (now >= e.expiresAt) {
      this.bytes -= e.answer.body.length;
      return undefined;
    }
    this.entries.set(key, e); // most recently used last
    return e.answer;
  }

  /** Keeps `a` for its lifetime; answers with lifetime 0 or larger than the whole cache are
   *  not kept. */
  set(key: string, a: UpstreamAnswer): void {
    if (a.lifetime <= 0 || a.body.length > this.maxBytes) return;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= old.answer.body.length;
    }
    this.entries.set(key, { answer: a, expiresAt: a.receivedAt + a.lifetime * 1000 });
    this.bytes += a.body.length;
    while (this.entries.size > this.maxEntries || this.bytes > this.maxBytes) {
      const [k, e] = this.entries.entries().next().value as [string, { answer: UpstreamAnswer }];
      this.entries.delete(k);
      this.bytes -= e.answer.body.length;
    }
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

/** The cache key of a question. */
export function questionKey(key: string, qtype: number, qclass: number): string {
  return `${key}/${qtype}/${qclass}`;
}
