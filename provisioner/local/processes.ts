// The long-running processes of a node (its dockerd and its peer): started detached inside the
// node's cgroup and network namespace so they outlive the host peer, and known afterwards only
// by a record of pid and start time, which names one process for the machine's uptime even
// after its pid is reused, whatever the process calls itself meanwhile (a peer renames
// itself "weft launch <name>").
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long a new process may take to join its cgroup and namespace (a shell and nsenter exec
 *  in milliseconds; seconds only on a machine that is swapping). */
export const PLACE_TIMEOUT_MS = 10_000;
/** How long to wait for a process to be gone after SIGKILL: delivery is immediate, exit is
 *  slow only in uninterruptible I/O. */
export const KILL_WAIT_MS = 5_000;
const POLL_MS = 20;

export interface ProcessRecord {
  pid: number;
  /** Start time in clock ticks since boot (/proc/PID/stat field 22). */
  start: number;
}

export interface DetachedOptions {
  argv: readonly string[];
  /** The node's namespace, a path under /var/run/netns. */
  netns: string;
  /** The cgroup.procs file the process joins before it execs. */
  cgroupProcs: string;
  env: NodeJS.ProcessEnv;
  /** Appended to, stdout and stderr both; created 0600 (a peer's log names its mesh). */
  logFile: string;
}

/**
 * Starts argv in its own session with stdio on its log file, inside the cgroup and namespace:
 * the shell joins the cgroup and execs nsenter, which enters the namespace and execs argv, so
 * the pid is argv's own and there is no moment it runs outside the cgroup. nsenter, not
 * `ip netns exec`, which remounts /sys and hides the cgroup mounts dockerd needs. Resolves
 * once it is inside the namespace (not once it is ready for anything).
 */
export async function startDetached(o: DetachedOptions): Promise<ProcessRecord> {
  const target = `net:[${fs.statSync(o.netns).ino}]`;
  fs.appendFileSync(o.logFile, `\n=== ${new Date().toISOString()} start: ${o.argv.join(' ')}\n`, { mode: 0o600 });
  const fd = fs.openSync(o.logFile, 'a', 0o600);
  let pid: number;
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  try {
    const argv = ['sh', '-c', 'echo $$ > "$0" && exec "$@"', o.cgroupProcs, 'nsenter', `--net=${o.netns}`, '--', ...o.argv];
    const child = spawn(argv[0] as string, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd], env: o.env });
    pid = await new Promise<number>((resolve, reject) => {
      child.once('error', (e) => reject(new Error(`cannot start ${o.argv[0]}: ${e.message}`)));
      child.once('spawn', () => resolve(child.pid as number));
    });
    child.once('exit', (code, signal) => {
      exited = { code, signal };
    });
    // Not ours to wait for: the node's processes outlive the host peer.
    child.unref();
  } finally {
    fs.closeSync(fd); // the child has its own copy
  }
  const deadline = Date.now() + PLACE_TIMEOUT_MS;
  for (let i = 0; i < PLACE_TIMEOUT_MS / POLL_MS && Date.now() < deadline; i++) {
    if (exited !== undefined) break;
    let ns: string | undefined;
    try {
      ns = fs.readlinkSync(`/proc/${pid}/ns/net`);
    } catch {
      break; // gone
    }
    const start = processStart(pid);
    if (ns === target && start !== undefined) return { pid, start };
    await sleep(POLL_MS);
  }
  if (exited === undefined && processStart(pid) !== undefined) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited just now
    }
    throw new Error(`${o.argv[0]} (pid ${pid}) did not enter namespace ${o.netns} within ${PLACE_TIMEOUT_MS} ms; killed it`);
  }
  throw new Error(`${o.argv[0]} exited at once (${exited?.signal ?? `code ${exited?.code}`}): ${lastLines(o.logFile)}`);
}

/** Start time of a live process (clock ticks since boot), or undefined if it is gone or a zombie. */
export function processStart(pid: number): number | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces and parentheses itself:
  // the fields after it start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // dead, only its exit status left
  const start = Number(fields[19]); // field 22 overall; fields[0] is field 3
  return Number.isFinite(start) ? start : undefined;
}

/** True if the recorded process still runs (same pid and the same start time). */
export function isRunning(rec: ProcessRecord | undefined): rec is ProcessRecord {
  return rec !== undefined && processStart(rec.pid) === rec.start;
}

/** Signals the recorded process, never a process that reused its pid. */
export function signalProcess(rec: ProcessRecord, sig: NodeJS.Signals): void {
  if (!isRunning(rec)) return;
  try {
    process.kill(rec.pid, sig);
  } catch {
    // gone meanwhile
  }
}

/** Waits up to `ms` for the process to be gone; true if it is. */
export async function waitGone(rec: ProcessRecord, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (let i = 0; i < ms / POLL_MS && Date.now() < deadline && isRunning(rec); i++) await sleep(POLL_MS);
  return !isRunning(rec);
}

/** SIGTERM, up to `graceMs` for a clean exit, then SIGKILL. Resolves how it ended; rejects if
 *  it survives SIGKILL (uninterruptible I/O for longer than KILL_WAIT_MS). */
export async function stopProcess(rec: ProcessRecord, graceMs: number): Promise<'not running' | 'stopped' | 'killed'> {
  if (!isRunning(rec)) return 'not running';
  signalProcess(rec, 'SIGTERM');
  if (await waitGone(rec, graceMs)) return 'stopped';
  signalProcess(rec, 'SIGKILL');
  if (await waitGone(rec, KILL_WAIT_MS)) return 'killed';
  throw new Error(`pid ${rec.pid} did not exit within ${KILL_WAIT_MS} ms of SIGKILL`);
}

/** Bytes of a log quoted in an error: the last few lines say why a process gave up. */
const LOG_QUOTE_BYTES = 600;

/** The end of a log file (at most `bytes`, `lines`), on one line, for an error message. */
export function lastLines(file: string, bytes = LOG_QUOTE_BYTES, lines = 4): string {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, bytes));
    fs.readSync(fd, buf, 0, buf.length, size - buf.length);
    return buf.toString('utf8').trim().split('\n').slice(-lines).join(' | ') || '(its log is empty)';
  } catch {
    return `(no log at ${file})`;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
