// Carries the Raft core's readies out strictly in order, each one's persist synced before its
// messages leave (mesh/ready.ts). Readies made while a write is under way wait and are then
// written as one batch: one fsync for many proposals is what lets a leader commit thousands of
// writes a second on a disk that syncs a few hundred times a second.

import { applyReady, mergeReadies, type ReadyIo } from '../../mesh/ready.ts';
import { earlySends } from '../raft/early-sends.ts';
import type { Entry, RaftEvent, RaftMessage, RaftPersist, RaftReady } from '../raft/types.ts';

/** Several persists, oldest first, as one, as the disk would hold them after writing each in
 *  turn: the newest hard state and snapshot, the furthest compaction, and the entries folded
 *  so that a later range replaces what an earlier one wrote from its start on. Within one
 *  persist the disk applies the snapshot and compaction before the entries (storage.ts), so
 *  earlier entries at or below a later compaction are dropped first. */
export function mergePersists(ps: readonly RaftPersist[]): RaftPersist {
  let out: RaftPersist = {};
  for (const p of ps) {
    let entries = out.entries;
    if (entries && p.compactTo !== undefined) entries = trimTo(entries, p.compactTo);
    if (p.entries) entries = entries ? foldEntries(entries, p.entries) : p.entries;
    out = { ...out, ...p, ...(p.compactTo !== undefined ? { compactTo: Math.max(p.compactTo, out.compactTo ?? 0) } : {}) };
    if (entries) out.entries = entries;
    else delete out.entries;
  }
  return out;
}

/** The entries of a range after `index`, or undefined if none are. */
function trimTo(r: { from: number; entries: Entry[] }, index: number): { from: number; entries: Entry[] } | undefined {
  if (r.from > index) return r;
  const kept = r.entries.slice(index + 1 - r.from);
  return kept.length > 0 ? { from: index + 1, entries: kept } : undefined;
}

function foldEntries(a: { from: number; entries: Entry[] }, b: { from: number; entries: Entry[] }): { from: number; entries: Entry[] } {
  if (b.from <= a.from) return b;
  const end = a.from + a.entries.length;
  // The core's unstable tail is contiguous: a later write starts within or right after it.
  if (b.from > end) throw new Error(`Raft persist ranges are not contiguous: ${a.from}..${end - 1} then ${b.from}`);
  return { from: a.from, entries: [...a.entries.slice(0, b.from - a.from), ...b.entries] };
}

export interface ReadyQueueOptions {
  /** The term on disk when the queue starts (the stored hard state's). */
  durableTerm: number;
  /** A write that held entries is done, up to `last`: the core is told (Raft.appended). */
  onWritten?(last: Entry): void;
}

export class ReadyQueue {
  private pending: RaftReady[] = [];
  private writing = false;
  private failed?: unknown;
  private readonly io: ReadyIo<RaftMessage, RaftPersist, RaftEvent>;
  /** A write failed: the disk no longer holds what the core believes; the node must stop. */
  private readonly onFatal: (err: unknown) => void;
  private readonly onWritten: (last: Entry) => void;
  /** The term the last completed write left on disk (see earlySends). */
  private durable: { term: number };

  constructor(io: ReadyIo<RaftMessage, RaftPersist, RaftEvent>, onFatal: (err: unknown) => void, o: ReadyQueueOptions = { durableTerm: 0 }) {
    this.io = io;
    this.onFatal = onFatal;
    this.onWritten = o.onWritten ?? (() => undefined);
    this.durable = { term: o.durableTerm };
  }

  /** Starts over from what is on disk (after the core was rebuilt from it). */
  reset(durableTerm: number): void {
    this.durable = { term: durableTerm };
  }

  push(r: RaftReady | undefined): void {
    if (!r || this.failed !== undefined) return;
    if (r.persist === undefined && r.send.length === 0 && r.events.length === 0 && r.rejected.length === 0) return;
    // A leader's appends go now, alongside its own write (early-sends.ts); the rest waits.
    const early = new Set(earlySends(r, this.durable));
    for (const m of early) this.io.send(m.to, m);
    this.pending.push(early.size === 0 ? r : { ...r, send: r.send.filter((s) => !early.has(s.msg)) });
    if (!this.writing) void this.drain();
  }

  /** Resolves when everything pushed so far has been carried out. */
  async idle(): Promise<void> {
    for (let i = 0; i < 1000 && (this.writing || this.pending.length > 0) && this.failed === undefined; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0);
        const ready = batch.length === 1 ? batch[0] as RaftReady : mergeReadies(batch, mergePersists);
        await applyReady(ready, this.io);
        if (ready.persist?.hardState) this.durable = { term: ready.persist.hardState.term };
        const last = ready.persist?.entries?.entries.at(-1);
        if (last) this.onWritten(last);
      }
    } catch (err) {
      this.failed = err;
      this.pending = [];
      this.onFatal(err);
    } finally {
      this.writing = false;
    }
  }
}
