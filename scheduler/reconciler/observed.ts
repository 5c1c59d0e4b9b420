// Desired objects as the reconciler reads them, and what observed state says of a task's
// container. Pure.

import type { ServiceSpec } from '../service/spec.ts';
import type { AgentReport, TaskReport } from '../task/report.ts';
import type { TaskSpec } from '../task/task.ts';

export interface Versioned<T> {
  name: string;
  version: number;
  spec: T;
}

/** A task's container as its node reports it: the report for this task at this epoch. */
export function reportOf(reports: ReadonlyMap<string, AgentReport>, name: string, t: TaskSpec): TaskReport | undefined {
  return reports.get(t.node)?.tasks.find((r) => r.task === name && r.epoch === t.epoch);
}

/** Whether a task's container serves: running at its epoch, and healthy if it has a check. */
export function serving(r: TaskReport | undefined, spec: ServiceSpec, config: string): boolean {
  return r !== undefined && r.state === 'running' && r.config === config && (spec.healthcheck === undefined || r.health === 'healthy');
}

