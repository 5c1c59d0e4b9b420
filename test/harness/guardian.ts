// The guardian: a small detached process, one per test process that creates harnesses, that
// sweeps those harnesses when that process dies in a way no hook survives (SIGKILL, such as
// vitest's watchdog sends to its workers ~1 ms after a Ctrl-C).
//
// It reads instance ids, one per line, from a pipe whose only writer is its owner. The kernel
// closes the pipe when the owner dies, however it dies; on end-of-file the guardian sweeps each
// id it was told about whose lease is free and whose recorded owner is dead (sweepId), which
// after a normal cleanup finds nothing to do. It lives in its own session (a Ctrl-C on the
// terminal does not reach it), in no harness cgroup, and at most GUARDIAN_LIFETIME_MS.
//
// Run as: node guardian.ts <owner pid>:<owner start time>   (stdin: the pipe). WEFT_HARNESS_GUARDIAN=0 turns it off (to
// reproduce or inspect what a crashed run leaves; the next harness start sweeps it).
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ownerAlive, processStart, readRecord } from './lease.ts';
import { STATE_DIR } from './names.ts';
import { sweepId, type SweepOutcome } from './sweep.ts';

/** Upper bound on a guardian's life; a test process living longer is not a test. */
export const GUARDIAN_LIFETIME_MS = 6 * 60 * 60 * 1000;

/** How long the owner may take to finish exiting after its pipe closed: it has closed its
 *  files, only its memory is left to free, but that can take a second for a big heap. */
const OWNER_EXIT_WAIT_MS = 10_000;

/** How long to retry an id whose lease someone else holds: sweeps and checks hold it for
 *  milliseconds, a creating harness for good (then it is no longer our owner's). */
const LEASE_RETRY_MS = 10_000;
const LEASE_RETRY_POLL_MS = 50;

const LOG = `${STATE_DIR}/guardian.log`;
const SELF = fileURLToPath(import.meta.url);

let pipe: Socket | undefined;

/** Tells this process's guardian (started on first use) to watch instance `id`. */
export function guard(id: number): void {
  if (pipe === undefined) {
    fs.mkdirSync(STATE_DIR, { recursive: true });
    const log = fs.openSync(LOG, 'a');
    const owner = `${process.pid}:${processStart(process.pid) ?? 0}`;
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', SELF, owner], {
      stdio: ['pipe', log, log], // its own problems (sweep warnings) end up in the log
      detached: true,
      env: { ...process.env, NODE_OPTIONS: '' }, // no test-runner loader hooks in the guardian
    });
    child.on('error', (e) => console.warn(`weft harness: no guardian (${e.message}); crashed runs are swept at the next start`));
    fs.closeSync(log);
    child.unref();
    pipe = child.stdin as Socket;
    pipe.on('error', () => {}); // a dead guardian must not crash the tests
    pipe.unref();
  }
  pipe.write(`${id}\n`);
}

async function main(): Promise<void> {
  setTimeout(() => process.exit(0), GUARDIAN_LIFETIME_MS).unref();
  const ids = new Set<number>();
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buf += chunk;
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) if (/^\d+$/.test(l)) ids.add(Number(l));
  });
  await new Promise<void>((resolve) => {
    process.stdin.once('end', resolve);
    process.stdin.once('error', () => resolve());
  });
  // The pipe closes while the owner is still exiting; its lease and "alive" status go a
  // moment later. Wait until it is really gone (its pid dead or reused), bounded.
  const [pid, start] = (process.argv[2] ?? '0:0').split(':').map(Number) as [number, number];
  const deadline = Date.now() + OWNER_EXIT_WAIT_MS;
  for (let i = 0; i < OWNER_EXIT_WAIT_MS / 10 && Date.now() < deadline; i++) {
    if (!ownerAlive({ ownerPid: pid, ownerStart: start })) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const outcomes: string[] = [];
  for (const id of ids) {
    const outcome = await sweepRetrying(id, pid);
    if (outcome !== 'nothing left') outcomes.push(`wt${id} ${outcome}`);
  }
  // Silent when the owner had cleaned up after itself, the normal case.
  if (outcomes.length > 0) console.error(`${new Date().toISOString()} guardian ${process.pid} of ${pid}: owner gone: ${outcomes.join(', ')}`);
  process.exit(0);
}

/** sweepId, retried while someone else holds the lease briefly (a sweep or a check by
 *  another test file), until the id turns out to be taken by a new live owner (who then
 *  swept it on taking it), bounded by LEASE_RETRY_MS. */
async function sweepRetrying(id: number, owner: number): Promise<SweepOutcome> {
  const deadline = Date.now() + LEASE_RETRY_MS;
  let outcome = await sweepId(id);
  for (let i = 0; i < LEASE_RETRY_MS / LEASE_RETRY_POLL_MS && outcome === 'lease held' && Date.now() < deadline; i++) {
    const rec = readRecord(id);
    if (rec !== undefined && rec.ownerPid !== owner && ownerAlive(rec)) return 'lease held';
    await new Promise((r) => setTimeout(r, LEASE_RETRY_POLL_MS));
    outcome = await sweepId(id);
  }
  return outcome;
}

if (process.argv[1] === SELF) await main();
