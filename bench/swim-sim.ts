// Simulation at sizes no machine here can run as processes: the real membership core in the
// deterministic world of test/sim (simulated clock and network, 1–50 ms delays), as issue 9
// asks for its table.
//
//   node bench/swim-sim.ts [--sizes 10,100,1000] [--loss 0.01] [--idle 20] [--window 60]
//                          [--kills 10] [--seed 1]
//
// Per N:
//  1. every peer told of the first (as `--peers`), run until all see all alive;
//  2. idle (--idle s of simulated time): messages sent per peer per second;
//  3. a window (--window s) in which, every second, 5 % of the peers (at least one) freeze for
//     1 s at random (a GC pause, a starved host) while the network loses --loss of messages;
//     during it, --kills peers are crashed silently (no connection reset: the harder case) one
//     after another: the time until every other running peer holds each dead, and every
//     suspicion and death of a peer that was only frozen (false positives).
// Nothing is asserted (test/sim asserts the invariants at small N); the table is printed.
//
// Cost: forming the mesh dominates from a few hundred peers on. All peers start at once, every
// pair connects, and while tables still differ each new connection's digests disagree, so
// nearly every pair swaps full tables: ~N^3 bytes (14 GB at N = 500, ~100 GB at N = 1,000).
import { spawnSync } from 'node:child_process';
import { totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
import { HEARTBEAT_INTERVAL_MS } from '../mesh/membership/membership.ts';
import { median, percentile, World } from '../test/sim/membership-world.ts';

const { values: opt } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10,100' },
    loss: { type: 'string', default: '0.01' },
    idle: { type: 'string', default: '20' },
    window: { type: 'string', default: '60' },
    kills: { type: 'string', default: '10' },
    seed: { type: 'string', default: '1' },
  },
});

/** Heap for N = 1,000, scaled by N^2 for others: what is in flight at once while the mesh
 *  forms (new connections' pings, each carrying up to 4 KiB of news, and tables) and the
 *  tables themselves. Live heap peaked at 2.1 GB at N = 600; N = 1,000 ran out of 4.5 GB
 *  (Node's default here) and of 8 GB. */
const HEAP_MB_AT_1000 = 12_000;
/** Leave this share of the machine's memory to everything else. */
const HEAP_MAX_SHARE = 0.6;

const largest = Math.max(...opt.sizes.split(',').map(Number));
const heapMb = Math.min(Math.round(HEAP_MB_AT_1000 * (largest / 1000) ** 2), Math.floor((HEAP_MAX_SHARE * totalmem()) / 2 ** 20));
if (getHeapStatistics().heap_size_limit < heapMb * 2 ** 20 && !process.env.WEFT_SWIM_SIM_HEAP) {
  // A flag only the command line can set: run again with it.
  console.log(`swim-sim: N = ${largest} needs a ${heapMb} MB heap; running again with --max-old-space-size=${heapMb}`);
  const r = spawnSync(process.execPath, [...process.execArgv, `--max-old-space-size=${heapMb}`, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, WEFT_SWIM_SIM_HEAP: String(heapMb) },
  });
  process.exit(r.status ?? 1);
}

/** Share of peers frozen each second, and for how long: a stop-the-world GC pause or a
 *  stalled VM, the false-positive stress the detector must ride out. */
const FROZEN_SHARE = 0.05;
const FROZEN_MS = 1000;
/** Simulated time allowed for joining; a bound, not a target. */
const CONVERGE_LIMIT_MS = 120_000;
/** How long after a crash every peer must hold it dead before the trial counts as missed. */
const DETECT_LIMIT_MS = 20_000;

interface Row {
  n: number;
  convergeMs: number;
  msgsPerPeerSec: number;
  bytesPerPeerSec: number;
  detect: number[];
  perObserver: number[];
  missed: number;
  falseSuspects: number;
  falseDeaths: number;
  frozenPeerSeconds: number;
  wallS: number;
}

function runSize(n: number, seed: number): Row {
  const wall = performance.now();
  const w = new World({ seed, n, loss: Number(opt.loss) });
  const convergeMs = w.runUntil(() => w.allAlive(), CONVERGE_LIMIT_MS);
  w.run(5_000);
  // The tables swapped while the mesh forms go on after all see all alive: counted 5 s later.
  console.log(`swim-sim N=${n}: formed in ${((performance.now() - wall) / 1000).toFixed(0)} s of wall time, ${(w.bytes / 1e9).toFixed(1)} GB of messages sent`);
  const m0 = w.messages;
  const b0 = w.bytes;
  const idleMs = Number(opt.idle) * 1000;
  w.run(idleMs);
  const msgsPerPeerSec = (w.messages - m0) / n / (idleMs / 1000);
  const bytesPerPeerSec = (w.bytes - b0) / n / (idleMs / 1000);

  const crashed = new Set<string>();
  const crashedAt = new Map<string, number>();
  const frozenUntil = new Map<string, number>();
  let falseSuspects = 0;
  let falseDeaths = 0;
  const perObserver: number[] = [];
  w.onEvent = (e) => {
    if (crashed.has(e.member.id)) {
      const since = crashedAt.get(e.member.id);
      if (e.type === 'dead' && since !== undefined) perObserver.push(e.at - since);
      return;
    }
    if (e.type === 'suspect') falseSuspects++;
    if (e.type === 'dead') falseDeaths++;
  };
  const windowMs = Number(opt.window) * 1000;
  // At most a fifth of the mesh: the rest must stay a clear majority of observers.
  const kills = Math.min(Number(opt.kills), Math.floor(n / 5));
  const killAt = Array.from({ length: kills }, (_, k) => Math.round(((k + 1) * windowMs) / (kills + 2)));
  const detect: number[] = [];
  let missed = 0;
  const pending = new Map<string, number>();
  const start = w.now;
  let frozenPeerSeconds = 0;
  for (let sec = 0; sec * 1000 < windowMs; sec++) {
    const candidates = w.up().filter((id) => !crashed.has(id) && (frozenUntil.get(id) ?? 0) <= w.now);
    const k = Math.max(1, Math.round(FROZEN_SHARE * n));
    for (let i = 0; i < k && candidates.length > 0; i++) {
      const id = candidates.splice(w.rng.int(candidates.length), 1)[0]!;
      w.stall(id, FROZEN_MS);
      frozenUntil.set(id, w.now + FROZEN_MS);
      frozenPeerSeconds += FROZEN_MS / 1000;
    }
    for (let t = 0; t < 10; t++) {
      const at = w.now - start;
      const due = killAt.findIndex((x) => x >= 0 && at >= x);
      if (due >= 0) {
        killAt[due] = -1;
        const victim = w.rng.pick(w.up().filter((id) => id !== w.ids[0] && (frozenUntil.get(id) ?? 0) <= w.now));
        crashed.add(victim);
        crashedAt.set(victim, w.now);
        w.crash(victim);
        pending.set(victim, w.now);
      }
      w.step();
      for (const [victim, since] of pending) {
        const others = w.up();
        if (others.every((o) => w.view(o, victim)?.state === 'dead' || w.view(o, victim) === undefined)) {
          detect.push(w.now - since);
          pending.delete(victim);
        } else if (w.now - since > DETECT_LIMIT_MS) {
          missed++;
          pending.delete(victim);
        }
      }
    }
  }
  missed += pending.size;
  return { n, convergeMs, msgsPerPeerSec, bytesPerPeerSec, detect, perObserver, missed, falseSuspects, falseDeaths, frozenPeerSeconds, wallS: (performance.now() - wall) / 1000 };
}

const rows: Row[] = [];
console.log(`swim-sim: probe period ${HEARTBEAT_INTERVAL_MS} ms, loss ${opt.loss}, idle ${opt.idle} s, window ${opt.window} s with ${FROZEN_SHARE * 100} % frozen ${FROZEN_MS} ms each second, ${opt.kills} silent crashes, seed ${opt.seed}`);
for (const n of opt.sizes.split(',').map(Number)) {
  const r = runSize(n, Number(opt.seed));
  rows.push(r);
  console.log(`swim-sim N=${n}: done in ${r.wallS.toFixed(0)} s of wall time`);
}
console.log('\n| N | joined, all alive (s) | messages (bytes) sent per peer per s, idle | detection per observer, median / max (s) | all hold it dead, median / max (s) | missed | false suspicions per frozen peer-second | false deaths |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const o = r.perObserver.length ? `${(median(r.perObserver) / 1000).toFixed(2)} / ${(percentile(r.perObserver, 100) / 1000).toFixed(2)}` : '–';
  const d = r.detect.length ? `${(median(r.detect) / 1000).toFixed(2)} / ${(percentile(r.detect, 100) / 1000).toFixed(2)}` : '–';
  console.log(`| ${r.n} | ${(r.convergeMs / 1000).toFixed(1)} | ${r.msgsPerPeerSec.toFixed(2)} (${r.bytesPerPeerSec.toFixed(0)}) | ${o} | ${d} | ${r.missed} | ${(r.falseSuspects / r.frozenPeerSeconds).toFixed(2)} (${r.falseSuspects} events) | ${r.falseDeaths} |`);
}
const [lo, hi] = [Math.min(...rows.map((r) => r.msgsPerPeerSec)), Math.max(...rows.map((r) => r.msgsPerPeerSec))];
console.log(`\nswim-sim messages per peer per second, idle: max/min over N = ${(hi / lo).toFixed(2)} (target ≤ 1.5)`);
