// Ports in both forms: `ports` publishes on the host (`8080:80`, `53:53/udp`, `8000-8001:80-81`,
// Compose's long form {target, published, protocol}), `expose` only makes a port known in the
// mesh (SRV records). A port in `ports` with no host port (`"80"`) asks Docker for a random
// host port; ServiceSpec cannot say that, so it is read as exposed only, with a warning.

import type { PortSpec } from '../service/spec.ts';
import { show } from './errors.ts';
import { MAX_PORTS_PER_SERVICE } from './limits.ts';
import { isMap } from './parse.ts';
import { type At, fail, int, list } from './values.ts';

const MAX_PORT = 65_535;
const SHORT = /^(?:(?:(?<ip>[^/]*):)?(?<host>\d+(?:-\d+)?):)?(?<container>\d+(?:-\d+)?)(?:\/(?<proto>[a-z]+))?$/i;

export interface ReadPorts {
  ports: PortSpec[];
  /** Ports of `ports` given without a host port (read as exposed only). */
  randomHost: string[];
}

export function readPorts(at: At, key: 'ports' | 'expose', v: unknown, out: ReadPorts): void {
  const items = list(at, key, v);
  if (items === undefined) return;
  for (const item of items) {
    if (out.ports.length > MAX_PORTS_PER_SERVICE) {
      fail(at, key, `has more than ${MAX_PORTS_PER_SERVICE} ports`);
      return;
    }
    if (isMap(item)) {
      if (key === 'expose') fail(at, key, `${show(item)} is not a port like "80" or "53/udp"`);
      else longForm(at, item, out);
    } else if (typeof item === 'number' || typeof item === 'string') shortForm(at, key, String(item), out);
    else fail(at, key, `${show(item)} is not a port like "80", "8080:80" or "53/udp"`);
  }
}

function shortForm(at: At, key: 'ports' | 'expose', text: string, out: ReadPorts): void {
  const m = SHORT.exec(text.trim());
  const g = m?.groups;
  if (g === undefined) {
    fail(at, key, `"${text}" is not a port like "80", "8080:80" or "53/udp"`);
    return;
  }
  if (g['ip'] !== undefined) {
    fail(at, key, `"${text}" binds a host address; weft publishes a port on every address of the node, so give "HOST:CONTAINER"`);
    return;
  }
  if (key === 'expose' && g['host'] !== undefined) {
    fail(at, key, `"${text}" has a host port; expose takes a container port only (use ports to publish)`);
    return;
  }
  const protocol = proto(at, key, text, g['proto']);
  const container = range(at, key, text, g['container'] as string);
  const host = g['host'] === undefined ? undefined : range(at, key, text, g['host']);
  if (protocol === undefined || container === undefined || (g['host'] !== undefined && host === undefined)) return;
  if (host !== undefined && host.length !== container.length) {
    fail(at, key, `"${text}" maps ${host.length} host ports to ${container.length} container ports`);
    return;
  }
  if (container.length > MAX_PORTS_PER_SERVICE) {
    fail(at, key, `"${text}" is more than ${MAX_PORTS_PER_SERVICE} ports`);
    return;
  }
  if (key === 'ports' && host === undefined) out.randomHost.push(text);
  container.forEach((c, i) => out.ports.push(host === undefined ? { container: c, protocol } : { container: c, protocol, host: host[i] as number }));
}

/** Compose's long form: {target, published, protocol, mode}; `mode` has no meaning in weft
 *  (a published port is on the node running the container, like swarm's `host` mode). */
function longForm(at: At, item: Record<string, unknown>, out: ReadPorts): void {
  for (const k of Object.keys(item)) {
    if (k === 'mode') at.p.ignore(at.service, 'ports.mode');
    else if (k !== 'target' && k !== 'published' && k !== 'protocol') at.p.ignore(at.service, `ports.${k}`);
  }
  const container = int(at, 'ports.target', item['target'], 1, MAX_PORT);
  const host = item['published'] === undefined ? undefined : int(at, 'ports.published', item['published'], 1, MAX_PORT);
  const protocol = item['protocol'] === undefined ? 'tcp' : proto(at, 'ports.protocol', String(item['protocol']), String(item['protocol']));
  if (container === undefined || protocol === undefined || (item['published'] !== undefined && host === undefined)) return;
  if (host === undefined) out.randomHost.push(String(container));
  out.ports.push(host === undefined ? { container, protocol } : { container, protocol, host });
}

function proto(at: At, key: string, text: string, p: string | undefined): 'tcp' | 'udp' | undefined {
  const lower = (p ?? 'tcp').toLowerCase();
  if (lower === 'tcp' || lower === 'udp') return lower;
  return fail(at, key, `"${text}" has protocol "${p}"; weft supports tcp and udp`);
}

function range(at: At, key: string, text: string, r: string): number[] | undefined {
  const [a, b] = r.split('-').map(Number) as [number, number | undefined];
  const last = b ?? a;
  if (a < 1 || last > MAX_PORT || last < a) return fail(at, key, `"${text}" has a port outside 1..${MAX_PORT}`);
  if (last - a >= MAX_PORTS_PER_SERVICE) return fail(at, key, `"${text}" is more than ${MAX_PORTS_PER_SERVICE} ports`);
  return Array.from({ length: last - a + 1 }, (_, i) => a + i);
}

/** The ports of a service, duplicates checked: a host port published twice (per protocol) could
 *  never bind; a port both exposed and published is kept once, published. The order is
 *  canonical (published, then exposed, each by port and protocol), not the file's: it means
 *  nothing, and a file that only reorders its ports must not redeploy a service. */
export function finishPorts(at: At, read: ReadPorts): PortSpec[] {
  const byHost = new Map<string, PortSpec>();
  const out: PortSpec[] = [];
  const order = (a: PortSpec, b: PortSpec): number => a.container - b.container || a.protocol.localeCompare(b.protocol) || (a.host ?? 0) - (b.host ?? 0);
  for (const p of [...read.ports].sort(order)) {
    if (p.host === undefined) continue;
    const k = `${p.host}/${p.protocol}`;
    const seen = byHost.get(k);
    if (seen !== undefined) {
      fail(at, 'ports', `"${p.host}:${p.container}/${p.protocol}" publishes host port ${p.host}/${p.protocol} a second time (already mapped to ${seen.container})`);
      continue;
    }
    byHost.set(k, p);
    out.push(p);
  }
  const covered = new Set(out.map((p) => `${p.container}/${p.protocol}`));
  for (const p of [...read.ports].sort(order)) {
    if (p.host !== undefined) continue;
    const k = `${p.container}/${p.protocol}`;
    if (covered.has(k)) continue;
    covered.add(k);
    out.push(p);
  }
  return out;
}
