// A long-running process inside a host namespace (a peer, a dockerd, a stand-in), with its
// output appended to a log file that outlives it and the test worker.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';

/** How long stop() lets a process shut down after SIGTERM before SIGKILL. A peer flushing
 *  LevelDB and saying goodbye to its mesh needs well under a second; dockerd stopping its
 *  containers needs more. */
export const STOP_GRACE_MS = 10_000;

/** How long to wait for a process to be reaped after SIGKILL before calling it a leak. */
export const KILL_WAIT_MS = 5_000;

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Where and how a command runs: the namespace, the cgroup and the marker env. */
export interface Placement {
  /** Network namespace name (under /var/run/netns). */
  ns: string;
  /** cgroup.procs file to join before exec, or null if there is no cgroup v2. */
  cgroupProcs: string | null;
  env: NodeJS.ProcessEnv;
}

/**
 * argv that runs `argv` inside the placement: joins the cgroup first (race-free: the shell
 * moves itself, then execs), then enters the network namespace with nsenter. nsenter, not
 * `ip netns exec`, which remounts /sys and hides the cgroup mounts dockerd needs. Only the
 * network namespace changes: mounts, pids and the filesystem stay the root namespace's.
 * Every step execs, so the pid we get is the pid of the command itself.
 */
export function placedArgv(p: Placement, argv: readonly string[]): string[] {
  const enter = ['nsenter', `--net=/var/run/netns/${p.ns}`, '--', ...argv];
  if (p.cgroupProcs === null) return enter;
  return ['sh', '-c', 'echo $$ > "$0" && exec "$@"', p.cgroupProcs, ...enter];
}

/** How long a new process may take to join its cgroup and namespace (a shell and nsenter
 *  exec in a few ms; seconds only on a machine that is swapping). */
export const PLACE_TIMEOUT_MS = 10_000;
const PLACE_POLL_MS = 2;

/**
 * Resolves once the process is inside the namespace, and so also in its cgroup, which it joins
 * first (or once it has exited). Until then cleanup could miss it: it is in neither yet.
 */
async function placed(proc: HostProcess, ns: string): Promise<void> {
  const target = `net:[${fs.statSync(`/var/run/netns/${ns}`).ino}]`;
  const deadline = Date.now() + PLACE_TIMEOUT_MS;
  for (let i = 0; i < PLACE_TIMEOUT_MS / PLACE_POLL_MS && Date.now() < deadline; i++) {
    if (!proc.running) return;
    try {
      if (fs.readlinkSync(`/proc/${proc.pid}/ns/net`) === target) return;
    } catch {
      return; // gone
    }
    await new Promise((r) => setTimeout(r, PLACE_POLL_MS));
  }
  proc.signal('SIGKILL');
  throw new Error(`${proc.name} (pid ${proc.pid}) did not enter namespace ${ns} within ${PLACE_TIMEOUT_MS} ms; killed it`);
}

export class HostProcess {
  readonly name: string;
  readonly argv: readonly string[];
  readonly logFile: string;
  readonly pid: number;
  /** Resolves when the process has exited and been reaped. Never rejects. */
  readonly exited: Promise<ExitInfo>;
  private readonly child: ChildProcess;
  private exitInfo: ExitInfo | undefined;

  private constructor(name: string, argv: readonly string[], logFile: string, child: ChildProcess) {
    this.name = name;
    this.argv = argv;
    this.logFile = logFile;
    this.child = child;
    this.pid = child.pid as number;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  /** Starts `argv` in the placement; resolves once it is inside its cgroup and namespace
   *  (not once it is ready for anything). */
  static start(name: string, argv: readonly string[], place: Placement, logFile: string): Promise<HostProcess> {
    const full = placedArgv(place, argv);
    fs.appendFileSync(logFile, `\n=== ${new Date().toISOString()} start ${name}: ${argv.join(' ')}\n`);
    const fd = fs.openSync(logFile, 'a');
    try {
      // Own process group: a Ctrl-C on the test's terminal reaches the runner, whose hooks
      // (or guardian) then clean up in order, instead of killing peers behind the test's back.
      const child = spawn(full[0] as string, full.slice(1), { stdio: ['ignore', fd, fd], env: place.env, detached: true });
      return new Promise((resolve, reject) => {
        child.once('error', (e) => reject(new Error(`cannot start ${name} (${argv.join(' ')}): ${e.message}`)));
        child.once('spawn', () => {
          const proc = new HostProcess(name, argv, logFile, child);
          placed(proc, place.ns).then(() => resolve(proc), reject);
        });
      });
    } finally {
      fs.closeSync(fd); // the child holds its own copy; the log outlives us
    }
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** Exit status once exited, else undefined. */
  get exit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** SIGKILL (a crash) and wait until it is reaped. */
  async kill(): Promise<ExitInfo> {
    this.signal('SIGKILL');
    return this.waitExit(KILL_WAIT_MS, 'after SIGKILL');
  }

  /** SIGTERM, wait up to `graceMs` for a clean exit, then SIGKILL. */
  async stop(graceMs = STOP_GRACE_MS): Promise<ExitInfo> {
    if (!this.running) return this.exitInfo as ExitInfo;
    this.signal('SIGTERM');
    if ((await within(this.exited, graceMs)) !== undefined) return this.exitInfo as ExitInfo;
    fs.appendFileSync(this.logFile, `\n=== ${this.name} ignored SIGTERM for ${graceMs} ms: SIGKILL\n`);
    return this.kill();
  }

  private async waitExit(ms: number, what: string): Promise<ExitInfo> {
    const r = await within(this.exited, ms);
    if (r === undefined) throw new Error(`${this.name} (pid ${this.pid}) did not exit ${what} within ${ms} ms`);
    return r;
  }
}

/** The promise's value, or undefined if it takes longer than `ms`; the timer never outlives it. */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
