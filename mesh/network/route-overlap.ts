// `--ipalloc-range` must not overlap a route the host already has: containers would take
// addresses that belong to a network the host reaches, and traffic for them would go astray
// (the failure Weave Net users met when the default 10.32/12 clashed with a VPC).

import { parseIPv4 } from '../ipv4.ts';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseCidr, type Cidr } from '../ipam/cidr.ts';

const run = promisify(execFile);

/** Routes that are weft's own (left by a previous run of this peer) are not a clash. */
export const OWN_DEVICE = /^(weft|wg[0-9a-f]{8}|vx[0-9a-f]{8}|vw[0-9a-f]{8})$/;

export interface HostRoute {
  dst: string;
  dev?: string;
  type?: string;
}

/** Parses `ip -4 -j route show table all` output into routes. */
export function parseRoutes(json: string): HostRoute[] {
  const raw = JSON.parse(json) as Array<{ dst?: string; dev?: string; type?: string }>;
  return raw.filter((r) => typeof r.dst === 'string').map((r) => ({ dst: r.dst as string, dev: r.dev, type: r.type }));
}

function asCidr(dst: string): Cidr | undefined {
  if (dst === 'default') return undefined;
  const c = parseCidr(dst.includes('/') ? dst : `${dst}/32`);
  if (typeof c !== 'string') return c;
  // parseCidr refuses /31-/32 and unaligned text; treat a host route as a 1-address range.
  const m = /^([0-9.]+)(?:\/(\d+))?$/.exec(dst);
  const base = m ? parseIPv4(m[1] as string) : undefined;
  if (base === undefined) return undefined;
  const prefix = m?.[2] ? Number(m[2]) : 32;
  const size = 2 ** (32 - prefix);
  return { base: base - (base % size), prefix, size, text: dst };
}

/** The first route that overlaps `range` and is not weft's own, or undefined. Default routes
 *  do not count: they cover everything and are how every host reaches anything. */
export function overlappingRoute(range: Cidr, routes: readonly HostRoute[]): HostRoute | undefined {
  for (const r of routes) {
    if (r.type === 'local' || r.type === 'broadcast' || r.type === 'multicast') continue;
    if (r.dev && OWN_DEVICE.test(r.dev)) continue;
    if (r.type === 'unreachable' && r.dst === range.text) continue;
    const c = asCidr(r.dst);
    if (!c || c.base >= 0xe0000000) continue;
    if (c.base < range.base + range.size && range.base < c.base + c.size) return r;
  }
  return undefined;
}

/** Refuses a range that overlaps a route of this host, with the sentence the user needs. */
export async function checkRangeAgainstRoutes(rangeText: string): Promise<void> {
  const range = parseCidr(rangeText);
  if (typeof range === 'string') throw new Error(`--ipalloc-range: ${range}`);
  const { stdout } = await run('ip', ['-4', '-j', 'route', 'show', 'table', 'main']);
  const clash = overlappingRoute(range, parseRoutes(stdout));
  if (clash) {
    throw new Error(`--ipalloc-range ${range.text} overlaps this host's route to ${clash.dst}${clash.dev ? ` (dev ${clash.dev})` : ''}: choose a range that no network here uses, e.g. --ipalloc-range 10.48.0.0/12`);
  }
}
