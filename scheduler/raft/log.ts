// A server's Raft log in memory, with what of it is not on disk yet. Entries before `base`
// are compacted away (a snapshot will stand for them); the rest are held in order. The core
// (raft.ts) appends and truncates here; the shell learns what to write from `unstable()`.

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

  constructor(persisted: readonly Entry[] = [], commit = 0) {
    this.entries = [...persisted];
    this.confIndexes = persisted.filter((e) => e.conf).map((e) => e.index);
    this.unstableFrom = this.lastIndex() + 1;
    this.committed = commit;
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
    if (this.unstableFrom > this.lastIndex()) return undefined;
    const from = this.unstableFrom;
    const entries = this.slice(from, this.lastIndex(), Number.MAX_SAFE_INTEGER);
    this.unstableFrom = this.lastIndex() + 1;
    return { from, entries };
  }

  /** The newest membership entry held at or below `upTo`, if any (compacted ones are not
   *  seen: snapshots will carry the membership they cover). */
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

  /** Committed entries not yet handed out, in order, marked as handed out. */
  takeCommitted(): Entry[] {
    if (this.committed <= this.applied) return [];
    const out = this.slice(this.applied + 1, this.committed, Number.MAX_SAFE_INTEGER);
    this.applied = this.committed;
    return out;
  }
}
