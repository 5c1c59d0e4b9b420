// `weft dns ...` and the text of `weft status dns`. The peer does the work (dns/api.ts); these
// only ask and print. All take the global --json.
import { type Command, Option } from 'commander';
import { table } from './format.ts';
import { run } from './run.ts';
import * as api from '../dns/api-contract.ts';
import type { DnsStatusResult, LookupResult } from '../dns/api-contract.ts';
import type { DnsListEntry } from '../dns/service.ts';

export function registerDnsCommands(program: Command): void {
  const dns = program.command('dns').description("the mesh's DNS: names of containers, services and stacks, and extra records");

  dns.command('lookup <name>')
    .description('resolve a name through this peer (or --peer) as a container would; a single label is in the mesh domain')
    .addOption(new Option('--type <type>', 'record type').choices(Object.keys(api.LOOKUP_TYPES)).default('A'))
    .action((name: string, o: { type: string }, cmd: Command) => run(cmd, api.dnsLookup, { name, type: o.type }, formatLookup));

  dns.command('ls')
    .description('every name answered from the registry, with its addresses')
    .action((_o, cmd: Command) => run(cmd, api.dnsList, {}, formatList));

  dns.command('add <name> <ip>')
    .description('add one address to a name on every peer (repeat for more); a single label is in the mesh domain')
    .action((name: string, ip: string, _o, cmd: Command) => run(cmd, api.dnsAdd, { name, ip }, (r) =>
      r.existed ? `${r.name} already has ${r.ip}` : `${r.name} ${r.ip} added`));

  dns.command('remove <name> [ip]')
    .description("remove an extra address from a name, or all of the name's extra addresses")
    .action((name: string, ip: string | undefined, _o, cmd: Command) => run(cmd, api.dnsRemove, { name, ...(ip ? { ip } : {}) }, (r) =>
      `${r.name}: removed ${r.removed.join(', ')}`));
}

/** `weft dns lookup`: dig-like lines, the answer first; a negative answer says which. */
export function formatLookup(r: LookupResult): string {
  const lines: string[] = [];
  const answers = r.records.filter((x) => x.section === 'answer');
  if (r.rcode !== 'NOERROR') lines.push(`${r.name}: ${r.rcode === 'NXDOMAIN' ? 'no such name' : r.rcode}${r.authoritative ? '' : ' (from upstream)'}`);
  else if (answers.length === 0) lines.push(`${r.name}: no ${r.type} records`);
  for (const x of answers) lines.push(`${x.name}.\t${x.ttl}\t${x.type}\t${x.data}`);
  for (const x of r.records.filter((x) => x.section === 'additional')) lines.push(`;; additional: ${x.name}.\t${x.ttl}\t${x.type}\t${x.data}`);
  if (r.truncated) lines.push(';; truncated');
  return lines.join('\n');
}

/** `weft dns ls`: one row per name; extra addresses are marked. */
export function formatList(entries: DnsListEntry[]): string {
  if (entries.length === 0) return 'no names (no running containers attached, no extra records)';
  return table(['NAME', 'ADDRESSES', 'SRV'], entries.map((e) => [
    e.name,
    e.addrs.map((a) => (e.extras.includes(a) ? `${a} (extra)` : a)).join(','),
    e.srv.length ? e.srv.join(', ') : '-',
  ]));
}

/** `weft status dns`. */
export function formatDnsStatus(s: DnsStatusResult): string {
  return [
    `domain:     ${s.domain}`,
    `listening:  ${s.listeners.join(', ')}`,
    `upstreams:  ${s.upstreams.length ? s.upstreams.join(', ') : 'none (names outside the mesh are refused)'}`,
    `ttl:        ${s.ttl}s`,
    `records:    ${s.records} (${s.names} names; ${s.containers.answered} containers answered of ${s.containers.records} registered, ${s.extras} extra)`,
    ...(s.containers.invalid || s.skipped ? [`left out:   ${s.containers.invalid} invalid container records, ${s.skipped} names DNS cannot carry`] : []),
    ...(s.workers ? [`workers:    ${s.workers} UDP threads`] : []),
    ...(s.stats ? [`queries:    ${s.stats.queries.udp} udp, ${s.stats.queries.tcp} tcp; forwarded ${s.stats.forwarded}, cache hits ${s.stats.cacheHits}, upstream failures ${s.stats.upstreamFailures}`] : []),
  ].join('\n');
}
