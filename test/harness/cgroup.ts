// Process tracking through a cgroup v2 directory per instance and host. A process cannot
// leave its cgroup without privileges we never give it, and `cgroup.kill` ends a whole
// subtree at once, also the daemons a peer or dockerd forks and detaches. No controllers are
// enabled: the cgroup only groups, it limits nothing.
import fs from 'node:fs';
import path from 'node:path';

/** Parent directory of all harness cgroups, under the cgroup v2 root. */
export const CGROUP_PARENT = 'weft-harness';

/** How long to wait for killed processes to leave a cgroup. SIGKILL is delivered at once;
 *  exit takes long only for a process in uninterruptible I/O, which 5 s covers on a disk. */
export const CGROUP_DRAIN_MS = 5_000;

const CANDIDATE_ROOTS = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'];

let cachedRoot: string | null | undefined;

/** The mounted cgroup v2 hierarchy (pure v2, or the "unified" one of a hybrid host), or null. */
export function cgroupRoot(): string | null {
  if (cachedRoot !== undefined) return cachedRoot;
  cachedRoot = null;
  for (const dir of CANDIDATE_ROOTS) {
    if (fs.existsSync(path.join(dir, 'cgroup.subtree_control')) && fs.existsSync(path.join(dir, 'cgroup.procs'))) {
      try {
        fs.mkdirSync(path.join(dir, CGROUP_PARENT), { recursive: true });
        cachedRoot = dir;
        break;
      } catch {
        // read-only cgroupfs (an unprivileged container): fall back to namespace pids
      }
    }
  }
  return cachedRoot;
}

/** Absolute path of a harness cgroup, e.g. cgroupDir('wt5', 'h1'), or null without cgroup v2. */
export function cgroupDir(...parts: string[]): string | null {
  const root = cgroupRoot();
  return root === null ? null : path.join(root, CGROUP_PARENT, ...parts);
}

/** Creates the cgroup (and parents) and returns its cgroup.procs path, or null without v2. */
export function ensureCgroup(...parts: string[]): string | null {
  const dir = cgroupDir(...parts);
  if (dir === null) return null;
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, 'cgroup.procs');
}

/** The same path in each cgroup v1 hierarchy (a hybrid host, like this one: dockerd's
 *  cgroupfs driver puts containers there too, under the --cgroup-parent path), if present. */
export function cgroupV1Dirs(...parts: string[]): string[] {
  const base = '/sys/fs/cgroup';
  let entries: string[];
  try {
    entries = fs.readdirSync(base);
  } catch {
    return [];
  }
  return entries
    .map((e) => path.join(base, e))
    .filter((d) => fs.existsSync(path.join(d, 'tasks'))) // only v1 hierarchies have "tasks"
    .map((d) => path.join(d, CGROUP_PARENT, ...parts))
    .filter((d) => fs.existsSync(d));
}

/** Pids in the cgroup and all of its descendants. */
export function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  for (const d of subtree(dir)) {
    try {
      for (const line of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) {
        if (line) pids.push(Number(line));
      }
    } catch {
      // removed meanwhile
    }
  }
  return pids;
}

/**
 * Kills every process in the cgroup subtree and waits (bounded) until none is left running.
 * Synchronous, so the process exit hook can use it. Returns problems found.
 */
export function killCgroupSync(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  killSubtree(dir);
  const deadline = Date.now() + CGROUP_DRAIN_MS;
  for (let i = 0; i < CGROUP_DRAIN_MS / 10 && Date.now() < deadline; i++) {
    if (!populated(dir)) return [];
    sleepSync(10);
  }
  return populated(dir) ? [`cgroup ${dir} still has processes ${cgroupPids(dir).join(' ')}`] : [];
}

/**
 * Removes the (drained) cgroup subtree. The kernel refuses (EBUSY) while a dead member is not
 * yet reaped: a zombie child of this very process, when called before the event loop could
 * reap it. `busy` collects those; the next harness start sweeps the empty directories.
 */
export function removeCgroupSync(dir: string, problems: string[], busy: string[] = problems): void {
  // Children before parents: rmdir fails on a cgroup with child cgroups.
  for (const d of subtree(dir).reverse()) {
    try {
      fs.rmdirSync(d);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      (code === 'EBUSY' ? busy : problems).push(`cannot remove cgroup ${d}: ${(e as Error).message}`);
    }
  }
}

function killSubtree(dir: string): void {
  try {
    fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1');
    return;
  } catch {
    // kernels before 5.14 have no cgroup.kill: signal each pid instead
  }
  for (const pid of cgroupPids(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function populated(dir: string): boolean {
  try {
    return /^populated 1$/m.test(fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8'));
  } catch {
    return false;
  }
}

/** The directory and its descendant cgroups, parents first. */
function subtree(dir: string): string[] {
  const out: string[] = [];
  const stack = [dir];
  // Bounded: harness cgroups are at most a few levels deep with a handful of children.
  for (let i = 0; i < 10_000 && stack.length > 0; i++) {
    const d = stack.pop() as string;
    out.push(d);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) if (e.isDirectory()) stack.push(path.join(d, e.name));
  }
  return out;
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
