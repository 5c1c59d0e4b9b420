// The rolling redeploy of one service (scheduler/reconciler/rolling.ts): outdated tasks replaced
// `parallelism` at a time, in place (node and index kept, epoch + 1), the next step only once the
// replaced ones serve (running, and healthy with a check) and `delayMs` has passed since the last;
// on a failed replacement, pause, continue or roll back as the service says.

import { describe, expect, test } from 'vitest';
import type { Versioned } from '../../scheduler/reconciler/observed.ts';
import { type RollingInput, rollingStep } from '../../scheduler/reconciler/rolling.ts';
import { containerConfigHash } from '../../scheduler/service/config-hash.ts';
import type { StoredService } from '../../scheduler/service/schema.ts';
import type { ServiceSpec, UpdateConfig } from '../../scheduler/service/spec.ts';
import type { AgentReport, TaskReport } from '../../scheduler/task/report.ts';
import type { TaskSpec } from '../../scheduler/task/task.ts';
import { Rng, seeds } from '../sim/rng.ts';
import { HEALTHCHECK, serviceSpec } from '../sim/reconciler-world.ts';

const v1 = serviceSpec({ name: 'web', targetNumContainers: 5, image: 'nginx:1' });
const OLD = containerConfigHash(v1, 0);

function world(update: Partial<UpdateConfig> = {}, p: { healthcheck?: boolean; previous?: boolean; count?: number } = {}) {
  const spec: ServiceSpec = { ...v1, image: 'nginx:2', update: { parallelism: 2, delayMs: 0, onFailure: 'pause', ...update }, ...(p.healthcheck ? { healthcheck: HEALTHCHECK } : {}) };
  const service: Versioned<StoredService> = { name: 's/web', version: 7, spec: { spec, deployment: 0, ...(p.previous === false ? {} : { previous: v1 }) } };
  const config = containerConfigHash(spec, 0);
  const tasks: Versioned<TaskSpec>[] = Array.from({ length: p.count ?? 5 }, (_, i) => ({
    name: `s/web/${i + 1}`, version: 3 + i, spec: { service: 's/web', index: i + 1, node: `n${i % 3}`, epoch: 2 + i, config: OLD },
  }));
  return { spec, service, config, tasks };
}

type W = ReturnType<typeof world>;

/** What each task's node says of it: by task name, its state and health (absent: nothing yet). */
function reports(tasks: readonly Versioned<TaskSpec>[], states: Record<string, Partial<TaskReport>>): Map<string, AgentReport> {
  const out = new Map<string, AgentReport>();
  for (const t of tasks) {
    const s = states[t.name];
    if (!s) continue;
    const r = out.get(t.spec.node) ?? { v: 1, docker: 'ok', memoryBytes: 1, tasks: [] };
    r.tasks.push({ task: t.name, epoch: t.spec.epoch, config: t.spec.config, state: 'running', health: 'none', since: 0, ...s });
    out.set(t.spec.node, r);
  }
  return out;
}

const runningAll = (tasks: readonly Versioned<TaskSpec>[]) => reports(tasks, Object.fromEntries(tasks.map((t) => [t.name, {}])));

function step(w: W, states: Record<string, Partial<TaskReport>> | 'all-running' = 'all-running', t: Partial<RollingInput> = {}) {
  const r = states === 'all-running' ? runningAll(w.tasks) : reports(w.tasks, states);
  return rollingStep({ service: w.service, config: w.config, tasks: w.tasks, reports: r, now: 100_000, lastStep: undefined, ...t });
}

/** Carries a step's task puts out on `w.tasks`. */
function apply(w: W, ops: ReturnType<typeof rollingStep>['ops']): void {
  for (const op of ops) {
    if (op.kind !== 'task' || op.op !== 'put') continue;
    const i = w.tasks.findIndex((t) => t.name === op.name);
    const t = w.tasks[i] as Versioned<TaskSpec>;
    expect(op.expect).toBe(t.version);
    w.tasks[i] = { name: t.name, version: t.version + 1, spec: op.spec as TaskSpec };
  }
}

describe('a step', () => {
  test('replaces the lowest outdated indexes, parallelism of them, in place with the next epoch', () => {
    const w = world();
    const r = step(w);
    expect(r.stepped).toBe(true);
    expect(r.status).toEqual({ state: 'updating', done: 0, total: 5 });
    expect(r.ops).toEqual(w.tasks.slice(0, 2).map((t) => ({
      op: 'put', kind: 'task', name: t.name, expect: t.version, spec: { service: 's/web', index: t.spec.index, node: t.spec.node, epoch: t.spec.epoch + 1, config: w.config },
    })));
  });

  test('nothing outdated: done, no ops, whatever fails', () => {
    const w = world();
    w.tasks = w.tasks.map((t) => ({ ...t, spec: { ...t.spec, config: w.config } }));
    const r = step(w, { 's/web/1': { state: 'failed' } });
    expect(r).toEqual({ ops: [], stepped: false, status: { state: 'done' } });
  });

  test('waits while the replaced ones do not serve, and steps again when one does', () => {
    const w = world();
    apply(w, step(w).ops);
    expect(step(w, {}).ops, 'not reported yet').toEqual([]);
    expect(step(w, { 's/web/1': { state: 'starting' }, 's/web/2': { state: 'pulling' } }).ops).toEqual([]);
    const one = step(w, { 's/web/1': {}, 's/web/2': { state: 'creating' } });
    expect(one.ops.map((o) => o.name)).toEqual(['s/web/3']);
    expect(one.status).toEqual({ state: 'updating', done: 1, total: 5 });
  });

  test('a report of another epoch or config is not the replacement serving', () => {
    const w = world();
    apply(w, step(w).ops);
    const stale = reports(w.tasks, { 's/web/1': {}, 's/web/2': {} });
    for (const r of stale.values()) for (const t of r.tasks) t.epoch -= 1;
    expect(rollingStep({ service: w.service, config: w.config, tasks: w.tasks, reports: stale, now: 0, lastStep: undefined }).ops).toEqual([]);
    const oldConfig = reports(w.tasks, { 's/web/1': { config: OLD }, 's/web/2': { config: OLD } });
    expect(rollingStep({ service: w.service, config: w.config, tasks: w.tasks, reports: oldConfig, now: 0, lastStep: undefined }).ops).toEqual([]);
  });

  test('with a health check a replacement is done only when healthy', () => {
    const w = world({ parallelism: 1 }, { healthcheck: true });
    apply(w, step(w).ops);
    for (const health of ['none', 'starting'] as const) expect(step(w, { 's/web/1': { health } }).ops, health).toEqual([]);
    expect(step(w, { 's/web/1': { health: 'healthy' } }).ops.map((o) => o.name)).toEqual(['s/web/2']);
    // Without a check, running is enough.
    const plain = world({ parallelism: 1 });
    apply(plain, step(plain).ops);
    expect(step(plain, { 's/web/1': { health: 'none' } }).ops.map((o) => o.name)).toEqual(['s/web/2']);
  });

  test('waits delayMs after the last step, measured from lastStep', () => {
    const w = world({ delayMs: 5000 });
    expect(step(w, 'all-running', { lastStep: undefined }).ops, 'a new leader steps at once').toHaveLength(2);
    expect(step(w, 'all-running', { now: 10_000, lastStep: 5_001 })).toEqual({ ops: [], stepped: false, status: { state: 'updating', done: 0, total: 5 } });
    expect(step(w, 'all-running', { now: 10_000, lastStep: 5_000 }).ops).toHaveLength(2);
  });

  test('the last step takes only what is left', () => {
    const w = world({ parallelism: 4 }, { count: 5 });
    apply(w, step(w).ops);
    const r = step(w);
    expect(r.ops.map((o) => o.name)).toEqual(['s/web/5']);
    apply(w, r.ops);
    expect(step(w)).toEqual({ ops: [], stepped: false, status: { state: 'done' } });
  });
});

describe('a failed replacement', () => {
  const failedFirst = (update: Partial<UpdateConfig>, p: { previous?: boolean } = {}) => {
    const w = world(update, p);
    apply(w, step(w).ops);
    return w;
  };

  test('pause: nothing more is replaced, and the status says which task and why', () => {
    const w = failedFirst({ onFailure: 'pause' });
    const r = step(w, { 's/web/1': { state: 'failed', error: 'pull access denied' }, 's/web/2': {} });
    expect(r).toEqual({ ops: [], stepped: false, status: { state: 'paused', done: 1, total: 5, failed: { task: 's/web/1', error: 'pull access denied' } } });
    expect(step(w, { 's/web/1': { state: 'exited', exitCode: 3 }, 's/web/2': {} }).status).toMatchObject({ failed: { task: 's/web/1', error: 'exited with code 3' } });
    expect(step(w, { 's/web/1': { health: 'unhealthy' }, 's/web/2': {} }).status).toMatchObject({ state: 'paused', failed: { error: 'its health check fails' } });
  });

  test('an outdated task that fails is not the update failing', () => {
    const w = failedFirst({ onFailure: 'pause' });
    const r = step(w, { 's/web/1': {}, 's/web/2': {}, 's/web/3': { state: 'failed' } });
    expect(r.status.state).toBe('updating');
    expect(r.ops.map((o) => o.name)).toEqual(['s/web/3', 's/web/4']);
  });

  test('continue: the failed one no longer holds a place, the update goes on', () => {
    const w = failedFirst({ onFailure: 'continue' });
    const r = step(w, { 's/web/1': { state: 'failed' }, 's/web/2': { state: 'starting' } });
    expect(r.ops.map((o) => o.name)).toEqual(['s/web/3']);
    expect(r.status).toEqual({ state: 'updating', done: 0, total: 5 });
  });

  test('rollback: the previous spec becomes the service again, compare-and-set on its version', () => {
    const w = failedFirst({ onFailure: 'rollback' });
    const r = step(w, { 's/web/1': { state: 'failed', error: 'boom' }, 's/web/2': {} });
    expect(r.ops).toEqual([{ op: 'put', kind: 'service', name: 's/web', spec: { spec: v1, deployment: 0 }, expect: 7 }]);
    expect(r.stepped).toBe(false);
    expect(r.status).toEqual({ state: 'rolling-back', done: 1, total: 5, failed: { task: 's/web/1', error: 'boom' } });
    // The spec put back has no previous: a rollback that fails too pauses.
    expect('previous' in (r.ops[0] as { spec: object }).spec).toBe(false);
  });

  test('rollback without a previous spec pauses', () => {
    const w = failedFirst({ onFailure: 'rollback' }, { previous: false });
    const r = step(w, { 's/web/1': { state: 'failed', error: 'boom' } });
    expect(r).toEqual({ ops: [], stepped: false, status: { state: 'paused', done: 0, total: 5, failed: { task: 's/web/1', error: 'boom' } } });
  });
});

describe('over random states', () => {
  const STATES = ['pulling', 'creating', 'starting', 'running', 'running', 'exited', 'failed', 'removing'] as const;
  const HEALTH = ['healthy', 'unhealthy', 'starting', 'none'] as const;

  test.each(seeds(300))('seed %i: never more replacing at once than parallelism; in place; epochs up by one', (seed) => {
    const rng = new Rng(seed);
    const update = { parallelism: 1 + rng.int(4), delayMs: rng.pick([0, 1000]), onFailure: rng.pick(['pause', 'continue', 'rollback'] as const) };
    const w = world(update, { healthcheck: rng.chance(0.5), count: 1 + rng.int(8), previous: rng.chance(0.7) });
    // Some tasks already updated, in random states.
    w.tasks = w.tasks.map((t) => (rng.chance(0.4) ? { ...t, spec: { ...t.spec, config: w.config, epoch: t.spec.epoch + 1 } } : t));
    const states: Record<string, Partial<TaskReport>> = {};
    for (const t of w.tasks) if (rng.chance(0.8)) states[t.name] = { state: rng.pick(STATES), health: rng.pick(HEALTH), ...(rng.chance(0.3) ? { epoch: t.spec.epoch - 1 } : {}) };
    const lastStep = rng.chance(0.5) ? undefined : 100_000 - rng.int(2000);
    const r = step(w, states, { lastStep });
    const rep = reports(w.tasks, states);
    const find = (t: Versioned<TaskSpec>) => rep.get(t.spec.node)?.tasks.find((x) => x.task === t.name && x.epoch === t.spec.epoch);
    const updated = w.tasks.filter((t) => t.spec.config === w.config);
    const serves = (t: Versioned<TaskSpec>) => { const x = find(t); return x?.state === 'running' && (w.spec.healthcheck === undefined || x.health === 'healthy'); };
    const fails = (t: Versioned<TaskSpec>) => { const x = find(t); return x?.state === 'failed' || x?.state === 'exited' || (x?.state === 'running' && x.health === 'unhealthy'); };
    const replacing = updated.filter((t) => !serves(t) && !fails(t)).length;
    const anyFailed = updated.some(fails);
    const taskOps = r.ops.filter((o) => o.kind === 'task');
    if (taskOps.length > 0) {
      expect(replacing + taskOps.length, 'in flight after the step').toBeLessThanOrEqual(update.parallelism);
      expect(lastStep === undefined || 100_000 - lastStep >= update.delayMs).toBe(true);
      expect(r.stepped).toBe(true);
      if (update.onFailure !== 'continue') expect(anyFailed, 'a step despite a failure').toBe(false);
    }
    for (const op of taskOps) {
      const before = w.tasks.find((t) => t.name === op.name) as Versioned<TaskSpec>;
      expect(before.spec.config).not.toBe(w.config);
      expect(op).toEqual({ op: 'put', kind: 'task', name: op.name, expect: before.version, spec: { ...before.spec, epoch: before.spec.epoch + 1, config: w.config } });
    }
    const serviceOps = r.ops.filter((o) => o.kind === 'service');
    expect(serviceOps.length > 0).toBe(anyFailed && update.onFailure === 'rollback' && w.service.spec.previous !== undefined && updated.length < w.tasks.length);
    if (updated.length === w.tasks.length) expect(r.status).toEqual({ state: 'done' });
    else expect(r.status).toMatchObject({ done: updated.filter(serves).length, total: w.tasks.length });
  });
});
