// What a benchmark ran against, printed first so that a figure can be traced to a tree and
// a machine state: the commit (and whether the tree had changes), Node, Serf, the load.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { SERF_BIN } from './serf.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? (r.stdout.split('\n')[0] ?? '').trim() : 'unknown';
}

export function printEnvironment(bench: string): void {
  const described = firstLine('git', ['describe', '--always', '--dirty']);
  const tree = described === 'unknown' ? `${ROOT} (not a git checkout)` : described;
  const serf = firstLine(SERF_BIN, ['version']);
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`${bench}: weft ${tree}, node ${process.version}, ${serf}, ${os.cpus().length} cores, load ${load}, ${new Date().toISOString()}`);
}
