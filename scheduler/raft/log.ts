// A server's Raft log in memory, with what of it is not on disk yet. Entries up to `base`
// are compacted away (a snapshot stands for them); the rest are held in order. The core
// (raft.ts) appends, truncates, compacts and restores here; the shell learns what to write
// from `unstable()`.

import type { Entry } from './types.ts';

export class RaftLog {
  /** Index and term of the last compacted entry (0, 0 while nothing is compacted). */
  private base = { index: 0, term: 0 };
  private entries: Entry[] = [];
  /** Indexes of the membership entries held, ascending: the core looks up the newest committed
   *  one on every commit, which must not cost a scan of the whole log. */
  private confIndexes: number[] = [];
  /** The first index not yet handed to the shell to persist. */
  private unstableFrom: number;
  /** Highest index known committed, and highest handed out to be applied. */
  committed = 0;
  applied = 0;

  /** A restore dropped the whole log: the shell must delete what it stored after the snapshot
   *  even though no entry replaces it. */
  private truncatedTail = false;

  /** `persisted` starts right after `base` (the stored snapshot's index and term, if any). */
  constructor(persisted: readonly Entry[] = [], commit = 0, base = { index: 0, term: 0 }) {
    if (persisted.length > 0 && persisted[0]!.index !== base.index + 1) {
      throw new Error(`the stored log starts at ${persisted[0]!.index}, not right after its snapshot at ${base.index}`);
    }
    this.base = { ...base };
    this.entries = [...persisted];
    this.confIndexes = persisted.filter((e) => e.conf).map((e) => e.index);
    this.unstableFrom = this.lastIndex() + 1;
    // What a snapshot holds is committed and applied (the shell restores it first).
    this.committed = Math.max(commit, base.index);
    this.applied = base.index;
  }

  /** The index of the last compacted entry: the snapshot's (0 when there is none). */
  snapshotIndex(): number {
    return this.base.index;
  }

  lastIndex(): number {
    return this.base.index + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.at(-1)?.term ?? this.base.term;
  }

  /** The term of entry `i`, or undefined if it is compacted or beyond the end. */
  term(i: number): number | undefined {
    if (i === this.base.index) return this.base.term;
    if (i < this.base.index || i > this.lastIndex()) return undefined;
    return this.entries[i - this.base.index - 1]?.term;
  }

  matchTerm(i: number, term: number): boolean {
    return this.term(i) === term;
  }

  /** Raft §5.4.1: a candidate's log at least as up to date as ours gets our vote. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** Entries [lo, hi], at most `max` of them. */
  slice(lo: number, hi: number, max: number): Entry[] {
    if (lo <= this.base.index) throw new Error(`entries from ${lo} are compacted (log starts after ${this.base.index})`);
    const from = lo - this.base.index - 1;
    return this.entries.slice(from, Math.min(hi - this.base.index, from + max));
  }

  /** The leader's own proposals. */
  append(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.index !== this.lastIndex() + 1) throw new Error(`append at ${e.index} after ${this.lastIndex()}`);
      this.push(e);
    }
  }

  /** A follower's AppendEntries (Raft §5.3): if the entry at prevIndex has prevTerm, keeps
   *  the entries that agree, cuts the log at the first conflict and appends the rest, and
   *  returns the last index the leader's message vouches for; undefined when prevIndex does
   *  not match. Never cuts a committed entry (a leader that asks that is a bug: thrown). */
  maybeAppend(prevIndex: number, prevTerm: number, entries: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    for (const e of entries) {
      const t = this.term(e.index);
      if (t === e.term) continue;
      if (t !== undefined) {
        if (e.index <= this.committed) throw new Error(`conflict at committed index ${e.index}`);
        this.entries.length = e.index - this.base.index - 1;
        while ((this.confIndexes.at(-1) ?? 0) >= e.index) this.confIndexes.pop();
        this.unstableFrom = Math.min(this.unstableFrom, e.index);
      }
      if (e.index !== this.lastIndex() + 1) throw new Error(`gap before ${e.index}`);
      this.push(e);
    }
    return prevIndex + entries.length;
  }

  /** Moves the commit index forward (never back). */
  commitTo(i: number): void {
    if (i > this.committed) this.committed = Math.min(i, this.lastIndex());
  }

  /** What the shell must write, marked as handed over: the entries from `from` on replace
   *  whatever it holds from `from` on (a truncation always comes with the entry that replaces
   *  the first one cut, so there is always something to write after one). */
  unstable(): { from: number; entries: Entry[] } | undefined {
    if (this.unstableFrom > this.lastIndex() && !this.truncatedTail) return undefined;
    this.truncatedTail = false;
    const from = this.unstableFrom;
    const entries = this.slice(from, this.lastIndex(), Number.MAX_SAFE_INTEGER);
    this.unstableFrom = this.lastIndex() + 1;
    return { from, entries };
  }

  /** The newest membership entry held at or below `upTo`, if any (compacted ones are not
   *  seen: the snapshot carries the membership it covers). */
  lastConf(upTo: number): Entry | undefined {
    for (let i = this.confIndexes.length - 1; i >= 0; i--) {
      const index = this.confIndexes[i]!;
      if (index <= upTo) return this.entries[index - this.base.index - 1];
    }
    return undefined;
  }

  private push(e: Entry): void {
    this.entries.push(e);
    if (e.conf) this.confIndexes.push(e.index);
  }

  /** Drops the entries up to `index` (applied, so committed and handed to the shell), keeping
   *  its term for the consistency check of the append that follows it. */
  compact(index: number): void {
    if (index <= this.base.index) return;
    if (index > this.applied) throw new Error(`cannot compact to ${index}: applied only to ${this.applied}`);
    const term = this.term(index) as number;
    this.entries = this.entries.slice(index - this.base.index);
    this.base = { index, term };
    while (this.confIndexes.length > 0 && this.confIndexes[0]! <= index) this.confIndexes.shift();
  }

  /** A snapshot from the leader replaces the whole log: what it holds is committed and
   *  applied, and nothing held here is kept (entries after it may conflict; the leader sends
   *  them again). */
  restore(index: number, term: number): void {
    this.entries = [];
    this.confIndexes = [];
    this.base = { index, term };
    this.committed = index;
    this.applied = index;
    this.unstableFrom = index + 1;
    this.truncatedTail = true;
  }

  /** Committed entries not yet handed out, in order, marked as handed out. */
  takeCommitted(): Entry[] {
    if (this.committed <= this.applied) return [];
    const out = this.slice(this.applied + 1, this.committed, Number.MAX_SAFE_INTEGER);
    this.applied = this.committed;
    return out;
  }
}
