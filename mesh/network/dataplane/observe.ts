// Parsers of what the kernel (and wireguard-go) report, into the plan's state types. Pure: the
// shell runs `ip -j`, `bridge -j` and `wg show dump` and hands the text here. Used when a peer
// starts (adopting what a previous run left) and after a failed reconciliation, so the next
// diff starts from the truth instead of from what we believed we had applied.
import { emptyRemote, type RemoteState } from './plan.ts';

interface RouteJson {
  dst: string;
  type?: string;
  prefsrc?: string;
}

/** Host routes (/32s, printed without the suffix) in `ip -j route show dev D`: address → src. */
export function parseHostRoutes(json: string): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const r of parseJson<RouteJson>(json)) {
    if (r.type !== undefined && r.type !== 'unicast') continue;
    if (!/^\d+\.\d+\.\d+\.\d+(\/32)?$/.test(r.dst)) continue;
    out.set(r.dst.replace(/\/32$/, ''), r.prefsrc);
  }
  return out;
}

/** `wg show IF dump`: the first line is the interface (private key, public key, port, fwmark),
 *  then one line per peer: public key, preshared key, endpoint, allowed ips, handshake, rx,
 *  tx, keepalive, tab-separated. */
export function parseWgDump(text: string): { listenPort: number | undefined; peers: RemoteState['wgPeers'] } {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const head = (lines[0] ?? '').split('\t');
  const port = Number(head[2]);
  const peers: RemoteState['wgPeers'] = new Map();
  for (const l of lines.slice(1)) {
    const [key, , endpoint, allowed, , , , keepalive] = l.split('\t');
    if (key === undefined || endpoint === undefined || allowed === undefined) continue;
    const ka = Number(keepalive);
    peers.set(key, { endpoint, keepalive: Number.isInteger(ka) ? ka : 0, allowed: allowed === '(none)' ? [] : allowed.split(',').sort() });
  }
  return { listenPort: Number.isInteger(port) && port > 0 ? port : undefined, peers };
}

/** Each peer's latest handshake in `wg show IF dump` (Unix seconds, 0 = none yet), by key. */
export function parseHandshakes(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const l of text.split('\n').slice(1)) {
    const [key, , , , at] = l.split('\t');
    if (key === undefined || key === '' || at === undefined) continue;
    const n = Number(at);
    out.set(key, Number.isFinite(n) && n > 0 ? n : 0);
  }
  return out;
}

interface NeighJson {
  dst: string;
  lladdr?: string;
  state?: string[];
}

/** Permanent neighbours in `ip -j neigh show dev VX`: address → MAC. */
export function parseNeigh(json: string): RemoteState['neigh'] {
  const out: RemoteState['neigh'] = new Map();
  for (const n of parseJson<NeighJson>(json)) {
    if (n.lladdr !== undefined && (n.state ?? []).includes('PERMANENT')) out.set(n.dst, n.lladdr);
  }
  return out;
}

interface FdbJson {
  mac: string;
  dst?: string;
  port?: number;
}

/** Unicast entries with a destination in `bridge -j fdb show dev VX`. The kernel prints a
 *  port only when it differs from the device's, hence `devicePort`. */
export function parseFdb(json: string, devicePort: number): RemoteState['fdb'] {
  const out: RemoteState['fdb'] = new Map();
  for (const e of parseJson<FdbJson>(json)) {
    if (e.dst === undefined || e.mac === '00:00:00:00:00:00') continue;
    out.set(e.mac, { dst: e.dst, port: e.port ?? devicePort });
  }
  return out;
}

export function remoteState(parts: Partial<RemoteState>): RemoteState {
  return { ...emptyRemote(), ...parts };
}

interface AddrJson {
  ifname: string;
  address?: string;
  mtu: number;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** One link from `ip -j addr show dev D`: its MAC, MTU and IPv4 addresses; undefined if the
 *  output holds no link. */
export function parseLink(json: string): { mac: string; mtu: number; addrs: string[] } | undefined {
  const l = parseJson<AddrJson>(json)[0];
  if (l === undefined) return undefined;
  return { mac: l.address ?? '', mtu: l.mtu, addrs: (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local) };
}

/** Names of the links in `ip -j link show` output, with their master (bridge) if enslaved. */
export function parseLinks(json: string): { name: string; master?: string; kind?: string }[] {
  return parseJson<{ ifname: string; master?: string; linkinfo?: { info_kind?: string } }>(json).map((l) => ({
    name: l.ifname,
    master: l.master,
    kind: l.linkinfo?.info_kind,
  }));
}

function parseJson<T>(text: string): T[] {
  const t = text.trim();
  if (t === '') return [];
  const v = JSON.parse(t) as unknown;
  return Array.isArray(v) ? (v as T[]) : [];
}
