// Where names outside the mesh go: the host's resolvers from /etc/resolv.conf, or addresses
// given on the command line (`--dns-upstream IP[:PORT],...`).

import { readFile } from 'node:fs/promises';
import { isIP, isIPv6 } from 'node:net';

export const DNS_PORT = 53;
export const RESOLV_CONF = '/etc/resolv.conf';
/** glibc reads at most 3 nameserver lines (MAXNS); more would never be used by the host either. */
const MAX_RESOLV_NAMESERVERS = 3;

export interface UpstreamAddress {
  host: string;
  port: number;
}

/** `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address; throws a sentence for the user. */
export function parseUpstream(text: string): UpstreamAddress {
  const t = text.trim();
  let host = t;
  let port = DNS_PORT;
  const bracket = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(t);
  const v4port = /^([\d.]+):(\d{1,5})$/.exec(t);
  if (bracket) {
    host = bracket[1] as string;
    if (bracket[2] !== undefined) port = Number(bracket[2]);
  } else if (v4port) {
    host = v4port[1] as string;
    port = Number(v4port[2]);
  }
  if (!isIP(host.split('%')[0] as string) || port < 1 || port > 65535) {
    throw new Error(`"${text}" is not an upstream resolver address of the form IP[:PORT] (for example 10.0.0.2:53 or [fd00::2]:53)`);
  }
  return { host, port };
}

export function formatUpstream(u: UpstreamAddress): string {
  return isIPv6(u.host.split('%')[0] as string) ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`;
}

/** The `nameserver` lines of a resolv.conf, in order (the first three, as glibc uses). */
export function parseResolvConf(text: string): UpstreamAddress[] {
  const out: UpstreamAddress[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    try {
      const host = (m[1] as string).trim();
      out.push({ host: parseUpstream(isIPv6(host.split('%')[0] as string) ? `[${host}]` : host).host, port: DNS_PORT });
    } catch {
      continue; // a line glibc would ignore too
    }
    if (out.length === MAX_RESOLV_NAMESERVERS) break;
  }
  return out;
}

/** The host's resolvers; none if the file is missing (then nothing is forwarded). */
export async function readResolvConf(path: string = RESOLV_CONF): Promise<UpstreamAddress[]> {
  try {
    return parseResolvConf(await readFile(path, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot read the host's resolvers from ${path}: ${(err as Error).message}`);
  }
}
