// Processes for bench/scale.ts: peers and agents started directly in the root namespace (no
// harness), every one of them tracked so that success, failure and Ctrl-C all end them and
// remove the run's temp dir; and what the bench reads about them from /proc and their logs.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { now, sleep } from './time.ts';

/** sysconf(_SC_CLK_TCK) on Linux x86-64: the unit of utime and stime in /proc/<pid>/stat. */
const CLOCK_TICKS = 100;
/** A SIGKILLed process is reaped within milliseconds; this only trips on a stuck zombie. */
const REAP_TIMEOUT_MS = 5_000;
/** Log bytes read at once when counting lines: a flapping peer's log grows by megabytes. */
const READ_CHUNK = 1 << 20;

/** One started process: `bin/weft` and `serf` both exec the real program, so `pid` is the
 *  peer's or agent's own (what /proc is read for). */
export interface Proc {
  name: string;
  pid: number;
  logFile: string;
  child: ChildProcess;
  /** Set once the process has exited: its code or signal. */
  exit: string | undefined;
}

const procs = new Set<Proc>();
const tempDirs = new Set<string>();

/** Starts `cmd args` with stdout and stderr appended to `logFile`, and tracks it. */
export function spawnTracked(name: string, cmd: string, args: readonly string[], logFile: string): Proc {
  const fd = fs.openSync(logFile, 'a');
  try {
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
    if (child.pid === undefined) throw new Error(`${name}: cannot start ${cmd}`);
    const p: Proc = { name, pid: child.pid, logFile, child, exit: undefined };
    child.on('exit', (code, signal) => {
      p.exit = signal ?? `code ${code}`;
    });
    child.on('error', (e) => {
      p.exit ??= `error ${e.message}`;
    });
    procs.add(p);
    return p;
  } finally {
    fs.closeSync(fd);
  }
}

/** SIGKILL, at once; the caller times what follows from just before. */
export function killNow(p: Proc): void {
  if (p.exit === undefined) p.child.kill('SIGKILL');
}

/** SIGKILL every tracked process and wait (bounded) until each is reaped. */
export async function killAll(): Promise<void> {
  for (const p of procs) killNow(p);
  const deadline = now() + REAP_TIMEOUT_MS;
  for (let i = 0; i < REAP_TIMEOUT_MS / 20 && [...procs].some((p) => p.exit === undefined) && now() < deadline; i++) await sleep(20);
  for (const p of procs) if (p.exit !== undefined) procs.delete(p);
}

/** A temp dir for this run, removed at exit whatever happens, unless `keep` (to read the
 *  members' logs afterwards). */
export function makeTempDir(prefix: string, keep = false): string {
  const dir = fs.mkdtempSync(prefix);
  if (!keep) tempDirs.add(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/** Ends every process and removes the temp dirs on Ctrl-C, SIGTERM and any exit, also after
 *  an uncaught error: nothing the bench started may outlive it. */
export function installCleanup(): void {
  const syncCleanup = () => {
    for (const p of procs) killNow(p);
    removeTempDirs();
  };
  process.on('exit', syncCleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      console.error(`\nscale: ${sig}: killing ${procs.size} processes and removing the temp dir`);
      syncCleanup();
      process.exit(130);
    });
  }
}

/** User + system CPU seconds of a process so far. The peer renames itself ("weft launch
 *  p3"), so the comm field has spaces: the fields are counted from after the last ')'. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime (fields 14, 15)
}

/** MemAvailable from /proc/meminfo, bytes: what can still be allocated without swapping. */
export function memAvailable(): number {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : Infinity;
}

/** Throws if MemAvailable is below `minBytes`: better a phase cut short with a clear message
 *  than the OOM killer choosing among this run's members and the machine's other work. */
export function checkMemory(minBytes: number, what: string): void {
  const free = memAvailable();
  if (free < minBytes) throw new Error(`only ${(free / 1e9).toFixed(1)} GB of memory available (< ${(minBytes / 1e9).toFixed(1)} GB): ${what}`);
}

/** The machine's busy and total CPU ticks so far, all cores (first line of /proc/stat). */
export function machineTicks(): { busy: number; total: number } {
  const f = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total }; // minus idle and iowait
}

/** A field of /proc/<pid>/status in bytes ("VmRSS:  81234 kB"). */
export function statusBytes(pid: number, field: string): number {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
  if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(m[1]) * 1024;
}

/** Proportional set size: resident pages, each shared page divided among the processes that
 *  map it. N peers share one Node binary's pages (~55 MB of each VmRSS here), so PSS is what
 *  one more peer costs the machine, where VmRSS counts the shared pages in full for each. */
export function pssBytes(pid: number): number {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const m = /^Pss:\s+(\d+) kB$/m.exec(text);
  if (!m) throw new Error(`/proc/${pid}/smaps_rollup has no Pss`);
  return Number(m[1]) * 1024;
}

/** The last lines of a log, for an error message: the temp dir is gone once it prints. */
export function logTail(file: string, lines = 3): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join(' | ');
  } catch {
    return '(no log)';
  }
}

export function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** How many lines of `file` from byte `from` on match each pattern. */
export function countLines(file: string, from: number, patterns: readonly RegExp[]): number[] {
  const counts = patterns.map(() => 0);
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(READ_CHUNK);
    let rest = '';
    for (let pos = from; ; ) {
      const n = fs.readSync(fd, buf, 0, READ_CHUNK, pos);
      if (n === 0) break;
      pos += n;
      const lines = (rest + buf.subarray(0, n).toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) patterns.forEach((re, i) => { if (re.test(l)) counts[i] = (counts[i] ?? 0) + 1; });
    }
    patterns.forEach((re, i) => { if (re.test(rest)) counts[i] = (counts[i] ?? 0) + 1; });
  } finally {
    fs.closeSync(fd);
  }
  return counts;
}

/** `fn` over `items` with at most `limit` calls in flight, results in order. After a call
 *  throws no new one starts, and the error is thrown once the calls in flight have ended:
 *  nothing (a member being started, say) goes on behind the caller's back. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    for (let i = next++; i < items.length && !failure; i = next++) {
      try {
        out[i] = await fn(items[i] as T);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
  return out;
}
