// Raft's state on a real LevelDB: what a core asks to persist survives a reopen exactly, a
// truncated tail leaves no stale entry behind, and a damaged log is refused at open.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { RAFT_ENTRY_PREFIX } from '../mesh/keyspace.ts';
import { Store } from '../mesh/store.ts';
import { Raft } from '../scheduler/raft/raft.ts';
import { RaftDisk } from '../scheduler/raft/storage.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function open(dir?: string): Promise<{ dir: string; store: Store }> {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'weft-raft-'));
  if (!dir) dirs.push(d);
  return { dir: d, store: await Store.open(d) };
}

describe('Raft storage', () => {
  test('a lone server\'s elections and proposals survive a reopen, and the restarted core agrees', async () => {
    const { dir, store } = await open();
    const { disk } = await RaftDisk.open(store);
    const core = new Raft({ id: 'a', voters: ['a'], random: () => 0.5 });
    for (let i = 0; i < 25; i++) {
      const r = core.tick();
      if (r.persist) await disk.write(r.persist);
    }
    for (let i = 0; i < 50; i++) {
      const r = core.propose([`cmd-${i}`])!;
      if (r.persist) await disk.write(r.persist);
    }
    await store.close();
    const again = await open(dir);
    const { storage } = await RaftDisk.open(again.store);
    expect(storage.hardState).toEqual(core.hardState());
    expect(storage.entries.map((e) => e.data).filter((d) => d !== null)).toEqual(Array.from({ length: 50 }, (_, i) => `cmd-${i}`));
    const restarted = new Raft({ id: 'a', voters: ['a'], random: () => 0.5 }, storage);
    expect(restarted.log.lastIndex()).toBe(core.log.lastIndex());
    expect(restarted.term).toBe(core.term);
    await again.store.close();
  });

  test('entries from a truncation point replace the stored tail; nothing stale is left', async () => {
    const { dir, store } = await open();
    const { disk } = await RaftDisk.open(store);
    const e = (index: number, term: number) => ({ index, term, data: `t${term}i${index}` });
    await disk.write({ hardState: { term: 1, vote: 'a', commit: 2 }, entries: { from: 1, entries: [e(1, 1), e(2, 1), e(3, 1), e(4, 1), e(5, 1)] } });
    await disk.write({ hardState: { term: 2, vote: null, commit: 2 }, entries: { from: 3, entries: [e(3, 2)] } });
    await store.close();
    const again = await open(dir);
    const { storage } = await RaftDisk.open(again.store);
    expect(storage.entries).toEqual([e(1, 1), e(2, 1), e(3, 2)]);
    expect(storage.hardState).toEqual({ term: 2, vote: null, commit: 2 });
    await again.store.close();
  });

  test('a log with a gap, or shorter than its commit index, is refused at open in one sentence', async () => {
    const { store } = await open();
    await store.put(`${RAFT_ENTRY_PREFIX}${'1'.padStart(16, '0')}`, { index: 1, term: 1, data: null });
    await store.put(`${RAFT_ENTRY_PREFIX}${'3'.padStart(16, '0')}`, { index: 3, term: 1, data: null });
    await expect(RaftDisk.open(store)).rejects.toThrow(/gap before entry 3/);
    await store.del(`${RAFT_ENTRY_PREFIX}${'3'.padStart(16, '0')}`);
    await store.put('raft/hard-state', { term: 1, vote: null, commit: 5 });
    await expect(RaftDisk.open(store)).rejects.toThrow(/below its commit index 5/);
    await store.close();
  });
});
