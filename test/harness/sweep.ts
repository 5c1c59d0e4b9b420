// Tearing an instance down by its id: what cleanup(), the exit hooks and the stale sweep share.
// Works from names alone (see names.ts), so it also removes what a crashed run left behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cgroupDir, CGROUP_PARENT, cgroupRoot, cgroupV1Dirs, killCgroupSync, removeCgroupSync, sleepSync } from './cgroup.ts';
import { ownerAlive, processStart, readRecord, recordedIds, removeRecord, tryLease } from './lease.ts';
import { removeShimSocketsSync } from './dockerd.ts';
import { idOfNamespace, instanceTag } from './names.ts';
import { runSync } from './run.ts';

/** Where `ip netns add` mounts named namespaces. */
const NETNS_DIR = '/var/run/netns';

/** How long teardown waits for killed namespace members to be gone (see CGROUP_DRAIN_MS). */
export const KILL_DRAIN_MS = 5_000;

export interface TeardownOptions {
  /** The instance's temp directory (logs, data dirs): unmounted below and removed. */
  tmpDir?: string;
  /** Keep the temp directory for a post-mortem (its mounts are still released). */
  keepTmp?: boolean;
  /** Do not report cgroups that are busy only with unreaped zombies (see removeCgroupSync):
   *  an exit hook cannot reap its children, and the next sweep removes what remains. */
  tolerateUnreaped?: boolean;
}

/**
 * Removes everything of instance `id`: its processes (cgroup subtree, then any process still
 * inside one of its namespaces), its namespaces (and with them the switch bridges and veths),
 * mounts under its temp dir, the temp dir and its record. Synchronous, for the exit hooks.
 * The caller must hold the id's lease. Returns the problems it could not fix (empty = clean).
 */
export function teardownSync(id: number, opts: TeardownOptions = {}): string[] {
  const problems = killInstanceSync(id);
  const nss = instanceNamespaces(id);
  if (nss.length > 0) {
    // One ip process for all: this also runs in a signal hook that may have little time.
    const r = runSync(['ip', '-batch', '-'], { input: nss.map((ns) => `netns delete ${ns}\n`).join('') });
    if (r.code !== 0) problems.push(`cannot delete namespaces ${nss.join(' ')}: ${r.stderr.trim()}`);
  }
  const cg = cgroupDir(instanceTag(id));
  if (cg !== null) removeCgroupSync(cg, problems, opts.tolerateUnreaped ? [] : problems);
  // Containers' v1 cgroups (empty now: their processes died with the v2 kill).
  for (const d of cgroupV1Dirs(instanceTag(id))) removeCgroupSync(d, problems, opts.tolerateUnreaped ? [] : problems);
  if (opts.tmpDir !== undefined && isHarnessTmp(opts.tmpDir, id)) {
    for (const host of subdirs(opts.tmpDir)) removeShimSocketsSync(path.join(opts.tmpDir, host, 'docker'));
    const left = unmountBelow(opts.tmpDir, problems);
    if (!opts.keepTmp) {
      if (left) problems.push(`kept ${opts.tmpDir}: mounts below it could not be released`);
      else fs.rmSync(opts.tmpDir, { recursive: true, force: true });
    }
  }
  removeRecord(id);
  return problems;
}

/**
 * SIGKILLs every process of instance `id`: its cgroup subtree, then anything else still inside
 * one of its namespaces; waits (bounded) until they are dead. Returns problems.
 */
export function killInstanceSync(id: number): string[] {
  const problems: string[] = [];
  const cg = cgroupDir(instanceTag(id));
  if (cg !== null) problems.push(...killCgroupSync(cg));
  const stragglers: number[] = [];
  for (const ns of instanceNamespaces(id)) {
    for (const pid of namespacePids(ns)) {
      stragglers.push(pid);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  waitGone(stragglers, problems);
  return problems;
}

/** The instance's namespaces, hosts before the switch (no veth left dangling into a
 *  half-removed switch). */
function instanceNamespaces(id: number): string[] {
  const nss = listNamespaces().filter((n) => idOfNamespace(n) === id);
  return nss.sort((a, b) => Number(a.endsWith('sw')) - Number(b.endsWith('sw')));
}

/**
 * Removes the leftovers of earlier harness runs whose owner is dead: namespaces, records and
 * cgroups named for an id that nobody holds the lease of and whose recorded owner pid is gone.
 * Leftovers of a live owner (another test file running now) are never touched. Returns the
 * ids it swept.
 */
export async function sweepStale(): Promise<number[]> {
  const ids = new Set<number>(recordedIds());
  for (const ns of listNamespaces()) {
    const id = idOfNamespace(ns);
    if (id !== undefined) ids.add(id);
  }
  for (const id of cgroupIds()) ids.add(id);
  const swept: number[] = [];
  for (const id of [...ids].sort((a, b) => a - b)) {
    if ((await sweepId(id)) === 'swept') swept.push(id);
  }
  return swept;
}

export type SweepOutcome = 'swept' | 'nothing left' | 'lease held' | 'owner alive';

/** Tears instance `id` down if anything of it is left and its owner is gone (the lease is
 *  free and the recorded owner is dead or unrecorded). Problems are logged, not thrown. */
export async function sweepId(id: number): Promise<SweepOutcome> {
  const lease = await tryLease(id);
  if (lease === null) return 'lease held';
  try {
    const { outcome, problems } = sweepLeased(id);
    if (problems.length > 0) console.warn(`weft harness: sweeping stale ${instanceTag(id)}: ${problems.join('; ')}`);
    return outcome;
  } finally {
    lease.release();
  }
}

/** sweepId for a caller that already holds the id's lease. */
export function sweepLeased(id: number): { outcome: SweepOutcome; problems: string[] } {
  const rec = readRecord(id);
  if (rec !== undefined && ownerAlive(rec)) return { outcome: 'owner alive', problems: [] };
  const tag = instanceTag(id);
  const cg = cgroupDir(tag);
  const anything = rec !== undefined || instanceNamespaces(id).length > 0 || (cg !== null && fs.existsSync(cg)) || cgroupV1Dirs(tag).length > 0;
  if (!anything) return { outcome: 'nothing left', problems: [] };
  return { outcome: 'swept', problems: teardownSync(id, { tmpDir: rec?.tmpDir }) };
}

/** Network namespaces registered with `ip netns` (the names under /var/run/netns). */
export function listNamespaces(): string[] {
  try {
    return fs.readdirSync(NETNS_DIR).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Pids of the processes whose network namespace is `ns` (what `ip netns pids` prints, read
 *  here directly from /proc: no process to start, which matters in a signal hook). */
export function namespacePids(ns: string): number[] {
  let target: string;
  try {
    target = `net:[${fs.statSync(`${NETNS_DIR}/${ns}`).ino}]`;
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (fs.readlinkSync(`/proc/${d}/ns/net`) === target) pids.push(Number(d));
    } catch {
      // exited, or a kernel thread
    }
  }
  return pids;
}

/** Ids with a harness cgroup, in the v2 hierarchy or (containers') v1 ones. */
function cgroupIds(): number[] {
  const root = cgroupRoot();
  const parents = [...(root === null ? [] : [path.join(root, CGROUP_PARENT)]), ...cgroupV1Dirs()];
  const ids: number[] = [];
  for (const parent of parents) {
    try {
      for (const n of fs.readdirSync(parent)) {
        const m = /^wt(\d+)$/.exec(n);
        if (m) ids.push(Number(m[1]));
      }
    } catch {
      // no such hierarchy
    }
  }
  return ids;
}

function waitGone(pids: number[], problems: string[]): void {
  const deadline = Date.now() + KILL_DRAIN_MS;
  let alive = pids;
  for (let i = 0; i < KILL_DRAIN_MS / 10 && alive.length > 0 && Date.now() < deadline; i++) {
    sleepSync(10);
    alive = alive.filter((pid) => processStart(pid) !== undefined);
  }
  if (alive.length > 0) problems.push(`processes did not die: ${alive.join(' ')}`);
}

function subdirs(dir: string): string[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}

/** Only directories the harness made are ever removed: <tmpdir>/wt<id>-XXXXXX. */
function isHarnessTmp(dir: string, id: number): boolean {
  const resolved = path.resolve(dir);
  return path.dirname(resolved) === path.resolve(os.tmpdir()) && path.basename(resolved).startsWith(`${instanceTag(id)}-`);
}

/** Lazily unmounts everything mounted below `dir` (a killed dockerd leaves its overlay and
 *  netns mounts). Returns true if something could not be released. */
function unmountBelow(dir: string, problems: string[]): boolean {
  const prefix = `${path.resolve(dir)}/`;
  let info: string;
  try {
    info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  const points = info
    .split('\n')
    .map((l) => unescapeMount(l.split(' ')[4] ?? ''))
    .filter((p) => p.startsWith(prefix))
    .sort((a, b) => b.length - a.length); // deepest first
  let left = false;
  for (const p of new Set(points)) {
    const r = runSync(['umount', '--lazy', p]);
    if (r.code !== 0) {
      left = true;
      problems.push(`cannot unmount ${p}: ${r.stderr.trim()}`);
    }
  }
  return left;
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040 ...). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
