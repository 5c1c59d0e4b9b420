// The decoder of agents' gossiped reports (scheduler/task/report.ts): every node's report is read
// by every manager, so a newer or hostile peer's entry must be refused or read within bounds,
// never throw. Valid reports come back exactly; anything decoded is itself a valid report.

import { describe, expect, test } from 'vitest';
import { type AgentReport, decodeReport, MAX_REPORTED_TASKS, TASK_STATES, type TaskReport } from '../../scheduler/task/report.ts';
import { Rng, seeds } from '../sim/rng.ts';

const HEALTH = ['healthy', 'unhealthy', 'starting', 'none'] as const;
const TASK_KEYS = ['task', 'epoch', 'config', 'state', 'health', 'exitCode', 'error', 'container', 'since'];

/** Why `r` is not a report within the decoder's bounds (undefined: it is one). */
function invalid(r: AgentReport): string | undefined {
  const extra = Object.keys(r).find((k) => !['v', 'docker', 'error', 'memoryBytes', 'tasks'].includes(k));
  if (extra) return `field ${extra}`;
  if (r.v !== 1 || !['ok', 'unavailable'].includes(r.docker)) return 'v or docker';
  if (!Number.isSafeInteger(r.memoryBytes) || r.memoryBytes < 0) return 'memoryBytes';
  if (r.error !== undefined && (typeof r.error !== 'string' || r.error.length > 512)) return 'error';
  if (!Array.isArray(r.tasks) || r.tasks.length > MAX_REPORTED_TASKS) return 'tasks';
  for (const t of r.tasks) {
    const x = Object.keys(t).find((k) => !TASK_KEYS.includes(k));
    if (x) return `task field ${x}`;
    if (typeof t.task !== 'string' || t.task.length > 300) return 'task';
    if (!Number.isSafeInteger(t.epoch) || !Number.isSafeInteger(t.since)) return 'epoch or since';
    if (typeof t.config !== 'string' || t.config.length > 64) return 'config';
    if (!(TASK_STATES as readonly string[]).includes(t.state) || !(HEALTH as readonly string[]).includes(t.health)) return 'state or health';
    if (t.exitCode !== undefined && !Number.isSafeInteger(t.exitCode)) return 'exitCode';
    if (t.error !== undefined && (typeof t.error !== 'string' || t.error.length > 512)) return 'task error';
    if (t.container !== undefined && !/^[0-9a-f]{1,64}$/.test(t.container)) return 'container';
  }
  return undefined;
}

function randomTask(rng: Rng): TaskReport {
  return {
    task: `shop/web/${1 + rng.int(1000)}`,
    epoch: rng.int(1_000_000),
    config: 'abcdef0123456789'.slice(0, 1 + rng.int(16)),
    state: rng.pick(TASK_STATES),
    health: rng.pick(HEALTH),
    ...(rng.chance(0.3) ? { exitCode: rng.int(256) - 1 } : {}),
    ...(rng.chance(0.3) ? { error: 'no such image: é"\\\n'.repeat(1 + rng.int(20)).slice(0, 512) } : {}),
    ...(rng.chance(0.5) ? { container: rng.int(2 ** 48).toString(16).padStart(12, '0') } : {}),
    since: 1_700_000_000_000 + rng.int(1e9),
  };
}

function randomReport(rng: Rng, n = rng.int(12)): AgentReport {
  const docker = rng.pick(['ok', 'unavailable'] as const);
  return {
    v: 1,
    docker,
    ...(docker === 'unavailable' && rng.chance(0.7) ? { error: 'Cannot connect to the Docker daemon' } : {}),
    memoryBytes: rng.chance(0.1) ? 0 : rng.int(2 ** 40),
    tasks: Array.from({ length: n }, () => randomTask(rng)),
  };
}

/** A random JSON-ish value: every type, some deep, some long. */
function junk(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 3 ? 8 : 11)) {
    case 0: return null;
    case 1: return rng.chance(0.5);
    case 2: return rng.pick([0, -1, 1, 1.5, 2 ** 53, -(2 ** 60), 1e308, 300, 301]);
    case 3: return rng.pick(['', 'ok', 'running', 'healthy', '1', 'x'.repeat(rng.int(2000)), 'DEADBEEF', '__proto__']);
    case 4: return rng.pick(TASK_STATES);
    case 5: return rng.pick(HEALTH);
    case 6: return rng.int(100);
    case 7: return 'abc';
    case 8: return Array.from({ length: rng.int(5) }, () => junk(rng, depth + 1));
    case 9: return Object.fromEntries(Array.from({ length: rng.int(6) }, () => [rng.pick([...TASK_KEYS, 'v', 'docker', 'memoryBytes', 'tasks', '__proto__', 'constructor']), junk(rng, depth + 1)]));
    default: return randomTask(rng);
  }
}

/** One change to a valid report: a field removed, retyped or set out of bounds. */
function mutate(rng: Rng, r: AgentReport) {
  const copy = JSON.parse(JSON.stringify(r)) as Record<string, unknown> & { tasks: Record<string, unknown>[] };
  const taskIndex = copy.tasks.length > 0 && rng.chance(0.6) ? rng.int(copy.tasks.length) : -1;
  const target: Record<string, unknown> = taskIndex >= 0 ? (copy.tasks[taskIndex] as Record<string, unknown>) : copy;
  const keys = taskIndex >= 0 ? ['task', 'epoch', 'config', 'state', 'health', 'since', 'exitCode', 'error', 'container'] : ['v', 'docker', 'memoryBytes', 'tasks', 'error'];
  const key = rng.pick(keys);
  const required = taskIndex >= 0 ? ['task', 'epoch', 'config', 'state', 'health', 'since'].includes(key) : key !== 'error';
  const deleted = rng.chance(0.3);
  const value = junk(rng);
  if (deleted) delete target[key];
  else target[key] = value;
  return { raw: JSON.stringify(copy), taskIndex, key, required, deleted, value };
}

describe('decodeReport', () => {
  test.each(seeds(300))('seed %i: a valid report comes back exactly', (seed) => {
    const r = randomReport(new Rng(seed));
    expect(decodeReport(JSON.stringify(r))).toEqual(r);
  });

  test('the bounds: 300 tasks are read, 301 refused; long errors cut to 512; a container id that is not hex is dropped', () => {
    const rng = new Rng(1);
    const full = randomReport(rng, MAX_REPORTED_TASKS);
    expect(decodeReport(JSON.stringify(full))?.tasks).toHaveLength(300);
    expect(decodeReport(JSON.stringify({ ...full, tasks: [...full.tasks, randomTask(rng)] }))).toBeUndefined();
    const long = { ...randomReport(rng, 1), error: 'e'.repeat(100_000) };
    (long.tasks[0] as TaskReport).error = 'f'.repeat(100_000);
    const d = decodeReport(JSON.stringify(long)) as AgentReport;
    expect(d.error).toBe('e'.repeat(512));
    expect(d.tasks[0]?.error).toBe('f'.repeat(512));
    const odd = randomReport(rng, 2);
    odd.tasks = odd.tasks.map((t, i) => ({ ...t, container: i === 0 ? '../../etc' : 'A'.repeat(64) }));
    expect(decodeReport(JSON.stringify(odd))?.tasks.map((t) => t.container)).toEqual([undefined, undefined]);
    expect(decodeReport(JSON.stringify({ ...odd, tasks: [{ ...odd.tasks[0], task: 't'.repeat(301) }] }))).toBeUndefined();
    expect(decodeReport(JSON.stringify({ ...odd, tasks: [{ ...odd.tasks[0], config: 'c'.repeat(65) }] }))).toBeUndefined();
  });

  test('a report of another version, or one that is not an object, is refused', () => {
    const r = randomReport(new Rng(2));
    for (const raw of ['', 'null', '[]', '"report"', '42', 'true', '{', '{"v":1', JSON.stringify([r]), JSON.stringify({ ...r, v: 2 }), JSON.stringify({ ...r, v: '1' })]) {
      expect(decodeReport(raw), raw.slice(0, 40)).toBeUndefined();
    }
  });

  test('unknown fields are dropped, not carried: what is read is only what the decoder knows', () => {
    const r = randomReport(new Rng(3), 2);
    const d = decodeReport(JSON.stringify({ ...r, extra: { huge: 'x'.repeat(1000) }, tasks: r.tasks.map((t) => ({ ...t, labels: { a: 'b' } })) }));
    expect(d).toEqual(r);
  });

  test('a huge or deeply nested entry is refused without throwing', () => {
    const deep = `{"v":1,"docker":"ok","memoryBytes":1,"tasks":[${'['.repeat(50_000)}${']'.repeat(50_000)}]}`;
    expect(() => decodeReport(deep)).not.toThrow();
    expect(decodeReport(deep)).toBeUndefined();
    expect(decodeReport('['.repeat(200_000))).toBeUndefined();
    const many = JSON.stringify({ v: 1, docker: 'ok', memoryBytes: 1, tasks: Array.from({ length: 100_000 }, () => 0) });
    expect(decodeReport(many)).toBeUndefined();
  });

  test.each(seeds(500))('seed %i: mutations of a valid report never throw, and give a valid report or nothing', (seed) => {
    const rng = new Rng(seed);
    for (let i = 0; i < 20; i++) {
      const m = mutate(rng, randomReport(rng, 1 + rng.int(4)));
      const truncated = rng.chance(0.1);
      const raw = truncated ? m.raw.slice(0, rng.int(m.raw.length)) : m.raw;
      const d = decodeReport(raw);
      if (truncated) expect(d, 'a cut entry is not JSON').toBeUndefined();
      if (d === undefined) continue;
      expect(invalid(d), raw.slice(0, 200)).toBeUndefined();
      expect(decodeReport(JSON.stringify(d)), 'decoding is idempotent').toEqual(d);
      // A required field is never made up or coerced: missing refuses the report, and a value
      // that passes is the very value sent.
      if (m.required) {
        expect(m.deleted, `${m.key} deleted yet decoded`).toBe(false);
        const got = m.taskIndex >= 0 ? (d.tasks[m.taskIndex] as unknown as Record<string, unknown>)[m.key] : (d as unknown as Record<string, unknown>)[m.key];
        if (m.key !== 'tasks') expect(got).toEqual(m.value);
      }
    }
  });

  test.each(seeds(300))('seed %i: random JSON-ish values never throw and never decode to something invalid', (seed) => {
    const rng = new Rng(seed);
    for (let i = 0; i < 30; i++) {
      const shaped = rng.chance(0.5);
      const v = shaped ? { v: rng.chance(0.8) ? 1 : junk(rng), docker: rng.chance(0.8) ? rng.pick(['ok', 'unavailable']) : junk(rng), memoryBytes: rng.chance(0.8) ? rng.int(1e6) : junk(rng), tasks: Array.from({ length: rng.int(4) }, () => (rng.chance(0.7) ? { ...randomTask(rng), [rng.pick(TASK_KEYS)]: junk(rng) } : junk(rng))), ...(rng.chance(0.3) ? { error: junk(rng) } : {}) } : junk(rng);
      const raw = JSON.stringify(v) ?? 'undefined';
      let d: AgentReport | undefined;
      expect(() => { d = decodeReport(raw); }).not.toThrow();
      if (d !== undefined) {
        expect(invalid(d), raw.slice(0, 200)).toBeUndefined();
        expect(decodeReport(JSON.stringify(d))).toEqual(d);
      }
    }
  });

  test('every required field, missing or of a wrong type, refuses the report', () => {
    const r = randomReport(new Rng(4), 1);
    const wrong: Record<string, unknown[]> = {
      v: [undefined, 0, '1', null], docker: [undefined, 'OK', 1, null], memoryBytes: [undefined, -1, 1.5, '1', 2 ** 53, null], tasks: [undefined, {}, 'x', null],
    };
    for (const [k, vs] of Object.entries(wrong)) for (const v of vs) expect(decodeReport(JSON.stringify({ ...r, [k]: v })), `${k}=${String(v)}`).toBeUndefined();
    const wrongTask: Record<string, unknown[]> = {
      task: [undefined, 1, null], epoch: [undefined, 1.5, '1', 2 ** 53], config: [undefined, 1], state: [undefined, 'RUNNING', 'assigned'], health: [undefined, 'ok', null], since: [undefined, '0', 0.5],
    };
    for (const [k, vs] of Object.entries(wrongTask)) {
      for (const v of vs) expect(decodeReport(JSON.stringify({ ...r, tasks: [{ ...r.tasks[0], [k]: v }] })), `task.${k}=${String(v)}`).toBeUndefined();
    }
    // Optional fields of a wrong type are dropped, the rest read.
    const d = decodeReport(JSON.stringify({ ...r, error: 7, tasks: [{ ...r.tasks[0], exitCode: 'x', error: {}, container: 12 }] }));
    expect(d?.error).toBeUndefined();
    expect(Object.keys(d?.tasks[0] ?? {}).sort()).toEqual(['config', 'epoch', 'health', 'since', 'state', 'task']);
  });
});
