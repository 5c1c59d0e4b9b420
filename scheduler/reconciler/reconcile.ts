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
import { type CurrentContainer, serviceKey } from '../placement/container.ts';
import type { RemovalReason } from '../placement/plan.ts';
import type { PendingReason } from '../placement/reasons.ts';
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
  /** Tasks whose container is up or on its way (running, starting, being pulled or created),
   *  whatever its configuration: what a stopped service waits to see reach 0. */
  active: number;
  /** Why containers are missing, when placement could not place them. */
  pending?: string;
  /** The same, structured, with how many it could not place: what the provisioner grows a
   *  node cluster for (provisioner/demand.ts). */
  pendingReason?: PendingReason;
  unplaced?: number;
  update: UpdateStatus;
}

export interface RoundResult {
  ops: BatchOp[];
  services: ServiceStatus[];
  /** Services that began an update step this round (the shell records `now` for them). */
  stepped: string[];
}

export function reconcile(given: ReconcileInput): RoundResult {
  // What a down node last reported is history, not what runs: its tasks count as unreported.
  const alive = new Set(given.nodes.filter((n) => n.alive).map((n) => n.id));
  const input: ReconcileInput = { ...given, reports: new Map([...given.reports].filter(([id]) => alive.has(id))) };
  const byKey = new Map<string, Versioned<StoredService>>();
  for (const s of input.services) {
    // A service stored under a name not its own (desired state refuses it; an older state may
    // hold one) is left out rather than let it confuse the others' placement.
    if (keyOfServiceObject(s.name) === serviceKey(s.spec.spec)) byKey.set(keyOfServiceObject(s.name), s);
  }
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
  const kept = new Set(plan.keep.map((c) => c.id));
  const blocked = sequentialBlocked(input, byKey, configs, kept);
  const reported = reportedEpochs(given.reports);
  for (const c of plan.create) {
    if (blocked.has(c.service)) continue;
    const name = taskName(c.service, c.index);
    const existing = tasksByName.get(name);
    // Above every copy any node reports, and not below the leader's clock in ms: a task deleted
    // and made again (scaled down and up, its service removed and deployed again) must still
    // outrank a copy on a node that was cut off meanwhile, which desired state no longer
    // remembers. (Only clocks skewed by more than the time between the two could tie them.)
    const epoch = Math.max(c.epoch, (reported.get(name) ?? 0) + 1, Math.floor(input.now));
    const spec: TaskSpec = { service: c.service, index: c.index, node: c.node, epoch, config: configs.get(c.service) as string };
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
    // A task its service still wants stays until a round can move it (no room elsewhere yet, or
    // a sequential service moving one at a time): deleting it would lose its epoch.
    if (!UNWANTED.has(r.why) && byKey.get(r.container.service)?.spec.spec.deploymentStrategy !== 'EVERY_NODE') continue;
    ops.push({ op: 'delete', kind: 'task', name, expect: t.version });
    written.add(name);
  }

  ops.push(...autodestroyed(input, byKey, tasksByName, plan.keep, written));

  const services: ServiceStatus[] = [];
  const stepped: string[] = [];
  for (const sp of plan.services) {
    const svc = byKey.get(sp.service) as Versioned<StoredService>;
    const config = configs.get(sp.service) as string;
    const kept = plan.keep.filter((c) => c.service === sp.service).map((c) => tasksByName.get(taskName(c.service, c.index)) as Versioned<TaskSpec>);
    // A stopped service is not redeployed: its containers are kept as they are until started.
    const step = svc.spec.stopped === true
      ? { ops: [], stepped: false, status: { state: 'done' } as UpdateStatus }
      : rollingStep({ service: svc, config, tasks: kept, reports: input.reports, now: input.now, lastStep: input.lastStep.get(svc.name) });
    for (const op of step.ops) if (!written.has(op.name)) ops.push(op);
    if (step.stepped) stepped.push(svc.name);
    const mine = input.tasks.filter((t) => t.spec.service === sp.service);
    services.push({
      name: svc.name,
      target: svc.spec.spec.deploymentStrategy === 'EVERY_NODE' ? sp.wanted.length : svc.spec.spec.targetNumContainers,
      running: mine.filter((t) => t.spec.config === config && serving(reportOf(input.reports, t.name, t.spec), svc.spec.spec, config)).length,
      tasks: mine.length,
      active: mine.filter((t) => ['running', 'starting', 'pulling', 'creating'].includes(reportOf(input.reports, t.name, t.spec)?.state ?? '')).length,
      ...(sp.pending ? { pending: sp.pending.message, pendingReason: sp.pending.reason, unplaced: sp.pending.unplaced } : {}),
      update: step.status,
    });
  }
  return { ops, services, stepped };
}

/** `autodestroy`: a task whose container exited as its service says (ON_SUCCESS: code 0;
 *  ALWAYS: any code) is deleted and its service's count lowered by one, its index retired so the
 *  others keep their names; one service put per service per round (compare-and-set). */
function autodestroyed(input: ReconcileInput, byKey: ReadonlyMap<string, Versioned<StoredService>>, tasksByName: ReadonlyMap<string, Versioned<TaskSpec>>, kept: readonly CurrentContainer[], written: Set<string>): BatchOp[] {
  const ops: BatchOp[] = [];
  const done = new Map<string, number[]>();
  for (const c of kept) {
    const svc = byKey.get(c.service);
    const mode = svc?.spec.spec.autodestroy;
    if (!svc || mode === undefined || mode === 'OFF' || svc.spec.spec.deploymentStrategy === 'EVERY_NODE') continue;
    const name = taskName(c.service, c.index);
    const t = tasksByName.get(name);
    if (!t || written.has(name)) continue;
    const r = reportOf(input.reports, name, t.spec);
    if (r?.state !== 'exited' || r.exitCode === undefined || (mode === 'ON_SUCCESS' && r.exitCode !== 0)) continue;
    ops.push({ op: 'delete', kind: 'task', name, expect: t.version });
    written.add(name);
    done.set(c.service, [...(done.get(c.service) ?? []), c.index]);
  }
  for (const [key, indexes] of done) {
    const svc = byKey.get(key) as Versioned<StoredService>;
    const spec = svc.spec.spec;
    const retiredIndexes = [...new Set([...(spec.retiredIndexes ?? []), ...indexes])].sort((a, b) => a - b);
    const next: StoredService = { ...svc.spec, spec: { ...spec, targetNumContainers: Math.max(0, spec.targetNumContainers - indexes.length), retiredIndexes } };
    ops.push({ op: 'put', kind: 'service', name: svc.name, spec: next, expect: svc.version });
  }
  return ops;
}

/** Removals that mean the service no longer wants the index at all. (For EVERY_NODE, whose
 *  indexes belong to nodes, every removal is one.) */
const UNWANTED = new Set<RemovalReason>(['service-removed', 'scaled-down', 'invalid-index', 'duplicate']);

/** The highest epoch any node reports for each task name, live or not. */
function reportedEpochs(reports: ReadonlyMap<string, AgentReport>): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of reports.values()) for (const t of r.tasks) out.set(t.task, Math.max(out.get(t.task) ?? 0, t.epoch));
  return out;
}

/** Services with `sequential_deployment` that have a task placement keeps not serving yet: they
 *  create nothing more this round. (A task being moved off its node does not hold the others up:
 *  it will not serve where it is.) */
function sequentialBlocked(input: ReconcileInput, byKey: ReadonlyMap<string, Versioned<StoredService>>, configs: ReadonlyMap<string, string>, kept: ReadonlySet<string>): Set<string> {
  const blocked = new Set<string>();
  for (const t of input.tasks) {
    if (!kept.has(`${t.name}#${t.spec.epoch}`)) continue;
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

