// Runs short commands (ip, bridge, the weft CLI) with a time limit and bounded output.
// An adapter only: it decides nothing about namespaces or hosts.
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';

/** Default limit for one short command. `ip` and `bridge` answer in milliseconds; the
 *  weft CLI starts Node (~0.3 s on a loaded core), so 15 s only trips on a real hang. */
export const RUN_TIMEOUT_MS = 15_000;

/** Output kept per stream. Status JSON of a large mesh is a few hundred KiB; more than
 *  this is a runaway process, and keeping it would only grow the test worker's heap. */
export const MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

export interface ExecResult {
  /** Exit code, or null when the process died by a signal (including our timeout kill). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the time limit ran out and the process was killed with SIGKILL. */
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs?: number;
  /** Written to the process's stdin, which is then closed. */
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Runs argv (no shell) and resolves with its result; never rejects for a non-zero exit. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new Error('run: empty command'));
  const timeoutMs = opts.timeoutMs ?? RUN_TIMEOUT_MS;
  const spawnOpts: SpawnOptions = { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env, cwd: opts.cwd };
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, spawnOpts);
    const out = new Collector();
    const err = new Collector();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout?.on('data', (b: Buffer) => out.add(b));
    child.stderr?.on('data', (b: Buffer) => err.add(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${argv.join(' ')}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: out.text(), stderr: err.text(), timedOut });
    });
    child.stdin?.on('error', () => {}); // the command may exit without reading its input
    child.stdin?.end(opts.input ?? '');
  });
}

/** Like run, but rejects unless the command exits 0; the error carries the command and stderr. */
export async function mustRun(argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(describeFailure(argv, r));
  return r;
}

/** Synchronous run for the exit hooks, where the event loop no longer turns. */
export function runSync(argv: readonly string[], opts: RunOptions = {}): ExecResult {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('runSync: empty command');
  const r = spawnSync(cmd, args, {
    input: opts.input ?? '',
    env: opts.env,
    cwd: opts.cwd,
    timeout: opts.timeoutMs ?? RUN_TIMEOUT_MS,
    killSignal: 'SIGKILL',
    maxBuffer: MAX_OUTPUT_BYTES,
    encoding: 'utf8',
  });
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  if (r.error && !timedOut) throw new Error(`cannot run ${argv.join(' ')}: ${r.error.message}`);
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', timedOut };
}

export function describeFailure(argv: readonly string[], r: ExecResult): string {
  const how = r.timedOut ? 'timed out' : r.code === null ? `died by ${r.signal}` : `exited ${r.code}`;
  const detail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join('\n');
  return `${argv.join(' ')} ${how}${detail ? `: ${detail}` : ''}`;
}

/** Keeps at most MAX_OUTPUT_BYTES of a stream, dropping the rest with a marker. */
class Collector {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = false;

  add(b: Buffer): void {
    if (this.size >= MAX_OUTPUT_BYTES) {
      this.dropped = true;
      return;
    }
    const keep = b.subarray(0, MAX_OUTPUT_BYTES - this.size);
    this.chunks.push(keep);
    this.size += keep.length;
    if (keep.length < b.length) this.dropped = true;
  }

  text(): string {
    const s = Buffer.concat(this.chunks).toString('utf8');
    return this.dropped ? `${s}\n[output truncated at ${MAX_OUTPUT_BYTES} bytes]` : s;
  }
}
