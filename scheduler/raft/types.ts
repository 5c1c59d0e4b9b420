// Raft's vocabulary: log entries, the state every server must keep on disk, the messages
// servers exchange, and what the core (raft.ts) takes and gives. Types only, shared by the
// core, its log (log.ts), the wire decoder (wire.ts) and the simulations.

import type { Ready } from '../../mesh/ready.ts';

/** Who the servers are: voters elect and count for commitment; learners (non-voters) only
 *  receive the log, so a new server can catch up before it votes (thesis §4.2.1). */
export interface Membership {
  voters: string[];
  learners: string[];
}

/** One log entry. `data` is the command, opaque to Raft; null for the no-op a new leader
 *  appends to commit its predecessors' entries (Raft §5.4.2) and for a membership change,
 *  which carries the whole new membership in `conf` and takes effect when committed. */
export interface Entry {
  index: number;
  term: number;
  data: string | null;
  conf?: Membership;
}

/** What must be on disk before any message that depends on it leaves (Raft's Figure 2:
 *  currentTerm and votedFor; the commit index too, so a restart re-applies no further than
 *  it knows is committed, as etcd's HardState does). */
export interface HardState {
  term: number;
  vote: string | null;
  commit: number;
}

/** A request to vote; `pre` for a pre-vote (Ongaro's thesis §9.6), which asks whether the
 *  receiver would vote at `term` without anyone changing term. */
export interface VoteRequest {
  type: 'vote';
  pre: boolean;
  from: string;
  to: string;
  term: number;
  lastIndex: number;
  lastTerm: number;
  /** Sent on the leader's request to hand over leadership: receivers ignore their lease. */
  transfer?: boolean;
}

export interface VoteResponse {
  type: 'vote-resp';
  pre: boolean;
  from: string;
  to: string;
  /** The request's term when granted (a pre-vote grants without adopting it), else ours. */
  term: number;
  granted: boolean;
}

export interface Append {
  type: 'app';
  from: string;
  to: string;
  term: number;
  prevIndex: number;
  prevTerm: number;
  entries: Entry[];
  commit: number;
}

export interface AppendResponse {
  type: 'app-resp';
  from: string;
  to: string;
  term: number;
  /** Accepted: the last index the follower now holds from the leader. Rejected: the index
   *  the leader asked about. */
  index: number;
  reject: boolean;
  /** On a rejection, the follower's last index: the leader backs up to it at once instead of
   *  one entry per round trip. */
  hint: number;
}

/** The leader's keep-alive; carries the commit index the follower may apply up to (no more
 *  than the follower is known to hold, so it never commits an entry it has not matched). */
export interface Heartbeat {
  type: 'heartbeat';
  from: string;
  to: string;
  term: number;
  commit: number;
  /** A read waiting for this round to confirm leadership (ReadIndex), echoed in the answer. */
  ctx?: string;
}

export interface HeartbeatResponse {
  type: 'heartbeat-resp';
  from: string;
  to: string;
  term: number;
  ctx?: string;
}

/** The leader tells a caught-up follower to campaign at once (leadership transfer). */
export interface TimeoutNow {
  type: 'timeout-now';
  from: string;
  to: string;
  term: number;
}

/** What a server keeps in place of the log up to `index`, once it has applied that far: the
 *  state machine's serialized state there (`data`, opaque to Raft), and what Raft itself needs
 *  of the entries it stands for: the term at `index` (the next append's consistency check) and
 *  the membership in force at `index` (its entry may be compacted away). */
export interface Snapshot {
  index: number;
  term: number;
  membership: Membership;
  /** The membership before the newest change at or below `index`; absent when no change was
   *  ever made. A server whose removal is that change may still campaign (see mayCampaign in
   *  raft.ts), which it could not tell once the change's entry is compacted away. */
  prior?: Membership;
  data: string;
}

/** One piece of a snapshot, leader to a follower that lacks entries the leader compacted
 *  away (snapshot-transfer.ts). The snapshot's data is sent as chunks of its characters, one at
 *  a time: `offset` is where this chunk starts in the data, `total` the data's length; the
 *  last chunk is the one that reaches `total`. Every chunk repeats what identifies the snapshot,
 *  so a follower that restarted mid-transfer can tell where it is from any of them. */
export interface SnapshotChunk {
  type: 'snap';
  from: string;
  to: string;
  term: number;
  index: number;
  snapTerm: number;
  membership: Membership;
  prior?: Membership;
  offset: number;
  total: number;
  chunk: string;
}

/** A follower's answer to a chunk that is not the last: it holds the data up to `offset` of the
 *  snapshot at `index`. `reject` when the chunk did not fit (it lacks what comes before, after a
 *  loss or a restart): the leader resends from `offset`. The last chunk is answered with an
 *  AppendResponse at the snapshot's index, as an append would be. */
export interface SnapshotResponse {
  type: 'snap-resp';
  from: string;
  to: string;
  term: number;
  index: number;
  offset: number;
  reject: boolean;
}

export type RaftMessage =
  | VoteRequest | VoteResponse | Append | AppendResponse | Heartbeat | HeartbeatResponse | TimeoutNow | SnapshotChunk | SnapshotResponse;

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

export interface RaftOptions {
  id: string;
  /** The membership the cluster started with (later changes are entries in the log). A server
   *  joining a running cluster is given the current one, and need not be in it. */
  voters: readonly string[];
  learners?: readonly string[];
  /** In [0, 1): the core's only source of randomness (election timeouts). Seeded in tests. */
  random: () => number;
  electionTicks?: number;
  heartbeatTicks?: number;
  maxInflight?: number;
  maxEntriesPerAppend?: number;
  /** Characters of snapshot data per chunk (DEFAULT_SNAPSHOT_CHUNK_CHARS; small in tests, so
   *  that transfers take many chunks). At most MAX_SNAPSHOT_CHUNK_CHARS, or receivers refuse it. */
  snapshotChunkChars?: number;
}

/** What was on disk at start. With a snapshot, the entries start right after it. */
export interface RaftStorage {
  hardState: HardState;
  entries: readonly Entry[];
  snapshot?: Snapshot;
}

export interface RaftPersist {
  /** Set when term, vote or commit changed. */
  hardState?: HardState;
  /** Entries from `from` on replace whatever is on disk from `from` on. */
  entries?: { from: number; entries: Entry[] };
  /** A new snapshot, to keep in place of the one stored. Written with `compactTo` in the same
   *  batch; `entries` then, if set, applies to what remains. */
  snapshot?: Snapshot;
  /** Entries at or below this index are compacted: delete them (set with `snapshot`). */
  compactTo?: number;
}

export type RaftEvent =
  /** Entries committed, in order, to apply to the state machine. */
  | { type: 'committed'; entries: Entry[] }
  /** This server's role or the leader it knows changed. */
  | { type: 'role'; role: Role; term: number; leader: string | null }
  /** A read asked for with readIndex(ctx) may be served from the state machine once it has
   *  applied `index`: leadership was confirmed by a quorum after the read was asked. */
  | { type: 'read'; ctx: string; index: number }
  /** The state machine must become `snapshot.data`, the state after applying every entry up to
   *  `snapshot.index`; 'committed' entries that follow continue from `snapshot.index + 1`. Sent
   *  when a follower installs a snapshot from the leader (it was too far behind), and as the
   *  first event of a core started from a stored snapshot, so a shell loads its state machine
   *  one way. */
  | { type: 'restore'; snapshot: Snapshot };

export type RaftReady = Ready<RaftMessage, RaftPersist, RaftEvent>;
