// Which control-plane cluster this peer's Raft state belongs to. Two clusters can meet in one
// mesh: two peers each founded one before they were connected, or an operator forced a new
// cluster on a survivor after a permanent loss of quorum while other old managers still run.
// Their logs are unrelated, and Raft would merge them into nonsense (a follower's committed
// entries overwritten, two histories under one index). So every Raft message carries its
// sender's cluster id, and a peer that holds state refuses another cluster's; a peer with no
// state yet joins the cluster of the first leader that replicates to it.

import { randomBytes } from 'node:crypto';
import { RAFT_CLUSTER_KEY } from '../../mesh/keyspace.ts';
import type { Store } from '../../mesh/store.ts';

/** 64 random bits: no two clusters founded anywhere will share one. */
const CLUSTER_ID_BYTES = 8;

export function newClusterId(): string {
  return randomBytes(CLUSTER_ID_BYTES).toString('hex');
}

export class ClusterId {
  private id: string | null;
  private readonly store: Store;
  /** Set when `id` changed and is not on disk yet: written before the next Raft persist. */
  private unsaved = false;

  private constructor(store: Store, id: string | null) {
    this.store = store;
    this.id = id;
  }

  static async load(store: Store): Promise<ClusterId> {
    return new ClusterId(store, (await store.get<string>(RAFT_CLUSTER_KEY)) ?? null);
  }

  get value(): string | null {
    return this.id;
  }

  /** Whether a Raft message of cluster `theirs` may be taken. A peer without a cluster takes
   *  the first leader's (`adopt`: an append or a snapshot, not a vote request, which anyone
   *  could send) and keeps it. `adopt` is asked only then: a peer in a cluster never needs it. */
  admits(theirs: string | undefined, adopt: () => boolean): boolean {
    if (this.id === null) {
      if (!theirs || !adopt()) return false;
      this.set(theirs);
      return true;
    }
    return theirs === this.id;
  }

  set(id: string): void {
    this.id = id;
    this.unsaved = true;
  }

  /** Writes the id if it changed: before the Raft state that belongs to it. */
  async save(): Promise<void> {
    if (!this.unsaved || this.id === null) return;
    await this.store.put(RAFT_CLUSTER_KEY, this.id, true);
    this.unsaved = false;
  }

  /** Forgets the cluster (with the Raft state, by `weft manager reset`). */
  async clear(): Promise<void> {
    this.id = null;
    this.unsaved = false;
    await this.store.batch([{ key: RAFT_CLUSTER_KEY }], true);
  }
}
