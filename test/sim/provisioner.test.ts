// The provisioner's round under random faults, many seeds: scaling, upgrades (a new
// generation), machines that stop, peers that vanish, zones without capacity, refused and
// lagging listings, failing creates, and a leader that loses its memory of its calls at any
// round; the mesh holds a dead machine's peer up for a while after the provider calls it gone.
// After every round: no slot has two live nodes; a record names only its own attempt's peer;
// the leader forgets only peers whose machines are terminated. Once the faults stop, every
// cluster reaches its target with every node deployed and of the current generation, in
// bounded rounds, and every dead peer of a slot that is still wanted is forgotten.

import { describe, expect, test } from 'vitest';
import { mulberry32 } from '../../mesh/seeded-random.ts';
import { ProviderError } from '../../provisioner/provider.ts';
import { World } from './provisioner-world.ts';

const SEEDS = 300;
const FAULTY_ROUNDS = 150;
/** After the faults: the provision timeout (120 s), a backoff of up to 10 min and a rebuild. */
const CALM_ROUNDS = 1500;
/** Rounds (a second apart) after convergence for the last detections (up to 5 s) and retirements. */
const RETIRE_ROUNDS = 10;

function runSeed(seed: number): void {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const w = new World();
  w.listLagMs = pick([0, 0, 5_000]);
  w.terminateLagMs = pick([0, 3_000, 20_000]);
  w.idIsName = rnd() < 0.5;
  w.detectLagMs = pick([0, 2_000, 5_000]);
  const names = ['a', 'b'];
  for (const n of names) w.createCluster(n, Math.floor(rnd() * 4));
  const check = (when: string) => {
    const bySlot = new Map<string, number>();
    for (const n of w.nodes.values()) if (n.state !== 'terminated') bySlot.set(n.node, (bySlot.get(n.node) ?? 0) + 1);
    for (const [slot, k] of bySlot) expect(k, `seed ${seed} ${when}: slot ${slot} has ${k} live nodes`).toBeLessThanOrEqual(1);
    for (const r of w.records()) {
      if (r.peer) expect(w.nodeOfPeer(r.peer)?.clientToken, `seed ${seed} ${when}: ${r.name} attempt ${r.attempt} names the peer of another attempt`).toBe(r.clientToken);
    }
    for (const [peer, n] of w.forgotten) expect(n.state, `seed ${seed} ${when}: ${peer} forgotten while its machine was ${n.state}`).toBe('terminated');
  };
  for (let i = 0; i < FAULTY_ROUNDS; i++) {
    const r = rnd();
    const c = pick(names);
    if (r < 0.05) w.change(c, (x) => ({ ...x, target: Math.floor(rnd() * 5) }));
    else if (r < 0.08) w.crash();
    else if (r < 0.10) {
      const live = w.live(c).filter((n) => n.state === 'running');
      if (live.length) pick(live).state = 'stopped';
    } else if (r < 0.12) {
      const live = w.live(c);
      if (live.length) w.downPeers.add(pick(live).id);
    } else if (r < 0.14) w.noCapacity.add(pick(w.zones));
    else if (r < 0.16) w.noCapacity.clear();
    else if (r < 0.18) w.listFails = !w.listFails;
    else if (r < 0.22) w.change(c, (x) => ({ ...x, generation: (x.generation ?? 1) + 1 }));
    else if (r < 0.24) w.createFailure = w.createFailure ? undefined : new ProviderError(pick(['limit', 'credentials', 'transient'] as const), 'Refused', 'refused for the test');
    w.round();
    check(`round ${i}`);
    w.advance(Math.floor(rnd() * 3000));
  }
  w.noCapacity.clear();
  w.listFails = false;
  w.createFailure = undefined;
  w.downPeers.clear();
  const done = () => names.every((n) => {
    const target = w.cluster(n)!.target;
    const generation = w.cluster(n)!.generation ?? 1;
    return w.deployed(n) === target && w.records(n).length === target && w.live(n).length === target && w.records(n).every((r) => (r.generation ?? 1) === generation);
  });
  for (let i = 0; i < CALM_ROUNDS && !done(); i++) {
    w.round();
    check(`calm round ${i}`);
    w.advance(1000);
  }
  expect(done(), `seed ${seed}: ${names.map((n) => `${n}: ${w.deployed(n)}/${w.cluster(n)!.target} deployed, ${w.records(n).length} records, ${w.live(n).length} live`).join('; ')}`).toBe(true);
  // Long enough for the last dead peers to be seen dead, and forgotten.
  for (let i = 0; i < RETIRE_ROUNDS; i++) {
    w.round();
    check(`retiring round ${i}`);
    w.advance(1000);
  }
  const wanted = new Set(w.records().map((r) => r.name));
  const left = [...w.members().entries()].filter(([name]) => wanted.has(name)).flatMap(([, ms]) => ms.filter((m) => !m.up).map((m) => m.id));
  expect(left, `seed ${seed}: dead peers of wanted slots not forgotten`).toEqual([]);
}

describe('provisioner simulation', () => {
  test(`${SEEDS} seeds of faults converge with no slot doubled`, () => {
    for (let seed = 1; seed <= SEEDS; seed++) runSeed(seed);
  });
});
