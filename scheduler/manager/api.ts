// The control plane's API methods: the handlers behind the specs of api-contract.ts. Writes go
// through Raft from any peer (RaftNode forwards them to the leader) and answer after commit;
// reads answer from this peer's applied state, or after a ReadIndex with `consistent`.

import { UserError } from '../../mesh/api/request.ts';
import type { MethodTable } from '../../mesh/api/table.ts';
import * as api from './api-contract.ts';
import type { Outcome, StateChange, StateObject } from './desired-state.ts';
import type { Managers } from './managers.ts';
import type { QueryAnswer } from './node-types.ts';

export function registerManagerMethods(table: MethodTable, managers: Managers): void {
  const raft = managers.raft;
  const user = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      throw new UserError((err as Error).message);
    }
  };
  const ok = (o: Outcome): StateObject | null => {
    if (!o.ok) throw new UserError(o.error);
    return o.object;
  };
  const freshness = (a: QueryAnswer): api.ReadFreshness => ({ consistent: a.consistent, applied: a.applied, leader: a.leader });
  const configOf = (o: StateObject): api.ConfigValue => ({ name: o.name, value: o.spec as string, version: o.version, index: o.index });
  /** A peer named by id, name or address, among the members this peer knows. */
  const peerId = (ref: string): string => managers.resolvePeer(ref) ?? (() => { throw new UserError(`no peer "${ref}" is known here (see weft peers)`); })();

  /** A client's request id is scoped to the client kind so it can never equal a peer's. */
  const req = (request: string | undefined) => (request === undefined ? raft.requestId() : `client:${request}`);
  table.register(api.configSet, ({ name, value, expect, request }) => user(async () => {
    const o = ok(await raft.write({ op: 'put', kind: 'config', name, spec: value, ...(expect !== undefined ? { expect } : {}), req: req(request) }));
    return configOf(o as StateObject);
  }));
  table.register(api.configRemove, ({ name, expect, request }) => user(async () => {
    ok(await raft.write({ op: 'delete', kind: 'config', name, ...(expect !== undefined ? { expect } : {}), req: req(request) }));
    return { name, removed: true as const };
  }));
  table.register(api.configGet, ({ name, consistent }) => user(async () => {
    const a = await raft.query({ q: 'get', kind: 'config', name }, consistent === true);
    const o = a.objects[0];
    if (!o) throw new Error(`config "${name}" does not exist${a.leader === null && !a.consistent ? ' here (no leader is known: this peer may be behind)' : ''}`);
    return { ...configOf(o), ...freshness(a) };
  }));
  table.register(api.configList, ({ prefix, consistent }) => user(async () => {
    const a = await raft.query({ q: 'list', kind: 'config', prefix: prefix ?? '' }, consistent === true);
    return { items: a.objects.map(configOf), ...freshness(a) };
  }));
  table.register(api.managerList, () => user(async () => {
    const rows = await raft.managers();
    const names = managers.names();
    return rows.map((m) => ({
      id: m.id, name: names.get(m.id)?.name ?? '', address: names.get(m.id)?.address ?? '', voter: m.voter, leader: m.leader, match: m.match,
      lastContact: m.lastContactMs === null ? null : Math.round(m.lastContactMs / 100) / 10,
    }));
  }));
  table.register(api.managerPromote, ({ peer }) => user(async () => {
    const id = peerId(peer);
    ok(await raft.write({ op: 'put', kind: 'node-role', name: id, spec: 'manager', req: raft.requestId() }));
    return { peer: id, role: 'manager' as const };
  }));
  table.register(api.managerDemote, ({ peer }) => user(async () => {
    const id = peerId(peer);
    ok(await raft.write({ op: 'put', kind: 'node-role', name: id, spec: 'worker', req: raft.requestId() }));
    return { peer: id, role: 'worker' as const };
  }));
  table.register(api.stateBackup, () => user(async () => {
    const a = await raft.query({ q: 'backup' }, true);
    return { format: api.BACKUP_FORMAT, index: a.applied, data: a.data as string };
  }));
  table.register(api.stateRestore, ({ data }) => user(async () => {
    ok(await raft.write({ op: 'restore', data, req: raft.requestId() }));
    const a = await raft.query({ q: 'list', kind: 'config', prefix: '' }, true);
    return { index: a.applied, objects: a.objects.length };
  }));
  table.register(api.stateWatch, async ({ kind, from }, ctx) => {
    if (!raft.holdsState()) throw new UserError('this peer is not a manager and holds no desired state: watch on a manager (weft manager ls; --peer ADDRESS)');
    // Subscribed before the current state is sent, so nothing applied in between is missed
    // (a change may arrive twice; its index tells).
    const queued: StateChange[] = [];
    let live = false;
    const unsubscribe = raft.onChange((c) => {
      if (kind !== undefined && c.kind !== kind) return;
      if (live) ctx.emit(c);
      else queued.push(c);
    });
    const sent = raft.state.applied;
    for (const o of raft.state.all()) {
      if ((kind === undefined || o.kind === kind) && o.index > (from ?? 0)) ctx.emit({ index: o.index, kind: o.kind, name: o.name, object: o });
    }
    for (const c of queued) if (c.index > sent) ctx.emit(c);
    live = true;
    await ctx.closed;
    unsubscribe();
    return null;
  });
  table.register(api.managerForceNewCluster, () => user(() => raft.forceNewCluster()));
  table.register(api.managerReset, () => user(() => raft.reset()));
  table.register(api.managerTransfer, ({ to }) => user(() => raft.transfer(to === undefined ? undefined : peerId(to))));
}
