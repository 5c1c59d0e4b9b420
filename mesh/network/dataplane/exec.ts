// Runs the data plane's commands (ip, bridge, wg, iptables, sysctl, wireguard-go), in this
// process's network namespace or, when given one, inside another through nsenter (tests run a
// data plane per simulated host from one process). Decides nothing.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** One kernel command answers in milliseconds; 20 s only trips on a real hang (an xtables lock
 *  held by a stuck dockerd, a wedged wireguard-go socket). */
export const COMMAND_TIMEOUT_MS = 20_000;
/** Output kept per stream: route and fdb dumps of a large mesh are a few hundred KiB. */
const MAX_OUTPUT = 8 * 1024 * 1024;

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  readonly result: Result;
  constructor(argv: readonly string[], r: Result) {
    const detail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join('; ');
    super(`${argv.join(' ')} ${r.code === null ? 'was killed (timed out?)' : `exited ${r.code}`}${detail ? `: ${detail}` : ''}`);
    this.result = r;
  }
}

export class Shell {
  /** The namespace the host side lives in (a path), or undefined for our own. */
  readonly netns: string | undefined;

  constructor(netns?: string) {
    this.netns = netns;
  }

  /** argv wrapped to run in `netns` (ours if undefined). */
  wrap(argv: readonly string[], netns = this.netns): string[] {
    return netns === undefined ? [...argv] : ['nsenter', `--net=${netns}`, '--', ...argv];
  }

  /** Runs argv in the host namespace; rejects with a CommandError unless it exits 0. */
  async run(argv: readonly string[], input?: string): Promise<string> {
    const r = await this.tryRun(argv, input);
    if (r.code !== 0) throw new CommandError(this.wrap(argv), r);
    return r.stdout;
  }

  /** Like run, in namespace `netns` (a container's). */
  async runIn(netns: string, argv: readonly string[], input?: string): Promise<string> {
    const full = this.wrap(argv, netns);
    const r = await exec(full, input);
    if (r.code !== 0) throw new CommandError(full, r);
    return r.stdout;
  }

  /** Runs argv in the host namespace and resolves with its result whatever the exit code. */
  tryRun(argv: readonly string[], input?: string): Promise<Result> {
    return exec(this.wrap(argv), input);
  }

  /**
   * Starts a self-daemonizing program (wireguard-go) in its own session, so that neither a
   * signal to the peer's process group nor the peer's exit reaches the daemon, with its output
   * appended to `logFile`. Resolves when the launcher (which forks the daemon and exits once
   * the interface exists) has exited 0.
   */
  async daemon(argv: readonly string[], logFile: string, env: NodeJS.ProcessEnv): Promise<void> {
    fs.mkdirSync(path.dirname(logFile), { recursive: true });
    const fd = fs.openSync(logFile, 'a', 0o600);
    try {
      const full = this.wrap(argv);
      const [cmd, ...args] = full as [string, ...string[]];
      const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
      const code = await new Promise<number | null>((resolve, reject) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
        child.on('error', (e) => {
          clearTimeout(timer);
          reject(new Error(`cannot run ${full.join(' ')}: ${e.message}`));
        });
        child.on('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      if (code !== 0) throw new Error(`${full.join(' ')} exited ${code} (see ${logFile})`);
    } finally {
      fs.closeSync(fd);
    }
  }
}

function exec(argv: readonly string[], input?: string): Promise<Result> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new Error('empty command'));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    const keep = (into: Buffer[]) => (b: Buffer) => {
      if (size >= MAX_OUTPUT) return;
      size += b.length;
      into.push(b);
    };
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    child.stdout.on('data', keep(out));
    child.stderr.on('data', keep(err));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${argv.join(' ')}: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => {}); // the command may exit without reading its input
    child.stdin.end(input ?? '');
  });
}

/** Input for `ip -batch -` and `bridge -batch -`: one command per line. */
export function batch(lines: readonly string[]): string {
  return `${lines.join('\n')}\n`;
}

/** Programs missing from PATH, of those given. */
export function missingTools(tools: readonly string[]): string[] {
  const dirs = (process.env.PATH ?? '').split(':').filter((d) => d !== '');
  return tools.filter((t) => !dirs.some((d) => isExecutable(path.join(d, t))));
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Runs tasks one at a time, in call order: concurrent attaches and syncs never interleave
 *  their kernel changes (and each one's observation of the kernel stays true while it acts). */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.tail.then(task, task);
    this.tail = next.catch(() => {});
    return next;
  }
}
