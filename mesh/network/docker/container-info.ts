// What weft needs to know of a Docker container, from `docker inspect` (pure: the inspect JSON
// in, a plain record out), so the attach logic can be tested without a daemon.

import type { ContainerHealth, ContainerPort } from '../../endpoint.ts';

/** Containers with this label set to true are attached when they start. */
export const ATTACH_LABEL = 'weft.attach';
/** The identity an address is reserved for: the container keeps its address when it is
 *  recreated, on any host. */
export const NAME_LABEL = 'weft.name';

export interface ContainerInfo {
  id: string;
  name: string;
  hostname?: string;
  /** Extra names: label `weft.aliases=a,b` and Docker network aliases. */
  aliases: string[];
  labels: Record<string, string>;
  running: boolean;
  pid: number;
  health: ContainerHealth;
  ports: ContainerPort[];
  /** Host path of the file Docker bind-mounts as the container's /etc/resolv.conf. */
  resolvConfPath?: string;
  /** weft.attach=true */
  wantsAttach: boolean;
  /** Docker's network mode: `host` and `container:X` share a namespace weft must not touch. */
  networkMode: string;
  /** Reserved-address identity: weft.name, else the stack/service/index a scheduler set. */
  identity?: string;
  /** Made by the scheduler's agent, with a fencing epoch (`weft.epoch`): of two copies of its
   *  identity the newer wins, so it may take its reserved address from a peer that is gone. */
  fenced: boolean;
}

/** Decodes the parts of `docker inspect` weft uses; tolerant of what it does not use. */
/** The registry's bounds (mesh/endpoint.ts): a record beyond them is refused by every peer,
 *  its own included, so what a container carries is cut to fit rather than lost whole. */
const MAX_LABELS = 128;
const MAX_LABEL_KEY = 253;
const MAX_LABEL_VALUE = 4096;
const MAX_NAME = 253;

export function containerInfo(inspect: any): ContainerInfo {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries<unknown>(inspect?.Config?.Labels ?? {}).slice(0, MAX_LABELS)) {
    if (typeof v === 'string' && k.length <= MAX_LABEL_KEY) labels[k] = v.slice(0, MAX_LABEL_VALUE);
  }
  const state = inspect?.State ?? {};
  const h = state.Health?.Status;
  const health: ContainerHealth = h === 'healthy' || h === 'unhealthy' || h === 'starting' ? h : 'none';
  const ports: ContainerPort[] = [];
  for (const spec of Object.keys(inspect?.Config?.ExposedPorts ?? {})) {
    const m = /^(\d+)\/(tcp|udp)$/.exec(spec);
    if (m) ports.push({ port: Number(m[1]), proto: m[2] as 'tcp' | 'udp' });
  }
  // A scheduled container's identity is its task's place: stack (none: empty), service, index.
  const stackIdentity = labels['weft.service'] && labels['weft.index']
    ? `${labels['weft.stack'] ?? ''}/${labels['weft.service']}/${labels['weft.index']}`
    : undefined;
  const aliases = new Set<string>((labels['weft.aliases'] ?? '').split(',').map((a) => a.trim()).filter((a) => a && a.length <= MAX_NAME));
  for (const n of Object.values<any>(inspect?.NetworkSettings?.Networks ?? {})) {
    for (const a of n?.Aliases ?? []) if (typeof a === 'string' && a.length <= MAX_NAME && !/^[0-9a-f]{12}$/.test(a)) aliases.add(a);
  }
  return {
    id: String(inspect?.Id ?? ''),
    aliases: [...aliases].slice(0, 32),
    name: String(inspect?.Name ?? '').replace(/^\//, ''),
    // Docker's default hostname is the short id: not a name anyone looks up.
    hostname: inspect?.Config?.Hostname && !String(inspect?.Id ?? '').startsWith(inspect.Config.Hostname) ? inspect.Config.Hostname : undefined,
    labels,
    running: state.Running === true,
    pid: Number(state.Pid ?? 0),
    health,
    ports,
    resolvConfPath: inspect?.ResolvConfPath || undefined,
    wantsAttach: /^(true|yes|1)$/i.test(labels[ATTACH_LABEL] ?? ''),
    networkMode: String(inspect?.HostConfig?.NetworkMode ?? ''),
    identity: labels[NAME_LABEL] || stackIdentity,
    fenced: labels['weft.scheduled'] === 'true' && /^[1-9]\d{0,15}$/.test(labels['weft.epoch'] ?? ''),
  };
}

/** The first line of every resolv.conf weft writes: how a file is known to be weft's, not Docker's. */
export const WEFT_RESOLV_MARK = '# written by weft';

/** Resolver options for a container with a second nameserver. glibc waits `timeout`
 *  seconds per server and round (default 5, far too long for a lookup) and makes `attempts`
 *  rounds; musl asks all servers at once and retries after timeout/attempts. A server that is
 *  down usually answers with ICMP port unreachable, which glibc and busybox take as "next
 *  server" at once; 1 s covers a peer that is up but not answering. */
const FAILOVER_OPTIONS = 'timeout:1 attempts:2';

/** The container's resolver: the peer's DNS on the bridge, then (when given) another host's
 *  peer through the overlay, which answers the same names from the same replicated registry
 *  while this host's peer restarts. Names are searched in the container's stack first, then
 *  the mesh domain (so `web` and `web-1` resolve as with Docker links). */
export function resolvConf(dnsAddr: string, domain: string, stack?: string, fallback?: string): string {
  const search = stack ? `${stack}.${domain} ${domain}` : domain;
  const second = fallback && fallback !== dnsAddr ? `nameserver ${fallback}\n` : '';
  const options = second ? `ndots:1 ${FAILOVER_OPTIONS}` : 'ndots:1';
  return `${WEFT_RESOLV_MARK}: the peer's DNS answers ${domain} and forwards the rest${second ? "; the second is another host's peer, for while this one restarts" : ''}\nsearch ${search}\nnameserver ${dnsAddr}\n${second}options ${options}\n`;
}
