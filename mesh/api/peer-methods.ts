// The mesh's API methods, bound to a peer: the handlers behind the specs of contract.ts. The
// table (table.ts) has checked the caller's access and the parameters before any runs.

import { KV_PREFIX } from '../keyspace.ts';
import { formatHostPort, parseHostPort } from '../address.ts';
import { encodeJoinToken } from '../admission/join-token.ts';
import { listContainers } from '../container-list.ts';
import { MAX_TOKEN_DEPTH } from '../admission/api-token.ts';
import type { Member } from '../membership/member.ts';
import type { Peer } from '../peer.ts';
import type { Network } from '../network/network.ts';
import * as api from './contract.ts';
import { asUserError, UserError } from './request.ts';
import type { MethodTable } from './table.ts';

/** The view of a member that `weft peers` shows. */
export function peerView(m: Member, connected: Set<string>): api.PeerView {
  return {
    id: m.id,
    name: m.name,
    address: m.addrs[0] ?? '',
    state: m.state,
    role: m.role,
    tags: m.tags,
    incarnation: m.inc,
    lastSeen: m.lastHeard ? new Date(m.lastHeard).toISOString() : null,
    connected: connected.has(m.id),
  };
}

/** `manager`: the control plane's part of `weft status`, from the composition above the peer. */
export function registerPeerMethods(table: MethodTable, peer: Peer, manager: () => api.ManagerStatus | undefined = () => undefined): void {
  table.register(api.status, () => {
    const m = manager();
    const members = peer.membership.members();
    const count = (s: string) => members.filter((m) => m.state === s).length;
    const self = peer.membership.self();
    return {
      id: peer.identity.id,
      name: self.name,
      address: formatHostPort(peer.advertise),
      listen: formatHostPort(peer.config.listen),
      role: self.role,
      tags: self.tags,
      incarnation: self.inc,
      uptimeSeconds: Math.round((Date.now() - peer.startedAt) / 1000),
      dataplane: peer.network ? peer.config.dataplaneMode : 'off',
      peers: { alive: count('alive'), suspect: count('suspect'), dead: count('dead'), left: count('left') },
      connections: peer.connectedPeers().size,
      replica: { entries: peer.replica.size() },
      ...(m ? { manager: m } : {}),
    };
  });
  table.register(api.peers, () => {
    const connected = peer.connectedPeers();
    return peer.membership.members().map((m) => peerView(m, connected));
  });
  table.register(api.connect, async ({ address }) => {
    const addr = formatHostPort(user(() => parseHostPort(address)));
    try {
      return { address: addr, id: await peer.connect(addr) };
    } catch (err) {
      throw new UserError(`cannot connect to ${addr}: ${(err as Error).message}`);
    }
  });
  table.register(api.forget, ({ target }) => userAsync(() => peer.forget(target)));
  table.register(api.events, async ({ follow }, ctx) => {
    if (follow !== true) return peer.events.list();
    for (const e of peer.events.list()) ctx.emit(e);
    const unsubscribe = peer.events.subscribe((e) => ctx.emit(e));
    await ctx.closed;
    unsubscribe();
    return null;
  });
  table.register(api.tokenJoin, () => ({
    token: encodeJoinToken({
      key: peer.config.meshKey,
      peers: [formatHostPort(peer.advertise), ...peer.membership.members().filter((m) => m.state === 'alive').flatMap((m) => m.addrs)],
    }),
  }));
  table.register(api.tokenCreate, ({ name, scope = 'operator' }, ctx) => {
    const tokenId = tokenOf(ctx.caller);
    // A token makes tokens no stronger than itself, and they die with it. The table has let
    // only admin tokens (and members) this far; a token's scope is checked again here in case
    // it changed since.
    if (tokenId && peer.tokens.get(tokenId)?.scope !== 'admin') throw new UserError('only an admin API token can make tokens');
    return userAsync(() => peer.tokens.create(name ?? `made on ${peer.config.name}`, scope, tokenId));
  });
  table.register(api.tokenList, () => peer.tokens.list());
  table.register(api.tokenRevoke, async ({ id }, ctx) => {
    const tokenId = tokenOf(ctx.caller);
    // An admin token may revoke itself and the tokens made under it, not its makers or
    // its siblings: revoking everyone else's would lock out the mesh's other operators.
    if (tokenId && !descendsFrom(peer, id, tokenId)) {
      throw new UserError(`an API token can revoke only itself and the tokens it made, not "${id}"`);
    }
    await userAsync(() => peer.tokens.revoke(id));
    return { id, revoked: true as const };
  });
  table.register(api.kvPut, ({ key, value }) => userAsync(() => peer.replica.put(KV_PREFIX + key, value)));
  table.register(api.kvGet, ({ key }) =>
    peer.replica.lookup(KV_PREFIX + key).map((e) => ({ owner: e.owner, key: e.key.slice(KV_PREFIX.length), version: e.version, value: e.value })));
  table.register(api.kvList, ({ prefix = '' }) =>
    peer.replica.lookup(KV_PREFIX + prefix, true).map((e) => ({ owner: e.owner, key: e.key.slice(KV_PREFIX.length), version: e.version, bytes: e.value?.length ?? 0 })));
  table.register(api.attach, ({ container }) => withNetwork(peer, (n) => n.attach(container)));
  table.register(api.detach, ({ container }) => withNetwork(peer, (n) => n.detach(container)));
  // From the registry: a peer without a data plane lists the mesh's containers too.
  table.register(api.ps, ({ local }) => (peer.network ? peer.network.ps(local === true) : listContainers(peer.view(), peer.ipam.removedPeers(), local === true)));
  table.register(api.expose, () => withNetwork(peer, async (n) => ({ address: await n.expose() })));
  table.register(api.hide, () => withNetwork(peer, async (n) => ({ address: await n.hide() })));
  table.register(api.reset, () => withNetwork(peer, (n) => n.reset()));
  table.register(api.ipamStatus, () => peer.ipam.status());
  table.register(api.rmpeer, async ({ peer: target }) => {
    const member = peer.membership.members().find((m) => m.id === target || m.name === target);
    const id = member?.id ?? target;
    const r = await peer.ipam.rmpeer(id);
    if (r.status === 'refused') throw new UserError(r.reason);
    return { peer: id, name: member?.name ?? null, status: r.status, reason: r.reason };
  });
}

/** The token id of a caller that is an API token (`api:<id>`), else undefined. */
function tokenOf(caller: string): string | undefined {
  return caller.startsWith('api:') ? caller.slice(4) : undefined;
}

/** Whether token `id` is `ancestor` or was made, directly or not, by it. */
function descendsFrom(peer: Peer, id: string, ancestor: string): boolean {
  const byId = new Map(peer.tokens.list().map((t) => [t.id, t]));
  let current: string | null | undefined = id;
  for (let depth = 0; current && depth <= MAX_TOKEN_DEPTH; depth++) {
    if (current === ancestor) return true;
    current = byId.get(current)?.parent;
  }
  return false;
}

/** Runs a data plane call, turning its failures into one line for the user. */
async function withNetwork<T>(peer: Peer, fn: (n: Network) => Promise<T>): Promise<T> {
  const n = peer.network;
  if (!n) throw new UserError('this peer runs without a data plane (--no-dataplane): no containers are attached here');
  return userAsync(() => fn(n));
}

/** A failure of what the user asked for, said to the user as it is. */
function user<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new UserError((err as Error).message);
  }
}

const userAsync = asUserError;
