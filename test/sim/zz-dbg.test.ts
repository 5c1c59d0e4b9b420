import { test } from 'vitest';
import { World, ROUND_MS } from './replica-world.ts';
import { seeds } from './rng.ts';

test('repair paths in chaos without lost writes', () => {
  const total = new Map<string, number>();
  for (const seed of seeds(100)) {
    const w = new World({ seed, peers: 9, loss: 0.02, wire: true, tombstoneGcMs: 4 * ROUND_MS, maxMessageBytes: 4096, pushFanout: 3, rumor: false, check: 'round' });
    const down = new Map<string, number>();
    for (let round = 0; round < 30; round++) {
      for (let i = w.rng.int(5); i > 0; i--) w.randomWrite(6);
      if (w.rng.chance(0.15)) { const ids = w.rng.shuffle([...w.ids]); const cut = 1 + w.rng.int(ids.length - 1); w.partition([ids.slice(0, cut), ids.slice(cut)]); }
      else if (w.rng.chance(0.2)) w.heal();
      if (w.rng.chance(0.2) && w.live().length > 6) { const id = w.rng.pick(w.live()); w.crash(id); down.set(id, round + 1 + w.rng.int(6)); }
      for (const [id, at] of down) { if (at > round) continue; down.delete(id); w.restart(id, 'disk'); }
      w.runRound();
    }
    for (const id of down.keys()) w.restart(id, 'disk');
    w.heal();
    w.roundsToConverge(40);
    w.stats.clear();
    for (let i = 0; i < 5; i++) w.runRound(); // steady state: count what keeps flowing
    for (const [k, v] of w.stats) total.set(k, (total.get(k) ?? 0) + v);
    if (w.oracle.collided.size) console.log('collided', seed);
  }
  console.log([...total]);
});
