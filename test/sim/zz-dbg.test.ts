import { test } from 'vitest';
import { World } from './replica-world.ts';

test('dbg', () => {
  const seed = 108;
  const w = new World({ seed, peers: 8, loss: 0.01, wire: true });
  const down = new Map<string, number>();
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 3; i++) w.randomWrite();
    if (w.rng.chance(0.3) && w.live().length > 5) {
      const id = w.rng.pick(w.live());
      w.crash(id);
      console.log('crash', id, 'round', round);
      down.set(id, round + 1 + w.rng.int(3));
    }
    for (const [id, at] of down) {
      if (at > round) continue;
      down.delete(id);
      w.restart(id, 'disk');
      console.log('restart', id, 'round', round);
    }
    w.runRound();
  }
  for (const id of down.keys()) w.restart(id, 'disk');
  for (let i = 0; i < 30; i++) w.runRound();
  const want = w.oracle.expected(w.dropped);
  for (const id of w.live()) {
    const r = w.replica(id);
    const have = new Map(r.entries().map((e) => [`${e.owner}/${e.key}`, e]));
    const diffs: string[] = [];
    for (const [k, e] of want) { const h = have.get(k.replace('\u0000', '/')); if (!h || h.version !== e.version) diffs.push(`${k.replace('\u0000','/')} want v${e.version} have ${h ? 'v' + h.version : '-'}`); }
    for (const [k, h] of have) if (!want.has(k.replace('/', '\u0000'))) diffs.push(`${k} extra v${h.version} ${h.value}`);
    const d = r.digest();
    const lv: string[] = [];
    for (const [o, max] of w.oracle.maxVersion) if ((d[o]?.complete ?? 0) !== max) lv.push(`${o}: complete ${d[o]?.complete} floor ${d[o]?.floor} want ${max} hash ${d[o]?.hash}`);
    console.log(id, 'last', r.lastVersion(), diffs.join('; '), '|', lv.join('; '));
  }
  console.log([...w.stats]);
});
