// IPv4 address arithmetic for IPAM: the container range as a CIDR, addresses as unsigned 32-bit
// numbers. The ring and the allocator work on offsets into the range (0 .. size-1); only the API
// boundary speaks dotted quads.

import { parseIPv4, formatIPv4 } from '../ipv4.ts';

/** The container address space (ARCHITECTURE.md): 2^20 addresses, private, and clear of the
 *  172.16/12 and 192.168/16 ranges Docker and home routers use. */
export const DEFAULT_IPAM_RANGE = '10.32.0.0/12';

/** Shortest prefix accepted: a /8 is 16 M addresses, more than any mesh needs; larger would
 *  swallow most of a private space. */
export const MIN_PREFIX = 8;
/** Longest prefix accepted: a /30 has two usable addresses once the network and broadcast
 *  addresses are left out; a /31 or /32 has none. */
export const MAX_PREFIX = 30;

export interface Cidr {
  /** First address of the range, as an unsigned 32-bit number. */
  base: number;
  prefix: number;
  /** Number of addresses, network and broadcast included. */
  size: number;
  /** Canonical text, e.g. "10.32.0.0/12". */
  text: string;
}


/** Parses "a.b.c.d/p"; the error is a sentence for the person who typed it. */
export function parseCidr(s: string): Cidr | string {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(s.trim());
  if (m === null) return `"${s}" is not an IPv4 range in CIDR form, e.g. ${DEFAULT_IPAM_RANGE}`;
  const addr = parseIPv4(m[1] as string);
  if (addr === undefined) return `"${m[1]}" is not an IPv4 address`;
  const prefix = Number(m[2]);
  if (prefix < MIN_PREFIX || prefix > MAX_PREFIX) {
    return `range ${s}: the prefix must be between /${MIN_PREFIX} and /${MAX_PREFIX}`;
  }
  const size = 2 ** (32 - prefix);
  if (addr % size !== 0) {
    return `range ${s}: ${m[1]} is not the start of a /${prefix} (did you mean ${formatIPv4(addr - (addr % size))}/${prefix}?)`;
  }
  return { base: addr, prefix, size, text: `${formatIPv4(addr)}/${prefix}` };
}
