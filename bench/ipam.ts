// Benchmark: IPAM allocation rate, of the pure core and of the shell that persists it.
//
//   node bench/ipam.ts [--count 100000] [--shell-count 5000] [--rounds 3]
//
// 1. The core (mesh/ipam/ipam.ts) alone: allocations/s and releases/s for --count handles on a lone
//    peer that owns the whole default range (no messages, no disk).
// 2. The shell (mesh/ipam/shell.ts) on LevelDB: --shell-count allocations one at a time and
//    all at once. Every allocation is on disk (synced) before it is acknowledged, so the anchor
//    is the disk: synced LevelDB puts/s of a record the same size, measured in the same run.
//    The shell beats it when concurrent allocations share one write.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Ipam } from '../mesh/ipam/ipam.ts';
import { IpamShell } from '../mesh/ipam/shell.ts';
import { logger } from '../mesh/log.ts';
import { Store } from '../mesh/store.ts';
import { printEnvironment } from './lib/env.ts';
import { median } from './lib/stats.ts';

const { values: opt } = parseArgs({
  options: {
    count: { type: 'string', default: '100000' },
    'shell-count': { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '3' },
  },
});
const COUNT = Number(opt.count);
const SHELL_COUNT = Number(opt['shell-count']);
const ROUNDS = Number(opt.rounds);

function coreRound(): { alloc: number; release: number } {
  const ipam = new Ipam({ self: 'bench' });
  let t = performance.now();
  for (let i = 0; i < COUNT; i++) {
    const r = ipam.allocate(`c${i}`, 0);
    if (r.status !== 'allocated') throw new Error(`allocation ${i}: ${r.status}`);
  }
  const alloc = COUNT / ((performance.now() - t) / 1000);
  t = performance.now();
  for (let i = 0; i < COUNT; i++) ipam.release(`c${i}`, 0);
  return { alloc, release: COUNT / ((performance.now() - t) / 1000) };
}

async function shellRound(): Promise<{ serial: number; concurrent: number; disk: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-ipam-'));
  const store = await Store.open(join(dir, 'db'));
  try {
    const shell = await IpamShell.open({ store, self: 'bench', range: '10.32.0.0/12', expectedPeers: 1, log: logger('bench') });
    let t = performance.now();
    for (let i = 0; i < SHELL_COUNT; i++) await shell.allocate(`s${i}`);
    const serial = SHELL_COUNT / ((performance.now() - t) / 1000);
    t = performance.now();
    await Promise.all(Array.from({ length: SHELL_COUNT }, (_, i) => shell.allocate(`p${i}`)));
    const concurrent = SHELL_COUNT / ((performance.now() - t) / 1000);
    // The anchor: synced puts of a value as large as the shell's state record was at the start.
    const value = shell.core.export();
    value.allocations = value.allocations.slice(0, SHELL_COUNT / 2);
    const n = Math.min(SHELL_COUNT, 2000);
    t = performance.now();
    for (let i = 0; i < n; i++) await store.put('bench/anchor', value, true);
    const disk = n / ((performance.now() - t) / 1000);
    await shell.stop();
    return { serial, concurrent, disk };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

printEnvironment('bench/ipam');
const core: { alloc: number; release: number }[] = [];
const shell: { serial: number; concurrent: number; disk: number }[] = [];
for (let r = 0; r < ROUNDS; r++) {
  core.push(coreRound());
  shell.push(await shellRound());
}
const fmt = (x: number) => Math.round(x).toLocaleString('en');
const m = (xs: number[]) => median(xs);
console.log(`core: ${fmt(m(core.map((x) => x.alloc)))} allocations/s, ${fmt(m(core.map((x) => x.release)))} releases/s (${COUNT} handles, median of ${ROUNDS})`);
const disk = m(shell.map((x) => x.disk));
const serial = m(shell.map((x) => x.serial));
const concurrent = m(shell.map((x) => x.concurrent));
console.log(`disk anchor: ${fmt(disk)} synced LevelDB puts/s of the state record`);
console.log(`shell, one at a time: ${fmt(serial)} allocations/s (ratio to the disk anchor ${(serial / disk).toFixed(2)})`);
console.log(`shell, ${SHELL_COUNT} at once: ${fmt(concurrent)} allocations/s (ratio to the disk anchor ${(concurrent / disk).toFixed(2)})`);
