// Runs short commands (ip, docker, umount) with a time limit and bounded output. An adapter
// only: it decides nothing about nodes.
import { spawn } from 'node:child_process';

/** Default limit of one command. `ip` answers in milliseconds and the docker CLI in well under
 *  a second; 20 s only trips on a real hang (a wedged dockerd, a stuck mount). */
export const COMMAND_TIMEOUT_MS = 20_000;

/** Output kept per stream: a docker CLI's error or `ip -j link` of a busy host is a few KiB;
 *  more is a runaway that would only grow the host peer's heap. */
const MAX_OUTPUT_BYTES = 1024 * 1024;

export interface CommandResult {
  /** Exit code, or null when it died by a signal (our timeout's SIGKILL included). */
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface CommandOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  input?: string;
}

/** Runs argv (no shell); resolves with its result whatever the exit code. */
export function runCommand(argv: readonly string[], opts: CommandOptions = {}): Promise<CommandResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new Error('runCommand: empty command'));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let kept = 0;
    const keep = (into: Buffer[]) => (b: Buffer) => {
      if (kept >= MAX_OUTPUT_BYTES) return;
      kept += b.length;
      into.push(b);
    };
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? COMMAND_TIMEOUT_MS);
    child.stdout.on('data', keep(out));
    child.stderr.on('data', keep(err));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${argv[0]}: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut });
    });
    child.stdin.on('error', () => {}); // the command may exit without reading its input
    child.stdin.end(opts.input ?? '');
  });
}

/** Like runCommand, but rejects with the command and its own words unless it exits 0;
 *  resolves its stdout. */
export async function mustRun(argv: readonly string[], opts: CommandOptions = {}): Promise<string> {
  const r = await runCommand(argv, opts);
  if (r.code !== 0) throw new Error(describeFailure(argv, r));
  return r.stdout;
}

export function describeFailure(argv: readonly string[], r: CommandResult): string {
  const how = r.timedOut ? 'timed out' : r.code === null ? 'was killed' : `exited ${r.code}`;
  const detail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join('; ');
  return `${argv.join(' ')} ${how}${detail ? `: ${detail}` : ''}`;
}
