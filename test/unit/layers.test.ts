// The layering ARCHITECTURE.md states, checked on the import graph of the sources: mesh/ builds
// on nothing of ours above it, dns/ uses only mesh/'s leaf files, nothing but the CLI (and the
// CLI's own tests) imports cli/, and no two files import each other, directly or not.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SOURCE_DIRS = ['mesh', 'dns', 'cli', 'scheduler', 'provisioner'];

/** mesh/ files dns/ may use: types and helpers with no peer state behind them. A new entry
 *  here is a decision about layering; make it on purpose. */
const DNS_MAY_USE = new Set([
  'mesh/address.ts', 'mesh/log.ts', 'mesh/log-once.ts', 'mesh/mesh-view.ts', 'mesh/endpoint.ts',
  'mesh/ipam/cidr.ts', 'mesh/ipv4.ts', 'mesh/naming.ts', 'mesh/replication/wire.ts', 'mesh/keyspace.ts',
  'mesh/api/method.ts', 'mesh/api/request.ts', 'mesh/api/table.ts',
]);

/** mesh/ files scheduler/ may use: the cores' output shape, the store and its keys, the mesh
 *  channel its managers talk over, the mesh view, logging, and the API's table and specs. */
const SCHEDULER_MAY_USE = new Set([
  'mesh/ready.ts', 'mesh/store.ts', 'mesh/keyspace.ts', 'mesh/transport/channel.ts', 'mesh/mesh-view.ts', 'mesh/log.ts',
  'mesh/api/method.ts', 'mesh/api/request.ts', 'mesh/api/table.ts', 'mesh/naming.ts',
]);

function walk(dir: string): string[] {
  let out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(join(ROOT, dir));
  } catch {
    return [];
  }
  for (const n of names) {
    const p = join(dir, n);
    if (n.endsWith('.ts')) out.push(p);
    else if (!n.includes('.')) out = out.concat(walk(p));
  }
  return out;
}

/** Relative imports of a file (static, type-only and dynamic), as repository paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\(\s*)'(\.{1,2}\/[^']+)'/g)) {
    out.push(relative(ROOT, resolve(ROOT, dirname(file), m[1] as string)));
  }
  return out;
}

const FILES = SOURCE_DIRS.flatMap(walk);
const GRAPH = new Map(FILES.map((f) => [f, importsOf(f)]));

describe('layers', () => {
  test('the sources are found', () => {
    expect(FILES.length).toBeGreaterThan(100);
    expect(GRAPH.get('mesh/peer.ts')).toContain('mesh/config.ts');
  });

  test('mesh/ imports nothing of dns/, cli/, scheduler/ or provisioner/', () => {
    const bad = [...GRAPH].flatMap(([f, is]) => (f.startsWith('mesh/') ? is.filter((i) => !i.startsWith('mesh/')).map((i) => `${f} -> ${i}`) : []));
    expect(bad).toEqual([]);
  });

  test('dns/ uses only the leaf files of mesh/', () => {
    const bad = [...GRAPH].flatMap(([f, is]) => (f.startsWith('dns/') ? is.filter((i) => i.startsWith('mesh/') && !DNS_MAY_USE.has(i)).map((i) => `${f} -> ${i}`) : []));
    expect(bad).toEqual([]);
  });

  test('scheduler/ uses only the leaf files of mesh/ (the Raft core is pure)', () => {
    const bad = [...GRAPH].flatMap(([f, is]) => (f.startsWith('scheduler/') ? is.filter((i) => (i.startsWith('mesh/') && !SCHEDULER_MAY_USE.has(i)) || i.startsWith('dns/') || i.startsWith('cli/')).map((i) => `${f} -> ${i}`) : []));
    expect(bad).toEqual([]);
  });

  test('only cli/ imports cli/ (and the tests of the CLI itself)', () => {
    const all = [...FILES, ...walk('test'), ...walk('bench'), ...walk('scripts')];
    const bad = all.flatMap((f) => (f.startsWith('cli/') ? [] : importsOf(f).filter((i) => i.startsWith('cli/')).map((i) => `${f} -> ${i}`)));
    // The CLI's own tests: its options table against the README, and its printing of DNS answers.
    const allowed = new Set(['test/unit/cli-reference.test.ts -> cli/launch-options.ts', 'test/dns/service.test.ts -> cli/dns.ts']);
    expect(bad.filter((b) => !allowed.has(b))).toEqual([]);
  });

  test('no import cycles', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const i of GRAPH.get(f) ?? []) {
        if (!GRAPH.has(i)) continue;
        if (state.get(i) === 'open') cycles.push([...stack.slice(stack.indexOf(i)), i].join(' -> '));
        else if (!state.has(i)) visit(i);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of FILES) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });
});
