import { formatHostPort, parseHostPort } from '../address.ts';
import { UserError, type ApiHandler } from './server.ts';
import { encodeJoinToken } from '../admission/join-token.ts';
import { MAX_TOKEN_DEPTH } from '../admission/api-token.ts';
import type { Member } from '../membership/membership.ts';
import type { Peer } from '../peer.ts';
import type { Network } from '../network/network.ts';

/** A token's name is a label for `weft token ls`. */
const MAX_TOKEN_NAME = 200;
/** Keys written by `weft kv` live under their own prefix, apart from the system's records. */
const KV_PREFIX = 'kv/';

/** The view of a member that `weft peers` shows; `address` is where it is dialed. */
export function peerView(m: Member, connected: Set<string>) {
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

function str(params: Record<string, unknown>, name: string): string {
  const v = params[name];
  if (typeof v !== 'string' || v === '') throw new UserError(`missing parameter "${name}"`);
  return v;
}

/** The API's methods, the same for the local unix socket and remote mesh clients. */
export function peerApi(peer: Peer): ApiHandler {
  return async (req, ctx) => {
    const p = req.params;
    switch (req.method) {
      case 'status': {
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
          dataplane: peer.network ? (peer.config.dataplaneMode ?? 'encrypted') : 'off',
          peers: { alive: count('alive'), suspect: count('suspect'), dead: count('dead'), left: count('left') },
          connections: peer.connectedPeers().size,
          replica: { entries: peer.replica.size() },
        };
      }
      case 'peers': {
        const connected = peer.connectedPeers();
        return peer.membership.members().map((m) => peerView(m, connected));
      }
      case 'connect': {
        const addr = formatHostPort(parseUser(() => parseHostPort(str(p, 'address'))));
        try {
          return { address: addr, id: await peer.connect(addr) };
        } catch (err) {
          throw new UserError(`cannot connect to ${addr}: ${(err as Error).message}`);
        }
      }
      case 'forget':
        try {
          return await peer.forget(str(p, 'target'));
        } catch (err) {
          throw new UserError((err as Error).message);
        }
      case 'events': {
        if (p.follow !== true) return peer.events.list();
        for (const e of peer.events.list()) ctx.emit(e);
        const unsubscribe = peer.events.subscribe((e) => ctx.emit(e));
        await ctx.closed;
        unsubscribe();
        return null;
      }
      case 'token.create': {
        const tokenId = ctx.caller.startsWith('api:') ? ctx.caller.slice(4) : undefined;
        if (p.api === true) {
          const name = typeof p.name === 'string' && p.name ? p.name.slice(0, MAX_TOKEN_NAME) : `made on ${peer.config.name}`;
          const scope = p.scope === undefined ? 'operator' : p.scope;
          if (scope !== 'operator' && scope !== 'admin') throw new UserError(`scope must be operator or admin, not "${String(scope)}"`);
          // A token makes tokens no stronger than itself, and they die with it.
          const own = tokenId ? peer.tokens.get(tokenId)?.scope : undefined;
          if (tokenId && own !== 'admin') throw new UserError('only an admin API token can make tokens');
          return peer.tokens.create(name, scope, tokenId).catch((err: Error) => { throw new UserError(err.message); });
        }
        // A join token carries the mesh key: only a holder of the mesh secret may make one.
        if (tokenId) throw new UserError('an API token cannot create join tokens (that needs the mesh secret)');
        return {
          token: encodeJoinToken({
            key: peer.config.meshKey,
            peers: [formatHostPort(peer.advertise), ...peer.membership.members().filter((m) => m.state === 'alive').flatMap((m) => m.addrs)],
          }),
        };
      }
      case 'token.list':
        return peer.tokens.list();
      case 'token.revoke': {
        const id = str(p, 'id');
        // An admin token may revoke itself and the tokens made under it, not its makers or
        // its siblings: revoking everyone else's would lock out the mesh's other operators.
        if (ctx.caller.startsWith('api:') && !descendsFrom(peer, id, ctx.caller.slice(4))) {
          throw new UserError(`an API token can revoke only itself and the tokens it made, not "${id}"`);
        }
        try {
          await peer.tokens.revoke(id);
        } catch (err) {
          throw new UserError((err as Error).message);
        }
        return { id, revoked: true };
      }
      case 'kv.put': {
        const key = str(p, 'key');
        const value = p.value === null ? null : str(p, 'value');
        return peer.replica.put(KV_PREFIX + key, value).catch((err: Error) => { throw new UserError(err.message); });
      }
      case 'kv.get': {
        const key = KV_PREFIX + str(p, 'key');
        return peer.replica.lookup(key).map((e) => ({ owner: e.owner, key: e.key.slice(KV_PREFIX.length), version: e.version, value: e.value }));
      }
      case 'kv.list': {
        const prefix = KV_PREFIX + (typeof p.prefix === 'string' ? p.prefix : '');
        return peer.replica.lookup(prefix, true).map((e) => ({ owner: e.owner, key: e.key.slice(KV_PREFIX.length), version: e.version, bytes: e.value?.length ?? 0 }));
      }
      case 'attach':
        return withNetwork(peer, (n) => n.attach(str(p, 'container')));
      case 'detach':
        return withNetwork(peer, (n) => n.detach(str(p, 'container')));
      case 'ps':
        return withNetwork(peer, async (n) => n.ps(p.local === true));
      case 'expose':
        return withNetwork(peer, async (n) => ({ address: await n.expose() }));
      case 'hide':
        return withNetwork(peer, async (n) => ({ address: await n.hide() }));
      case 'reset':
        return withNetwork(peer, (n) => n.reset());
      case 'ipam.status':
        return peer.ipam.status();
      case 'rmpeer': {
        const target = str(p, 'peer');
        const member = peer.membership.members().find((m) => m.id === target || m.name === target);
        const id = member?.id ?? target;
        const r = await peer.ipam.rmpeer(id);
        if (r.status === 'refused') throw new UserError(r.reason);
        return { peer: id, name: member?.name ?? null, ...r };
      }
      default:
        throw new UserError(`unknown API method "${req.method}" (is the CLI newer than the peer?)`);
    }
  };
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
  try {
    return await fn(n);
  } catch (err) {
    throw new UserError((err as Error).message);
  }
}

function parseUser<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new UserError((err as Error).message);
  }
}
