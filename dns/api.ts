// The API methods of `weft dns ...` and `weft status dns`: the handlers behind the specs of
// api-contract.ts. Every answer is plain JSON; every refusal one sentence (UserError).

import { isIPv4 } from 'node:net';
import { UserError } from '../mesh/api/request.ts';
import type { MethodTable } from '../mesh/api/table.ts';
import { errorText } from '../mesh/log.ts';
import * as api from './api-contract.ts';
import { LOOKUP_TYPES, type LookupRecord, type LookupResult, type LookupType } from './api-contract.ts';
import { qualify, reverseName } from './names.ts';
import { RCODE_NAME } from './packet.ts';
import { DnsInputError } from './extra-votes.ts';
import type { DnsService } from './service.ts';

/** Registers the `dns.*` methods; `service` is undefined on a peer without DNS. */
export function registerDnsMethods(table: MethodTable, service: () => DnsService | undefined): void {
  const running = (): DnsService => {
    const s = service();
    if (!s) throw new UserError('DNS is not running on this peer');
    return s;
  };
  table.register(api.dnsLookup, ({ name, type }) => lookup(running(), name, type ?? 'A'));
  table.register(api.dnsList, () => running().list());
  table.register(api.dnsAdd, ({ name, ip }) => user(() => running().add(name, ip)));
  table.register(api.dnsRemove, ({ name, ip }) => user(() => running().remove(name, ip)));
  table.register(api.dnsStatus, () => {
    const s = running();
    return { ...s.status(), stats: s.stats() };
  });
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
