// The mesh's API methods as clients see them: names, access, parameter schemas and result
// types. The handlers are in peer-methods.ts; dns/api-contract.ts declares the DNS methods the
// same way. Importing this file loads no peer code (the result types are types only).

import { KV_PREFIX } from '../keyspace.ts';
import type { ContainerEndpoint } from '../endpoint.ts';
import type { MeshEvent } from '../events.ts';
import type { IpamStatus } from '../ipam/ipam.ts';
import type { ApiTokenView, TokenScope } from '../admission/api-token.ts';
import type { MemberState } from '../membership/wire.ts';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../replication/wire.ts';
import { method, NONE, text, v } from './method.ts';

/** `ip:port`, a name, or a peer id (52 characters): generous for all three. */
const MAX_PEER_REF = 256;
/** A container's name or id as Docker takes it (names are at most 253 characters in practice). */
const MAX_CONTAINER_REF = 256;
/** A token's name is a label for `weft token ls`. */
export const MAX_TOKEN_NAME = 200;
/** Token ids are 16 hex characters; a little room for a clear error on a pasted token. */
const MAX_TOKEN_ID = 64;

export interface PeerStatus {
  id: string;
  name: string;
  address: string;
  listen: string;
  role: string;
  tags: string[];
  incarnation: number;
  uptimeSeconds: number;
  dataplane: string;
  peers: { alive: number; suspect: number; dead: number; left: number };
  connections: number;
  replica: { entries: number };
  /** The control plane as this peer sees it (absent while it is not running). */
  manager?: ManagerStatus;
}

/** This peer's part in the control plane: `role` is leader, follower, candidate,
 *  pre-candidate, learner (a manager not yet voting) or none (not a manager). */
export interface ManagerStatus {
  role: string;
  leader: string | null;
  term: number;
  commit: number;
  applied: number;
}

/** One member as `weft peers` shows it; `address` is where it is dialed. */
export interface PeerView {
  id: string;
  name: string;
  address: string;
  state: MemberState;
  role: string;
  tags: string[];
  incarnation: number;
  lastSeen: string | null;
  connected: boolean;
}

export interface KvValue { owner: string; key: string; version: number; value: string | null }
export interface KvKey { owner: string; key: string; version: number; bytes: number }

export const status = method<PeerStatus>()({ name: 'status', access: 'operator', params: NONE });
export const peers = method<PeerView[]>()({ name: 'peers', access: 'operator', params: NONE });
export const connect = method<{ address: string; id: string }>()({
  name: 'connect', access: 'admin', params: v.strictObject({ address: text(MAX_PEER_REF) }),
});
export const forget = method<{ addrs: string[]; member?: string }>()({
  name: 'forget', access: 'admin', params: v.strictObject({ target: text(MAX_PEER_REF) }),
});
/** With `follow`, streams every event after the history and never returns on its own. */
export const events = method<MeshEvent[] | null, MeshEvent>()({
  name: 'events', access: 'operator', params: v.strictObject({ follow: v.optional(v.boolean()) }),
});
export const tokenJoin = method<{ token: string }>()({
  name: 'token.join', access: 'member', params: NONE,
  accessReason: 'a join token carries the mesh secret, so an API token cannot create join tokens',
});
export const tokenCreate = method<{ token: string; id: string; scope: TokenScope }>()({
  name: 'token.create', access: 'admin',
  params: v.strictObject({ name: v.optional(text(MAX_TOKEN_NAME)), scope: v.optional(v.picklist(['operator', 'admin'])) }),
});
export const tokenList = method<ApiTokenView[]>()({ name: 'token.list', access: 'operator', params: NONE });
export const tokenRevoke = method<{ id: string; revoked: true }>()({
  name: 'token.revoke', access: 'admin', params: v.strictObject({ id: text(MAX_TOKEN_ID) }),
});
export const kvPut = method<{ version: number }>()({
  name: 'kv.put', access: 'operator',
  params: v.strictObject({
    key: text(MAX_KEY_BYTES - KV_PREFIX.length),
    /** null deletes. */
    value: v.nullable(v.pipe(v.string(), v.maxLength(MAX_VALUE_BYTES))),
  }),
});
export const kvGet = method<KvValue[]>()({
  name: 'kv.get', access: 'operator', params: v.strictObject({ key: text(MAX_KEY_BYTES - KV_PREFIX.length) }),
});
export const kvList = method<KvKey[]>()({
  name: 'kv.list', access: 'operator',
  params: v.strictObject({ prefix: v.optional(v.pipe(v.string(), v.maxLength(MAX_KEY_BYTES - KV_PREFIX.length))) }),
});
export const attach = method<ContainerEndpoint>()({
  name: 'attach', access: 'admin', params: v.strictObject({ container: text(MAX_CONTAINER_REF) }),
});
export const detach = method<{ id: string; addr: string }>()({
  name: 'detach', access: 'admin', params: v.strictObject({ container: text(MAX_CONTAINER_REF) }),
});
export const ps = method<ContainerEndpoint[]>()({
  name: 'ps', access: 'operator', params: v.strictObject({ local: v.optional(v.boolean()) }),
});
export const expose = method<{ address: string }>()({ name: 'expose', access: 'admin', params: NONE });
export const hide = method<{ address: string | null }>()({ name: 'hide', access: 'admin', params: NONE });
export const reset = method<{ containers: number; ipam: string }>()({ name: 'reset', access: 'admin', params: NONE });
export const ipamStatus = method<IpamStatus>()({ name: 'ipam.status', access: 'operator', params: NONE });
export const rmpeer = method<{ peer: string; name: string | null; status: 'started' | 'done'; reason: string }>()({
  name: 'rmpeer', access: 'admin', params: v.strictObject({ peer: text(MAX_PEER_REF) }),
});
