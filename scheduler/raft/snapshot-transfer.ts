// Sending a snapshot to a follower that needs entries the leader compacted away, in chunks,
// and assembling it on the follower. Both halves are pure: the core (raft.ts) calls them when
// a follower falls behind the leader's log, when a chunk or its answer arrives, and when a
// heartbeat is answered (to retry a chunk that was lost).
//
// Flow control is one chunk in flight: the leader sends the next chunk when the follower says
// it holds the previous one. At 64 Ki characters a chunk that is ~64 MB/s on a 1 ms LAN round
// trip, which a snapshot of desired state (a few MB) does not need more of. A chunk or its
// answer that is lost is sent again after a few heartbeat rounds the follower answered
// without answering the chunk; a follower that restarted and lost what it had assembled says
// so by rejecting the next chunk with the offset it holds (0), and the leader goes back there.
// Nothing is kept on the follower's disk until the last chunk: a crash mid-transfer loses
// only the chunks, which the leader sends again.

import type { Membership, Snapshot, SnapshotChunk } from './types.ts';

/** Characters of snapshot data per chunk. Once JSON-escaped a character takes at most 6 bytes
 *  (`\u00XX`), so a chunk is at most 384 KiB on the wire: far below the managers' channel's
 *  frame limit (scheduler/manager/wire.ts, 32 MiB) and below the 1 MiB frames of the mesh's
 *  control channel, and small enough that a chunk holds up the heartbeats queued behind it on
 *  the same connection for a few milliseconds at most. */
export const DEFAULT_SNAPSHOT_CHUNK_CHARS = 64 * 1024;
/** The largest chunk a receiver accepts: twice the default, for a leader tuned for larger
 *  chunks, and still under 1 MiB escaped (768 KiB). */
export const MAX_SNAPSHOT_CHUNK_CHARS = 128 * 1024;
/** The largest snapshot a follower assembles (it holds it in memory whole): the desired state
 *  of a cluster (services, stacks, a few KiB each) is a few MB; 64 Mi characters leaves room
 *  for thousands of services and bounds what a hostile member can make us hold. */
export const MAX_SNAPSHOT_CHARS = 64 * 1024 * 1024;
/** Heartbeat answers from the follower, with no answer to the chunk in flight, before it is
 *  sent again: a round trip takes about one heartbeat, so two mean it was lost, not slow. */
export const SNAPSHOT_RETRY_HEARTBEATS = 2;

/** The leader's side: one snapshot going to one follower. */
export class SnapshotSending {
  readonly snapshot: Snapshot;
  private readonly chunkChars: number;
  /** What the follower holds: chunks from here on are sent next. */
  offset = 0;
  /** Heartbeat answers since the chunk in flight went out. */
  private waits = 0;

  constructor(snapshot: Snapshot, chunkChars: number) {
    this.snapshot = snapshot;
    this.chunkChars = Math.max(1, Math.min(chunkChars, MAX_SNAPSHOT_CHUNK_CHARS));
  }

  /** The chunk from `offset`, to send now. */
  chunk(from: string, to: string, term: number): SnapshotChunk {
    const s = this.snapshot;
    this.waits = 0;
    return {
      type: 'snap', from, to, term, index: s.index, snapTerm: s.term, membership: s.membership, ...(s.prior ? { prior: s.prior } : {}),
      offset: this.offset, total: s.data.length, chunk: s.data.slice(this.offset, this.offset + this.chunkChars),
    };
  }

  /** The follower answered a chunk of this snapshot: true if a chunk should go out now (the
   *  next one, or again from where the follower says it is). A stale answer (a duplicate, or
   *  one overtaken by a later answer) changes nothing, so that each chunk sent is answered by
   *  one send at most and duplicates do not multiply the chunks in flight. */
  answered(offset: number, reject: boolean): boolean {
    if (offset > this.snapshot.data.length) return false;
    if (!reject && offset <= this.offset) return false;
    this.offset = offset;
    return true;
  }

  /** The follower answered a heartbeat: true if the chunk in flight is taken as lost. */
  stalled(): boolean {
    return ++this.waits >= SNAPSHOT_RETRY_HEARTBEATS;
  }
}

/** What the follower makes of a chunk. */
export type ChunkResult =
  /** Held; the answer says up to where (reject: the chunk did not follow what is held). */
  | { kind: 'answer'; offset: number; reject: boolean }
  /** The last chunk: the whole snapshot. */
  | { kind: 'complete'; snapshot: Snapshot };

/** The follower's side: the chunks of one snapshot, in order, in memory only. Chunks of one
 *  snapshot from one leader's term are put together; another leader may serialize the same
 *  state differently, so its chunks start afresh. */
export class SnapshotAssembly {
  private current: { leader: string; term: number; index: number; snapTerm: number; total: number; parts: string[]; length: number } | undefined;

  /** Takes a chunk (checked by wire.ts: offset + chunk within total, total bounded). */
  receive(m: SnapshotChunk): ChunkResult {
    const c = this.current;
    const same = c !== undefined && c.leader === m.from && c.term === m.term && c.index === m.index && c.snapTerm === m.snapTerm && c.total === m.total;
    if (!same) {
      // A chunk of a snapshot we hold nothing of (we restarted, or the leader changed): only
      // its start begins one.
      if (m.offset !== 0) return { kind: 'answer', offset: 0, reject: true };
      this.current = { leader: m.from, term: m.term, index: m.index, snapTerm: m.snapTerm, total: m.total, parts: [], length: 0 };
    }
    const a = this.current!;
    // A duplicate, or a resend after our answer was lost: say again how far we are.
    if (m.offset < a.length) return { kind: 'answer', offset: a.length, reject: false };
    if (m.offset > a.length) return { kind: 'answer', offset: a.length, reject: true };
    a.parts.push(m.chunk);
    a.length += m.chunk.length;
    if (a.length < a.total) return { kind: 'answer', offset: a.length, reject: false };
    this.current = undefined;
    return { kind: 'complete', snapshot: snapshotOf(m, a.parts.join('')) };
  }

  /** Drops what is held (a snapshot was installed, or one not needed any more). */
  clear(): void {
    this.current = undefined;
  }
}

function snapshotOf(m: SnapshotChunk, data: string): Snapshot {
  const copy = (x: Membership): Membership => ({ voters: [...x.voters], learners: [...x.learners] });
  return { index: m.index, term: m.snapTerm, membership: copy(m.membership), ...(m.prior ? { prior: copy(m.prior) } : {}), data };
}
