// Releasing what a node's dockerd mounted below the node's directory (its storage driver's
// layers, its containers' network namespaces and shm): a dockerd that stops cleanly unmounts
// them itself, one killed with -9 leaves them, and a directory cannot be removed from under a
// mount. Drives `umount`.
import fs from 'node:fs';
import path from 'node:path';
import { runCommand } from './command.ts';

/** Passes over /proc/self/mountinfo: unmounting one mount can reveal another stacked below it
 *  at the same point; dockerd stacks at most two (a layer on its data root's bind). */
const MAX_PASSES = 4;

/** Mount points at or below `dir`, deepest first. */
export function mountsBelow(dir: string): string[] {
  const root = path.resolve(dir);
  let info: string;
  try {
    info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const points = info
    .split('\n')
    .map((l) => unescapeMount(l.split(' ')[4] ?? ''))
    .filter((p) => p === root || p.startsWith(`${root}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Unmounts everything at or below `dir`, deepest first; a mount still busy is detached lazily
 *  (it goes once its last user does, and it no longer hides anything below `dir`). Returns
 *  problems: mounts that could not even be detached. */
export async function unmountBelow(dir: string): Promise<string[]> {
  const failed = new Map<string, string>();
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const points = mountsBelow(dir);
    if (points.length === 0) return [];
    for (const p of points) {
      const r = await runCommand(['umount', p]);
      if (r.code === 0) continue;
      const lazy = await runCommand(['umount', '--lazy', p]);
      if (lazy.code !== 0) failed.set(p, lazy.stderr.trim());
    }
  }
  const left = mountsBelow(dir);
  return left.map((p) => `cannot unmount ${p}: ${failed.get(p) ?? 'still mounted'}`);
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040 ...). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
