// The DNS wire format (RFC 1035 §4, EDNS0 of RFC 6891) as far as weft's server needs it:
// a bounded query decoder that never follows a pointer and never reads past the message,
// a bounded scanner for upstream responses, and the small writers that answers share.
// Pure: no I/O, no clock, no randomness.

export const HEADER_LEN = 12;
/** The largest DNS message (TCP's two-octet length prefix). */
export const MAX_MESSAGE = 65_535;
/** RFC 1035 §4.2.1: the UDP limit for a client that does not speak EDNS0. */
export const CLASSIC_UDP_LIMIT = 512;
/** What we advertise and the most we send over UDP: the DNS Flag Day 2020 value, which
 *  avoids IP fragmentation on every common path (1280 IPv6 MTU − 48 octets of headers). */
export const DEFAULT_MAX_UDP = 1232;
/** An OPT pseudo-record with no options: root owner, type, class, TTL, RDLENGTH. */
export const OPT_LEN = 11;

export const TYPE = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41,
  IXFR: 251, AXFR: 252, ANY: 255,
} as const;

export const CLASS_IN = 1;
export const CLASS_ANY = 255;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
export const RCODE_NAME: Readonly<Record<number, string>> = {
  0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED', 16: 'BADVERS',
};

export const OPCODE_QUERY = 0;

// Header flag bits (the 16-bit word at offset 2).
export const FLAG_QR = 0x8000;
export const OPCODE_MASK = 0x7800;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;
export const FLAG_AD = 0x0020;
export const FLAG_CD = 0x0010;
/** The DO bit in the OPT record's flags (RFC 3225). */
export const EDNS_DO = 0x8000;

export interface Edns {
  /** The requestor's UDP payload size, raised to 512 if it claims less (RFC 6891 §6.2.5). */
  udpSize: number;
  version: number;
  dnssecOk: boolean;
}

export interface Query {
  id: number;
  /** The header's flag word as received. */
  flags: number;
  /** The question name in wire form, lowercased (ASCII only, RFC 4343), as latin1: the zone's map key. */
  key: string;
  /** Offset just past QTYPE and QCLASS: the question is msg[12, questionEnd). */
  questionEnd: number;
  qtype: number;
  qclass: number;
  edns: Edns | undefined;
}

export type RejectAction = 'drop' | 'formerr' | 'notimp';

/** Why a message gets no ordinary answer: dropped (not a query at all), or an error reply. */
export interface Rejection {
  reject: RejectAction;
  reason: string;
}

const drop = (reason: string): Rejection => ({ reject: 'drop', reason });
const formerr = (reason: string): Rejection => ({ reject: 'formerr', reason });

/** Scratch for lowercasing a name (at most 255 octets): one per process, never retained. */
const lowerScratch = Buffer.alloc(256);

/**
 * Decodes a query. Exactly one question, a name of labels only (a compression pointer in the
 * question can only point into the header), at most one OPT and only in the additional
 * section. Answer and authority records are skipped, not interpreted. Bytes after the last
 * record are ignored. Work is bounded by the message length.
 */
export function parseQuery(msg: Buffer): Query | Rejection {
  const len = msg.length;
  if (len < HEADER_LEN) return drop(`message is ${len} octets, shorter than the 12-octet header`);
  const flags = (msg[2]! << 8) | msg[3]!;
  if (flags & FLAG_QR) return drop('message is a response, not a query');
  if ((flags & OPCODE_MASK) !== OPCODE_QUERY) {
    return { reject: 'notimp', reason: `opcode ${(flags & OPCODE_MASK) >> 11} is not supported (only QUERY)` };
  }
  const qd = (msg[4]! << 8) | msg[5]!;
  if (qd !== 1) return formerr(`${qd} questions; exactly one is supported`);

  let o = HEADER_LEN;
  let upper = false;
  for (;;) {
    if (o >= len) return formerr('the question name runs past the end of the message');
    const l = msg[o]!;
    if (l === 0) {
      o++;
      break;
    }
    if (l > 63) return formerr(l >= 0xc0 ? 'compression pointer in the question name' : `label type 0x${l.toString(16)} is not supported`);
    const end = o + 1 + l;
    if (end >= len) return formerr('the question name runs past the end of the message');
    for (let i = o + 1; i < end; i++) {
      const c = msg[i]!;
      if (c >= 0x41 && c <= 0x5a) upper = true;
    }
    o = end;
    if (o - HEADER_LEN > 254) return formerr('the question name is longer than 255 octets');
  }
  const nameEnd = o;
  if (o + 4 > len) return formerr('the question is cut short before its type and class');
  const qtype = (msg[o]! << 8) | msg[o + 1]!;
  const qclass = (msg[o + 2]! << 8) | msg[o + 3]!;
  o += 4;
  const questionEnd = o;

  let key: string;
  if (upper) {
    for (let i = HEADER_LEN; i < nameEnd; i++) {
      const c = msg[i]!;
      lowerScratch[i - HEADER_LEN] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    key = lowerScratch.toString('latin1', 0, nameEnd - HEADER_LEN);
  } else {
    key = msg.toString('latin1', HEADER_LEN, nameEnd);
  }

  const an = (msg[6]! << 8) | msg[7]!;
  const ns = (msg[8]! << 8) | msg[9]!;
  const ar = (msg[10]! << 8) | msg[11]!;
  let edns: Edns | undefined;
  const records = an + ns + ar;
  if (records > 0) {
    // Every record takes at least 11 octets: a count the message cannot hold is a lie.
    if (records * OPT_LEN > len - o) return formerr(`the header announces ${records} records that the message cannot hold`);
    for (let r = 0; r < records; r++) {
      const start = o;
      o = skipName(msg, o);
      if (o < 0) return formerr(`record ${r + 1} has a malformed owner name`);
      if (o + 10 > len) return formerr(`record ${r + 1} is cut short`);
      const type = (msg[o]! << 8) | msg[o + 1]!;
      const rdlen = (msg[o + 8]! << 8) | msg[o + 9]!;
      const next = o + 10 + rdlen;
      if (next > len) return formerr(`record ${r + 1} is cut short`);
      if (type === TYPE.OPT) {
        if (r < an + ns) return formerr('an OPT record outside the additional section');
        if (edns) return formerr('more than one OPT record');
        if (o !== start + 1) return formerr('an OPT record whose owner is not the root');
        const udp = (msg[o + 2]! << 8) | msg[o + 3]!;
        edns = {
          udpSize: udp < CLASSIC_UDP_LIMIT ? CLASSIC_UDP_LIMIT : udp,
          version: msg[o + 5]!,
          dnssecOk: (msg[o + 6]! & 0x80) !== 0,
        };
      }
      o = next;
    }
  }
  return { id: (msg[0]! << 8) | msg[1]!, flags, key, questionEnd, qtype, qclass, edns };
}

/** Offset after the name at `o` (labels ending in the root or a pointer), or -1. Never
 *  follows pointers: the caller only needs to step over the name. */
export function skipName(msg: Uint8Array, o: number): number {
  const len = msg.length;
  let total = 0;
  for (;;) {
    if (o >= len) return -1;
    const l = msg[o]!;
    if (l === 0) return o + 1;
    if ((l & 0xc0) === 0xc0) return o + 2 <= len ? o + 2 : -1;
    if (l > 63) return -1;
    total += l + 1;
    if (total > 255) return -1;
    o += l + 1;
  }
}

/** The flag word of a response to a query with flags `queryFlags`: opcode, RD and CD echoed,
 *  RA always (we forward), AA and TC as given. */
export function responseFlags(queryFlags: number, aa: boolean, tc: boolean, rcode: number): number {
  return FLAG_QR | (queryFlags & (OPCODE_MASK | FLAG_RD | FLAG_CD)) | FLAG_RA
    | (aa ? FLAG_AA : 0) | (tc ? FLAG_TC : 0) | (rcode & 0xf);
}

export function writeHeader(out: Buffer, id: number, flags: number, qd: number, an: number, ns: number, ar: number): void {
  out[0] = id >>> 8;
  out[1] = id & 0xff;
  out[2] = flags >>> 8;
  out[3] = flags & 0xff;
  out[4] = 0;
  out[5] = qd;
  out[6] = an >>> 8;
  out[7] = an & 0xff;
  out[8] = ns >>> 8;
  out[9] = ns & 0xff;
  out[10] = ar >>> 8;
  out[11] = ar & 0xff;
}

/** Writes our OPT record at `o` (advertising `udpSize`; `rcode` is the full extended RCODE
 *  whose upper 8 bits go here, RFC 6891 §6.1.3); returns the offset after it. */
export function writeOpt(out: Buffer, o: number, udpSize: number, rcode: number, dnssecOk: boolean): number {
  out[o] = 0;
  out[o + 1] = 0;
  out[o + 2] = TYPE.OPT;
  out[o + 3] = udpSize >>> 8;
  out[o + 4] = udpSize & 0xff;
  out[o + 5] = rcode >>> 4;
  out[o + 6] = 0; // version 0
  out[o + 7] = dnssecOk ? 0x80 : 0;
  out[o + 8] = 0;
  out[o + 9] = 0;
  out[o + 10] = 0;
  return o + OPT_LEN;
}

/**
 * A reply with the header alone (no question): for FORMERR and NOTIMP, where the question
 * may be unreadable. Needs the 12-octet header of the query; echoes its ID, opcode and RD.
 */
export function headerOnlyReply(msg: Uint8Array, rcode: number): Buffer {
  const out = Buffer.allocUnsafe(HEADER_LEN);
  const flags = (msg[2]! << 8) | msg[3]!;
  writeHeader(out, (msg[0]! << 8) | msg[1]!, responseFlags(flags, false, false, rcode), 0, 0, 0, 0);
  return out;
}

/** The largest response a client may receive over UDP: 512 without EDNS, else its stated
 *  size up to our own limit. */
export function udpLimit(edns: Edns | undefined, maxUdp: number): number {
  if (!edns) return CLASSIC_UDP_LIMIT;
  return edns.udpSize < maxUdp ? edns.udpSize : maxUdp;
}

// ---- Responses from upstream resolvers -------------------------------------------------

export interface ScannedRecord {
  /** Offset of the owner name. */
  start: number;
  type: number;
  /** Offset of the 32-bit TTL. */
  ttlAt: number;
  ttl: number;
  /** Offset just past the record. */
  end: number;
}

export interface ScannedResponse {
  id: number;
  flags: number;
  rcode: number;
  key: string;
  qtype: number;
  qclass: number;
  questionEnd: number;
  an: number;
  ns: number;
  ar: number;
  records: ScannedRecord[];
}

/**
 * Finds the record boundaries of a response from an upstream resolver, bounded like
 * parseQuery. Returns a reason when the message is not a well-formed response to one
 * question; names inside records are stepped over, never followed.
 */
export function scanResponse(msg: Uint8Array): ScannedResponse | string {
  const len = msg.length;
  if (len < HEADER_LEN) return `response is ${len} octets, shorter than the header`;
  const flags = (msg[2]! << 8) | msg[3]!;
  if (!(flags & FLAG_QR)) return 'message is a query, not a response';
  const qd = (msg[4]! << 8) | msg[5]!;
  if (qd !== 1) return `response carries ${qd} questions`;
  let o = HEADER_LEN;
  let key = '';
  for (;;) {
    if (o >= len) return 'question name runs past the end';
    const l = msg[o]!;
    if (l === 0) {
      o++;
      break;
    }
    if (l > 63) return 'question name is not plain labels';
    if (o + 1 + l >= len) return 'question name runs past the end';
    o += 1 + l;
    if (o - HEADER_LEN > 254) return 'question name is longer than 255 octets';
  }
  const nameEnd = o;
  if (o + 4 > len) return 'question cut short';
  for (let i = HEADER_LEN; i < nameEnd; i++) {
    const c = msg[i]!;
    lowerScratch[i - HEADER_LEN] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
  }
  key = lowerScratch.toString('latin1', 0, nameEnd - HEADER_LEN);
  const qtype = (msg[o]! << 8) | msg[o + 1]!;
  const qclass = (msg[o + 2]! << 8) | msg[o + 3]!;
  o += 4;
  const questionEnd = o;
  const an = (msg[6]! << 8) | msg[7]!;
  const ns = (msg[8]! << 8) | msg[9]!;
  const ar = (msg[10]! << 8) | msg[11]!;
  const count = an + ns + ar;
  if (count * OPT_LEN > len - o) return `header announces ${count} records that the message cannot hold`;
  const records: ScannedRecord[] = [];
  for (let r = 0; r < count; r++) {
    const start = o;
    o = skipName(msg, o);
    if (o < 0 || o + 10 > len) return `record ${r + 1} is malformed or cut short`;
    const type = (msg[o]! << 8) | msg[o + 1]!;
    const ttlAt = o + 4;
    const ttl = ((msg[ttlAt]! << 24) | (msg[ttlAt + 1]! << 16) | (msg[ttlAt + 2]! << 8) | msg[ttlAt + 3]!) >>> 0;
    const end = o + 10 + ((msg[o + 8]! << 8) | msg[o + 9]!);
    if (end > len) return `record ${r + 1} is cut short`;
    records.push({ start, type, ttlAt, ttl, end });
    o = end;
  }
  return { id: (msg[0]! << 8) | msg[1]!, flags, rcode: flags & 0xf, key, qtype, qclass, questionEnd, an, ns, ar, records };
}

/** A query for the question msg[12, questionEnd) of `question`, with our OPT (DO clear), RD
 *  set: what the forwarder sends upstream. */
export function buildUpstreamQuery(question: Uint8Array, questionEnd: number, id: number, udpSize: number): Buffer {
  const qlen = questionEnd - HEADER_LEN;
  const out = Buffer.allocUnsafe(HEADER_LEN + qlen + OPT_LEN);
  writeHeader(out, id, FLAG_RD, 1, 0, 0, 1);
  out.set(question.subarray(HEADER_LEN, questionEnd), HEADER_LEN);
  writeOpt(out, HEADER_LEN + qlen, udpSize, 0, false);
  return out;
}
