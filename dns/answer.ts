// Answers from the zone: the hot path. A response is the query's header patched, the
// question copied from the query as the client wrote it (case kept, for resolvers that
// randomize it), the name's precomputed records in a fresh random order, and our OPT if the
// client spoke EDNS. Pure: the caller passes the size limit and the random source.

import {
  CLASS_ANY,
  CLASS_IN,
  HEADER_LEN,
  OPT_LEN,
  type Query,
  RCODE,
  TYPE,
  responseFlags,
  writeHeader,
  writeOpt,
} from './packet.ts';
import { keyIsUnder } from './names.ts';
import { nxdomainSoa, reverseAuthority, type RRSet, type Zone } from './zone.ts';

export interface Answer {
  bytes: Buffer;
  rcode: number;
  truncated: boolean;
}

/** Record order for shuffling; grown on demand, never retained across calls. */
let order = new Uint32Array(256);

/**
 * The answer to `q` (decoded from `msg`) from `zone`, at most `maxSize` octets, or undefined
 * when the name is not ours and goes upstream. `advertise` is the UDP size we announce in
 * our OPT; `random` returns floats in [0, 1).
 */
export function answerFromZone(zone: Zone, q: Query, msg: Buffer, maxSize: number, advertise: number, random: () => number): Answer | undefined {
  if (q.edns && q.edns.version > 0) return reply(q, msg, RCODE.BADVERS, false, maxSize, advertise);
  if (q.qclass !== CLASS_IN && q.qclass !== CLASS_ANY) return reply(q, msg, RCODE.REFUSED, false, maxSize, advertise);
  if (q.qtype === TYPE.OPT) return reply(q, msg, RCODE.FORMERR, false, maxSize, advertise);
  const node = zone.nodes.get(q.key);
  if (node) {
    if (q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) return reply(q, msg, RCODE.REFUSED, false, maxSize, advertise);
    let set: RRSet | undefined;
    switch (q.qtype) {
      case TYPE.A: set = node.a; break;
      case TYPE.SRV: set = node.srv; break;
      case TYPE.PTR: set = node.ptr; break;
      case TYPE.SOA: set = node.soa; break;
      case TYPE.ANY: set = node.a ?? node.srv ?? node.ptr ?? node.soa; break;
    }
    if (set) return positive(set, q, msg, maxSize, advertise, random);
    return negative(q, msg, RCODE.NOERROR, node.negative, maxSize, advertise);
  }
  if (keyIsUnder(q.key, zone.domainKey)) {
    if (q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) return reply(q, msg, RCODE.REFUSED, false, maxSize, advertise);
    return negative(q, msg, RCODE.NXDOMAIN, nxdomainSoa(zone, q.key.length - zone.domainKey.length, true), maxSize, advertise);
  }
  const rev = reverseAuthority(zone, q.key);
  if (rev) {
    return negative(q, msg, rev.nxdomain ? RCODE.NXDOMAIN : RCODE.NOERROR, nxdomainSoa(zone, rev.apexAt, false), maxSize, advertise);
  }
  return undefined;
}

/** A reply with the question and no records: REFUSED, SERVFAIL, FORMERR for a readable but
 *  unanswerable question, BADVERS. */
export function reply(q: Query, msg: Buffer, rcode: number, aa: boolean, maxSize: number, advertise: number): Answer {
  return negative(q, msg, rcode, undefined, maxSize, advertise, aa);
}

function positive(set: RRSet, q: Query, msg: Buffer, maxSize: number, advertise: number, random: () => number): Answer {
  const qEnd = q.questionEnd;
  const opt = q.edns ? OPT_LEN : 0;
  const n = set.count;
  const offsets = set.offsets;
  const data = set.data;
  let room = maxSize - qEnd - opt;
  let bytes = set.data.length;
  let fitting = n;
  if (bytes > room) {
    // Truncated: as many whole records as fit, in random order, TC set (what Docker's
    // embedded DNS does), so that a client ignoring TC still gets a useful, shuffled answer.
    fitting = 0;
    bytes = 0;
  }
  if (order.length < n) order = new Uint32Array(Math.max(n, order.length * 2));
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  if (fitting === 0) {
    for (let i = 0; i < n; i++) {
      const k = order[i]!;
      const len = offsets[k + 1]! - offsets[k]!;
      if (len > room) break;
      room -= len;
      bytes += len;
      fitting++;
    }
  }
  const truncated = fitting < n;
  const glue = !truncated && set.glue && set.glue.data.length <= room - bytes ? set.glue : undefined;
  const size = qEnd + bytes + (glue ? glue.data.length : 0) + opt;
  const out = Buffer.allocUnsafe(size);
  writeHeader(out, q.id, responseFlags(q.flags, true, truncated, RCODE.NOERROR), 1, fitting, 0, (glue ? glue.count : 0) + (opt ? 1 : 0));
  copy(msg, HEADER_LEN, qEnd, out, HEADER_LEN);
  let o = qEnd;
  for (let i = 0; i < fitting; i++) {
    const k = order[i]!;
    o = copy(data, offsets[k]!, offsets[k + 1]!, out, o);
  }
  if (glue) o = copy(glue.data, 0, glue.data.length, out, o);
  if (opt) writeOpt(out, o, advertise, RCODE.NOERROR, q.edns!.dnssecOk);
  return { bytes: out, rcode: RCODE.NOERROR, truncated };
}

function negative(q: Query, msg: Buffer, rcode: number, soa: Buffer | undefined, maxSize: number, advertise: number, aa = true): Answer {
  const qEnd = q.questionEnd;
  const opt = q.edns || rcode > 15 ? OPT_LEN : 0;
  const auth = soa && qEnd + soa.length + opt <= maxSize ? soa : undefined;
  const out = Buffer.allocUnsafe(qEnd + (auth ? auth.length : 0) + opt);
  writeHeader(out, q.id, responseFlags(q.flags, aa, false, rcode), 1, 0, auth ? 1 : 0, opt ? 1 : 0);
  copy(msg, HEADER_LEN, qEnd, out, HEADER_LEN);
  let o = qEnd;
  if (auth) o = copy(auth, 0, auth.length, out, o);
  if (opt) writeOpt(out, o, advertise, rcode, q.edns?.dnssecOk ?? false);
  return { bytes: out, rcode, truncated: false };
}

/** Copies src[start, end) to dst at `at`; returns the offset after it. A loop for the short
 *  runs that make up answers (a 16-octet A record): cheaper than a native call each. */
function copy(src: Uint8Array, start: number, end: number, dst: Uint8Array, at: number): number {
  const len = end - start;
  if (len > 64) {
    dst.set(src.subarray(start, end), at);
    return at + len;
  }
  for (let i = 0; i < len; i++) dst[at + i] = src[start + i]!;
  return at + len;
}
