// Placement, simulated: seeded random clusters (1-12 nodes, tags, zones, memory, health),
// services of every strategy and a messy observed state. Each plan is checked against the rules
// (placement-invariants.ts), carried out by simulated agents, and placed again until nothing is
// left to do; then churn (deaths, returns, joins, tags, drains, scaling, broken containers) and
// again. A failing seed is in the test's name: replay it alone with `-t 'seed N:'`.

import { afterAll, describe, expect, test } from 'vitest';
import { place } from '../../scheduler/placement/placement.ts';
import type { Plan } from '../../scheduler/placement/plan.ts';
import { settled, strategyViolations, violations } from './placement-invariants.ts';
import { PlacementWorld } from './placement-world.ts';
import { Rng, seeds } from './rng.ts';

/** The brief's floor: a thousand random clusters per run. */
const SEEDS = 1000;
/** Rounds of churn after the first convergence. */
const CHURN_ROUNDS = 5;
/** One plan carried out must settle it (placement is a fixed point); the third is slack that a
 *  failure report would show, not a licence: see the `plansNeeded` check. */
const MAX_PLANS = 3;

/** What the seeds exercised: every removal reason, pending reason and kind of creation must
 *  occur, or the random world has stopped testing a rule. */
const seen = new Map<string, number>();
const EXPECTED = [
  ...['service-removed', 'scaled-down', 'invalid-index', 'duplicate', 'container-dead', 'node-gone', 'node-dead', 'node-lost-tags', 'node-draining', 'over-memory'].map((r) => `remove ${r}`),
  ...['no-tagged-node', 'no-usable-node', 'memory'].map((k) => `pending ${k}`),
  ...['EMPTIEST_NODE', 'HIGH_AVAILABILITY', 'EVERY_NODE'].flatMap((s) => [`create new ${s}`, `create replacement ${s}`]),
];

function tally(w: PlacementWorld, plan: Plan): void {
  const bump = (k: string) => seen.set(k, (seen.get(k) ?? 0) + 1);
  for (const r of plan.remove) bump(`remove ${r.why}`);
  for (const s of plan.services) if (s.pending) bump(`pending ${s.pending.reason.kind}`);
  const strategy = new Map(w.services.map((s) => [`${s.stack}/${s.name}`, s.deploymentStrategy]));
  for (const c of plan.create) bump(`create ${c.why} ${strategy.get(c.service)}`);
}

afterAll(() => {
  console.log(`placement simulation, ${SEEDS} seeds: ${[...seen].sort().map(([k, v]) => `${k} ${v}`).join(', ')}`);
  expect(EXPECTED.filter((k) => !seen.has(k)), 'rules the seeds never exercised').toEqual([]);
});

function check(w: PlacementWorld, plan: Plan, seed: number, what: string): void {
  tally(w, plan);
  const bad = [...violations(w.input(), plan), ...strategyViolations(w.input(), plan)];
  expect(bad, `seed ${seed}, ${what}`).toEqual([]);
}

describe('placement over random clusters', () => {
  test.each(seeds(SEEDS))('seed %i: every plan keeps the rules, and carrying it out settles at once', (seed) => {
    const rng = new Rng(seed);
    const w = new PlacementWorld(rng);
    for (let round = 0; round <= CHURN_ROUNDS; round++) {
      if (round > 0) w.churn();
      let plansNeeded = 0;
      let plan = place(w.input());
      while (!settled(w.input(), plan)) {
        check(w, plan, seed, `round ${round}, plan ${plansNeeded + 1}`);
        plansNeeded++;
        expect(plansNeeded, `seed ${seed}, round ${round}: settles within ${MAX_PLANS} plans`).toBeLessThan(MAX_PLANS);
        w.apply(plan);
        plan = place(w.input());
      }
      check(w, plan, seed, `round ${round}, settled`);
      // A fixed point after one plan: placing what a plan made changes nothing.
      expect(plansNeeded, `seed ${seed}, round ${round}: plans to settle`).toBeLessThanOrEqual(1);
      // Stable: every container on a live node stays where it is.
      const alive = new Set(w.nodes.filter((n) => n.alive).map((n) => n.id));
      const kept = new Set(plan.keep.map((c) => c.id));
      const moved = w.containers.filter((c) => alive.has(c.node) && !kept.has(c.id)).map((c) => c.id);
      expect(moved, `seed ${seed}, round ${round}: settled containers stay`).toEqual([]);
      // Deterministic, whatever order observed state and desired state are read in.
      const shuffled = { services: rng.shuffle([...w.services]), nodes: rng.shuffle([...w.nodes]), containers: rng.shuffle([...w.containers]) };
      expect(place(shuffled), `seed ${seed}, round ${round}: same plan from shuffled input`).toEqual(plan);
    }
  });
});
