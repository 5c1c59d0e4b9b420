// The DNS methods of the peer's API (`weft dns ...`, `weft status dns`) as clients see them:
// names, access, parameter schemas and result types. The handlers are in api.ts.

import { method, NONE, text, v } from '../mesh/api/method.ts';
import type { DnsListEntry, DnsService, DnsServiceStatus } from './service.ts';

/** Query types `weft dns lookup --type` accepts. */
export const LOOKUP_TYPES = { A: 1, PTR: 12, SRV: 33, AAAA: 28, TXT: 16, MX: 15, CNAME: 5, NS: 2, SOA: 6 } as const;
export type LookupType = keyof typeof LOOKUP_TYPES;

/** A domain name is at most 253 characters in text form (RFC 1035's 255 octets on the wire). */
const MAX_NAME = 253;
/** An address as text; IPv6's longest form is 45 characters. */
const MAX_ADDRESS = 45;

export interface LookupRecord {
  section: 'answer' | 'authority' | 'additional';
  name: string;
  type: string;
  ttl: number;
  /** The record's data as dig prints it (`10.32.0.2`, `0 1 80 web-1.shop.weft.local.`). */
  data: string;
}

export interface LookupResult {
  name: string;
  type: string;
  rcode: string;
  /** Answered from the mesh's own records (AA), not an upstream's. */
  authoritative: boolean;
  truncated: boolean;
  records: LookupRecord[];
}

export type DnsStatusResult = DnsServiceStatus & { stats: ReturnType<DnsService['stats']> };

export const dnsLookup = method<LookupResult>()({
  name: 'dns.lookup', access: 'operator',
  // The type is checked by the handler, case-insensitively, with its own sentence.
  params: v.strictObject({ name: text(MAX_NAME), type: v.optional(text(8)) }),
});
export const dnsList = method<DnsListEntry[]>()({ name: 'dns.ls', access: 'operator', params: NONE });
export const dnsAdd = method<{ name: string; ip: string; existed: boolean }>()({
  name: 'dns.add', access: 'operator', params: v.strictObject({ name: text(MAX_NAME), ip: text(MAX_ADDRESS) }),
});
export const dnsRemove = method<{ name: string; removed: string[] }>()({
  name: 'dns.remove', access: 'operator', params: v.strictObject({ name: text(MAX_NAME), ip: v.optional(text(MAX_ADDRESS)) }),
});
export const dnsStatus = method<DnsStatusResult>()({ name: 'dns.status', access: 'operator', params: NONE });
