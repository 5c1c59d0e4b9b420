// A cgroup v2 directory per node, <v2 root>/weft-nodes/<name>, holding everything of the node:
// `daemons/` its dockerd (with containerd and the shims) and its peer (with the wireguard-go
// the peer starts and detaches), `containers/` its containers (dockerd's --cgroup-parent). A
// process cannot leave its cgroup without privileges the node's processes never use, so
// `cgroup.kill` on the node's directory ends all of them at once, also what outlived a peer
// killed with -9. No controllers are enabled: the cgroup only groups, it limits nothing.
//
// On a hybrid host (cgroup v1 hierarchies plus a "unified" v2 one, like the test machines)
// dockerd's cgroupfs driver also makes the containers' directories in every v1 hierarchy,
// under the same --cgroup-parent path; destroy removes those too.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CGROUP_PARENT } from './names.ts';

/** How long to wait for killed processes to leave a cgroup. SIGKILL is delivered at once;
 *  exit is slow only for a process in uninterruptible I/O (a container flushing to disk),
 *  which 10 s covers. */
export const CGROUP_DRAIN_MS = 10_000;
/** How long to retry removing an emptied cgroup: the kernel refuses (EBUSY) until every dead
 *  member is reaped, and our own children are reaped on the next turns of the event loop. */
export const CGROUP_REMOVE_MS = 5_000;
const POLL_MS = 20;

const CANDIDATE_ROOTS = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'];
const V1_BASE = '/sys/fs/cgroup';

/** Where the node's own processes go, beside (not above) its containers: runc enables
 *  controllers in every cgroup on the way to a container's, and the kernel refuses that in a
 *  cgroup that holds processes itself (cgroup v2's "no internal processes" rule). */
const DAEMONS = 'daemons';
const CONTAINERS = 'containers';

let cachedRoot: string | null | undefined;

/** The writable cgroup v2 hierarchy (pure v2, or the "unified" one of a hybrid host), or null. */
export function cgroupRoot(): string | null {
  if (cachedRoot !== undefined) return cachedRoot;
  for (const dir of CANDIDATE_ROOTS) {
    if (!fs.existsSync(path.join(dir, 'cgroup.subtree_control'))) continue;
    try {
      fs.accessSync(dir, fs.constants.W_OK); // EROFS inside an unprivileged container
      cachedRoot = dir;
      return dir;
    } catch {
      // not writable: try the next
    }
  }
  cachedRoot = null;
  return null;
}

/** The node's cgroup directory; throws if there is no writable cgroup v2 hierarchy. */
export function nodeCgroupDir(name: string): string {
  const root = cgroupRoot();
  if (root === null) {
    throw new Error('local nodes need a writable cgroup v2 hierarchy (/sys/fs/cgroup or /sys/fs/cgroup/unified) to track and end their processes');
  }
  return path.join(root, CGROUP_PARENT, name);
}

/** The path dockerd's --cgroup-parent takes (from the hierarchy's root) for the node's containers. */
export function containersCgroupParent(name: string): string {
  return `/${CGROUP_PARENT}/${name}/${CONTAINERS}`;
}

/** The path (from the v2 root) the node's own processes are in, as /proc/PID/cgroup shows it. */
export function daemonsCgroupPath(name: string): string {
  return `/${CGROUP_PARENT}/${name}/${DAEMONS}`;
}

/** Creates the node's cgroup and returns the cgroup.procs file its processes join. */
export function ensureNodeCgroup(name: string): string {
  const dir = path.join(nodeCgroupDir(name), DAEMONS);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    // Another host peer's last destroy may have removed the shared parent just now: once more.
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    fs.mkdirSync(dir, { recursive: true });
  }
  return path.join(dir, 'cgroup.procs');
}

/** True if the process is in the node's daemons cgroup (its v2 line of /proc/PID/cgroup). */
export function inNodeCgroup(pid: number, name: string): boolean {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return false;
  }
  const want = daemonsCgroupPath(name);
  return text.split('\n').some((l) => l.startsWith('0::') && (l.slice(3) === want || l.slice(3).startsWith(`${want}/`)));
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

/** Kills every process of the subtree and waits (bounded) until none is left. Returns the
 *  problem, if one remains. */
export async function killCgroup(dir: string): Promise<string | undefined> {
  if (!fs.existsSync(dir)) return undefined;
  try {
    fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1');
  } catch {
    // kernels before 5.14 have no cgroup.kill: signal each pid instead
    for (const pid of cgroupPids(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
  const deadline = Date.now() + CGROUP_DRAIN_MS;
  for (let i = 0; i < CGROUP_DRAIN_MS / POLL_MS && Date.now() < deadline && populated(dir); i++) await sleep(POLL_MS);
  return populated(dir) ? `cgroup ${dir} still has processes ${cgroupPids(dir).join(' ')} after SIGKILL` : undefined;
}

/** Removes the (emptied) node cgroup in the v2 hierarchy and every v1 one; children before
 *  parents, retrying EBUSY (unreaped members) for a bounded time. Returns problems. */
export async function removeNodeCgroups(name: string): Promise<string[]> {
  const problems: string[] = [];
  const dirs = [...v1Dirs(name)];
  const root = cgroupRoot();
  if (root !== null) dirs.unshift(path.join(root, CGROUP_PARENT, name));
  for (const dir of dirs) {
    for (const d of subtree(dir).reverse()) {
      const p = await rmdirRetrying(d);
      if (p !== undefined) problems.push(p);
    }
  }
  return problems;
}

/** Removes the shared weft-nodes parents once no node is left in them; harmless otherwise. */
export function removeEmptyParents(): void {
  const root = cgroupRoot();
  const parents = [...(root === null ? [] : [path.join(root, CGROUP_PARENT)]), ...v1Hierarchies().map((h) => path.join(h, CGROUP_PARENT))];
  for (const p of parents) {
    try {
      fs.rmdirSync(p);
    } catch {
      // another node's cgroup is in it (or it is gone): keep it
    }
  }
}

/** Node names with a cgroup left, in the v2 hierarchy or a v1 one. */
export function cgroupNodeNames(): string[] {
  const root = cgroupRoot();
  const parents = [...(root === null ? [] : [path.join(root, CGROUP_PARENT)]), ...v1Hierarchies().map((h) => path.join(h, CGROUP_PARENT))];
  const names = new Set<string>();
  for (const p of parents) {
    try {
      for (const e of fs.readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) names.add(e.name);
    } catch {
      // no such parent
    }
  }
  return [...names];
}

async function rmdirRetrying(d: string): Promise<string | undefined> {
  const deadline = Date.now() + CGROUP_REMOVE_MS;
  for (let i = 0; ; i++) {
    try {
      fs.rmdirSync(d);
      return undefined;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (code !== 'EBUSY' || Date.now() >= deadline || i >= CGROUP_REMOVE_MS / POLL_MS) return `cannot remove cgroup ${d}: ${(e as Error).message}`;
    }
    await sleep(POLL_MS);
  }
}

/** The node's directories in the v1 hierarchies (only dockerd's container cgroups are there). */
function v1Dirs(name: string): string[] {
  return v1Hierarchies()
    .map((h) => path.join(h, CGROUP_PARENT, name))
    .filter((d) => fs.existsSync(d));
}

function v1Hierarchies(): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(V1_BASE);
  } catch {
    return [];
  }
  return entries
    .map((e) => path.join(V1_BASE, e))
    .filter((d) => fs.existsSync(path.join(d, 'tasks'))); // only v1 hierarchies have "tasks"
}

function populated(dir: string): boolean {
  try {
    return /^populated 1$/m.test(fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8'));
  } catch {
    return false;
  }
}

/** The directory and its descendant cgroups, parents first. Bounded: a node's cgroups are a
 *  few levels deep, with one child per container. */
const MAX_CGROUPS = 100_000;
function subtree(dir: string): string[] {
  const out: string[] = [];
  const stack = [dir];
  for (let i = 0; i < MAX_CGROUPS && stack.length > 0; i++) {
    const d = stack.pop() as string;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      continue; // gone (or never there)
    }
    out.push(d);
    for (const e of entries) if (e.isDirectory()) stack.push(path.join(d, e.name));
  }
  return out;
}
