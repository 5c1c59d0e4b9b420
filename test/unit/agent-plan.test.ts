// What a node's agent does next (scheduler/agent/plan.ts): a container stays only when a task of
// this node names it at its epoch and configuration (one per task, the newest); everything else
// weft scheduled here is removed; a task without its container is created when its configuration
// is its service's current one, and waits otherwise; a container created but never started is
// started.

import { describe, expect, test } from 'vitest';
import { type AgentTask, type HeldContainer, planAgent } from '../../scheduler/agent/plan.ts';
import { containerConfigHash } from '../../scheduler/service/config-hash.ts';
import type { StoredService } from '../../scheduler/service/schema.ts';
import { Rng, seeds } from '../sim/rng.ts';
import { serviceSpec } from '../sim/reconciler-world.ts';

const web: StoredService = { spec: serviceSpec({ name: 'web', targetNumContainers: 3 }), deployment: 0 };
const db: StoredService = { spec: serviceSpec({ name: 'db', stack: '' }), deployment: 2 };
const WEB = containerConfigHash(web.spec, 0);
const DB = containerConfigHash(db.spec, 2);
const OLD = '0123456789abcdef';
const services = new Map([['s/web', web], ['db', db]]);

const task = (name: string, node: string, epoch: number, config = name.startsWith('db') ? DB : WEB): AgentTask => {
  const parts = name.split('/');
  return { name, spec: { service: parts.length === 3 ? `${parts[0]}/${parts[1]}` : `/${parts[0]}`, index: Number(parts.at(-1)), node, epoch, config } };
};
let ids = 0;
const held = (t: string, epoch: number, state: HeldContainer['state'] = 'running', config = t.startsWith('db') ? DB : WEB): HeldContainer => ({ id: `c${++ids}`, task: t, epoch, config, state });
const names = (cs: readonly { task: string; epoch: number }[]) => cs.map((c) => `${c.task}#${c.epoch}`).sort();

describe('planAgent', () => {
  test('an empty node with tasks creates them, from their service\'s spec', () => {
    const p = planAgent('me', [task('s/web/1', 'me', 1), task('db/1', 'me', 4), task('s/web/2', 'other', 1)], services, []);
    expect(p.remove).toEqual([]);
    expect(p.start).toEqual([]);
    expect(p.waiting).toEqual([]);
    expect(p.create.map((c) => [c.task.name, c.service])).toEqual([['s/web/1', web.spec], ['db/1', db.spec]]);
  });

  test('a container that is its task at its epoch and config stays; nothing is created for it', () => {
    const c = held('s/web/1', 1);
    const p = planAgent('me', [task('s/web/1', 'me', 1)], services, [c]);
    expect(p).toEqual({ remove: [], start: [], stop: [], create: [], waiting: [] });
  });

  test('an older epoch is removed and the current one created in the same plan (removals are carried out first)', () => {
    const old = held('s/web/1', 1);
    const p = planAgent('me', [task('s/web/1', 'me', 2)], services, [old]);
    expect(p.remove).toEqual([old]);
    expect(p.create.map((c) => [c.task.name, c.task.spec.epoch])).toEqual([['s/web/1', 2]]);
  });

  test('a container of a task moved to another node, of a deleted task, or of a removed service goes', () => {
    const moved = held('s/web/1', 1);
    const deleted = held('s/web/3', 1);
    const orphan = held('gone/x/1', 5);
    const p = planAgent('me', [task('s/web/1', 'other', 2)], services, [moved, deleted, orphan]);
    expect(names(p.remove)).toEqual(names([moved, deleted, orphan]));
    expect(p.create).toEqual([]);
  });

  test('a newer copy than the task (its name made again at a lower epoch) goes too; the matching one stays', () => {
    const newer = held('s/web/1', 5);
    const current = held('s/web/1', 1);
    const p = planAgent('me', [task('s/web/1', 'me', 1)], services, [newer, current]);
    expect(p.remove).toEqual([newer]);
    expect(p.create).toEqual([]);
  });

  test('of two containers of one task at its epoch, one stays', () => {
    const a = held('s/web/1', 2);
    const b = held('s/web/1', 2, 'exited');
    const p = planAgent('me', [task('s/web/1', 'me', 2)], services, [a, b]);
    expect(p.remove).toHaveLength(1);
    expect(p.create).toEqual([]);
  });

  test('a container at the task\'s epoch but another config is not the task', () => {
    const c = held('s/web/1', 2, 'running', OLD);
    const p = planAgent('me', [task('s/web/1', 'me', 2)], services, [c]);
    expect(p.remove).toEqual([c]);
    expect(p.create).toHaveLength(1);
  });

  test('created but never started: started; exited: left to Docker\'s restart policy; dead: replaced; removing: left alone', () => {
    const created = held('s/web/1', 1, 'created');
    const exited = held('s/web/2', 1, 'exited');
    const dead = held('s/web/3', 1, 'dead');
    const removing = held('db/1', 4, 'removing');
    const p = planAgent('me', [task('s/web/1', 'me', 1), task('s/web/2', 'me', 1), task('s/web/3', 'me', 1), task('db/1', 'other', 5)], services, [created, exited, dead, removing]);
    expect(p.start).toEqual([created]);
    expect(p.remove).toEqual([dead]);
    expect(p.create.map((c) => c.task.name)).toEqual(['s/web/3']);
  });

  test('a task whose config is not its service\'s current one waits for the reconciler, and one of an unknown service too', () => {
    const p = planAgent('me', [task('s/web/1', 'me', 2, OLD), task('x/y/1', 'me', 1, OLD)], services, []);
    expect(p.create).toEqual([]);
    expect(p.waiting.map((t) => t.name)).toEqual(['s/web/1', 'x/y/1']);
    // With its outdated container still there, it keeps running meanwhile.
    const keep = held('s/web/1', 2, 'running', OLD);
    expect(planAgent('me', [task('s/web/1', 'me', 2, OLD)], services, [keep])).toEqual({ remove: [], start: [], stop: [], create: [], waiting: [] });
  });

  test('a redeploy (deployment + 1) makes tasks of the old hash wait', () => {
    const redeployed = new Map([['s/web', { ...web, deployment: 1 }]]);
    const p = planAgent('me', [task('s/web/1', 'me', 1)], redeployed, []);
    expect(p.waiting).toHaveLength(1);
  });
});

describe('planAgent over random nodes', () => {
  const STATES = ['created', 'running', 'restarting', 'paused', 'exited', 'dead', 'removing'] as const;

  test.each(seeds(300))('seed %i: what stays is exactly its tasks\' current containers, one each; the rest goes or waits', (seed) => {
    const rng = new Rng(seed);
    const nodes = ['me', 'other'];
    const taskNames = ['s/web/1', 's/web/2', 's/web/3', 'db/1', 'db/2', 'x/y/1'];
    const tasks = taskNames.filter(() => rng.chance(0.7)).map((n) => task(n, rng.pick(nodes), 1 + rng.int(4), rng.chance(0.8) ? (n.startsWith('db') ? DB : n.startsWith('x') ? OLD : WEB) : OLD));
    const hs: HeldContainer[] = [];
    for (let i = rng.int(10); i > 0; i--) hs.push(held(rng.pick([...taskNames, 'old/z/1']), 1 + rng.int(4), rng.pick(STATES), rng.pick([WEB, DB, OLD])));
    const p = planAgent('me', rng.shuffle([...tasks]), services, rng.shuffle([...hs]));
    const mine = new Map(tasks.filter((t) => t.spec.node === 'me').map((t) => [t.name, t]));
    const removed = new Set(p.remove.map((c) => c.id));
    const kept = hs.filter((c) => !removed.has(c.id) && c.state !== 'removing');
    // Every container either goes, is being removed, or is its task's current one, once.
    for (const c of kept) {
      const t = mine.get(c.task);
      expect(t && t.spec.epoch === c.epoch && t.spec.config === c.config && c.state !== 'dead', `${c.task}#${c.epoch} ${c.state} kept`).toBe(true);
    }
    expect(new Set(kept.map((c) => c.task)).size).toBe(kept.length);
    for (const c of p.remove) expect(c.state).not.toBe('removing');
    // A container that is its task's current one (and healthy enough) is not removed while none other is kept for it.
    for (const c of hs) {
      const t = mine.get(c.task);
      const current = t && t.spec.epoch === c.epoch && t.spec.config === c.config && c.state !== 'dead' && c.state !== 'removing';
      if (current) expect(kept.some((k) => k.task === c.task), `${c.task} keeps a container`).toBe(true);
    }
    expect(p.start.every((c) => c.state === 'created' && kept.includes(c))).toBe(true);
    expect(kept.filter((c) => c.state === 'created').length).toBe(p.start.length);
    // Tasks without a kept container: created when current, waiting otherwise; never another node's.
    const served = new Set(kept.map((c) => c.task));
    const todo = [...mine.values()].filter((t) => !served.has(t.name));
    expect([...p.create.map((c) => c.task.name), ...p.waiting.map((t) => t.name)].sort()).toEqual(todo.map((t) => t.name).sort());
    for (const c of p.create) {
      const svc = services.get(c.task.name.startsWith('db') ? 'db' : 's/web') as StoredService;
      expect(c.task.spec.config).toBe(containerConfigHash(svc.spec, svc.deployment));
      expect(c.service).toBe(svc.spec);
    }
  });
});

describe('a stopped service', () => {
  test("its running containers are stopped and kept, none is made; started again, exactly the ones stopped here start", () => {
    const stopped = new Map([['s/web', { ...web, stopped: true }]]);
    const up = held('s/web/1', 1, 'running');
    const crashed = held('s/web/2', 1, 'exited');
    const tasks = [task('s/web/1', 'me', 1), task('s/web/2', 'me', 1), task('s/web/3', 'me', 1)];
    const p = planAgent('me', tasks, stopped, [up, crashed]);
    expect(p.stop.map((c) => c.id)).toEqual([up.id]);
    expect(p.create).toEqual([]);
    expect(p.waiting.map((t) => t.name)).toEqual(['s/web/3']);
    const q = planAgent('me', tasks, services, [{ ...up, state: 'exited' }, crashed], new Set([up.id]));
    // The other one exited on its own: Docker's restart policy decides, not the agent.
    expect(q.start.map((c) => c.id)).toEqual([up.id]);
    expect(q.create.map((c) => c.task.name)).toEqual(['s/web/3']);
  });
});
