// Every key a peer writes, in one list: what it holds and who writes it. Two spaces share the
// peer's LevelDB (mesh/store.ts): the peer's own rows, which never leave it, and the replicated
// space, whose entries are owner-signed, gossiped to every peer and stored here under
// REPLICA_ENTRY_PREFIX. A new kind of row or entry gets its prefix here, with its writer, so
// that no two writers ever share a prefix by accident.

// ---- the peer's own rows (LevelDB) ---------------------------------------------------------

/** The peer's Ed25519 identity seed (base64); written once, at first start (admission/identity.ts). */
export const IDENTITY_KEY = 'identity/seed';
/** `dial/<ip:port>`: addresses this peer keeps dialling across restarts: --peers, `weft connect`,
 *  and members' addresses as they are learned (peer.ts). */
export const DIAL_TARGET_PREFIX = 'dial/';
/** The incarnation bound reserved on disk ahead of the one in use, so a restart never reuses
 *  an incarnation (membership/shell.ts). */
export const MEMBERSHIP_SELF_INC_KEY = 'membership/self-inc';
/** `membership/member/<peer id>`: the last record of each member, to rejoin after a restart
 *  (membership/shell.ts, written behind). */
export const MEMBERSHIP_MEMBER_PREFIX = 'membership/member/';
/** `replica/e/<owner>\0<key>`: every replicated entry held here, every owner's
 *  (replication/shell.ts; layout in replication/store.ts). */
export const REPLICA_ENTRY_PREFIX = 'replica/e/';
/** The replica's own counters (its version and range claims) (replication/shell.ts). */
export const REPLICA_META_KEY = 'replica/meta';
/** The IPAM core's whole state (ring, allocations, removals), persisted before any address or
 *  message leaves the peer (ipam/shell.ts). */
export const IPAM_STATE_KEY = 'ipam/state';
/** `attach/<container id>`: the containers this host attached and how (address, MAC, pid), to
 *  adopt them after a restart (network/network.ts). */
export const ATTACH_PREFIX = 'attach/';
/** `resolv/<container id>`: the resolv.conf Docker wrote for a container whose file weft points
 *  at the peer, given back when weft lets the container go (network/docker/container-resolvers.ts). */
export const RESOLV_ORIGINAL_PREFIX = 'resolv/';
/** The host's own overlay address while `weft expose` holds one (network/network.ts). */
export const EXPOSE_KEY = 'expose/addr';
/** `docker-plugin/<plugin name>/endpoint/<endpoint id>`: endpoints Docker created through the
 *  plugin, persisted before the plugin answers (network/docker/plugin-endpoints.ts). */
export function dockerPluginEndpointPrefix(pluginName: string): string {
  return `docker-plugin/${pluginName}/endpoint/`;
}

/** Raft's term, vote and commit index (scheduler/raft/storage.ts), synced before any message
 *  that depends on them leaves. */
export const RAFT_HARD_STATE_KEY = 'raft/hard-state';
/** `raft/e/<index, 16 digits>`: the Raft log, one row per entry, in index order
 *  (scheduler/raft/storage.ts). */
export const RAFT_ENTRY_PREFIX = 'raft/e/';
/** Raft's newest snapshot (index, term, membership and the state machine's state there), which
 *  stands for the log rows at or below its index; written in one batch with their deletion
 *  (scheduler/raft/storage.ts). */
export const RAFT_SNAPSHOT_KEY = 'raft/snapshot';
/** The id of the control-plane cluster this peer's Raft state belongs to, made when a cluster
 *  is founded (or forced anew) and adopted from the leader that first adds a peer; Raft
 *  messages of another cluster are refused (scheduler/manager/cluster-id.ts). */
export const RAFT_CLUSTER_KEY = 'raft/cluster';

// ---- the replicated space (owner-signed entries, on every peer) ----------------------------

/** `manager/state`: the owner's part in the control plane (manager or not, the leader it
 *  knows, the term), announced when it changes, so a peer that is not a manager knows where
 *  to send a write (scheduler/manager/managers.ts). */
export const MANAGER_STATE_KEY = 'manager/state';
/** `agent/state`: the owner's scheduler agent: whether it can run containers, its memory, the
 *  state of every task container it holds (scheduler/task/report.ts, scheduler/agent/). */
export const AGENT_STATE_KEY = 'agent/state';
/** `container/<container id>`: a container attached on the owner's host (endpoint.ts's
 *  ContainerEndpoint); written by that host's peer (network/network.ts). */
export const CONTAINER_PREFIX = 'container/';
/** `dataplane/<peer id>`: the owner's data plane (WireGuard key and endpoint, VXLAN MAC, exposed
 *  address) (network/network.ts). */
export const DATAPLANE_PREFIX = 'dataplane/';
/** `dns/resolver/<peer id>`: the overlay address where the owner's DNS answers other hosts'
 *  containers as their second resolver (network/network.ts). */
export const DNS_RESOLVER_PREFIX = 'dns/resolver/';
/** `dns/extra/<fqdn>/<address>`: `weft dns add`'s records, one entry per owner's vote
 *  (dns/, through the API). */
export const DNS_EXTRA_PREFIX = 'dns/extra/';
/** `apitoken/<token id>`: an API token's public key, scope and maker (admission/tokens.ts). */
export const API_TOKEN_PREFIX = 'apitoken/';
/** `apitoken-revoked/<token id>`: a revocation, written by whichever peer was asked (admission/tokens.ts). */
export const API_TOKEN_REVOKED_PREFIX = 'apitoken-revoked/';
/** `kv/<key>`: `weft kv put`'s values (api/peer-methods.ts). */
export const KV_PREFIX = 'kv/';
