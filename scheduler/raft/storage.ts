// Raft's durable state in the peer's LevelDB: the hard state, the newest snapshot, and the log
// after it, one row per entry, keyed by zero-padded index so that a scan returns them in order.
// A ready's persist is written as one synced batch (what the core asks to persist must be on
// disk before its messages leave); a snapshot and the deletion of the rows it stands for go in
// the same batch, so a crash leaves either the old snapshot and rows or the new ones; entries
// from `from` on replace the stored tail, so a truncation never leaves a stale entry behind.

import { RAFT_ENTRY_PREFIX, RAFT_HARD_STATE_KEY, RAFT_SNAPSHOT_KEY } from '../../mesh/keyspace.ts';
import type { Store } from '../../mesh/store.ts';
import type { Entry, HardState, RaftPersist, RaftStorage, Snapshot } from './types.ts';

/** 16 digits: more indexes than a log will ever reach (10^16), and lexical order is numeric. */
const INDEX_DIGITS = 16;

function entryKey(index: number): string {
  return RAFT_ENTRY_PREFIX + String(index).padStart(INDEX_DIGITS, '0');
}

export class RaftDisk {
  private readonly store: Store;
  /** The first index that may have a row (the snapshot's index + 1), so a compaction knows
   *  which rows to delete. */
  private first: number;
  /** The last index on disk (the snapshot's when no row follows it), so a truncation knows
   *  which rows to delete. */
  private last: number;

  private constructor(store: Store, first: number, last: number) {
    this.store = store;
    this.first = first;
    this.last = last;
  }

  /** What was persisted, checked: the log must run without gaps from right after the snapshot
   *  (from 1 without one); anything else is a damaged store, and starting from it could break
   *  Raft's guarantees. */
  static async open(store: Store): Promise<{ disk: RaftDisk; storage: RaftStorage }> {
    const hardState = (await store.get<HardState>(RAFT_HARD_STATE_KEY)) ?? { term: 0, vote: null, commit: 0 };
    const snapshot = await store.get<Snapshot>(RAFT_SNAPSHOT_KEY);
    const after = snapshot?.index ?? 0;
    const entries = (await store.scan<Entry>(RAFT_ENTRY_PREFIX)).map((r) => r.value);
    entries.forEach((e, i) => {
      const expected = after + 1 + i;
      if (e.index !== expected) {
        const where = snapshot ? ` after its snapshot at ${after}` : '';
        throw new Error(`the Raft log on disk has a gap before entry ${e.index} (expected ${expected}${where})`);
      }
    });
    const last = after + entries.length;
    if (hardState.commit > last) throw new Error(`the Raft log on disk ends at ${last}, below its commit index ${hardState.commit}`);
    return { disk: new RaftDisk(store, after + 1, last), storage: { hardState, entries, ...(snapshot ? { snapshot } : {}) } };
  }

  /** Writes a ready's persist in one synced batch. */
  async write(p: RaftPersist): Promise<void> {
    const ops: { key: string; value?: unknown }[] = [];
    if (p.hardState) ops.push({ key: RAFT_HARD_STATE_KEY, value: p.hardState });
    let first = this.first;
    let last = this.last;
    if (p.snapshot) ops.push({ key: RAFT_SNAPSHOT_KEY, value: p.snapshot });
    if (p.compactTo !== undefined && p.compactTo >= first) {
      for (let i = first; i <= Math.min(p.compactTo, last); i++) ops.push({ key: entryKey(i) });
      first = p.compactTo + 1;
      last = Math.max(last, p.compactTo);
    }
    if (p.entries) {
      const { from, entries } = p.entries;
      for (let i = Math.max(from, first); i <= last; i++) ops.push({ key: entryKey(i) });
      for (const e of entries) ops.push({ key: entryKey(e.index), value: e });
      last = Math.max(from - 1 + entries.length, first - 1);
    }
    // A deletion and a put of one key in one batch: the put is later, so it wins.
    await this.store.batch(ops, true);
    this.first = first;
    this.last = last;
  }

  /** Deletes every row of Raft state (`weft manager reset`): the peer then holds none. */
  static async wipe(store: Store): Promise<void> {
    const rows = await store.scan<unknown>(RAFT_ENTRY_PREFIX);
    await store.batch([...rows.map((r) => ({ key: r.key })), { key: RAFT_HARD_STATE_KEY }, { key: RAFT_SNAPSHOT_KEY }], true);
  }
}
