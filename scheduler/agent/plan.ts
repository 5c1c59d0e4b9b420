// What a node's agent does next: its tasks (desired state) and the scheduled containers Docker
// has (observed) in; what to remove, create and start out. A container stays only when a task
// of this node names it at its epoch and configuration; everything else weft scheduled here
// goes, stale copies first, so that a container is created only once the old copy of its name
// on this node is gone. Containers weft did not create are never in the input. Pure.

import type { ServiceSpec } from '../service/spec.ts';
import { containerConfigHash } from '../service/config-hash.ts';
import type { StoredService } from '../service/schema.ts';
import { serviceObjectOfKey, type TaskSpec } from '../task/task.ts';

/** A scheduled container on this node, as Docker lists it (docker-ops.ts's LocalContainer). */
export interface HeldContainer {
  id: string;
  task: string;
  epoch: number;
  config: string;
  state: 'created' | 'running' | 'restarting' | 'paused' | 'exited' | 'dead' | 'removing';
}

export interface AgentTask {
  name: string;
  spec: TaskSpec;
}

export interface AgentPlan<C extends HeldContainer = HeldContainer> {
  remove: C[];
  start: C[];
  /** Running containers of a stopped service (`weft service stop`): stopped, kept. */
  stop: C[];
  /** Tasks to create a container for, with the service spec to make it from. */
  create: { task: AgentTask; service: ServiceSpec }[];
  /** Tasks that wait: their configuration is not their service's current one (the reconciler
   *  is about to replace them) and they have no container to keep meanwhile. */
  waiting: AgentTask[];
}

/** `stoppedHere`: containers this agent stopped for a stopped service, started again when the
 *  service is started (an exited container is otherwise left to Docker's restart policy). */
export function planAgent<C extends HeldContainer>(self: string, tasks: readonly AgentTask[], services: ReadonlyMap<string, StoredService>, held: readonly C[], stoppedHere: ReadonlySet<string> = new Set()): AgentPlan<C> {
  const mine = new Map(tasks.filter((t) => t.spec.node === self).map((t) => [t.name, t]));
  const matched = new Set<string>();
  const remove: C[] = [];
  const start: C[] = [];
  const stop: C[] = [];
  const stopped = (t: AgentTask) => services.get(serviceObjectOfKey(t.spec.service))?.stopped === true;
  // Newest epoch first, so that of two containers of one task the current one is the one kept.
  for (const c of [...held].sort((a, b) => b.epoch - a.epoch)) {
    const t = mine.get(c.task);
    const current = t !== undefined && t.spec.epoch === c.epoch && t.spec.config === c.config && !matched.has(c.task);
    if (!current || c.state === 'dead' || c.state === 'removing') {
      if (c.state !== 'removing') remove.push(c);
      continue;
    }
    matched.add(c.task);
    if (stopped(t)) {
      if (c.state === 'running' || c.state === 'restarting') stop.push(c);
      continue;
    }
    // Created but never started (the agent stopped between the two), or stopped here for a
    // stopped service that was started again: start it. Any other exited one is Docker's to
    // restart or not, by the service's restart policy.
    if (c.state === 'created' || (c.state === 'exited' && stoppedHere.has(c.id))) start.push(c);
  }
  const create: AgentPlan<C>['create'] = [];
  const waiting: AgentTask[] = [];
  for (const t of mine.values()) {
    if (matched.has(t.name)) continue;
    // A stopped service makes no new containers (its tasks wait for `weft service start`).
    if (stopped(t)) {
      waiting.push(t);
      continue;
    }
    const svc = services.get(serviceObjectOfKey(t.spec.service));
    if (svc !== undefined && containerConfigHash(svc.spec, svc.deployment) === t.spec.config) create.push({ task: t, service: svc.spec });
    else waiting.push(t);
  }
  return { remove, start, stop, create, waiting };
}
