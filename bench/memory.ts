// Benchmark: resident memory of one idle weft peer against one idle Serf agent, each in a mesh
// of --peers hosts, in the same run on the same harness hosts.
//
//   node bench/memory.ts [--peers 3] [--settle 10000] [--samples 5] [--interval 1000]
//
// After the mesh converged and sat idle for --settle ms, VmRSS of every peer process is read
// from /proc --samples times, --interval ms apart. A process's figure is the median of its
// samples; the system's figure is the median over its processes (the largest is printed
// too, and is what the target is checked against). `bin/weft` execs Node and the harness
// execs through nsenter, so the pid the harness holds is the peer's own. The CPU time the
// idle processes used during the sampling window is printed as well, and, for context, the
// same figures of idle Node processes that only import the libp2p stack, then all of weft.
// MB here is 10^6 bytes.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Harness, type Host } from '../test/harness/harness.ts';
import { printEnvironment } from './lib/env.ts';
import { cpuSeconds, pssBytes, statusBytes } from './lib/scale-procs.ts';
import { SerfMesh } from './lib/serf.ts';
import { max, median, printTable, ratio } from './lib/stats.ts';
import { sleep } from './lib/time.ts';
import { startWeftMesh, stopWeftMesh } from './lib/weft.ts';

const PASSWORD = 'bench-memory-password';
/** The target for one idle weft peer. */
const TARGET_BYTES = 120e6;
/** An idle `node -e` has nothing to settle; it only needs to be past start-up. */
const BARE_SETTLE_MS = 2_000;

const { values: opt } = parseArgs({
  options: {
    peers: { type: 'string', default: '3' },
    settle: { type: 'string', default: '10000' },
    samples: { type: 'string', default: '5' },
    interval: { type: 'string', default: '1000' },
  },
});
const peers = Number(opt.peers);
const settleMs = Number(opt.settle);
const samples = Number(opt.samples);
const intervalMs = Number(opt.interval);
if (!Number.isInteger(peers) || peers < 1 || peers > 50) throw new Error(`--peers must be 1..50, got ${peers}`);
if (!Number.isInteger(settleMs) || settleMs < 0 || settleMs > 600_000) throw new Error(`--settle must be 0..600000 ms, got ${settleMs}`);
if (!Number.isInteger(samples) || samples < 1 || samples > 1000) throw new Error(`--samples must be 1..1000, got ${samples}`);
if (!Number.isInteger(intervalMs) || intervalMs < 10 || intervalMs > 60_000) throw new Error(`--interval must be 10..60000 ms, got ${intervalMs}`);



interface ProcMemory {
  host: string;
  pid: number;
  exe: string;
  rss: number;
  rssAnon: number;
  pss: number;
  /** Share of one core used while idle during the sampling window. */
  cpu: number;
}

async function measure(procs: readonly { host: Host; pid: number }[]): Promise<ProcMemory[]> {
  const rss = procs.map(() => [] as number[]);
  const anon = procs.map(() => [] as number[]);
  const pss = procs.map(() => [] as number[]);
  const cpu0 = procs.map((p) => cpuSeconds(p.pid));
  const t0 = performance.now();
  for (let i = 0; i < samples; i++) {
    if (i > 0) await sleep(intervalMs);
    procs.forEach((p, k) => {
      rss[k]?.push(statusBytes(p.pid, 'VmRSS'));
      anon[k]?.push(statusBytes(p.pid, 'RssAnon'));
      pss[k]?.push(pssBytes(p.pid));
    });
  }
  const wallS = Math.max(1, performance.now() - t0) / 1000;
  return procs.map((p, k) => ({
    host: p.host.name,
    pid: p.pid,
    exe: fs.readlinkSync(`/proc/${p.pid}/exe`),
    rss: median(rss[k] as number[]),
    rssAnon: median(anon[k] as number[]),
    pss: median(pss[k] as number[]),
    cpu: samples > 1 ? (cpuSeconds(p.pid) - (cpu0[k] as number)) / wallS : NaN,
  }));
}

/** The floor under a weft peer, step by step: idle Node processes that only import, with the
 *  peer's own V8 flag (bin/weft), so that what the libp2p stack alone costs is seen apart from
 *  what weft adds. Each runs in the root namespace from the project root. */
const ROOT = path.join(import.meta.dirname, '..');
const FLOOR_STEPS: { label: string; imports: string[] }[] = [
  { label: 'node, nothing imported', imports: [] },
  { label: 'node + libp2p, tcp, noise, yamux imported', imports: ['libp2p', '@libp2p/tcp', '@chainsafe/libp2p-noise', '@chainsafe/libp2p-yamux'] },
  {
    label: 'node + every module of a mesh-only peer imported',
    imports: [fs.existsSync(path.join(ROOT, 'dist/cli/launch.js')) ? path.join(ROOT, 'dist/cli/launch.js') : path.join(ROOT, 'cli/launch.ts')],
  },
];

async function floor(step: (typeof FLOOR_STEPS)[number]): Promise<ProcMemory> {
  const urls = step.imports.map((m) => (m.startsWith('/') ? `file://${m}` : import.meta.resolve(m)));
  const code = `${urls.map((u) => `await import(${JSON.stringify(u)});`).join(' ')} setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--max-semi-space-size=2', '--disable-warning=ExperimentalWarning', '--input-type=module', '-e', code], { cwd: ROOT, stdio: 'ignore' });
  try {
    await sleep(BARE_SETTLE_MS);
    if (child.exitCode !== null || child.pid === undefined) throw new Error(`${step.label}: the process exited (${child.exitCode})`);
    const [m] = await measure([{ host: { name: 'root ns' } as Host, pid: child.pid }]);
    return m as ProcMemory;
  } finally {
    child.kill('SIGKILL');
  }
}

const mb = (b: number) => (Number.isFinite(b) ? (b / 1e6).toFixed(1) : '–');
const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '–');

async function main(): Promise<void> {
  printEnvironment('memory');
  console.log(`memory: ${peers}-peer meshes, idle ${settleMs} ms after converging, then ${samples} samples ${intervalMs} ms apart`);
  const mesh = await Harness.create({ hosts: peers, name: 'bench-memory' });
  let weft: ProcMemory[];
  let serf: ProcMemory[];
  try {
    await startWeftMesh(mesh.hosts, PASSWORD);
    await sleep(settleMs);
    weft = await measure(mesh.hosts.map((h) => ({ host: h, pid: (h.peer as { pid: number }).pid })));
    await stopWeftMesh(mesh.hosts);

    const serfMesh = await SerfMesh.start(mesh.hosts);
    try {
      await sleep(settleMs);
      serf = await measure(mesh.hosts.map((h) => ({ host: h, pid: (serfMesh.agent(h) as { pid: number }).pid })));
    } finally {
      await serfMesh.stop();
    }

  } finally {
    await mesh.cleanup();
  }
  // Context, not the anchor: the floor a Node program with the libp2p stack starts from here.
  const floors: [string, ProcMemory][] = [];
  for (const step of FLOOR_STEPS) floors.push([step.label, await floor(step)]);

  console.log();
  printTable(
    ['system', 'host', 'pid', 'exe', 'RSS MB', 'RssAnon MB', 'PSS MB', 'idle CPU'],
    [...weft.map((p) => ['weft', p] as const), ...serf.map((p) => ['serf', p] as const), ...floors].map(([s, m]) =>
      [s, m.host, String(m.pid), m.exe, mb(m.rss), mb(m.rssAnon), mb(m.pss), pct(m.cpu)]),
  );
  const w = median(weft.map((p) => p.rss));
  const s = median(serf.map((p) => p.rss));
  const wMax = max(weft.map((p) => p.rss));
  console.log();
  console.log(`idle CPU (median per process): weft ${pct(median(weft.map((p) => p.cpu)))}, serf ${pct(median(serf.map((p) => p.cpu)))} of one core`);
  console.log(`memory N=${peers}: weft ${mb(w)} MB (largest ${mb(wMax)} MB), serf ${mb(s)} MB, ratio ${ratio(w, s)} (target: weft ≤ ${mb(TARGET_BYTES)} MB: ${wMax <= TARGET_BYTES ? 'met' : 'NOT met'})`);
}

await main();
