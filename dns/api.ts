// The API methods of `weft dns ...` and `weft status dns`, for the peer's API server to
// delegate `dns.*` to. Every answer is plain JSON; every refusal one sentence (UserError).

import { isIPv4 } from 'node:net';
import { type ApiHandler, UserError } from '../mesh/api/server.ts';
import { errorText } from '../mesh/log.ts';
import { qualify, reverseName } from './names.ts';
import { RCODE_NAME } from './packet.ts';
import { DnsInputError } from './registry-source.ts';
import type { DnsService } from './service.ts';

/** Query types `weft dns lookup --type` accepts. */
export const LOOKUP_TYPES = { A: 1, PTR: 12, SRV: 33, AAAA: 28, TXT: 16, MX: 15, CNAME: 5, NS: 2, SOA: 6 } as const;
export type LookupType = keyof typeof LOOKUP_TYPES;

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

/** The `dns.*` methods; anything else is refused as unknown. */
export function dnsApi(service: () => DnsService | undefined): ApiHandler {
  return async (req) => {
    const s = service();
    if (!s) throw new UserError('DNS is not running on this peer');
    const p = req.params;
    switch (req.method) {
      case 'dns.lookup':
        return lookup(s, str(p, 'name'), optStr(p, 'type') ?? 'A');
      case 'dns.ls':
        return s.list();
      case 'dns.add':
        return user(() => s.add(str(p, 'name'), str(p, 'ip')));
      case 'dns.remove':
        return user(() => s.remove(str(p, 'name'), optStr(p, 'ip')));
      case 'dns.status':
        return { ...s.status(), stats: s.stats() };
      default:
        throw new UserError(`unknown API method "${req.method}" (is the CLI newer than the peer?)`);
    }
  };
}

/** Resolves through the same path as a query from the network (zone, cache, upstreams). */
export async function lookup(s: DnsService, name: string, typeText: string): Promise<LookupResult> {
  const type = typeText.toUpperCase();
  if (!(type in LOOKUP_TYPES)) throw new UserError(`--type ${typeText} is not one of ${Object.keys(LOOKUP_TYPES).join(', ')}`);
  // `weft dns lookup 10.32.0.2 --type PTR` means its reverse name; a single label is a name in
  // the mesh domain, as a container's search domain would make it.
  let qname: string;
  try {
    qname = type === 'PTR' && isIPv4(name) ? reverseName(name) : qualify(name, s.domain);
  } catch (err) {
    throw new UserError(errorText(err));
  }
  const bytes = await s.server.resolve(qname, LOOKUP_TYPES[type as LookupType]);
  // dns2 only parses answers for this command: loaded on its first use, not by every peer.
  const { Packet } = await import('dns2');
  const packet = Packet.parse(bytes);
  const records: LookupRecord[] = [];
  const add = (section: LookupRecord['section'], rrs: any[]) => {
    for (const r of rrs) {
      if (r.type === 41) continue; // OPT
      records.push({ section, name: r.name, type: Packet.TYPE_NAME?.[r.type] ?? typeName(r.type), ttl: r.ttl, data: rdata(r) });
    }
  };
  add('answer', packet.answers);
  add('authority', packet.authorities);
  add('additional', packet.additionals);
  return {
    name: qname,
    type,
    rcode: RCODE_NAME[packet.header.rcode] ?? `RCODE${packet.header.rcode}`,
    authoritative: packet.header.aa === 1,
    truncated: packet.header.tc === 1,
    records,
  };
}

function typeName(t: number): string {
  return Object.entries(LOOKUP_TYPES).find(([, v]) => v === t)?.[0] ?? `TYPE${t}`;
}

function rdata(r: any): string {
  const dot = (n: string) => (n.endsWith('.') ? n : `${n}.`);
  switch (r.type) {
    case 1:
    case 28:
      return String(r.address);
    case 33:
      return `${r.priority} ${r.weight} ${r.port} ${dot(r.target)}`;
    case 12:
    case 5:
    case 2:
      return dot(r.domain ?? r.ns ?? '');
    case 15:
      return `${r.priority} ${dot(r.exchange)}`;
    case 16:
      return JSON.stringify(r.data);
    case 6:
      return `${dot(r.primary)} ${dot(r.admin)} ${r.serial} ${r.refresh} ${r.retry} ${r.expiration} ${r.minimum}`;
    default:
      return '(data not shown)';
  }
}

function str(params: Record<string, unknown>, name: string): string {
  const v = params[name];
  if (typeof v !== 'string' || v === '') throw new UserError(`missing parameter "${name}"`);
  return v;
}

function optStr(params: Record<string, unknown>, name: string): string | undefined {
  const v = params[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') throw new UserError(`parameter "${name}" must be a non-empty string`);
  return v;
}

/** The service's sentences (bad name, bad address, nothing to remove) reach the user as they
 *  are; anything else (the registry write failing) is the peer's problem and is logged. */
async function user<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof DnsInputError) throw new UserError(err.message);
    throw err;
  }
}
