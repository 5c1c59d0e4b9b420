// Desired state's batch (a stack deploy, one reconciler round): several puts and deletes applied
// together or not at all, every `expect` checked first; and the kinds it carries for the
// scheduler — service, task, stack — each refused, naming the field, when its spec is not one.

import { describe, expect, test } from 'vitest';
import { type BatchOp, DesiredState, MAX_BATCH_OPS, validateCommand } from '../../scheduler/manager/desired-state.ts';
import type { StoredService } from '../../scheduler/service/schema.ts';
import type { StackRecord } from '../../scheduler/stack/record.ts';
import type { TaskSpec } from '../../scheduler/task/task.ts';
import { Rng, seeds } from '../sim/rng.ts';
import { serviceSpec } from '../sim/reconciler-world.ts';

const CONFIG = '0123456789abcdef';
const taskSpec = (index: number, p: Partial<TaskSpec> = {}): TaskSpec => ({ service: 's/web', index, node: 'peer-a', epoch: 1, config: CONFIG, ...p });
const service: StoredService = { spec: serviceSpec({ name: 'web' }), deployment: 0 };
const stack: StackRecord = { file: 'shop.yml', services: ['web'] };

let reqs = 0;
const batch = (ops: BatchOp[], req = `b${++reqs}`) => JSON.stringify({ op: 'batch', ops, req });
const putTask = (i: number, expectV?: number, p: Partial<TaskSpec> = {}): BatchOp => ({ op: 'put', kind: 'task', name: `s/web/${i}`, spec: taskSpec(i, p), ...(expectV !== undefined ? { expect: expectV } : {}) });

/** A state with s/web at version 1, tasks 1 and 2 at version 1 and 2, applied up to index 3. */
function seeded(): DesiredState {
  const s = new DesiredState();
  expect(s.apply(1, batch([{ op: 'put', kind: 'service', name: 's/web', spec: service, expect: 0 }, putTask(1, 0), putTask(2, 0), { op: 'put', kind: 'stack', name: 's', spec: stack }])).outcome.ok).toBe(true);
  expect(s.apply(2, batch([putTask(2, 1, { epoch: 2 })])).outcome.ok).toBe(true);
  s.apply(3, JSON.stringify({ op: 'put', kind: 'config', name: 'c', spec: 'v', req: 'cfg' }));
  return s;
}
const objects = (s: DesiredState) => JSON.stringify(s.all());

describe('a batch is all or nothing', () => {
  test('one failing expect, wherever it stands, changes nothing, and the outcome names that object', () => {
    for (let at = 0; at < 4; at++) {
      const s = seeded();
      const before = objects(s);
      const ops = [putTask(1, 1, { epoch: 2 }), putTask(3, 0), { op: 'delete', kind: 'stack', name: 's', expect: 1 } as BatchOp];
      ops.splice(at, 0, putTask(2, 1, { epoch: 9 }));
      const r = s.apply(10, batch(ops));
      expect(r.outcome).toEqual({ ok: false, error: 'task "s/web/2": expected version 1, found version 2' });
      expect(r.changes).toEqual([]);
      expect(objects(s)).toBe(before);
      expect(s.applied).toBe(10);
    }
  });

  test('expect 0 on an object that exists fails the batch; expecting a version of a missing one too', () => {
    const s = seeded();
    const before = objects(s);
    expect(s.apply(4, batch([putTask(3, 0), putTask(1, 0)])).outcome).toEqual({ ok: false, error: 'task "s/web/1": expected version 0, found version 1' });
    expect(s.apply(5, batch([putTask(3, 0), putTask(4, 1)])).outcome).toEqual({ ok: false, error: 'task "s/web/4": expected version 1, found no such object' });
    expect(objects(s)).toBe(before);
  });

  test('a delete of a missing object fails the batch, with or without expect', () => {
    const s = seeded();
    const before = objects(s);
    expect(s.apply(4, batch([putTask(3, 0), { op: 'delete', kind: 'task', name: 's/web/9' }])).outcome).toEqual({ ok: false, error: 'task "s/web/9" does not exist' });
    expect(s.apply(5, batch([putTask(3, 0), { op: 'delete', kind: 'task', name: 's/web/9', expect: 0 }])).outcome).toEqual({ ok: false, error: 'task "s/web/9" does not exist' });
    expect(s.get('task', 's/web/3')).toBeUndefined();
    expect(objects(s)).toBe(before);
  });

  test('a batch that applies reports every change, in order, each with the entry\'s index', () => {
    const s = seeded();
    const r = s.apply(7, batch([putTask(1, 1, { epoch: 2, node: 'peer-b' }), { op: 'delete', kind: 'task', name: 's/web/2', expect: 2 }, putTask(3, 0), { op: 'put', kind: 'stack', name: 's', spec: { ...stack, file: 'b.yml' }, expect: 1 }]));
    expect(r.outcome).toEqual({ ok: true, object: null });
    expect(r.changes).toEqual([
      { index: 7, kind: 'task', name: 's/web/1', object: { kind: 'task', name: 's/web/1', version: 2, spec: taskSpec(1, { epoch: 2, node: 'peer-b' }), index: 7 } },
      { index: 7, kind: 'task', name: 's/web/2', object: null },
      { index: 7, kind: 'task', name: 's/web/3', object: { kind: 'task', name: 's/web/3', version: 1, spec: taskSpec(3), index: 7 } },
      { index: 7, kind: 'stack', name: 's', object: { kind: 'stack', name: 's', version: 2, spec: { ...stack, file: 'b.yml' }, index: 7 } },
    ]);
    expect(s.list('task').map((o) => [o.name, o.version, o.index])).toEqual([['s/web/1', 2, 7], ['s/web/3', 1, 7]]);
  });

  test('ops of different kinds may share a name', () => {
    const s = new DesiredState();
    const r = s.apply(1, batch([{ op: 'put', kind: 'config', name: 'x', spec: 'v' }, { op: 'put', kind: 'stack', name: 'x', spec: stack }]));
    expect(r.changes).toHaveLength(2);
  });
});

describe('a batch is validated whole before it is proposed, and again when applied', () => {
  const cases: [string, unknown, RegExp][] = [
    ['the same object twice', { op: 'batch', req: 'r', ops: [putTask(1), { op: 'delete', kind: 'task', name: 's/web/1' }] }, /^batch operation 2: task "s\/web\/1" twice in one batch$/],
    ['no operations', { op: 'batch', req: 'r', ops: [] }, /a batch has 1-2000 operations/],
    ['too many operations', { op: 'batch', req: 'r', ops: Array.from({ length: MAX_BATCH_OPS + 1 }, (_, i) => putTask(i + 1)) }, /a batch has 1-2000 operations/],
    ['ops not a list', { op: 'batch', req: 'r', ops: { 0: putTask(1) } }, /a batch has/],
    ['a nested batch', { op: 'batch', req: 'r', ops: [{ op: 'batch', ops: [putTask(1)] }] }, /^batch operation 1: op must be put or delete$/],
    ['a restore inside', { op: 'batch', req: 'r', ops: [putTask(1), { op: 'restore', data: '{}' }] }, /^batch operation 2: op must be put or delete$/],
    ['an op that is not an object', { op: 'batch', req: 'r', ops: [putTask(1), 'put'] }, /^batch operation 2: not an object$/],
    ['an unknown kind', { op: 'batch', req: 'r', ops: [{ op: 'put', kind: 'pod', name: 'p', spec: {} }] }, /^batch operation 1: kind must be one of/],
    ['a bad name', { op: 'batch', req: 'r', ops: [{ op: 'delete', kind: 'task', name: '../x' }] }, /^batch operation 1: name must be/],
    ['a bad expect', { op: 'batch', req: 'r', ops: [putTask(1, -1)] }, /^batch operation 1: expect must be a version/],
    ['an unknown field in an op', { op: 'batch', req: 'r', ops: [{ ...putTask(1), force: true }] }, /^batch operation 1: unknown field "force"$/],
    ['an unknown field in the batch', { op: 'batch', req: 'r', ops: [putTask(1)], atomic: false }, /^unknown field "atomic"$/],
    ['no request id', { op: 'batch', ops: [putTask(1)] }, /^req must be a request id$/],
    ['an invalid task spec', { op: 'batch', req: 'r', ops: [putTask(1), putTask(2, undefined, { epoch: 0 })] }, /^batch operation 2: a task epoch is an integer from 1$/],
  ];
  test.each(cases)('%s is refused, naming the operation', (_, cmd, message) => {
    expect(validateCommand(cmd)).toMatch(message);
    const s = seeded();
    const before = objects(s);
    const r = s.apply(4, JSON.stringify(cmd));
    expect(r.outcome).toMatchObject({ ok: false, error: expect.stringMatching(message) });
    expect(r.changes).toEqual([]);
    expect(objects(s)).toBe(before);
  });

  // Was a bug (fixed; desired-state.ts validateBatch: `validateCommand({ ...o, req: m.req })`): an operation's
  // own `req` field is overwritten before the unknown-field check, so a batch operation carrying
  // `req` is accepted although every other unknown field is refused.
  test('a batch operation carrying its own req is refused like any unknown field', () => {
    expect(validateCommand({ op: 'batch', req: 'r', ops: [{ ...putTask(1), req: 'other' }] })).toMatch(/unknown field "req"/);
  });
});

describe('a retried batch applies once', () => {
  test('the same request id applied again returns the first outcome and changes nothing', () => {
    const s = seeded();
    const cmd = batch([putTask(1, 1, { epoch: 2 }), putTask(3, 0)], 'retry-me');
    const first = s.apply(4, cmd);
    expect(first.outcome.ok).toBe(true);
    const after = objects(s);
    const again = s.apply(5, cmd);
    expect(again).toEqual({ req: 'retry-me', outcome: first.outcome, changes: [] });
    expect(objects(s)).toBe(after);
    expect(s.get('task', 's/web/1')?.version).toBe(2);
  });

  test('a batch that failed is not tried again under its request id, even once it would apply', () => {
    const s = seeded();
    const cmd = batch([putTask(3, 1)], 'failed-once');
    const first = s.apply(4, cmd);
    expect(first.outcome.ok).toBe(false);
    s.apply(5, batch([putTask(3, 0)]));
    expect(s.apply(6, cmd)).toEqual({ req: 'failed-once', outcome: first.outcome, changes: [] });
    expect(s.get('task', 's/web/3')?.version).toBe(1);
  });
});

describe('the scheduler\'s kinds in snapshots', () => {
  test('serialize and restore give the very same machine, services, tasks and stacks included', () => {
    const s = seeded();
    s.apply(4, batch([putTask(1, 1, { epoch: 3 })], 'remembered'));
    const copy = new DesiredState();
    copy.restore(s.serialize());
    expect(copy.serialize()).toBe(s.serialize());
    expect(copy.get('service', 's/web')?.spec).toEqual(service);
    expect(copy.get('task', 's/web/2')).toEqual({ kind: 'task', name: 's/web/2', version: 2, spec: taskSpec(2, { epoch: 2 }), index: 2 });
    expect(copy.outcomeOf('remembered')).toEqual({ ok: true, object: null });
    // Both go on alike.
    const next = batch([putTask(2, 2, { epoch: 3 }), { op: 'delete', kind: 'stack', name: 's', expect: 1 }]);
    expect(copy.apply(5, next)).toEqual(s.apply(5, next));
    expect(copy.serialize()).toBe(s.serialize());
  });

  test('a restore through the log replaces services, tasks and stacks, reporting each change', () => {
    const s = seeded();
    const backup = new DesiredState();
    backup.apply(1, batch([{ op: 'put', kind: 'service', name: 's/web', spec: { ...service, deployment: 1 } }, putTask(1), putTask(5)]));
    const r = s.apply(4, JSON.stringify({ op: 'restore', data: backup.serialize(), req: 'restore-1' }));
    expect(r.outcome.ok).toBe(true);
    expect(r.changes.map((c) => [c.kind, c.name, c.object?.version ?? null])).toEqual([
      ['task', 's/web/2', null], ['stack', 's', null], ['config', 'c', null], ['service', 's/web', 2], ['task', 's/web/5', 1],
    ]);
    expect(s.all().map((o) => `${o.kind} ${o.name}`)).toEqual(['service s/web', 'task s/web/1', 'task s/web/5']);
  });

  test('a snapshot holding an invalid task, service or stack is refused whole, naming the field', () => {
    const good = JSON.parse(seeded().serialize()) as { objects: { kind: string; spec: unknown }[] };
    const bad = (kind: string, spec: unknown) => JSON.stringify({ ...good, objects: good.objects.map((o) => (o.kind === kind ? { ...o, spec } : o)) });
    const s = seeded();
    const before = s.serialize();
    expect(() => s.restore(bad('task', { ...taskSpec(1), node: '' }))).toThrow(/not a desired-state snapshot: a task needs its node/);
    expect(() => s.restore(bad('service', { ...service, spec: { ...service.spec, targetNumContainers: -1 } }))).toThrow(/spec\.targetNumContainers/);
    expect(() => s.restore(bad('stack', { ...stack, services: ['Web Site'] }))).toThrow(/a stack's service "Web Site" is not a service name/);
    expect(s.serialize()).toBe(before);
  });
});

describe('invalid specs of the new kinds are refused, naming the field', () => {
  const put = (kind: string, spec: unknown) => validateCommand({ op: 'put', kind, name: kind === 'task' ? 's/web/1' : 's/web', spec, req: 'r' });
  const { image: _image, ...noImage } = service.spec;

  test.each([
    ['not an object', 'x', /^a task must be an object$/],
    ['an unknown field', { ...taskSpec(1), extra: 1 }, /^a task has no field "extra"$/],
    ['a service that is no key', { ...taskSpec(1), service: 'web' }, /service key/],
    ['index 0', { ...taskSpec(1), index: 0 }, /^a task index is an integer from 1$/],
    ['a fractional index', { ...taskSpec(1), index: 1.5 }, /task index/],
    ['no node', { ...taskSpec(1), node: '' }, /^a task needs its node$/],
    ['a huge node id', { ...taskSpec(1), node: 'n'.repeat(257) }, /its node/],
    ['epoch 0', { ...taskSpec(1), epoch: 0 }, /^a task epoch is an integer from 1$/],
    ['a config that is no hash', { ...taskSpec(1), config: 'latest' }, /configuration hash/],
  ])('task: %s', (_, spec, message) => {
    expect(put('task', spec)).toMatch(message);
  });

  test.each([
    ['a bare spec, not stored', service.spec, /^spec: /],
    ['no image', { ...service, spec: noImage }, /^spec\.image: /],
    ['an empty image', { ...service, spec: { ...service.spec, image: '' } }, /^spec\.image: /],
    ['a name that is no DNS label', { ...service, spec: { ...service.spec, name: 'Web_1' } }, /^spec\.name: must be a DNS label$/],
    ['a negative target', { ...service, spec: { ...service.spec, targetNumContainers: -1 } }, /^spec\.targetNumContainers: /],
    ['an unknown strategy', { ...service, spec: { ...service.spec, deploymentStrategy: 'FASTEST' } }, /^spec\.deploymentStrategy: /],
    ['parallelism 0', { ...service, spec: { ...service.spec, update: { ...service.spec.update, parallelism: 0 } } }, /^spec\.update\.parallelism: /],
    ['an unknown onFailure', { ...service, spec: { ...service.spec, update: { ...service.spec.update, onFailure: 'retry' } } }, /^spec\.update\.onFailure: /],
    ['a health check without a test', { ...service, spec: { ...service.spec, healthcheck: { test: [], intervalMs: 1, timeoutMs: 1, retries: 1, startPeriodMs: 0 } } }, /^spec\.healthcheck\.test: /],
    ['an unknown spec field', { ...service, spec: { ...service.spec, replicas: 3 } }, /^spec\.replicas: /],
    ['a negative deployment', { ...service, deployment: -1 }, /^deployment: /],
    ['a previous spec that is not one', { ...service, previous: { ...service.spec, stack: 'Bad Stack' } }, /^previous\.stack: /],
    ['an unknown stored field', { ...service, history: [] }, /^history: /],
    ['more than 400 KiB', { ...service, spec: { ...service.spec, environment: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`K${i}`, 'x'.repeat(8000)])) } }, /at most 409600 bytes/],
  ])('service: %s', (_, spec, message) => {
    expect(put('service', spec)).toMatch(message);
  });

  test.each([
    ['not an object', ['web'], /^a stack must be an object$/],
    ['no file', { services: [] }, /^a stack needs the name of its file$/],
    ['services not a list', { file: 'a.yml', services: 'web' }, /^a stack has at most 500 services$/],
    ['a service name that is not one', { file: 'a.yml', services: ['web', 'WEB!'] }, /^a stack's service "WEB!" is not a service name$/],
    ['an unknown field', { ...stack, version: 3 }, /^a stack has no field "version"$/],
  ])('stack: %s', (_, spec, message) => {
    expect(put('stack', spec)).toMatch(message);
  });

  test('valid specs of each kind pass', () => {
    expect(put('task', taskSpec(1))).toBeUndefined();
    expect(put('service', service)).toBeUndefined();
    expect(put('service', { ...service, previous: service.spec })).toBeUndefined();
    expect(put('stack', stack)).toBeUndefined();
  });
});

describe('batches over random states match a plain model', () => {
  test.each(seeds(200))('seed %i: all or nothing, versions +1, outcomes and changes as the model says', (seed) => {
    const rng = new Rng(seed);
    const s = new DesiredState();
    const model = new Map<string, number>(); // name -> version
    const names = ['s/web/1', 's/web/2', 's/web/3', 's/web/4'];
    for (let i = 1; i <= 40; i++) {
      const picked = rng.shuffle([...names]).slice(0, 1 + rng.int(names.length));
      const ops: BatchOp[] = picked.map((name) => {
        const v = model.get(name);
        const expectV = rng.chance(0.3) ? undefined : rng.chance(0.85) ? (v ?? 0) : rng.int(4);
        const del = rng.chance(0.3);
        const index = Number(name.split('/')[2]);
        return del ? { op: 'delete', kind: 'task', name, ...(expectV !== undefined ? { expect: expectV } : {}) } : { op: 'put', kind: 'task', name, spec: taskSpec(index, { epoch: i }), ...(expectV !== undefined ? { expect: expectV } : {}) };
      });
      const ok = ops.every((o) => (o.expect === undefined || o.expect === (model.get(o.name) ?? 0)) && (o.op === 'put' || model.has(o.name)));
      const r = s.apply(i, batch(ops));
      expect(r.outcome.ok, `entry ${i}`).toBe(ok);
      if (!ok) {
        expect(r.changes).toEqual([]);
        const first = ops.find((o) => !((o.expect === undefined || o.expect === (model.get(o.name) ?? 0)) && (o.op === 'put' || model.has(o.name)))) as BatchOp;
        expect((r.outcome as { error: string }).error).toContain(`task "${first.name}"`);
      } else {
        expect(r.changes.map((c) => [c.name, c.index, c.object?.version ?? null])).toEqual(ops.map((o) => [o.name, i, o.op === 'delete' ? null : (model.get(o.name) ?? 0) + 1]));
        for (const o of ops) if (o.op === 'delete') model.delete(o.name); else model.set(o.name, (model.get(o.name) ?? 0) + 1);
      }
      expect(new Map(s.list('task').map((o) => [o.name, o.version]))).toEqual(model);
    }
    // And the machine restores to itself.
    const copy = new DesiredState();
    copy.restore(s.serialize());
    expect(copy.serialize()).toBe(s.serialize());
  });
});
