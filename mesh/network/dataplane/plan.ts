// The pure core of the data plane: from the gossiped view of the mesh to the remote state the
// kernel should hold (routes, WireGuard peers, VXLAN fdb and neighbours), and from the state
// that was applied to the command lines that turn it into the desired one. No I/O: the shell
// (dataplane.ts) observes the kernel, calls these, and runs what they return.
import { parseIPv4 } from '../../ipv4.ts';
import type { DataplaneRecord } from '../../endpoint.ts';
import type { Cidr } from '../../ipam/cidr.ts';

export type Mode = 'encrypted' | 'fast';

/** WireGuard's port (ARCHITECTURE.md): the mesh's TCP port, on UDP. */
export const DEFAULT_WG_PORT = 6783;
/** VXLAN's port: next to the mesh's, not IANA's 4789, so a host's own VXLAN use never clashes. */
export const DEFAULT_VXLAN_PORT = 6784;

export interface View {
  /** Every peer's data plane record, by peer id (ours may be among them: it is skipped). */
  hosts: ReadonlyMap<string, DataplaneRecord>;
  /** Containers on other hosts: overlay address and the id of the peer hosting it. */
  remote: ReadonlyArray<{ addr: string; peer: string }>;
}

/** What the plan needs to know about this host. */
export interface Self {
  mode: Mode;
  underlay: string;
  /** Our WireGuard public key or VXLAN MAC: a record carrying it is ours. */
  wgPublicKey?: string;
  vxlanMac?: string;
  range: Cidr;
  /** Addresses that live here (attached containers, our exposed address): never routed away. */
  local: ReadonlySet<string>;
  /** Our exposed overlay address: the source of the host's own traffic into the overlay. */
  exposed?: string;
}

/** WireGuard persistent keepalive, seconds. Setting it makes wireguard-go handshake with a new
 *  peer at once, so a restarted daemon (which lost its sessions) re-establishes them itself
 *  instead of waiting ~15 s for the other side to notice its packets go unanswered; the
 *  keepalives also hold stateful firewalls and NAT mappings open. 25 s is what wg(8) suggests.
 *  Cost: one 32-byte packet per peer per 25 s when idle. */
export const WG_KEEPALIVE_S = 25;

export interface WgPeer {
  /** "ip:port" */
  endpoint: string;
  /** Persistent keepalive in seconds, 0 = off. */
  keepalive: number;
  /** Sorted /32 prefixes: the addresses routed to this peer and accepted from it. */
  allowed: string[];
}

export interface FdbEntry {
  dst: string;
  port: number;
}

/** The remote half of the kernel state, in either mode. Maps so that a diff is a lookup. */
export interface RemoteState {
  /** Overlay address → source address of the route (our exposed address) or undefined. All
   *  routes are /32s on the mode's device (the WireGuard or VXLAN interface). */
  routes: Map<string, string | undefined>;
  /** encrypted: public key → peer. */
  wgPeers: Map<string, WgPeer>;
  /** fast: remote VXLAN MAC → where its host is. */
  fdb: Map<string, FdbEntry>;
  /** fast: overlay address → MAC of the VXLAN device of the host it lives on. */
  neigh: Map<string, string>;
}

export function emptyRemote(): RemoteState {
  return { routes: new Map(), wgPeers: new Map(), fdb: new Map(), neigh: new Map() };
}

export interface Desired {
  state: RemoteState;
  /** Underlay addresses of the peers in our mode (the VXLAN port is opened to these only). */
  underlays: string[];
  /** What was left out and why, for a debug log line each. */
  skipped: string[];
}

function inRange(addr: string, range: Cidr): boolean {
  const n = parseIPv4(addr);
  return n !== undefined && n >= range.base && n < range.base + range.size;
}

/**
 * The remote state this host should hold for `view`. Hosts in the other mode, our own record,
 * addresses outside the overlay range (a record must never make us route an underlay or
 * default address into the overlay) and addresses that live here are left out; of two peers
 * claiming one address, the first in `view.remote` wins (the caller resolves such conflicts
 * with preferEndpoint; this only keeps the result deterministic).
 */
export function desiredRemote(view: View, self: Self): Desired {
  const state = emptyRemote();
  const skipped: string[] = [];
  const usable = new Map<string, DataplaneRecord>();
  const ourIds = new Set<string>();
  for (const [peer, rec] of view.hosts) {
    const ours = rec.endpoint === self.underlay || (rec.wgPublicKey !== undefined && rec.wgPublicKey === self.wgPublicKey) || (rec.vxlanMac !== undefined && rec.vxlanMac === self.vxlanMac);
    if (ours) {
      ourIds.add(peer);
      continue;
    }
    if (rec.mode !== self.mode) {
      skipped.push(`peer ${peer}: its data plane is in ${rec.mode} mode, ours in ${self.mode}`);
      continue;
    }
    if (self.mode === 'encrypted' ? rec.wgPublicKey === undefined : rec.vxlanMac === undefined) {
      skipped.push(`peer ${peer}: its record lacks a ${self.mode === 'encrypted' ? 'WireGuard key' : 'VXLAN MAC'}`);
      continue;
    }
    usable.set(peer, rec);
  }
  const owner = new Map<string, string>();
  const claim = (addr: string, peer: string) => {
    if (!inRange(addr, self.range)) return void skipped.push(`${addr} on peer ${peer}: outside the overlay range ${self.range.text}`);
    if (self.local.has(addr)) return void skipped.push(`${addr} on peer ${peer}: it lives on this host`);
    const prev = owner.get(addr);
    if (prev !== undefined) {
      if (prev !== peer) skipped.push(`${addr} on peer ${peer}: already routed to peer ${prev}`);
      return;
    }
    owner.set(addr, peer);
  };
  for (const { addr, peer } of view.remote) {
    if (ourIds.has(peer)) continue; // our own containers, as gossip tells everyone
    if (!usable.has(peer)) {
      skipped.push(`${addr}: peer ${peer} has no usable data plane record`);
      continue;
    }
    claim(addr, peer);
  }
  for (const [peer, rec] of usable) if (rec.exposed !== undefined) claim(rec.exposed, peer);

  const allowed = new Map<string, string[]>();
  for (const [addr, peer] of owner) {
    state.routes.set(addr, self.exposed);
    const list = allowed.get(peer) ?? [];
    list.push(`${addr}/32`);
    allowed.set(peer, list);
  }
  for (const [peer, rec] of usable) {
    if (self.mode === 'encrypted') {
      state.wgPeers.set(rec.wgPublicKey as string, {
        endpoint: `${rec.endpoint}:${rec.wgPort ?? DEFAULT_WG_PORT}`,
        keepalive: WG_KEEPALIVE_S,
        allowed: (allowed.get(peer) ?? []).sort(),
      });
    } else {
      state.fdb.set(rec.vxlanMac as string, { dst: rec.endpoint, port: rec.vxlanPort ?? DEFAULT_VXLAN_PORT });
    }
  }
  if (self.mode === 'fast') {
    for (const [addr, peer] of owner) state.neigh.set(addr, (usable.get(peer) as DataplaneRecord).vxlanMac as string);
  }
  const underlays = [...new Set([...usable.values()].map((r) => r.endpoint))].sort();
  return { state, underlays, skipped };
}

/** Commands for one reconciliation, each for one batch-capable tool. */
export interface Commands {
  /** Arguments after `wg` (one `wg set` for every changed peer), or undefined if none. */
  wg?: string[];
  /** Lines for `ip -batch -`. */
  ip: string[];
  /** Lines for `bridge -batch -`. */
  bridge: string[];
}

export function isEmpty(c: Commands): boolean {
  return c.wg === undefined && c.ip.length === 0 && c.bridge.length === 0;
}

/**
 * Commands that take the kernel from `applied` to `desired` on device `dev`. Additions use
 * `replace` (idempotent), removals `del`. WireGuard peers first: an address moving from one
 * peer to another changes both peers' allowed-ips in the same `wg set`, and its route (same
 * device) does not change at all. Nothing is emitted for what is already right, so a sync with
 * an unchanged view runs no command.
 */
export function planRemote(applied: RemoteState, desired: RemoteState, dev: string): Commands {
  const ip: string[] = [];
  const bridge: string[] = [];
  const wg: string[] = [];
  for (const [key, peer] of desired.wgPeers) {
    const had = applied.wgPeers.get(key);
    if (had !== undefined && had.endpoint === peer.endpoint && had.keepalive === peer.keepalive && sameList(had.allowed, peer.allowed)) continue;
    wg.push(...peerArgs(key, peer));
  }
  for (const key of applied.wgPeers.keys()) if (!desired.wgPeers.has(key)) wg.push('peer', key, 'remove');

  for (const mac of applied.fdb.keys()) if (!desired.fdb.has(mac)) bridge.push(`fdb del ${mac} dev ${dev} self`);
  for (const [mac, e] of desired.fdb) {
    const had = applied.fdb.get(mac);
    if (had !== undefined && had.dst === e.dst && had.port === e.port) continue;
    bridge.push(`fdb replace ${mac} dev ${dev} dst ${e.dst} port ${e.port} self permanent`);
  }

  for (const addr of applied.routes.keys()) if (!desired.routes.has(addr)) ip.push(`route del ${addr}/32 dev ${dev}`);
  for (const addr of applied.neigh.keys()) if (!desired.neigh.has(addr)) ip.push(`neigh del ${addr} dev ${dev}`);
  for (const [addr, mac] of desired.neigh) {
    if (applied.neigh.get(addr) !== mac) ip.push(`neigh replace ${addr} lladdr ${mac} dev ${dev} nud permanent`);
  }
  for (const [addr, src] of desired.routes) {
    if (applied.routes.has(addr) && applied.routes.get(addr) === src) continue;
    ip.push(`route replace ${addr}/32 dev ${dev}${src === undefined ? '' : ` src ${src}`}`);
  }
  return { wg: wg.length > 0 ? ['set', dev, ...wg] : undefined, ip, bridge };
}

/** `wg set` arguments that configure one peer completely. */
function peerArgs(key: string, peer: WgPeer): string[] {
  return ['peer', key, 'endpoint', peer.endpoint, 'persistent-keepalive', peer.keepalive === 0 ? 'off' : String(peer.keepalive), 'allowed-ips', peer.allowed.join(',')];
}

/** Arguments after `wg` that remove the peers `keys` and add them again as `peers` says, in
 *  one command: a new peer object initiates a handshake at once, where the old one would wait
 *  out WireGuard's 5 s between initiations (handshake.ts). Peers not in `peers` are skipped. */
export function reinitiateArgs(dev: string, keys: readonly string[], peers: ReadonlyMap<string, WgPeer>): string[] | undefined {
  const args: string[] = [];
  for (const key of keys) {
    const peer = peers.get(key);
    if (peer !== undefined) args.push('peer', key, 'remove', ...peerArgs(key, peer));
  }
  return args.length > 0 ? ['set', dev, ...args] : undefined;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
