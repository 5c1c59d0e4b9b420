// One round of the reconciler: desired state (services, their tasks) and observed state (nodes,
// what each agent reports) in; the changes to the tasks out, as one all-or-nothing batch, with
// every service's status. It works from state, never from a procedure in memory: a new leader
// that runs it on the same state continues a deploy or a rolling redeploy where the old one
// stopped. Pure and deterministic (the clock comes in).
//
// A round: placement (scheduler/placement/) over the tasks as they stand decides what stays,
// what is created (a new task, or a task moved with a higher epoch) and what goes; then the
// rolling redeploy (rolling.ts) replaces outdated tasks a few at a time.

import { containerConfigHash } from '../service/config-hash.ts';
import type { StoredService } from '../service/schema.ts';
import { place } from '../placement/placement.ts';
import type { PlacementNode } from '../placement/node.ts';
import type { CurrentContainer } from '../placement/container.ts';
import type { BatchOp } from '../manager/desired-state.ts';
import type { AgentReport, TaskReport } from '../task/report.ts';
import { keyOfServiceObject, type TaskSpec, taskName } from '../task/task.ts';
import { reportOf, serving, type Versioned } from './observed.ts';
import { rollingStep, type UpdateStatus } from './rolling.ts';

export interface ReconcileInput {
  services: readonly Versioned<StoredService>[];
  tasks: readonly Versioned<TaskSpec>[];
  nodes: readonly PlacementNode[];
  /** Each node's agent report, by node id. */
  reports: ReadonlyMap<string, AgentReport>;
  now: number;
  /** When each service (object name) last began an update step; the shell remembers it. A new
   *  leader knows none and steps at once: the delay between steps is a pacing, not a safety. */
  lastStep: ReadonlyMap<string, number>;
}

export interface ServiceStatus {
  name: string;
  target: number;
  /** Tasks whose container runs (and is healthy, with a health check) at the current config. */
  running: number;
  tasks: number;
  /** Why containers are missing, when placement could not place them. */
  pending?: string;
  update: UpdateStatus;
}

export interface RoundResult {
  ops: BatchOp[];
  services: ServiceStatus[];
  /** Services that began an update step this round (the shell records `now` for them). */
  stepped: string[];
}

export function reconcile(input: ReconcileInput): RoundResult {
  const byKey = new Map<string, Versioned<StoredService>>();
  for (const s of input.services) byKey.set(keyOfServiceObject(s.name), s);
  const tasksByName = new Map(input.tasks.map((t) => [t.name, t]));
  const configs = new Map([...byKey].map(([k, s]) => [k, containerConfigHash(s.spec.spec, s.spec.deployment)]));

  const current: CurrentContainer[] = input.tasks.map((t) => ({
    id: `${t.name}#${t.spec.epoch}`,
    service: t.spec.service,
    index: t.spec.index,
    node: t.spec.node,
    state: containerState(reportOf(input.reports, t.name, t.spec)),
    epoch: t.spec.epoch,
  }));
  const plan = place({ services: [...byKey.values()].map((s) => s.spec.spec), nodes: input.nodes, containers: current });

  const ops: BatchOp[] = [];
  const written = new Set<string>();
  const blocked = sequentialBlocked(input, byKey, configs);
  for (const c of plan.create) {
    if (blocked.has(c.service)) continue;
    const name = taskName(c.service, c.index);
    const existing = tasksByName.get(name);
    const spec: TaskSpec = { service: c.service, index: c.index, node: c.node, epoch: c.epoch, config: configs.get(c.service) as string };
    ops.push({ op: 'put', kind: 'task', name, spec, expect: existing?.version ?? 0 });
    written.add(name);
    // One at a time for a sequential service: the next once this one runs.
    if (byKey.get(c.service)?.spec.spec.sequentialDeployment) blocked.add(c.service);
  }
  for (const r of plan.remove) {
    const name = taskName(r.container.service, r.container.index);
    const t = tasksByName.get(name);
    // A task moved elsewhere is one put above, not a delete; only this epoch's task is removed.
    if (!t || written.has(name) || t.spec.epoch !== r.container.epoch) continue;
    ops.push({ op: 'delete', kind: 'task', name, expect: t.version });
    written.add(name);
  }

  const services: ServiceStatus[] = [];
  const stepped: string[] = [];
  for (const sp of plan.services) {
    const svc = byKey.get(sp.service) as Versioned<StoredService>;
    const config = configs.get(sp.service) as string;
    const kept = plan.keep.filter((c) => c.service === sp.service).map((c) => tasksByName.get(taskName(c.service, c.index)) as Versioned<TaskSpec>);
    const step = rollingStep({ service: svc, config, tasks: kept, reports: input.reports, now: input.now, lastStep: input.lastStep.get(svc.name) });
    for (const op of step.ops) if (!written.has(op.name)) ops.push(op);
    if (step.stepped) stepped.push(svc.name);
    const mine = input.tasks.filter((t) => t.spec.service === sp.service);
    services.push({
      name: svc.name,
      target: svc.spec.spec.deploymentStrategy === 'EVERY_NODE' ? sp.wanted.length : svc.spec.spec.targetNumContainers,
      running: mine.filter((t) => t.spec.config === config && serving(reportOf(input.reports, t.name, t.spec), svc.spec.spec, config)).length,
      tasks: mine.length,
      ...(sp.pending ? { pending: sp.pending.message } : {}),
      update: step.status,
    });
  }
  return { ops, services, stepped };
}

/** Services with `sequential_deployment` that have a task not serving yet: they create nothing
 *  more this round. */
function sequentialBlocked(input: ReconcileInput, byKey: ReadonlyMap<string, Versioned<StoredService>>, configs: ReadonlyMap<string, string>): Set<string> {
  const blocked = new Set<string>();
  for (const t of input.tasks) {
    const svc = byKey.get(t.spec.service);
    if (!svc?.spec.spec.sequentialDeployment) continue;
    if (!serving(reportOf(input.reports, t.name, t.spec), svc.spec.spec, configs.get(t.spec.service) as string)) blocked.add(t.spec.service);
  }
  return blocked;
}

/** Placement's view of a task's container. A task no agent has reported yet is `starting`:
 *  assigned, on its way. */
function containerState(r: TaskReport | undefined): CurrentContainer['state'] {
  if (r === undefined) return 'starting';
  switch (r.state) {
    case 'running':
      return 'running';
    case 'exited':
    case 'failed':
    case 'removing':
      return 'stopped';
    default:
      return 'starting';
  }
}

