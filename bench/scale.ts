// Benchmark: weft's mesh at N real peers against Serf at N agents, in the same run, started
// the same way (issue 9's recipe: processes in the root namespace on 127.0.1.1..N, no
// namespaces, mesh only: `--no-dataplane`, DNS, metrics and plugin off).
//
//   node bench/scale.ts [--sizes 50,100] [--soak 600] [--writes 10] [--poll 20]
//                       [--converge-timeout 180] [--systems weft,serf] [--start paced|burst] [--keep]
//
// Per N and system, one after the other (weft's processes are gone before Serf's start):
//  1. start: the first member, then the others joining it: `paced` (default) one at a time, each
//     once the one before sees all earlier members alive (at most 15 s), as hosts are added
//     to a mesh; `burst` two at a time as soon as the one before answers its API, which on 2
//     cores at N = 100 measures mostly the start storm of 100 Node processes;
//  2. convergence: from the last member's start until a round of polls (every 500 ms) in
//     which every member sees N−1 others alive;
//  3. idle soak (--soak s): suspect and dead lines in every member's log, CPU per member from
//     /proc/<pid>/stat, VmRSS and RssAnon from /proc/<pid>/status and PSS from smaps_rollup at the end;
//  4. writes (--writes trials): weft `kv.put` on one peer until every peer's `kv.get` has it
//     (polled every --poll ms); Serf a user event until every agent's RPC stream had it;
//  5. kill -9 of five members at once (never the first): until every survivor marked each
//     victim dead (weft: its `events` stream; Serf: its "member-failed" RPC stream).
// The bench talks to every member in-process over one connection each (weft: the shared
// ApiClient, mesh/api/client.ts, on the unix socket; Serf: its msgpack RPC), so no CLI start-up loads the cores.
// Nothing is asserted: the figures are printed next to the targets below. A phase that
// runs out of time prints what it measured, and the run goes on.
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { printEnvironment } from './lib/env.ts';
import type { Fleet } from './lib/scale-fleet.ts';
import {
  converge, KILLS, killSome, POLL_CONCURRENCY, soak, startAll, writes, WRITE_WARMUP,
  type ConvergeResult, type KillResult, type StartMode, type SoakResult, type StartResult, type WriteResult,
} from './lib/scale-phases.ts';
import { installCleanup, makeTempDir, removeTempDirs } from './lib/scale-procs.ts';
import { SerfFleet } from './lib/scale-serf.ts';
import { WeftFleet } from './lib/scale-weft.ts';
import { max, median, ms, printTable, quantile, ratio, sec } from './lib/stats.ts';

// The targets weft is held to (issue 9): a 100-peer mesh on one small machine, stable, at a
// cost per peer near Serf's.
/** Every peer sees N−1 others alive within this of the last start. */
const TARGET_CONVERGE_MS = 15_000;
/** Idle CPU per peer, at most this times Serf's. */
const TARGET_CPU_RATIO = 2;
/** Resident memory per peer. MB here is 10^6 bytes, as in memory.ts. */
const TARGET_RSS_BYTES = 80e6;
/** kill -9 detection over (survivor, victim) pairs. */
const TARGET_DETECT_MEDIAN_MS = 2_000;
const TARGET_DETECT_MAX_MS = 3_000;
/** Addresses 127.0.1.1..254: the last octet is the member's number. */
const MAX_SIZE = 254;
/** Three members: one victim and two survivors. */
const MIN_SIZE = 3;

const { values: opt } = parseArgs({
  options: {
    sizes: { type: 'string', default: '50,100' },
    soak: { type: 'string', default: '600' },
    writes: { type: 'string', default: '10' },
    poll: { type: 'string', default: '20' },
    'converge-timeout': { type: 'string', default: '180' },
    systems: { type: 'string', default: 'weft,serf' },
    start: { type: 'string', default: 'paced' },
    keep: { type: 'boolean', default: false },
  },
});
const sizes = opt.sizes.split(',').map(Number);
const soakS = Number(opt.soak);
const trials = Number(opt.writes);
const pollMs = Number(opt.poll);
const convergeS = Number(opt['converge-timeout']);
const systems = opt.systems.split(',');
const startMode = opt.start as StartMode;
if (startMode !== 'paced' && startMode !== 'burst') throw new Error(`--start must be paced or burst, got ${startMode}`);
for (const s of sizes) if (!Number.isInteger(s) || s < MIN_SIZE || s > MAX_SIZE) throw new Error(`--sizes: each size must be ${MIN_SIZE}..${MAX_SIZE}, got ${s}`);
if (!Number.isInteger(soakS) || soakS < 1 || soakS > 3600) throw new Error(`--soak must be 1..3600 s, got ${soakS}`);
if (!Number.isInteger(trials) || trials < 1 || trials > 1000) throw new Error(`--writes must be 1..1000, got ${trials}`);
if (!Number.isInteger(pollMs) || pollMs < 1 || pollMs > 5000) throw new Error(`--poll must be 1..5000 ms, got ${pollMs}`);
if (!Number.isInteger(convergeS) || convergeS < 1 || convergeS > 3600) throw new Error(`--converge-timeout must be 1..3600 s, got ${convergeS}`);
for (const s of systems) if (s !== 'weft' && s !== 'serf') throw new Error(`--systems: "${s}" is not weft or serf`);

interface Result {
  system: 'weft' | 'serf';
  n: number;
  start?: StartResult;
  converge?: ConvergeResult;
  soak?: SoakResult;
  writes?: WriteResult;
  kill?: KillResult;
  suspectMeaning: string;
  /** What the members ran (weft: compiled or sources). */
  ran?: string;
  errors: string[];
}

/** Runs the phases in order; a phase that fails is noted and the next still runs, as long as
 *  the members are up. The fleet is stopped in every case. */
async function measure(f: Fleet): Promise<Result> {
  const r: Result = { system: f.system, n: f.members.length, suspectMeaning: f.suspectMeaning, errors: [] };
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (e) {
      const msg = `${name}: ${(e as Error).message}`;
      r.errors.push(msg);
      console.log(`  ${f.system} N=${r.n}: FAILED ${msg}`);
      return undefined;
    }
  };
  try {
    r.start = await phase('start', () => startAll(f, startMode));
    r.ran = f.describe();
    if (!r.start) return r;
    r.converge = await phase('converge', () => converge(f, (r.start as StartResult).lastSpawn, convergeS * 1000));
    r.soak = await phase('soak', () => soak(f, soakS));
    r.writes = await phase('writes', () => writes(f, trials));
    r.kill = await phase('kill', () => killSome(f));
    for (const e of r.writes?.errors.slice(0, 3) ?? []) r.errors.push(`write: ${e}`);
    return r;
  } finally {
    await f.stop();
  }
}

const finite = (xs: readonly number[]) => xs.filter((x) => Number.isFinite(x));
const mb = (b: number) => (Number.isFinite(b) ? (b / 1e6).toFixed(1) : '–');
const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(2)}%` : '–');
const cores = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const met = (ok: boolean | undefined) => (ok === undefined ? 'no data' : ok ? 'met' : 'NOT met');
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/** The figures of one result, NaN where a phase did not run or measured nothing. */
function figures(r: Result | undefined) {
  const s = r?.soak;
  const k = r?.kill;
  const w = r?.writes;
  return {
    ready: r?.start?.allReadyMs ?? NaN,
    lastReady: r?.start?.lastSpawnToReadyMs ?? NaN,
    converge: r?.converge?.ms ?? NaN,
    suspect: s ? sum(s.suspect) : NaN,
    dead: s ? sum(s.dead) : NaN,
    cpuMedian: s ? median(finite(s.cpu)) : NaN,
    cpuMax: s ? max(finite(s.cpu)) : NaN,
    cpuSum: s ? sum(finite(s.cpu)) : NaN,
    rssMedian: s ? median(finite(s.rss)) : NaN,
    rssMax: s ? max(finite(s.rss)) : NaN,
    anonMedian: s ? median(finite(s.rssAnon)) : NaN,
    anonMax: s ? max(finite(s.rssAnon)) : NaN,
    pssMedian: s ? median(finite(s.pss)) : NaN,
    pssMax: s ? max(finite(s.pss)) : NaN,
    detectMedian: k ? median(k.pairs) : NaN,
    detectMax: k && k.missed === 0 ? max(k.pairs) : NaN,
    writeP50: w ? quantile(w.ms, 0.5) : NaN,
    writeP99: w ? quantile(w.ms, 0.99) : NaN,
  };
}

/** "12 (3 peers, max 7)": a soak count over all members. */
function lineCount(xs: readonly number[] | undefined): string {
  if (!xs) return '–';
  return `${sum(xs)} (${xs.filter((x) => x > 0).length} peers, max ${max(xs)})`;
}

function printSize(n: number, wr: Result | undefined, sr: Result | undefined): string[] {
  const w = figures(wr);
  const s = figures(sr);
  const victims = wr?.kill?.victims.length ?? sr?.kill?.victims.length ?? Math.min(KILLS, n - 2);
  const convergeText = (r: Result | undefined) =>
    !r?.converge ? '–' : Number.isNaN(r.converge.ms) ? `> ${convergeS} (not converged)` : sec(r.converge.ms);
  const pairsText = (r: Result | undefined) => (r?.kill ? `${r.kill.pairs.length}/${r.kill.pairs.length + r.kill.missed}, ${r.kill.notTimed} not timed` : '–');
  const writesText = (r: Result | undefined) => (r?.writes ? `${r.writes.ms.length}/${r.writes.ms.length + r.writes.missed}` : '–');
  const early = (r: Result | undefined) => (r?.soak ? `${r.soak.earlySuspect}/${r.soak.earlyDead}` : '–');
  const both = (a: number, b: number) => Number.isFinite(a) && Number.isFinite(b);
  // A mesh that never converged misses the target; one whose phase did not run has no data.
  const verdict = {
    converge: met(wr?.converge ? w.converge <= TARGET_CONVERGE_MS : undefined),
    quiet: met(wr?.soak ? w.suspect === 0 && w.dead === 0 : undefined),
    cpu: met(both(w.cpuMedian, s.cpuMedian) ? w.cpuMedian <= TARGET_CPU_RATIO * s.cpuMedian : undefined),
    rss: met(Number.isFinite(w.rssMax) ? w.rssMax <= TARGET_RSS_BYTES : undefined),
    detect: met(wr?.kill ? w.detectMedian <= TARGET_DETECT_MEDIAN_MS && w.detectMax <= TARGET_DETECT_MAX_MS : undefined),
    write: met(both(w.writeP50, s.writeP50) ? w.writeP50 <= s.writeP50 : undefined),
  };
  const rows: string[][] = [
    ['all started and answering, s', sec(w.ready), sec(s.ready), ratio(w.ready, s.ready), ''],
    ['  from the last start, s', sec(w.lastReady), sec(s.lastReady), ratio(w.lastReady, s.lastReady), ''],
    ['convergence after the last start, s', convergeText(wr), convergeText(sr), ratio(w.converge, s.converge), `≤ ${TARGET_CONVERGE_MS / 1000} s: ${verdict.converge}`],
    ['  members that saw all alive once', wr?.converge ? `${wr.converge.seenAllOnce}/${n}` : '–', sr?.converge ? `${sr.converge.seenAllOnce}/${n}` : '–', '', ''],
    [`soak ${soakS} s: suspect lines (peers with any, max)`, lineCount(wr?.soak?.suspect), lineCount(sr?.soak?.suspect), ratio(w.suspect, s.suspect), `0: ${verdict.quiet}`],
    ['soak: dead lines (peers with any, max)', lineCount(wr?.soak?.dead), lineCount(sr?.soak?.dead), ratio(w.dead, s.dead), '0'],
    [`  suspect/dead lines in the first ${wr?.soak?.earlySeconds ?? sr?.soak?.earlySeconds ?? '–'} s`, early(wr), early(sr), '', ''],
    ['soak: CPU per member, median (of one core)', pct(w.cpuMedian), pct(s.cpuMedian), ratio(w.cpuMedian, s.cpuMedian), `≤ ${TARGET_CPU_RATIO}× Serf: ${verdict.cpu}`],
    ['soak: CPU per member, max', pct(w.cpuMax), pct(s.cpuMax), ratio(w.cpuMax, s.cpuMax), ''],
    ['soak: CPU of all members, cores', cores(w.cpuSum), cores(s.cpuSum), ratio(w.cpuSum, s.cpuSum), ''],
    ['RSS per member at the end, median MB', mb(w.rssMedian), mb(s.rssMedian), ratio(w.rssMedian, s.rssMedian), ''],
    ['RSS per member, max MB', mb(w.rssMax), mb(s.rssMax), ratio(w.rssMax, s.rssMax), `≤ ${TARGET_RSS_BYTES / 1e6} MB: ${verdict.rss}`],
    ['RssAnon per member, median / max MB', `${mb(w.anonMedian)} / ${mb(w.anonMax)}`, `${mb(s.anonMedian)} / ${mb(s.anonMax)}`, ratio(w.anonMedian, s.anonMedian), ''],
    ['PSS per member (shared pages split), median / max MB', `${mb(w.pssMedian)} / ${mb(w.pssMax)}`, `${mb(s.pssMedian)} / ${mb(s.pssMax)}`, ratio(w.pssMedian, s.pssMedian), ''],
    [`kill -9 ×${victims}: detected, median s`, sec(w.detectMedian), sec(s.detectMedian), ratio(w.detectMedian, s.detectMedian), `≤ ${TARGET_DETECT_MEDIAN_MS / 1000} s`],
    ['  max s (– if a pair was missed)', sec(w.detectMax), sec(s.detectMax), ratio(w.detectMax, s.detectMax), `≤ ${TARGET_DETECT_MAX_MS / 1000} s: ${verdict.detect}`],
    ['  pairs detected/timed', pairsText(wr), pairsText(sr), '', ''],
    ['write on all N, p50 ms', ms(w.writeP50), ms(s.writeP50), ratio(w.writeP50, s.writeP50), `≤ Serf: ${verdict.write}`],
    ['  p99 ms', ms(w.writeP99), ms(s.writeP99), ratio(w.writeP99, s.writeP99), ''],
    ['  trials seen by all', writesText(wr), writesText(sr), '', ''],
  ];
  console.log(`\nN=${n}`);
  printTable(['figure', 'weft', 'serf', 'weft/serf', 'target (weft)'], rows);
  for (const r of [wr, sr]) {
    if (!r) continue;
    console.log(`${r.system}: ${r.ran ?? 'did not start'}; a suspect line is ${r.suspectMeaning}`);
    if (r.soak?.exited.length) console.log(`${r.system}: exited during the soak: ${r.soak.exited.join(', ')}`);
    if (r.soak) console.log(`${r.system}: during the soak the bench process used ${pct(r.soak.benchCpu)} of a core, the whole machine ${cores(r.soak.machineCpu)} of ${os.cpus().length} cores`);
    if (r.soak?.cutShort) console.log(`${r.system}: the soak was ${r.soak.cutShort}`);
    for (const e of r.errors) console.log(`${r.system}: ${e}`);
  }
  const cnt = (x: number) => (Number.isFinite(x) ? String(x) : '–');
  return [
    `scale N=${n} convergence: weft ${convergeText(wr)} s, serf ${convergeText(sr)} s, ratio ${ratio(w.converge, s.converge)} (target: weft ≤ ${TARGET_CONVERGE_MS / 1000} s: ${verdict.converge})`,
    `scale N=${n} soak suspect/dead lines: weft ${cnt(w.suspect)}/${cnt(w.dead)}, serf ${cnt(s.suspect)}/${cnt(s.dead)} (target: weft 0/0: ${verdict.quiet})`,
    `scale N=${n} idle CPU per member: weft median ${pct(w.cpuMedian)} max ${pct(w.cpuMax)}, serf median ${pct(s.cpuMedian)} max ${pct(s.cpuMax)}, ratio ${ratio(w.cpuMedian, s.cpuMedian)} (target ≤ ${TARGET_CPU_RATIO}: ${verdict.cpu})`,
    `scale N=${n} RSS per member: weft median ${mb(w.rssMedian)} MB max ${mb(w.rssMax)} MB, serf median ${mb(s.rssMedian)} MB max ${mb(s.rssMax)} MB, ratio ${ratio(w.rssMedian, s.rssMedian)} (target: weft max ≤ ${TARGET_RSS_BYTES / 1e6} MB: ${verdict.rss})`,
    `scale N=${n} kill -9 ×${victims} detection: weft median ${sec(w.detectMedian)} s max ${sec(w.detectMax)} s, serf median ${sec(s.detectMedian)} s max ${sec(s.detectMax)} s, ratio ${ratio(w.detectMedian, s.detectMedian)} (target: weft median ≤ ${TARGET_DETECT_MEDIAN_MS / 1000} s, max ≤ ${TARGET_DETECT_MAX_MS / 1000} s: ${verdict.detect})`,
    `scale N=${n} write on all N: weft p50 ${ms(w.writeP50)} ms p99 ${ms(w.writeP99)} ms, serf p50 ${ms(s.writeP50)} ms p99 ${ms(s.writeP99)} ms, ratio ${ratio(w.writeP50, s.writeP50)} (target ≤ 1: ${verdict.write})`,
  ];
}

async function main(): Promise<void> {
  installCleanup();
  printEnvironment('scale');
  console.log(`scale: N = ${sizes.join(', ')}; ${systems.join(' then ')}; convergence limit ${convergeS} s; idle soak ${soakS} s; ${trials} writes (+${WRITE_WARMUP} warm-up, weft polled every ${pollMs} ms); kill -9 of ${KILLS} at once`);
  const finals: string[] = [];
  for (const n of sizes) {
    const results = new Map<string, Result>();
    for (const system of systems) {
      const dir = makeTempDir(path.join(os.tmpdir(), `weft-scale-${system}-${n}-`), opt.keep);
      const f: Fleet = system === 'weft' ? new WeftFleet({ dir, n, pollMs, concurrency: POLL_CONCURRENCY }) : new SerfFleet(dir, n);
      console.log(`${system} N=${n}: ${dir}${opt.keep ? ' (kept: the members\' logs are there)' : ''}`);
      results.set(system, await measure(f));
      removeTempDirs();
    }
    finals.push(...printSize(n, results.get('weft'), results.get('serf')));
  }
  console.log();
  for (const l of finals) console.log(l);
}

await main();
