// The zone: precomputed answers. For every name, the wire bytes of its A, SRV, PTR (and at
// the apex SOA) records, each record's owner a pointer to the question at offset 12, and the
// SOA that a negative answer at that name carries. Answering is then a map lookup, a shuffle
// of byte segments and a copy (answer.ts). zone-builder.ts keeps a zone up to date with the
// records. Pure: no I/O, no clock, no randomness.

import {
  DEFAULT_DOMAIN,
  keyIsUnder,
  keyLabels,
  keyToName,
  nameKey,
  nameToWire,
  normalizeName,
} from './names.ts';
import { DEFAULT_IPAM_RANGE } from '../mesh/ipam/cidr.ts';
import { parseIPv4 } from '../mesh/ipv4.ts';
import { CLASS_IN, HEADER_LEN, TYPE } from './packet.ts';
import type { DnsSrv } from './records.ts';

/** Short enough that a moved container is answered correctly almost at once by resolvers that
 *  cache, cheap for us because every answer is precomputed. */
export const DEFAULT_TTL_S = 1;
/** Reverse ranges answered authoritatively (PTR, NXDOMAIN) and never forwarded: the default
 *  container address space (a peer passes its own --ipalloc-range). */
export const DEFAULT_REVERSE = [DEFAULT_IPAM_RANGE] as const;
/** SOA timers matter only to secondary servers, of which there are none; RFC 1912 values. */
const SOA_REFRESH = 3600;
const SOA_RETRY = 600;
const SOA_EXPIRE = 86_400;
/** RFC 2782 weight: equal non-zero weights make weighted clients choose uniformly. */
export const SRV_DEFAULT_WEIGHT = 1;
/** The owner of every precomputed record: a compression pointer to the question name. */
const PTR_TO_QUESTION = 0xc000 | HEADER_LEN;
const IN_ADDR_ARPA_KEY = nameKey('in-addr.arpa');

export interface ZoneOptions {
  domain?: string;
  ttl?: number;
  /** CIDRs of IPv4 space whose reverse names we answer alone (default DEFAULT_REVERSE). */
  reverse?: readonly string[];
  /** The SOA serial: the caller's generation number (the core has no clock). */
  serial?: number;
}

/** Records of one type at one name, in wire form; record i is data[offsets[i], offsets[i+1]). */
export interface RRSet {
  count: number;
  data: Buffer;
  offsets: Uint32Array;
  /** Additional-section records (A for SRV targets), sent when they fit. */
  glue: { count: number; data: Buffer } | undefined;
}

/** Every field is always present (see newNode). */
export interface ZoneNode {
  a: RRSet | undefined;
  srv: RRSet | undefined;
  ptr: RRSet | undefined;
  soa: RRSet | undefined;
  /** The SOA for NODATA answers at this name; undefined for names outside our zones (extras
   *  such as `db.example.com`), which get a bare NODATA. */
  negative: Buffer | undefined;
}

export interface ReverseRange {
  text: string;
  base: number;
  mask: number;
  /** Octets in the reverse zones' apex names: a /12 is served as /16 zones. */
  octets: number;
}

export interface Zone {
  readonly domain: string;
  readonly domainKey: string;
  readonly ttl: number;
  readonly serial: number;
  readonly nodes: ReadonlyMap<string, ZoneNode>;
  readonly reverse: readonly ReverseRange[];
  /** A, SRV and PTR records held, for `weft status dns`. */
  readonly records: number;
  readonly skipped: readonly { name: string; reason: string }[];
  /** SOA bytes for NXDOMAIN answers, by the offset of the zone apex in the message. */
  readonly nxSoaCache: (Buffer | undefined)[];
}

export function parseCidr(text: string): ReverseRange {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(text.trim());
  const base = m ? parseIPv4(m[1] as string) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (base === undefined || !(prefix >= 8 && prefix <= 32)) {
    throw new Error(`"${text}" is not an IPv4 range of the form A.B.C.D/N with N from 8 to 32`);
  }
  const mask = (~0 << (32 - prefix)) >>> 0;
  return { text, base: (base & mask) >>> 0, mask, octets: Math.ceil(prefix / 8) };
}

/** A node with every field present, so that all nodes share one shape and the answer path's
 *  property reads stay monomorphic while the zone changes (a `delete` or a late-added field
 *  would give nodes different shapes and slow every answer down). */
export function newNode(negative: Buffer | undefined): ZoneNode {
  return { a: undefined, srv: undefined, ptr: undefined, soa: undefined, negative };
}

/** A zone with nothing but its apex (SOA), for the builder (zone-builder.ts) to fill. */
export function emptyZone(options: ZoneOptions = {}): Zone {
  const domain = normalizeName(options.domain ?? DEFAULT_DOMAIN);
  if (domain === '') throw new Error('the DNS domain cannot be the root');
  const ttl = options.ttl ?? DEFAULT_TTL_S;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 2 ** 31 - 1) throw new Error(`DNS TTL ${ttl} is not a whole number of seconds`);
  const reverse = (options.reverse ?? DEFAULT_REVERSE).map(parseCidr);
  const domainKey = textToKey(domain);
  const zone: Zone = { domain, domainKey, ttl, serial: (options.serial ?? 1) >>> 0, nodes: new Map(), reverse, records: 0, skipped: [], nxSoaCache: [] };
  const apex = newNode(nxdomainSoa(zone, 0, true));
  apex.soa = rrset([soaRecord(zone, PTR_TO_QUESTION, true)]);
  (zone.nodes as Map<string, ZoneNode>).set(domainKey, apex);
  return zone;
}

/** Sets the SOA serial of a zone in place: in the apex SOA and every negative answer's. */
export function setSerial(zone: Zone, serial: number): void {
  const value = serial >>> 0;
  (zone as { serial: number }).serial = value;
  const apex = zone.nodes.get(zone.domainKey)?.soa;
  if (apex) apex.data.writeUInt32BE(value, apex.data.length - 20);
  for (const soa of zone.nxSoaCache) if (soa) soa.writeUInt32BE(value, soa.length - 20);
}

/** The reverse name's key of an address, and the SOA for negative answers there if the
 *  address is in one of our reverse ranges. */
export function reverseOf(zone: Zone, addr: number): { key: string; negative: Buffer | undefined } {
  const key = textToKey(`${addr & 255}.${(addr >>> 8) & 255}.${(addr >>> 16) & 255}.${addr >>> 24}.in-addr.arpa`);
  const range = zone.reverse.find((r) => ((addr & r.mask) >>> 0) === r.base);
  if (!range) return { key, negative: undefined };
  let apexAt = 0;
  for (let i = 0; i < 4 - range.octets; i++) apexAt += String((addr >>> (8 * i)) & 255).length + 1;
  return { key, negative: nxdomainSoa(zone, apexAt, false) };
}

/** The key of a normalized name, built as a string (no buffer). */
export function textToKey(name: string): string {
  let key = '';
  let start = 0;
  for (let i = 0; i <= name.length; i++) {
    if (i === name.length || name.charCodeAt(i) === 0x2e) {
      key += String.fromCharCode(i - start) + name.slice(start, i);
      start = i + 1;
    }
  }
  return key + '\x00';
}


/** Where a reverse name falls in our reverse ranges: the offset of its zone apex within the
 *  name, and whether a miss there is NXDOMAIN (a full address, or junk below the apex) or
 *  NODATA (a partial address: an empty non-terminal as far as a resolver can tell). */
export function reverseAuthority(zone: Zone, key: string): { apexAt: number; nxdomain: boolean } | undefined {
  if (zone.reverse.length === 0 || !keyIsUnder(key, IN_ADDR_ARPA_KEY)) return undefined;
  const labels = keyLabels(key);
  const octets = labels.slice(0, -2).reverse(); // most significant first
  for (const r of zone.reverse) {
    if (octets.length < r.octets) continue;
    let addr = 0;
    let ok = true;
    for (let i = 0; i < r.octets; i++) {
      const v = octetValue(octets[i] as string);
      if (v < 0) {
        ok = false;
        break;
      }
      addr |= v << (24 - 8 * i);
    }
    if (!ok || ((addr & r.mask) >>> 0) !== r.base) continue;
    let apexAt = 0;
    for (let i = 0; i < octets.length - r.octets; i++) apexAt += (labels[i] as string).length + 1;
    const below = octets.slice(r.octets);
    const partial = octets.length < 4 && below.every((l) => octetValue(l) >= 0);
    return { apexAt, nxdomain: !partial };
  }
  return undefined;
}

/** A decimal octet label without leading zeros (0..255), or -1. */
function octetValue(label: string): number {
  if (!/^(0|[1-9]\d{0,2})$/.test(label)) return -1;
  const v = Number(label);
  return v <= 255 ? v : -1;
}

/** The SOA for an NXDOMAIN answer whose zone apex starts at `apexAt` within the question
 *  name (in the domain, or in a reverse range). Built once per apex offset. */
export function nxdomainSoa(zone: Zone, apexAt: number, inDomain: boolean): Buffer {
  const slot = inDomain ? apexAt : 256 + apexAt;
  let soa = zone.nxSoaCache[slot];
  if (!soa) zone.nxSoaCache[slot] = soa = soaRecord(zone, 0xc000 | (HEADER_LEN + apexAt), inDomain);
  return soa;
}

// ---- Record encoders --------------------------------------------------------------------

function rrset(records: Buffer[]): RRSet {
  const offsets = new Uint32Array(records.length + 1);
  let o = 0;
  records.forEach((r, i) => {
    offsets[i] = o;
    o += r.length;
  });
  offsets[records.length] = o;
  return { count: records.length, data: Buffer.concat(records), offsets, glue: undefined };
}

/** Owner pointer, TYPE, CLASS IN, TTL, RDLENGTH, then the RDATA. */
function record(owner: Buffer, type: number, ttl: number, rdata: Buffer): Buffer {
  const out = Buffer.allocUnsafe(owner.length + 10 + rdata.length);
  owner.copy(out, 0);
  let o = owner.length;
  out.writeUInt16BE(type, o);
  out.writeUInt16BE(CLASS_IN, o + 2);
  out.writeUInt32BE(ttl, o + 4);
  out.writeUInt16BE(rdata.length, o + 8);
  rdata.copy(out, o + 10);
  return out;
}

function pointer(value: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(value);
  return b;
}

const QUESTION_OWNER = pointer(PTR_TO_QUESTION);

/** A records, each 16 octets: pointer, type, class, TTL, length 4, address. */
export function aRRSet(ttl: number, addrs: readonly number[]): RRSet {
  const n = addrs.length;
  const data = Buffer.allocUnsafe(16 * n);
  const offsets = new Uint32Array(n + 1);
  for (let i = 0; i < n; i++) {
    const o = 16 * i;
    offsets[i] = o;
    data.writeUInt16BE(PTR_TO_QUESTION, o);
    data.writeUInt16BE(TYPE.A, o + 2);
    data.writeUInt16BE(CLASS_IN, o + 4);
    data.writeUInt32BE(ttl, o + 6);
    data.writeUInt16BE(4, o + 10);
    data.writeUInt32BE(addrs[i]!, o + 12);
  }
  offsets[n] = 16 * n;
  return { count: n, data, offsets, glue: undefined };
}

/** SRV records at `owner`, targets compressed against the question, with the targets'
 *  addresses (from `addrsOf`) as glue for the additional section. */
export function srvRRSet(ttl: number, owner: string, entries: readonly DnsSrv[], addrsOf: (target: string) => readonly number[]): RRSet {
  const set = rrset(entries.map((e) => srvRecord(ttl, owner, e)));
  const glue: Buffer[] = [];
  for (const target of new Set(entries.map((e) => e.target))) {
    for (const a of addrsOf(target)) glue.push(glueRecord(ttl, owner, target, a));
  }
  if (glue.length) set.glue = { count: glue.length, data: Buffer.concat(glue) };
  return set;
}

function srvRecord(ttl: number, owner: string, s: DnsSrv): Buffer {
  const target = compressAgainstQuestion(s.target, owner);
  const rdata = Buffer.allocUnsafe(6 + target.length);
  rdata.writeUInt16BE(s.priority ?? 0, 0);
  rdata.writeUInt16BE(s.weight ?? SRV_DEFAULT_WEIGHT, 2);
  rdata.writeUInt16BE(s.port, 4);
  target.copy(rdata, 6);
  return record(QUESTION_OWNER, TYPE.SRV, ttl, rdata);
}

function glueRecord(ttl: number, question: string, target: string, addr: number): Buffer {
  const rdata = Buffer.allocUnsafe(4);
  rdata.writeUInt32BE(addr);
  return record(compressAgainstQuestion(target, question), TYPE.A, ttl, rdata);
}

/** PTR records, targets written out in full, into one buffer. */
export function ptrRRSet(ttl: number, targets: readonly string[]): RRSet {
  let size = 0;
  for (const t of targets) size += 12 + t.length + 2;
  const data = Buffer.allocUnsafe(size);
  const offsets = new Uint32Array(targets.length + 1);
  let o = 0;
  targets.forEach((t, i) => {
    offsets[i] = o;
    data.writeUInt16BE(PTR_TO_QUESTION, o);
    data.writeUInt16BE(TYPE.PTR, o + 2);
    data.writeUInt16BE(CLASS_IN, o + 4);
    data.writeUInt32BE(ttl, o + 6);
    data.writeUInt16BE(t.length + 2, o + 10);
    o += 12;
    let start = 0;
    for (let j = 0; j <= t.length; j++) {
      if (j === t.length || t.charCodeAt(j) === 0x2e) {
        data[o++] = j - start;
        o += data.write(t.slice(start, j), o, 'latin1');
        start = j + 1;
      }
    }
    data[o++] = 0;
  });
  offsets[targets.length] = o;
  return { count: targets.length, data, offsets, glue: undefined };
}

/** An SOA whose owner is the compression pointer `ownerPtr` (the zone apex inside the
 *  question). In the domain, MNAME and RNAME point at it too; for reverse zones they are
 *  written out (`ns.DOMAIN`, `hostmaster.DOMAIN`). MINIMUM is the TTL (RFC 2308). */
function soaRecord(zone: Zone, ownerPtr: number, inDomain: boolean): Buffer {
  const owner = pointer(ownerPtr);
  const mname = inDomain ? Buffer.concat([Buffer.from('\x02ns', 'latin1'), owner]) : nameToWire(`ns.${zone.domain}`);
  const rname = inDomain ? Buffer.concat([Buffer.from('\x0ahostmaster', 'latin1'), owner]) : nameToWire(`hostmaster.${zone.domain}`);
  const timers = Buffer.allocUnsafe(20);
  timers.writeUInt32BE(zone.serial, 0);
  timers.writeUInt32BE(SOA_REFRESH, 4);
  timers.writeUInt32BE(SOA_RETRY, 8);
  timers.writeUInt32BE(SOA_EXPIRE, 12);
  timers.writeUInt32BE(zone.ttl, 16);
  return record(owner, TYPE.SOA, zone.ttl, Buffer.concat([mname, rname, timers]));
}

/** `target` in wire form, its longest label suffix shared with the question name `question`
 *  replaced by a pointer into the question at offset 12. */
function compressAgainstQuestion(target: string, question: string): Buffer {
  const t = target === '' ? [] : target.split('.');
  const q = question.split('.');
  let k = 0;
  while (k < t.length && k < q.length && t[t.length - 1 - k] === q[q.length - 1 - k]) k++;
  if (k === 0) return nameToWire(target);
  let at = HEADER_LEN;
  for (let i = 0; i < q.length - k; i++) at += (q[i] as string).length + 1;
  const prefix = t.slice(0, t.length - k);
  const head = prefix.length ? nameToWire(prefix.join('.')).subarray(0, -1) : Buffer.alloc(0);
  return Buffer.concat([head, pointer(0xc000 | at)]);
}

/** The names a zone holds, for `weft dns ls` and tests: text name → types present. */
export function zoneNames(zone: Zone): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [key, node] of zone.nodes) {
    const types = (['a', 'srv', 'ptr', 'soa'] as const).filter((t) => node[t]).map((t) => t.toUpperCase());
    if (types.length) out.set(keyToName(key), types);
  }
  return out;
}
