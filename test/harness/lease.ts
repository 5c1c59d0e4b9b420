// Instance ids: who owns which, and whether the owner still lives.
//
// The lock on an id is a bound abstract unix socket ("\0weft-harness-<id>"). Binding is
// atomic across processes and the kernel releases it the moment the owner dies, even by
// SIGKILL, so there is no stale lock to break and no pid-reuse race. The record file next to
// it says which pid created the instance and where its temp directory is, for the sweep and
// for people. Leftovers of an id are swept only by someone holding its lock, and only if the
// recorded owner is not alive.
import fs from 'node:fs';
import net from 'node:net';
import { leaseSocket, MAX_ID, MIN_ID, recordPath, STATE_DIR } from './names.ts';

export interface InstanceRecord {
  id: number;
  ownerPid: number;
  /** Start time of the owner (clock ticks since boot, /proc/<pid>/stat field 22): with the
   *  pid it names one process for the machine's uptime, even after the pid is reused. */
  ownerStart: number;
  tmpDir: string;
  label: string;
  createdAt: string;
}

export class Lease {
  readonly id: number;
  private server: net.Server | undefined;

  constructor(id: number, server: net.Server) {
    this.id = id;
    this.server = server;
  }

  get held(): boolean {
    return this.server !== undefined;
  }

  /** Releases the id. Idempotent; synchronous in effect (close() unbinds at once). */
  release(): void {
    this.server?.close();
    this.server = undefined;
  }
}

/** Takes the lock on `id` if nobody holds it; null if it is held (by any process, us included). */
export function tryLease(id: number): Promise<Lease | null> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((conn) => conn.destroy());
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') resolve(null);
      else reject(new Error(`cannot lock harness id ${id}: ${e.message}`));
    });
    server.listen({ path: leaseSocket(id) }, () => {
      server.unref(); // the lock must not keep a finished test worker alive
      resolve(new Lease(id, server));
    });
  });
}

/** Locks ids one by one and offers each to `accept` until it keeps one; bounded by the id
 *  range. Each process starts at an offset from its pid, so concurrent test files rarely
 *  contend for an id, and an id one of them just released is rarely taken by another at
 *  once (which keeps logs and leftovers of different runs apart). */
export async function firstFreeId(accept: (lease: Lease) => boolean | Promise<boolean>): Promise<Lease> {
  const range = MAX_ID - MIN_ID + 1;
  const start = process.pid % range;
  for (let i = 0; i < range; i++) {
    const lease = await tryLease(MIN_ID + ((start + i) % range));
    if (lease === null) continue;
    if (await accept(lease)) return lease;
    lease.release();
  }
  throw new Error(`no free harness id in ${MIN_ID}..${MAX_ID}: too many harnesses running, or leftovers owned by live processes`);
}

export function readRecord(id: number): InstanceRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordPath(id), 'utf8')) as InstanceRecord;
  } catch {
    return undefined;
  }
}

export function writeRecord(rec: InstanceRecord): void {
  fs.mkdirSync(STATE_DIR, { recursive: true });
  const tmp = `${recordPath(rec.id)}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(rec, null, 2)}\n`);
  fs.renameSync(tmp, recordPath(rec.id));
}

export function removeRecord(id: number): void {
  fs.rmSync(recordPath(id), { force: true });
}

/** Ids that have a record file (live or stale). */
export function recordedIds(): number[] {
  let names: string[];
  try {
    names = fs.readdirSync(STATE_DIR);
  } catch {
    return [];
  }
  const ids: number[] = [];
  for (const n of names) {
    const m = /^wt(\d+)\.json$/.exec(n);
    if (m) ids.push(Number(m[1]));
  }
  return ids;
}

/** Start time of a process, or undefined if it does not exist (or is a zombie being reaped). */
export function processStart(pid: number): number | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may contain spaces: split after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z') return undefined; // dead, only its exit status is left
  const start = Number(fields[19]); // field 22 overall; fields[0] is field 3
  return Number.isFinite(start) ? start : undefined;
}

export function ownerAlive(rec: Pick<InstanceRecord, 'ownerPid' | 'ownerStart'>): boolean {
  return processStart(rec.ownerPid) === rec.ownerStart;
}

export function ownRecord(id: number, tmpDir: string, label: string): InstanceRecord {
  const start = processStart(process.pid);
  if (start === undefined) throw new Error('cannot read /proc/self/stat: is /proc mounted?');
  return { id, ownerPid: process.pid, ownerStart: start, tmpDir, label, createdAt: new Date().toISOString() };
}
