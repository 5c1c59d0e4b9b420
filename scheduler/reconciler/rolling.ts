// The rolling redeploy of one service: its tasks whose configuration hash is not the service's
// are replaced a few at a time (`update.parallelism`), the next step only once the replaced
// ones serve (running, and healthy when there is a health check) and `update.delayMs` has
// passed. A replaced task keeps its node, index and so its name and address; its epoch goes up
// so the agent replaces the container. What happens when a new container fails is the
// service's `update.onFailure`: pause (nothing more is replaced until the user acts), continue,
// or roll back to the previous spec. Pure.

import type { BatchOp } from '../manager/desired-state.ts';
import type { StoredService } from '../service/schema.ts';
import type { AgentReport } from '../task/report.ts';
import type { TaskSpec } from '../task/task.ts';
import { reportOf, serving, type Versioned } from './observed.ts';

export type UpdateStatus =
  | { state: 'done' }
  | { state: 'updating'; done: number; total: number }
  | { state: 'paused' | 'rolling-back'; done: number; total: number; failed: { task: string; error: string } };

export interface RollingInput {
  service: Versioned<StoredService>;
  config: string;
  /** The service's tasks that placement keeps. */
  tasks: readonly Versioned<TaskSpec>[];
  reports: ReadonlyMap<string, AgentReport>;
  now: number;
  lastStep: number | undefined;
}

export function rollingStep(i: RollingInput): { ops: BatchOp[]; stepped: boolean; status: UpdateStatus } {
  const spec = i.service.spec.spec;
  const outdated = i.tasks.filter((t) => t.spec.config !== i.config).sort((a, b) => a.spec.index - b.spec.index);
  if (outdated.length === 0) return { ops: [], stepped: false, status: { state: 'done' } };
  const total = i.tasks.length;
  const updated = i.tasks.filter((t) => t.spec.config === i.config);
  const done = updated.filter((t) => serving(reportOf(i.reports, t.name, t.spec), spec, i.config)).length;
  const failures = updated.flatMap((t) => {
    const r = reportOf(i.reports, t.name, t.spec);
    if (r === undefined) return [];
    if (r.state === 'failed' || r.state === 'exited') return [{ task: t.name, error: r.error ?? `exited with code ${r.exitCode ?? '?'}` }];
    if (r.state === 'running' && r.health === 'unhealthy') return [{ task: t.name, error: 'its health check fails' }];
    return [];
  });
  const failed = failures[0];
  if (failed && spec.update.onFailure === 'pause') return { ops: [], stepped: false, status: { state: 'paused', done, total, failed } };
  if (failed && spec.update.onFailure === 'rollback') {
    const previous = i.service.spec.previous;
    if (previous === undefined) return { ops: [], stepped: false, status: { state: 'paused', done, total, failed } };
    // The previous spec becomes the service again (and has no previous: a rollback that fails
    // too pauses rather than swinging back and forth).
    const back: StoredService = { spec: previous, deployment: i.service.spec.deployment };
    return { ops: [{ op: 'put', kind: 'service', name: i.service.name, spec: back, expect: i.service.version }], stepped: false, status: { state: 'rolling-back', done, total, failed } };
  }
  const failedNames = new Set(failures.map((f) => f.task));
  const inFlight = updated.filter((t) => !failedNames.has(t.name) && !serving(reportOf(i.reports, t.name, t.spec), spec, i.config)).length;
  const room = spec.update.parallelism - inFlight;
  const waiting = i.lastStep !== undefined && i.now - i.lastStep < spec.update.delayMs;
  if (room <= 0 || waiting) return { ops: [], stepped: false, status: { state: 'updating', done, total } };
  const ops: BatchOp[] = outdated.slice(0, room).map((t) => ({
    op: 'put', kind: 'task', name: t.name, expect: t.version,
    spec: { ...t.spec, epoch: t.spec.epoch + 1, config: i.config },
  }));
  return { ops, stepped: true, status: { state: 'updating', done, total } };
}
