// Raft's durable state in the peer's LevelDB: the hard state and the log, one row per entry,
// keyed by zero-padded index so that a scan returns them in order. A ready's persist is written
// as one synced batch (what the core asks to persist must be on disk before its messages
// leave); entries from `from` on replace the stored tail, so a truncation never leaves a stale
// entry behind.

import { RAFT_ENTRY_PREFIX, RAFT_HARD_STATE_KEY } from '../../mesh/keyspace.ts';
import type { Store } from '../../mesh/store.ts';
import type { Entry, HardState, RaftPersist, RaftStorage } from './types.ts';

/** 16 digits: more indexes than a log will ever reach (10^16), and lexical order is numeric. */
const INDEX_DIGITS = 16;

function entryKey(index: number): string {
  return RAFT_ENTRY_PREFIX + String(index).padStart(INDEX_DIGITS, '0');
}

export class RaftDisk {
  private readonly store: Store;
  /** The last index on disk, so a truncation knows which rows to delete. */
  private last: number;

  private constructor(store: Store, last: number) {
    this.store = store;
    this.last = last;
  }

  /** What was persisted, checked: the log must run from 1 without gaps (anything else is a
   *  damaged store, and starting from it could break Raft's guarantees). */
  static async open(store: Store): Promise<{ disk: RaftDisk; storage: RaftStorage }> {
    const hardState = (await store.get<HardState>(RAFT_HARD_STATE_KEY)) ?? { term: 0, vote: null, commit: 0 };
    const entries = (await store.scan<Entry>(RAFT_ENTRY_PREFIX)).map((r) => r.value);
    entries.forEach((e, i) => {
      if (e.index !== i + 1) throw new Error(`the Raft log on disk has a gap before entry ${e.index} (expected ${i + 1})`);
    });
    if (hardState.commit > entries.length) throw new Error(`the Raft log on disk ends at ${entries.length}, below its commit index ${hardState.commit}`);
    return { disk: new RaftDisk(store, entries.length), storage: { hardState, entries } };
  }

  /** Writes a ready's persist in one synced batch. */
  async write(p: RaftPersist): Promise<void> {
    const ops: { key: string; value?: unknown }[] = [];
    if (p.hardState) ops.push({ key: RAFT_HARD_STATE_KEY, value: p.hardState });
    let last = this.last;
    if (p.entries) {
      const { from, entries } = p.entries;
      for (let i = from; i <= this.last; i++) ops.push({ key: entryKey(i) });
      for (const e of entries) ops.push({ key: entryKey(e.index), value: e });
      last = from - 1 + entries.length;
    }
    // A deletion and a put of one key in one batch: the put is later, so it wins.
    await this.store.batch(ops, true);
    this.last = last;
  }
}
