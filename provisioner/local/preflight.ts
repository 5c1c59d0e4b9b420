// What a machine needs to run local nodes, checked before anything is made, each lack said in
// one line with what to do about it.
import fs from 'node:fs';
import path from 'node:path';
import { nodeCgroupDir } from './cgroup.ts';

/** The programs a node's life needs, and where they come from. */
const TOOLS: readonly (readonly [tool: string, from: string])[] = [
  ['ip', 'install iproute2'],
  ['nsenter', 'install util-linux'],
  ['umount', 'install util-linux'],
  ['dockerd', 'install Docker Engine (dockerd)'],
  ['docker', 'install the docker CLI'],
];

/** Throws the first thing missing: root, a tool, a writable cgroup v2 hierarchy. `uid` is the
 *  process's own unless a test asks about another. */
export function checkLocalNodeSupport(uid = process.getuid?.()): void {
  if (uid !== 0) {
    throw new Error('local nodes need root (a network namespace, a bridge, a cgroup and a dockerd per node): run the weft peer as root');
  }
  for (const [tool, from] of TOOLS) {
    if (findOnPath(tool) === undefined) throw new Error(`local nodes need \`${tool}\` on PATH: ${from}`);
  }
  nodeCgroupDir('check'); // throws the sentence when there is no writable cgroup v2
}

export function findOnPath(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir) continue;
    const p = path.join(dir, tool);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}
