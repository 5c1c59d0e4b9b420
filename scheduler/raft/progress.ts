// What a leader knows of one follower's log, as etcd's raft tracks it (tracker/progress.go): how
// far it matches, what to send next, and whether to send one probe at a time (after a
// rejection or a silence, while the match point is being found) or to stream optimistically
// (once a send was acknowledged, up to a bound of messages in flight), or to send no entries
// while a snapshot goes out (the follower needs entries the leader compacted away).

import { SnapshotSending } from './snapshot-transfer.ts';
import type { Snapshot } from './types.ts';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  /** Highest index known to match the leader's log. */
  match = 0;
  /** Next index to send. */
  next: number;
  state: ProgressState = 'probe';
  /** In probe: a probe is out, wait for its answer (or the next heartbeat) before another. */
  probeSent = false;
  /** In replicate: last index of each append in flight, oldest first. */
  private readonly inflight: number[] = [];
  /** Heard from since the leader last checked its quorum. */
  recentActive = true;
  /** `match` when the follower last answered a heartbeat (see stalled()). */
  private matchAtHeartbeat = -1;
  /** In snapshot: the transfer under way. */
  snapshot: SnapshotSending | undefined;

  constructor(next: number) {
    this.next = next;
  }

  /** Whether the leader should hold back appends to this follower for now. */
  paused(maxInflight: number): boolean {
    if (this.state === 'snapshot') return true;
    return this.state === 'probe' ? this.probeSent : this.inflight.length >= maxInflight;
  }

  /** An append ending at `last` went out. */
  sent(last: number, count: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = last + 1;
        this.inflight.push(last);
      }
    } else {
      this.probeSent = true;
    }
  }

  /** The follower holds up to `index`; returns whether that was news. */
  acknowledged(index: number): boolean {
    while (this.inflight.length > 0 && (this.inflight[0] as number) <= index) this.inflight.shift();
    if (index <= this.match) return false;
    this.match = index;
    this.next = Math.max(this.next, index + 1);
    this.probeSent = false;
    return true;
  }

  /** The follower rejected an append at `rejected` and holds up to `hint`: back up. Returns
   *  false for a stale rejection (of an index already matched or already backed up past). */
  rejected(rejected: number, hint: number): boolean {
    // Sent before the snapshot: the snapshot's acknowledgement decides what follows it.
    if (this.state === 'snapshot') return false;
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.becomeProbe();
      this.next = Math.max(this.match + 1, Math.min(rejected, hint + 1));
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(this.match + 1, Math.min(rejected, hint + 1));
    this.probeSent = false;
    return true;
  }

  /** The follower answered a heartbeat: true if it is behind and acknowledged nothing since
   *  the previous one, although appends were sent (they may have gone to a follower that was
   *  down, and no transport says so). The leader then probes from the last match again. */
  stalled(lastIndex: number): boolean {
    const stalled = this.state === 'replicate' && this.match < lastIndex && this.match === this.matchAtHeartbeat && this.next > this.match + 1;
    this.matchAtHeartbeat = this.match;
    return stalled;
  }

  /** A heartbeat was answered while the pipeline is full: its appends may have been lost (a
   *  follower cut off for a while acknowledges none), so let one more go. If the follower
   *  lacks what went before, it rejects it, and the rejection turns this into a probe. */
  freeOne(): void {
    if (this.state === 'replicate') this.inflight.shift();
    else this.probeSent = false;
  }

  becomeProbe(): void {
    this.state = 'probe';
    this.probeSent = false;
    this.inflight.length = 0;
    this.next = this.match + 1;
    this.snapshot = undefined;
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.inflight.length = 0;
    this.next = this.match + 1;
    this.snapshot = undefined;
  }

  /** The follower needs entries compacted away: send `snapshot`, and no entries until it is
   *  acknowledged (then the follower continues from the snapshot's index + 1). */
  becomeSnapshot(snapshot: Snapshot, chunkChars: number): void {
    this.state = 'snapshot';
    this.probeSent = false;
    this.inflight.length = 0;
    this.snapshot = new SnapshotSending(snapshot, chunkChars);
  }
}
