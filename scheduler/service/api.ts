// The scheduler's API: the handlers behind api-contract.ts. Changes are compare-and-set batches
// through Raft (from any peer; RaftNode forwards them to the leader) built from a consistent read,
// so two deploys racing cannot interleave: the second fails and says so. Status is computed on
// the peer asked, from desired state and this peer's observed state, by the reconciler's own
// round (what the leader would decide now).

import { asUserError, UserError } from '../../mesh/api/request.ts';
import type { MethodTable } from '../../mesh/api/table.ts';
import { CONTAINER_PREFIX } from '../../mesh/keyspace.ts';
import type { MeshView } from '../../mesh/mesh-view.ts';
import type { BatchOp, Command, StateObject } from '../manager/desired-state.ts';
import type { RaftNode } from '../manager/raft-node.ts';
import { reportOf } from '../reconciler/observed.ts';
import { readReports, type Reconciler } from '../reconciler/reconciler.ts';
import type { StackRecord } from '../stack/record.ts';
import { EPOCH_LABEL, keyOfServiceObject, serviceObjectName, TASK_LABEL, type TaskSpec } from '../task/task.ts';
import * as api from './api-contract.ts';
import { containerConfigHash } from './config-hash.ts';
import { lookupService } from './lookup.ts';
import type { StoredService } from './schema.ts';
import type { ServiceSpec } from './spec.ts';

export function registerServiceMethods(table: MethodTable, raft: RaftNode, view: MeshView, reconciler: Reconciler): void {
  const user = asUserError;
  const list = async (kind: 'service' | 'task' | 'stack', prefix = '', consistent = false) => (await raft.query({ q: 'list', kind, prefix }, consistent)).objects;
  const write = async (ops: BatchOp[]): Promise<void> => {
    if (ops.length === 0) return;
    const cmd: Command = { op: 'batch', ops, req: raft.requestId() };
    const o = await raft.write(cmd);
    if (!o.ok) throw new UserError(`${o.error} (changed meanwhile: try again)`);
  };

  /** Every service's row and every task's, as of now. */
  const snapshot = async () => {
    // Consistent: a client that just wrote must see its write (this peer may lag the leader).
    const [services, tasks] = await Promise.all([list('service', '', true), list('task', '', true)]);
    const round = reconciler.compute(services, tasks, Date.now());
    const status = new Map(round.services.map((s) => [s.name, s]));
    const rows = services.map((o) => serviceRow(o, status.get(o.name)));
    return { services, tasks, rows, taskRows: taskRows(view, services, tasks) };
  };
  const service = (ref: string): Promise<StateObject> => lookupService(raft, ref);
  const rowOf = async (name: string): Promise<api.ServiceRow> => {
    const s = await snapshot();
    const row = s.rows.find((r) => r.name === name);
    if (!row) throw new UserError(`no service "${name}"`);
    return row;
  };
  const change = async (ref: string, f: (s: StoredService) => StoredService): Promise<api.ServiceRow> => {
    const o = await service(ref);
    await write([{ op: 'put', kind: 'service', name: o.name, spec: f(o.spec as StoredService), expect: o.version }]);
    return rowOf(o.name);
  };

  table.register(api.stackDeploy, ({ stack, file, services }) => user(async () => {
    const specs = services as ServiceSpec[];
    const names = new Set<string>();
    for (const s of specs) {
      if (s.stack !== stack) throw new UserError(`service "${s.name}" says stack "${s.stack}", not "${stack}"`);
      if (names.has(s.name)) throw new UserError(`service "${s.name}" twice`);
      names.add(s.name);
    }
    const existing = new Map((await list('service', `${stack}/`, true)).map((o) => [o.name, o]));
    const record = (await raft.query({ q: 'get', kind: 'stack', name: stack }, true)).objects[0];
    const result: api.DeployResult = { stack, created: [], updated: [], removed: [], unchanged: [] };
    const ops: BatchOp[] = [];
    for (const spec of specs) {
      const name = serviceObjectName(spec);
      const o = existing.get(name);
      const stored = o?.spec as StoredService | undefined;
      if (!o || !stored) {
        ops.push({ op: 'put', kind: 'service', name, spec: { spec, deployment: 0 } satisfies StoredService, expect: 0 });
        result.created.push(spec.name);
      } else if (JSON.stringify(stored.spec) === JSON.stringify(spec)) {
        result.unchanged.push(spec.name);
      } else {
        ops.push({ op: 'put', kind: 'service', name, spec: { spec, deployment: stored.deployment, previous: stored.spec } satisfies StoredService, expect: o.version });
        result.updated.push(spec.name);
      }
    }
    for (const [name, o] of existing) {
      if (names.has(name.slice(stack.length + 1))) continue;
      ops.push({ op: 'delete', kind: 'service', name, expect: o.version });
      result.removed.push(name.slice(stack.length + 1));
    }
    const stackSpec: StackRecord = { file, services: [...names].sort() };
    if (JSON.stringify(record?.spec) !== JSON.stringify(stackSpec)) ops.push({ op: 'put', kind: 'stack', name: stack, spec: stackSpec, expect: record?.version ?? 0 });
    await write(ops);
    for (const xs of [result.created, result.updated, result.removed, result.unchanged]) xs.sort();
    return result;
  }));

  table.register(api.stackList, () => user(async () => {
    const [stacks, s] = await Promise.all([list('stack'), snapshot()]);
    return stacks.map((o) => {
      const rows = s.rows.filter((r) => r.stack === o.name);
      return { name: o.name, file: (o.spec as StackRecord).file, services: rows.length, running: sum(rows.map((r) => r.running)), target: sum(rows.map((r) => r.target)) };
    });
  }));
  table.register(api.stackInspect, ({ name }) => user(async () => {
    const [record, s] = await Promise.all([raft.query({ q: 'get', kind: 'stack', name }, false), snapshot()]);
    const o = record.objects[0];
    if (!o) throw new UserError(`no stack "${name}" (see weft stack ls)`);
    return { name, file: (o.spec as StackRecord).file, services: s.rows.filter((r) => r.stack === name), tasks: s.taskRows.filter((t) => t.stack === name) };
  }));
  table.register(api.stackRedeploy, ({ name }) => user(async () => {
    const services = await list('service', `${name}/`, true);
    if (services.length === 0) throw new UserError(`no stack "${name}" (see weft stack ls)`);
    await write(services.map((o) => ({ op: 'put', kind: 'service', name: o.name, spec: redeployed(o.spec as StoredService), expect: o.version })));
    return { redeployed: services.map((o) => o.name) };
  }));
  table.register(api.stackRemove, ({ name }) => user(async () => {
    const [services, record] = await Promise.all([list('service', `${name}/`, true), raft.query({ q: 'get', kind: 'stack', name }, true)]);
    const o = record.objects[0];
    if (!o && services.length === 0) throw new UserError(`no stack "${name}" (see weft stack ls)`);
    const ops: BatchOp[] = services.map((s) => ({ op: 'delete', kind: 'service', name: s.name, expect: s.version }));
    if (o) ops.push({ op: 'delete', kind: 'stack', name, expect: o.version });
    await write(ops);
    return { removed: services.map((s) => s.name) };
  }));

  table.register(api.serviceCreate, ({ spec }) => user(async () => {
    const s = spec as ServiceSpec;
    if (s.stack !== '') throw new UserError('a service of a stack is deployed with its stack (weft stack deploy)');
    await write([{ op: 'put', kind: 'service', name: s.name, spec: { spec: s, deployment: 0 } satisfies StoredService, expect: 0 }]);
    return rowOf(s.name);
  }));
  table.register(api.serviceList, ({ stack }) => user(async () => (await snapshot()).rows.filter((r) => stack === undefined || r.stack === stack)));
  table.register(api.serviceInspect, ({ name }) => user(async () => {
    const o = await service(name);
    const s = await snapshot();
    const stored = o.spec as StoredService;
    const row = s.rows.find((r) => r.name === o.name) as api.ServiceRow;
    return { service: row, spec: stored.spec, previous: stored.previous ?? null, tasks: s.taskRows.filter((t) => t.task.startsWith(`${o.name}/`)) };
  }));
  // A new count numbers afresh: indexes autodestroy retired may be used again.
  table.register(api.serviceScale, ({ name, count }) => user(() => change(name, (s) => {
    const { retiredIndexes: _, ...spec } = s.spec;
    return { ...s, spec: { ...spec, targetNumContainers: count } };
  })));
  table.register(api.serviceRedeploy, ({ name, parallelism, delayMs, onFailure }) => user(() => change(name, (s) => {
    const update = { ...s.spec.update, ...(parallelism !== undefined ? { parallelism } : {}), ...(delayMs !== undefined ? { delayMs } : {}), ...(onFailure !== undefined ? { onFailure } : {}) };
    return redeployed({ ...s, spec: { ...s.spec, update } });
  })));
  table.register(api.serviceUpdate, ({ name, spec, expect }) => user(async () => {
    const o = await service(name);
    const s = o.spec as StoredService;
    const next = spec as ServiceSpec;
    if (next.name !== s.spec.name || next.stack !== s.spec.stack) throw new UserError(`an update keeps the service's name and stack (${o.name}); deploy another service to rename`);
    if (expect !== undefined && expect !== o.version) throw new UserError(`service "${o.name}": expected version ${expect}, found version ${o.version}`);
    if (JSON.stringify(next) === JSON.stringify(s.spec)) return rowOf(o.name);
    await write([{ op: 'put', kind: 'service', name: o.name, spec: { ...s, spec: next, previous: s.spec } satisfies StoredService, expect: o.version }]);
    return rowOf(o.name);
  }));
  table.register(api.serviceStop, ({ name }) => user(() => change(name, (s) => ({ ...s, stopped: true }))));
  table.register(api.serviceStart, ({ name }) => user(() => change(name, (s) => {
    const { stopped: _, ...rest } = s;
    return rest;
  })));
  table.register(api.serviceRollback, ({ name }) => user(() => change(name, (s) => {
    if (!s.previous) throw new UserError(`service "${name}" has no previous spec to roll back to`);
    return { spec: s.previous, deployment: s.deployment, previous: s.spec };
  })));
  table.register(api.serviceRemove, ({ name }) => user(async () => {
    const o = await service(name);
    await write([{ op: 'delete', kind: 'service', name: o.name, expect: o.version }]);
    return { removed: o.name };
  }));
}

function redeployed(s: StoredService): StoredService {
  return { ...s, deployment: s.deployment + 1 };
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function serviceRow(o: StateObject, status: ReturnType<Reconciler['compute']>['services'][number] | undefined): api.ServiceRow {
  const stored = o.spec as StoredService;
  const spec = stored.spec;
  // A service the round did not list (stored under a name not its own): its spec's count.
  const round = status ?? { name: o.name, target: spec.targetNumContainers, running: 0, tasks: 0, active: 0, update: { state: 'done' as const } };
  return {
    ...round, service: spec.name, stack: spec.stack, image: spec.image, strategy: spec.deploymentStrategy,
    version: o.version, deployment: stored.deployment, stopped: stored.stopped === true,
  };
}

/** Every task with what its node reports and the address its container has in the registry. */
function taskRows(view: MeshView, services: readonly StateObject[], tasks: readonly StateObject[]): api.TaskRow[] {
  const reports = readReports(view);
  const names = new Map(view.members().map((m) => [m.id, m.name]));
  const configs = new Map(services.map((o) => {
    const s = o.spec as StoredService;
    return [keyOfServiceObject(o.name), containerConfigHash(s.spec, s.deployment)];
  }));
  const addresses = new Map<string, string>();
  for (const e of view.entries(CONTAINER_PREFIX)) {
    if (e.value === null) continue;
    try {
      const c = JSON.parse(e.value) as { addr?: string; state?: string; labels?: Record<string, string> };
      const task = c.labels?.[TASK_LABEL];
      if (task && c.addr && c.state === 'running') addresses.set(`${task}#${c.labels?.[EPOCH_LABEL]}`, c.addr);
    } catch {
      // Not a record this peer can read: skipped.
    }
  }
  return tasks.map((o) => {
    const t = o.spec as TaskSpec;
    const r = reportOf(reports, o.name, t);
    const [stack, service] = t.service.split('/') as [string, string];
    const address = addresses.get(`${o.name}#${t.epoch}`);
    return {
      task: o.name, name: `${service}-${t.index}`, service, stack, node: t.node, host: names.get(t.node) ?? t.node, epoch: t.epoch,
      state: r?.state ?? 'assigned', health: r?.health ?? 'none',
      ...(address ? { address } : {}),
      ...(r?.error ? { error: r.error } : {}),
      ...(r?.progress ? { progress: r.progress } : {}),
      current: t.config === configs.get(t.service),
    };
  });
}
