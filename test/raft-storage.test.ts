// Raft's state on a real LevelDB: what a core asks to persist survives a reopen exactly, a
// truncated tail leaves no stale entry behind, a snapshot replaces the rows it stands for,
// and a damaged log is refused at open.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { RAFT_ENTRY_PREFIX, RAFT_SNAPSHOT_KEY } from '../mesh/keyspace.ts';
import { Store } from '../mesh/store.ts';
import { Raft } from '../scheduler/raft/raft.ts';
import { RaftDisk } from '../scheduler/raft/storage.ts';
import type { RaftReady } from '../scheduler/raft/types.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function open(dir?: string): Promise<{ dir: string; store: Store }> {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'weft-raft-'));
  if (!dir) dirs.push(d);
  return { dir: d, store: await Store.open(d) };
}

/** Carries a ready out as the peer's shell does: the write, then (for entries) telling the
 *  core they are on disk, which a leader needs to count itself (Raft.appended). */
async function carryOut(core: Raft, disk: RaftDisk, r: RaftReady): Promise<void> {
  if (r.persist) await disk.write(r.persist);
  const last = r.persist?.entries?.entries.at(-1);
  if (last) await carryOut(core, disk, core.appended(last.index, last.term));
}

describe('Raft storage', () => {
  test('a lone server\'s elections and proposals survive a reopen, and the restarted core agrees', async () => {
    const { dir, store } = await open();
    const { disk } = await RaftDisk.open(store);
    const core = new Raft({ id: 'a', voters: ['a'], random: () => 0.5 });
    for (let i = 0; i < 25; i++) await carryOut(core, disk, core.tick());
    for (let i = 0; i < 50; i++) await carryOut(core, disk, core.propose([`cmd-${i}`])!);
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

  test('a snapshot survives a reopen, the rows it stands for are gone, and the restarted core agrees and goes on from it', async () => {
    const { dir, store } = await open();
    const { disk } = await RaftDisk.open(store);
    const core = new Raft({ id: 'a', voters: ['a'], random: () => 0.5 });
    const carry = (r: RaftReady) => carryOut(core, disk, r);
    for (let i = 0; i < 25; i++) await carry(core.tick());
    for (let i = 0; i < 30; i++) await carry(core.propose([`cmd-${i}`])!);
    // The shell applied everything; it compacts to 20 with its state there.
    const compacted = core.compact(20, 'state@20');
    expect(typeof compacted).not.toBe('string');
    expect((compacted as RaftReady).persist).toMatchObject({ snapshot: { index: 20, data: 'state@20', membership: { voters: ['a'], learners: [] } }, compactTo: 20 });
    await carry(compacted as RaftReady);
    for (let i = 30; i < 35; i++) await carry(core.propose([`cmd-${i}`])!);
    await store.close();

    const again = await open(dir);
    const rows = await again.store.scan<{ index: number }>(RAFT_ENTRY_PREFIX);
    expect(rows[0]!.value.index, 'the compacted rows are deleted').toBe(21);
    expect(await again.store.get(RAFT_SNAPSHOT_KEY)).toEqual(core.snapshot());
    const { disk: disk2, storage } = await RaftDisk.open(again.store);
    expect(storage.snapshot).toEqual(core.snapshot());
    expect(storage.entries.at(-1)!.index).toBe(core.log.lastIndex());
    const restarted = new Raft({ id: 'a', voters: ['a'], random: () => 0.5 }, storage);
    expect(restarted.hardState()).toEqual(core.hardState());
    expect(restarted.log.lastIndex()).toBe(core.log.lastIndex());
    expect(restarted.log.term(20)).toBe(core.log.term(20));
    // Its first ready restores the state machine from the snapshot, then applies what follows.
    let first = restarted.tick();
    expect(first.events[0]).toEqual({ type: 'restore', snapshot: core.snapshot() });
    const applied = first.events.flatMap((e) => (e.type === 'committed' ? e.entries.map((x) => x.data) : []));
    // Index 1 is the election's no-op, so the snapshot at 20 holds cmd-0 to cmd-18.
    expect(applied.filter((d) => d !== null)).toEqual(Array.from({ length: 16 }, (_, i) => `cmd-${i + 19}`));
    await carryOut(restarted, disk2, first);
    // It goes on: elected again, it proposes and compacts further on the same disk.
    for (let i = 0; i < 25; i++) {
      first = restarted.tick();
      await carryOut(restarted, disk2, first);
    }
    expect(restarted.role).toBe('leader');
    await carryOut(restarted, disk2, restarted.propose(['cmd-35'])!);
    const last = restarted.log.lastIndex();
    await disk2.write((restarted.compact(last, 'state@last') as RaftReady).persist!);
    await again.store.close();
    const third = await open(dir);
    const { storage: s3 } = await RaftDisk.open(third.store);
    expect(s3.snapshot?.index).toBe(last);
    expect(s3.entries).toEqual([]);
    expect(s3.hardState.commit).toBe(last);
    await third.store.close();
  });

  test('a follower\'s restore replaces its whole stored log, the tail after the snapshot too', async () => {
    const { dir, store } = await open();
    const { disk } = await RaftDisk.open(store);
    const e = (index: number, term: number) => ({ index, term, data: `t${term}i${index}` });
    await disk.write({ hardState: { term: 1, vote: 'a', commit: 2 }, entries: { from: 1, entries: [e(1, 1), e(2, 1), e(3, 1), e(4, 1), e(5, 1)] } });
    const snapshot = { index: 8, term: 2, membership: { voters: ['a', 'b', 'c'], learners: [] }, data: 'state@8' };
    await disk.write({ hardState: { term: 2, vote: null, commit: 8 }, snapshot, compactTo: 8, entries: { from: 9, entries: [] } });
    await disk.write({ entries: { from: 9, entries: [e(9, 2)] } });
    await store.close();
    const again = await open(dir);
    const { storage } = await RaftDisk.open(again.store);
    expect(storage.snapshot).toEqual(snapshot);
    expect(storage.entries).toEqual([e(9, 2)]);
    await again.store.close();
  });

  test('a log that does not start right after its snapshot is refused at open', async () => {
    const { store } = await open();
    await store.put(RAFT_SNAPSHOT_KEY, { index: 5, term: 1, membership: { voters: ['a'], learners: [] }, data: '' });
    await store.put(`${RAFT_ENTRY_PREFIX}${'7'.padStart(16, '0')}`, { index: 7, term: 1, data: null });
    await expect(RaftDisk.open(store)).rejects.toThrow(/gap before entry 7 \(expected 6 after its snapshot at 5\)/);
    await store.close();
  });
});
