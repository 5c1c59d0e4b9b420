// The phases of bench/scale.ts, the same code for weft and Serf (a Fleet): start, converge,
// idle soak, writes, kill -9. Every wait has a count and a time limit; a phase that runs
// out of time returns what it measured (NaN or a count of misses), it does not throw (it
// does when the machine runs short of memory: then the fleet is stopped).
import os from 'node:os';
import type { Fleet, Member } from './scale-fleet.ts';
import { UP_STATES } from './scale-fleet.ts';
import { checkMemory, countLines, cpuSeconds, fileSize, killNow, machineTicks, mapLimit, memAvailable, pssBytes, statusBytes } from './scale-procs.ts';
import { now, sleep, jitter } from './time.ts';

/** Peers starting at once: one per core. A Node start is ~0.3 s of CPU, and N of them at
 *  once would starve the peers already running (and the first joins with them). */
const START_PARALLEL = 2;
/** One peer's start until its API answers, on 2 cores shared with a busy mesh: at N = 50 a
 *  weft peer took ~13 s with the mesh saturating both cores; N = 100 halves its share. */
const START_TIMEOUT_MS = 120_000;
/** Between rounds of `status` (weft) or `members` (Serf) over all members while waiting for
 *  convergence: twice a second bounds the figure's resolution well below the 15 s target,
 *  and a round costs each peer one small request. */
const CONVERGE_POLL_MS = 500;
/** The soak's first seconds are counted apart as well: lines there are the joins still
 *  settling after the convergence round, lines after them are a mesh that does not settle. */
const SOAK_EARLY_MS = 10_000;
/** While the soak sleeps, memory is checked this often. */
const SOAK_SLICE_MS = 5_000;
/** No further member is started below this much available memory: a weft peer reached 200 MB
 *  at N = 50 while flapping, and the machine (24 GB) is shared with other work. */
const MIN_FREE_TO_START = 2e9;
/** Below this a phase stops (and with it the run for this fleet), before the OOM killer
 *  picks among the members and the machine's other work. */
export const MIN_FREE_TO_GO_ON = 1e9;
/** Requests in flight at once over the members in a round. */
export const POLL_CONCURRENCY = 16;
/** A line while waiting for convergence, so that a long wait shows where it stands. */
const PROGRESS_EVERY_MS = 15_000;
/** The issue kills five at once; smaller meshes keep at least two survivors. */
export const KILLS = 5;
/** A victim not marked dead by a survivor after this is a missed pair. Serf's worst case is
 *  its longest suspicion (6 × 4 × max(1, log10 N) probe intervals of 1 s, shortened by other
 *  members' confirmations) after a probe reached the victim: it took up to 24 s at N = 5 with
 *  three victims and two survivors, which confirm little. */
const DETECT_TIMEOUT_MS = 45_000;
/** Between scans of the pushed deaths; the arrival times are stamped as they come. */
const DETECT_CHECK_MS = 20;
/** A write not on every member after this is a miss, not a slow sample. */
const WRITE_TIMEOUT_MS = 20_000;
/** Trials dropped at the start: the first write of a mesh sets up what later ones reuse. */
export const WRITE_WARMUP = 1;
/** Between write trials (plus up to half as much again, so they do not lock into timers). */
const WRITE_GAP_MS = 500;

const log = (f: Fleet, text: string) => console.log(`  ${f.system} N=${f.members.length}: ${text}`);

export interface StartResult {
  /** From the first spawn until the last member's API answered (ms). */
  allReadyMs: number;
  /** When the last member was spawned (bench clock): convergence is timed from here. */
  lastSpawn: number;
  /** From the last spawn until every member's API answered (ms). */
  lastSpawnToReadyMs: number;
}

/** How a fleet is started: `burst` START_PARALLEL at a time, each as soon as the one before
 *  answers its API; `paced` one at a time, each once the one before sees every member started
 *  before it alive (or after PACED_JOIN_MS), as an operator adds hosts one after another. */
export type StartMode = 'burst' | 'paced';
/** A paced joiner that does not see the others alive by then is left to converge later. */
const PACED_JOIN_MS = 15_000;
const PACED_POLL_MS = 100;

/** Starts the first member, waits for it, then the others (see StartMode). */
export async function startAll(f: Fleet, mode: StartMode = 'burst'): Promise<StartResult> {
  const [first, ...rest] = f.members;
  if (!first) throw new Error('no members');
  const t0 = now();
  f.spawn(first);
  await f.connect(first, START_TIMEOUT_MS);
  let lastSpawn = now();
  let started = 1;
  await mapLimit(rest, mode === 'paced' ? 1 : START_PARALLEL, async (m) => {
    checkMemory(MIN_FREE_TO_START, `not starting ${m.name}`);
    f.spawn(m);
    lastSpawn = now();
    const others = started++;
    await f.connect(m, START_TIMEOUT_MS);
    if (mode !== 'paced') return;
    const until = now() + PACED_JOIN_MS;
    for (let i = 0; i < PACED_JOIN_MS / PACED_POLL_MS && now() < until; i++) {
      if ((await f.aliveOthers(m).catch(() => -1)) >= others) break;
      await sleep(PACED_POLL_MS);
    }
  });
  const r = { allReadyMs: now() - t0, lastSpawn, lastSpawnToReadyMs: now() - lastSpawn };
  log(f, `all ${f.members.length} started and answering after ${(r.allReadyMs / 1000).toFixed(1)} s`);
  return r;
}

export interface ConvergeResult {
  /** From the last spawn until a round in which every member saw N−1 others alive (ms);
   *  NaN if none within the timeout. */
  ms: number;
  /** Members that saw all N−1 alive in at least one round. */
  seenAllOnce: number;
  /** Members that saw all N−1 alive in the last round. */
  lastRound: number;
}

export async function converge(f: Fleet, from: number, timeoutMs: number): Promise<ConvergeResult> {
  const n = f.members.length;
  const once = new Set<Member>();
  let lastRound = 0;
  let lastProgress = now();
  for (let round = 0; round < timeoutMs / CONVERGE_POLL_MS + 1 && now() - from < timeoutMs; round++) {
    checkMemory(MIN_FREE_TO_GO_ON, 'convergence wait stopped');
    const roundStart = now();
    const alive = await mapLimit(f.members, POLL_CONCURRENCY, (m) => f.aliveOthers(m).catch(() => -1));
    const at = now();
    const ok = f.members.filter((_, k) => (alive[k] ?? -1) >= n - 1);
    for (const m of ok) once.add(m);
    lastRound = ok.length;
    if (ok.length === n) {
      log(f, `converged ${((at - from) / 1000).toFixed(2)} s after the last start`);
      return { ms: at - from, seenAllOnce: once.size, lastRound };
    }
    if (at - lastProgress >= PROGRESS_EVERY_MS) {
      lastProgress = at;
      const seen = alive.filter((a) => a >= 0);
      log(f, `${((at - from) / 1000).toFixed(0)} s: ${ok.length}/${n} see all ${n - 1} others alive (fewest seen alive: ${seen.length ? Math.min(...seen) : '–'}; ${n - seen.length} did not answer)`);
    }
    await sleep(Math.max(0, CONVERGE_POLL_MS - (now() - roundStart)));
  }
  log(f, `NOT converged within ${timeoutMs / 1000} s of the last start (${lastRound}/${n} saw all alive in the last round, ${once.size}/${n} ever)`);
  return { ms: NaN, seenAllOnce: once.size, lastRound };
}

export interface SoakResult {
  seconds: number;
  /** Per member, lines of its log during the soak. */
  suspect: number[];
  dead: number[];
  /** Of those, in the first SOAK_EARLY_MS, summed over the members. */
  earlySuspect: number;
  earlyDead: number;
  earlySeconds: number;
  /** Per member: share of one core used during the soak; NaN for one that exited. */
  cpu: number[];
  /** Per member at the end, bytes. */
  rss: number[];
  rssAnon: number[];
  /** Shared pages split among the processes mapping them (pssBytes). */
  pss: number[];
  /** Members whose process exited during the soak. */
  exited: string[];
  /** The bench process's own share of one core during the soak (its event streams). */
  benchCpu: number;
  /** Cores the whole machine was busy on average (every process, this run's or not). */
  machineCpu: number;
  /** Why the soak ended before its time, if it did. */
  cutShort: string | undefined;
}

const procOf = (m: Member) => {
  if (!m.proc) throw new Error(`${m.name}: not started`);
  return m.proc;
};

/** Leaves the fleet idle for `seconds`; CPU and log lines over the window, memory at its end. */
export async function soak(f: Fleet, seconds: number): Promise<SoakResult> {
  const procs = f.members.map(procOf);
  const offsets = procs.map((p) => fileSize(p.logFile));
  const tryCpu = (pid: number) => { try { return cpuSeconds(pid); } catch { return NaN; } };
  const tryStatus = (pid: number, field: string) => { try { return statusBytes(pid, field); } catch { return NaN; } };
  const cpu0 = procs.map((p) => tryCpu(p.pid));
  const bench0 = process.cpuUsage();
  const machine0 = machineTicks();
  const t0 = now();
  log(f, `idle soak of ${seconds} s`);
  const earlyMs = Math.min(SOAK_EARLY_MS, seconds * 1000);
  const end = t0 + seconds * 1000;
  let middle: number[] | undefined;
  let cutShort: string | undefined;
  for (let i = 0; i < (seconds * 1000) / SOAK_SLICE_MS + 3 && now() < end; i++) {
    await sleep(Math.min(SOAK_SLICE_MS, end - now(), middle ? Infinity : t0 + earlyMs - now()));
    if (!middle && now() >= t0 + earlyMs) middle = procs.map((p) => fileSize(p.logFile));
    if (memAvailable() < MIN_FREE_TO_GO_ON) {
      cutShort = `cut short after ${((now() - t0) / 1000).toFixed(0)} s: less than ${MIN_FREE_TO_GO_ON / 1e9} GB of memory available`;
      log(f, `soak ${cutShort}`);
      break;
    }
  }
  middle ??= procs.map((p) => fileSize(p.logFile));
  const wallS = (now() - t0) / 1000;
  const bench = process.cpuUsage(bench0);
  const machine1 = machineTicks();
  const cpu1 = procs.map((p) => tryCpu(p.pid));
  const patterns = [f.suspectLine, f.deadLine];
  const lines = procs.map((p, k) => countLines(p.logFile, offsets[k] ?? 0, patterns));
  // The same lines counted again up to the middle mark: the log files only grow.
  const later = procs.map((p, k) => countLines(p.logFile, middle[k] ?? 0, patterns));
  const sumAt = (xs: number[][], i: number) => xs.reduce((a, l) => a + (l[i] ?? 0), 0);
  return {
    seconds: wallS,
    suspect: lines.map((l) => l[0] ?? 0),
    dead: lines.map((l) => l[1] ?? 0),
    earlySuspect: sumAt(lines, 0) - sumAt(later, 0),
    earlyDead: sumAt(lines, 1) - sumAt(later, 1),
    earlySeconds: earlyMs / 1000,
    cpu: procs.map((p, k) => (p.exit === undefined ? ((cpu1[k] ?? NaN) - (cpu0[k] ?? NaN)) / wallS : NaN)),
    rss: procs.map((p) => tryStatus(p.pid, 'VmRSS')),
    rssAnon: procs.map((p) => tryStatus(p.pid, 'RssAnon')),
    pss: procs.map((p) => { try { return pssBytes(p.pid); } catch { return NaN; } }),
    exited: procs.filter((p) => p.exit !== undefined).map((p) => `${p.name} (${p.exit})`),
    benchCpu: (bench.user + bench.system) / 1e6 / wallS,
    machineCpu: ((machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total)) * os.cpus().length,
    cutShort,
  };
}

export interface WriteResult {
  /** Until on all N, per kept trial (ms). */
  ms: number[];
  missed: number;
  errors: string[];
}

export async function writes(f: Fleet, trials: number): Promise<WriteResult> {
  const r: WriteResult = { ms: [], missed: 0, errors: [] };
  for (let i = 0; i < WRITE_WARMUP + trials; i++) {
    checkMemory(MIN_FREE_TO_GO_ON, `writes stopped after ${i} trials`);
    let t = NaN;
    try {
      t = await f.write(i, WRITE_TIMEOUT_MS);
    } catch (e) {
      r.errors.push((e as Error).message);
    }
    if (i >= WRITE_WARMUP) {
      if (Number.isNaN(t)) r.missed++;
      else r.ms.push(t);
    }
    await jitter(WRITE_GAP_MS, WRITE_GAP_MS / 2);
  }
  log(f, `${trials} writes: ${r.ms.length} seen by all, ${r.missed} missed (limit ${WRITE_TIMEOUT_MS / 1000} s)`);
  return r;
}

export interface KillResult {
  victims: string[];
  survivors: number;
  /** Per (survivor, victim) pair that was up in the survivor's view before the kill: until
   *  the survivor marked the victim dead (ms). */
  pairs: number[];
  /** Timed pairs with no death within DETECT_TIMEOUT_MS. */
  missed: number;
  /** Pairs not timed: the survivor already had the victim down (or did not answer). */
  notTimed: number;
}

/** KILLS members spread over all but the first (the others' join address), at least two
 *  survivors left. */
export function pickVictims(members: readonly Member[]): Member[] {
  const candidates = members.slice(1);
  const k = Math.min(KILLS, members.length - 2);
  return Array.from({ length: Math.max(0, k) }, (_, j) => candidates[Math.floor(((j + 0.5) * candidates.length) / k)] as Member);
}

export async function killSome(f: Fleet): Promise<KillResult> {
  checkMemory(MIN_FREE_TO_GO_ON, 'no kill -9 phase');
  const victims = pickVictims(f.members);
  const survivors = f.members.filter((m) => !victims.includes(m));
  // Who is up in whose view just before: a flapping mesh may already hold a victim dead,
  // and that pair has nothing left to detect.
  const views = await mapLimit(survivors, POLL_CONCURRENCY, (s) => f.view(s).catch(() => undefined));
  const pending = new Set<string>();
  let notTimed = 0;
  survivors.forEach((s, k) => {
    for (const v of victims) {
      if (UP_STATES.has(views[k]?.get(v.name) ?? '')) pending.add(`${s.name}/${v.name}`);
      else notTimed++;
    }
  });
  const timed = pending.size;
  let scanned = f.deaths.length;
  const t0 = now();
  for (const v of victims) killNow(procOf(v));
  const pairs: number[] = [];
  const scan = () => {
    for (; scanned < f.deaths.length; scanned++) {
      const d = f.deaths[scanned];
      if (d && d.at >= t0 && d.at - t0 <= DETECT_TIMEOUT_MS && pending.delete(`${d.observer}/${d.name}`)) pairs.push(d.at - t0);
    }
  };
  for (let i = 0; i < DETECT_TIMEOUT_MS / DETECT_CHECK_MS + 1 && pending.size > 0 && now() - t0 < DETECT_TIMEOUT_MS; i++) {
    scan();
    await sleep(DETECT_CHECK_MS);
  }
  scan();
  log(f, `killed ${victims.map((v) => v.name).join(', ')}: ${pairs.length}/${timed} pairs detected within ${DETECT_TIMEOUT_MS / 1000} s, ${notTimed} not timed`);
  return { victims: victims.map((v) => v.name), survivors: survivors.length, pairs, missed: pending.size, notTimed };
}
