// The control plane's API methods (`weft config ...`, `weft manager ...`) as clients see them:
// names, access, parameter schemas and result types. The handlers are in api.ts.

import { method, NONE, text, v } from '../../mesh/api/method.ts';
import { KINDS, MAX_CONFIG_VALUE_BYTES, MAX_NAME_LENGTH, MAX_RESTORE_BYTES, type StateChange } from './desired-state.ts';

/** A peer is named by its id, its name, or its address. */
const MAX_PEER_REF = 256;

export interface ConfigValue {
  name: string;
  value: string;
  version: number;
  /** The Raft index of the change that made this version. */
  index: number;
}

/** How a local (not --consistent) read was answered: it may miss writes committed elsewhere
 *  since `applied`, and `leader` says whether this peer knows a leader at all. */
export interface ReadFreshness {
  consistent: boolean;
  applied: number;
  leader: string | null;
}

export interface ManagerRow {
  id: string;
  name: string;
  address: string;
  voter: boolean;
  leader: boolean;
  match: number;
  /** Seconds since the leader last heard from it; null: never. */
  lastContact: number | null;
}

const name = v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_NAME_LENGTH));
/** A client's own id for a write: the same id retried (after a timeout, say) applies once. */
const request = v.optional(text(64));

/** `weft state backup`'s file: desired state as of a committed index. */
export interface StateBackup {
  format: typeof BACKUP_FORMAT;
  index: number;
  data: string;
}
export const BACKUP_FORMAT = 'weft-desired-state/1';
const version = v.pipe(v.number(), v.integer(), v.minValue(0));

export const configSet = method<ConfigValue>()({
  name: 'config.set', access: 'operator',
  params: v.strictObject({ name, value: v.pipe(v.string(), v.maxLength(MAX_CONFIG_VALUE_BYTES)), expect: v.optional(version), request }),
});
export const configGet = method<ConfigValue & ReadFreshness>()({
  name: 'config.get', access: 'operator', params: v.strictObject({ name, consistent: v.optional(v.boolean()) }),
});
export const configList = method<{ items: ConfigValue[] } & ReadFreshness>()({
  name: 'config.ls', access: 'operator', params: v.strictObject({ prefix: v.optional(text(MAX_NAME_LENGTH)), consistent: v.optional(v.boolean()) }),
});
export const configRemove = method<{ name: string; removed: true }>()({
  name: 'config.rm', access: 'operator', params: v.strictObject({ name, expect: v.optional(version), request }),
});
export const managerList = method<ManagerRow[]>()({ name: 'manager.ls', access: 'operator', params: NONE });
export const managerPromote = method<{ peer: string; role: 'manager' }>()({
  name: 'manager.promote', access: 'admin', params: v.strictObject({ peer: text(MAX_PEER_REF) }),
});
export const managerDemote = method<{ peer: string; role: 'worker' }>()({
  name: 'manager.demote', access: 'admin', params: v.strictObject({ peer: text(MAX_PEER_REF) }),
});
export const managerTransfer = method<{ from: string; to: string }>()({
  name: 'manager.transfer', access: 'admin', params: v.strictObject({ to: v.optional(text(MAX_PEER_REF)) }),
});
export const stateBackup = method<StateBackup>()({
  name: 'state.backup', access: 'admin', params: NONE,
  accessReason: 'a backup holds every setting in desired state',
});
export const stateRestore = method<{ index: number; objects: number }>()({
  name: 'state.restore', access: 'admin',
  params: v.strictObject({ format: v.literal(BACKUP_FORMAT), index: v.number(), data: v.pipe(v.string(), v.maxLength(MAX_RESTORE_BYTES)) }),
});
/** Streams changes of desired state: first every object changed after `from` (all, by
 *  default), then each change as it is applied. Never returns on its own. */
export const stateWatch = method<null, StateChange>()({
  name: 'state.watch', access: 'operator',
  params: v.strictObject({ kind: v.optional(v.picklist(KINDS)), from: v.optional(version) }),
});
export const managerForceNewCluster = method<{ cluster: string; index: number; term: number }>()({
  name: 'manager.force-new-cluster', access: 'local', params: NONE,
  accessReason: 'it replaces the cluster: only on the host itself',
});
export const managerReset = method<{ dropped: number }>()({
  name: 'manager.reset', access: 'local', params: NONE,
  accessReason: "it drops this peer's control-plane state: only on the host itself",
});
