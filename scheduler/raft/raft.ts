// Raft, the pure core: leader election with pre-vote and check-quorum, log replication with
// batching and pipelining, and commitment, written the way etcd's raft library is (raft.go):
// a state machine with no I/O, timers or randomness of its own. A call (a tick, a message, a
// proposal) returns a Ready (mesh/ready.ts): the hard state and entries to persist, then the
// messages to send, then the committed entries to apply. The shell must carry a ready out in
// that order, one ready at a time: a vote or an acknowledgement that left before the state it
// rests on was durable could be contradicted by a restart, and two leaders could follow.
//
// The rules, in one paragraph. Time is counted in ticks. A follower that hears no leader for a
// randomized election timeout (in [E, 2E) ticks) first asks for pre-votes at term + 1 without
// changing its own term, so a server cut off from the others cannot disrupt them when it comes
// back with an inflated term; only with a quorum of pre-votes does it start a real election.
// A server that has heard from a leader within the election timeout ignores (pre-)votes from
// others (the leader lease that check-quorum makes safe), and a leader that has not heard from
// a quorum within an election timeout steps down, so a leader on the minority side of a
// partition stops serving. A new leader appends a no-op entry of its term, so that entries of
// earlier terms commit through it (Raft §5.4.2: a leader commits only entries of its own term
// by counting replicas). Membership changes one server at a time, and a server acts on the
// newest membership committed in its log, as etcd does (a removed leader that had appended its
// removal could otherwise refuse to campaign while the others cannot win without it); a leader
// proposes no change until every change in its log is committed.
//
// Compaction: once the shell has applied up to an index, it hands the core its state machine's
// state there (compact()); the core keeps that as its snapshot, with the term and membership at
// that index, and drops the entries it stands for. A follower that needs entries the leader no
// longer holds is sent the snapshot in chunks (snapshot-transfer.ts) and installs it in place of
// its log ('restore' event), then continues from the entries after it.

import type { Send } from '../../mesh/ready.ts';
import { RaftLog } from './log.ts';
import { applyChange, type MembershipChange } from './membership.ts';
import { Progress } from './progress.ts';
import { ReadIndexQueue } from './read-index.ts';
import { DEFAULT_SNAPSHOT_CHUNK_CHARS, MAX_SNAPSHOT_CHARS, SnapshotAssembly } from './snapshot-transfer.ts';
import type {
  AppendResponse, Entry, HardState, Membership, RaftEvent, RaftMessage, RaftOptions, RaftPersist, RaftReady, RaftStorage, Role, Snapshot, SnapshotChunk,
  SnapshotResponse, VoteRequest, VoteResponse,
} from './types.ts';

/** An election timeout of 10 ticks and a heartbeat every tick: with the shell ticking every
 *  100 ms, a leader's death is noticed in 1-2 s and a follower hears the leader ten times per
 *  timeout, so one lost heartbeat never starts an election (etcd's defaults, in ticks). */
export const DEFAULT_ELECTION_TICKS = 10;
export const DEFAULT_HEARTBEAT_TICKS = 1;
/** Appends in flight to one follower before waiting for acknowledgements: enough to keep a
 *  LAN link busy, few enough that a slow follower does not pile up the leader's memory. */
export const DEFAULT_MAX_INFLIGHT = 64;
/** Entries per append message: a batch of proposals goes out in one message, and a follower
 *  far behind catches up in messages of bounded size. */
export const DEFAULT_MAX_ENTRIES_PER_APPEND = 256;
/** Election timeouts after a start during which a server grants no vote (onVoteRequest). */
export const VOTE_FENCE_TIMEOUTS = 2;

export class Raft {
  readonly id: string;
  private readonly initial: Membership;
  /** The newest committed membership in the log, else the initial one. */
  private conf: Membership;
  /** A leader proposes no membership change while an entry up to here is uncommitted: its
   *  own last change, or on election its whole log (which may hold one; etcd does the same). */
  private pendingConfIndex = 0;
  private readonly random: () => number;
  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly maxInflight: number;
  private readonly maxEntries: number;
  private readonly chunkChars: number;
  readonly log: RaftLog;
  /** The newest snapshot, made here (compact) or installed from a leader: it stands for the
   *  log up to its index, and is what a follower that lacks those entries is sent. */
  private snap: Snapshot | undefined;
  /** A follower's snapshot being received, chunk by chunk. */
  private readonly assembly = new SnapshotAssembly();
  term: number;
  vote: string | null;
  role: Role = 'follower';
  leader: string | null = null;
  private electionElapsed = 0;
  /** Ticks since this core was made (see the vote fence in onVoteRequest). */
  private ticksSinceStart = 0;
  /** Heard from a leader since this core was made (see the vote fence in onVoteRequest). */
  private heardLeader = false;
  private heartbeatElapsed = 0;
  private randomizedTimeout = 0;
  private votes = new Map<string, boolean>();
  private progress = new Map<string, Progress>();
  /** ReadIndex: reads whose leadership round is under way, oldest first, and reads asked
   *  before this leader committed an entry of its own term (until then its commit index may
   *  lag what a previous leader committed). */
  private readonly reads = new ReadIndexQueue();
  private readsBeforeTermCommit: string[] = [];
  // The ready being gathered by the current call.
  private out: RaftMessage[] = [];
  private events: RaftEvent[] = [];
  private saved: HardState;
  /** A snapshot and compaction for the ready being gathered to persist. */
  private unsavedSnapshot: { snapshot: Snapshot; compactTo: number } | undefined;

  constructor(o: RaftOptions, storage: RaftStorage = { hardState: { term: 0, vote: null, commit: 0 }, entries: [] }) {
    this.id = o.id;
    this.initial = { voters: [...o.voters], learners: [...(o.learners ?? [])] };
    this.conf = this.initial;
    this.random = o.random;
    this.electionTicks = o.electionTicks ?? DEFAULT_ELECTION_TICKS;
    this.heartbeatTicks = o.heartbeatTicks ?? DEFAULT_HEARTBEAT_TICKS;
    this.maxInflight = o.maxInflight ?? DEFAULT_MAX_INFLIGHT;
    this.maxEntries = o.maxEntriesPerAppend ?? DEFAULT_MAX_ENTRIES_PER_APPEND;
    this.chunkChars = o.snapshotChunkChars ?? DEFAULT_SNAPSHOT_CHUNK_CHARS;
    this.snap = storage.snapshot;
    const base = storage.snapshot ? { index: storage.snapshot.index, term: storage.snapshot.term } : undefined;
    this.log = new RaftLog(storage.entries, storage.hardState.commit, base);
    // The shell loads its state machine from the snapshot the way it does a leader's: the first
    // ready says so, before the committed entries after it.
    if (storage.snapshot) this.events.push({ type: 'restore', snapshot: storage.snapshot });
    this.term = storage.hardState.term;
    this.vote = storage.hardState.vote;
    this.saved = { ...storage.hardState };
    this.refreshConf();
    this.resetElectionTimer();
  }

  /** The membership this server acts on now. */
  membership(): Membership {
    return { voters: [...this.conf.voters], learners: [...this.conf.learners] };
  }

  private get voters(): readonly string[] {
    return this.conf.voters;
  }

  private isMember(id: string): boolean {
    return this.conf.voters.includes(id) || this.conf.learners.includes(id);
  }

  private others(): string[] {
    return [...this.conf.voters, ...this.conf.learners].filter((id) => id !== this.id);
  }

  /** After the commit index moved: the membership is the newest committed one, and a leader
   *  tracks exactly its members, and leads no longer once its own removal is committed
   *  (thesis §4.2.2; the others then elect among themselves). */
  private refreshConf(): void {
    this.conf = this.confAt(this.log.committed);
    if (this.role !== 'leader') return;
    if (!this.voters.includes(this.id)) {
      // Tell the remaining members the removal is committed before going: until they know,
      // they act on the membership that still counts us.
      this.broadcastHeartbeat();
      this.becomeFollower(this.term, null);
      return;
    }
    for (const id of [...this.conf.voters, ...this.conf.learners]) {
      if (!this.progress.has(id)) this.progress.set(id, new Progress(this.log.lastIndex() + 1));
    }
    for (const [id, p] of [...this.progress]) {
      if (id === this.id || this.isMember(id)) continue;
      // A removed server is sent nothing more: send it now what it lacks up to its removal and
      // that this is committed, or it would campaign (harmlessly, by pre-vote) as long as it
      // runs. (Lost, it does; `weft manager ls` on the leader shows who is a member.)
      const from = Math.max(p.match + 1, this.log.snapshotIndex() + 1);
      const entries = from <= this.log.lastIndex() ? this.log.slice(from, this.log.lastIndex(), this.maxEntries) : [];
      this.out.push({ type: 'app', from: this.id, to: id, term: this.term, prevIndex: from - 1, prevTerm: this.log.term(from - 1) as number, entries, commit: this.log.committed });
      this.progress.delete(id);
    }
  }

  /** The membership in force at `index` (at or after the snapshot). */
  private confAt(index: number): Membership {
    return this.log.lastConf(index)?.conf ?? this.snap?.membership ?? this.initial;
  }

  // ---- inputs -------------------------------------------------------------------------------

  tick(): RaftReady {
    this.ticksSinceStart++;
    if (this.role === 'leader') {
      this.electionElapsed++;
      if (this.electionElapsed >= this.electionTicks) {
        this.electionElapsed = 0;
        if (!this.quorumActive()) this.becomeFollower(this.term, null);
      }
      if (this.role === 'leader' && ++this.heartbeatElapsed >= this.heartbeatTicks) {
        this.heartbeatElapsed = 0;
        this.broadcastHeartbeat();
      }
    } else if (++this.electionElapsed >= this.randomizedTimeout && this.mayCampaign()) {
      // A learner, or a server removed longer ago, waits to be told.
      this.campaign(true);
    }
    return this.ready();
  }

  step(m: RaftMessage): RaftReady {
    // From anyone: a server joining, or one that does not know its membership yet, must hear
    // the leader of a membership it is not (yet) in. What a non-member says counts only where
    // membership is checked: responses at the leader (by progress), votes (by voters).
    if (m.to !== this.id) return this.ready();
    this.stepTerm(m);
    // A leader at our term answered for: no election we might have voted in is still open.
    if (this.leader !== null && this.leader === m.from) this.heardLeader = true;
    return this.ready();
  }

  /** Appends commands to the log; only a leader can (undefined otherwise: ask the leader). */
  propose(data: readonly string[]): RaftReady | undefined {
    if (this.role !== 'leader') return undefined;
    const entries = data.map((d, i) => ({ index: this.log.lastIndex() + 1 + i, term: this.term, data: d }));
    this.log.append(entries);
    this.broadcastAppend();
    return this.ready();
  }

  /** Proposes a membership change; a sentence when it cannot be (not the leader, a change
   *  still uncommitted, or not a valid change of the membership as it is). */
  changeMembership(change: MembershipChange): RaftReady | string {
    if (this.role !== 'leader') return 'only the leader changes the membership';
    if (this.pendingConfIndex > this.log.committed) return 'a membership change is still being committed: one at a time';
    const next = applyChange(this.conf, change);
    if (typeof next === 'string') return next;
    const entry = { index: this.log.lastIndex() + 1, term: this.term, data: null, conf: next };
    this.log.append([entry]);
    this.pendingConfIndex = entry.index;
    this.broadcastAppend();
    return this.ready();
  }

  /** The leader asks `to` to campaign at once (it must be caught up; if not, it is sent
   *  what it lacks first and asked on its next acknowledgement). */
  transferLeadership(to: string): RaftReady | undefined {
    if (this.role !== 'leader' || to === this.id || !this.voters.includes(to)) return undefined;
    if (!this.progress.has(to)) return undefined;
    const p = this.progress.get(to) as Progress;
    if (p.match === this.log.lastIndex()) this.out.push({ type: 'timeout-now', from: this.id, to, term: this.term });
    else this.sendAppend(to);
    return this.ready();
  }

  /** A linearizable read without a log write (Raft thesis §6.4, etcd's ReadIndex): the leader
   *  notes its commit index, confirms with a quorum that it still leads, and then says the read
   *  may be served once that index is applied (a 'read' event). Only a leader can; a read
   *  under way is dropped if leadership is lost (the asker retries). */
  readIndex(ctx: string): RaftReady | undefined {
    if (this.role !== 'leader') return undefined;
    if (this.log.term(this.log.committed) !== this.term) this.readsBeforeTermCommit.push(ctx);
    else this.startRead(ctx);
    return this.ready();
  }

  /** The shell wrote the entries up to `index` (whose term is `term`) to disk. A leader counts
   *  itself towards commitment only from here (thesis §10.2.1): so its shell may send its
   *  appends while its own write is under way, and a commit waits for one fsync, not two in a
   *  row. An entry since replaced at that index (a new term's) is not acknowledged by it. */
  appended(index: number, term: number): RaftReady {
    if (this.role === 'leader' && index <= this.log.lastIndex() && this.log.term(index) === term) {
      const self = this.selfProgress();
      if (index > self.match) {
        self.acknowledged(index);
        if (this.maybeCommit()) this.broadcastAppend();
      }
    }
    return this.ready();
  }

  /** The shell saw the connection to the leader close (a crashed leader's connections close
   *  on all its followers at once). The follower forgets the leader, so it no longer grants
   *  the leader a lease, and campaigns after 1-3 ticks instead of the full election timeout.
   *  Only timing changes: a pre-vote still fails while a majority hears from a live leader. */
  leaderUnreachable(): RaftReady {
    if (this.role === 'follower' && this.leader !== null) {
      this.leader = null;
      this.electionElapsed = Math.max(this.electionElapsed, this.randomizedTimeout - 1 - Math.floor(this.random() * 3));
      this.emitRole();
    }
    return this.ready();
  }

  /** The shell saw the connection to `id` close. The server behind it may come back with less
   *  than it acknowledged (a data dir restored from a backup): the leader forgets what it knew
   *  of that log and probes it afresh, so that no heartbeat tells it to commit on the strength
   *  of an old acknowledgement. Safe for commitment: the commit index never moves back, and a
   *  lower match only delays the next commit until the probe finds the real one. */
  peerDisconnected(id: string): RaftReady {
    if (this.role === 'leader' && id !== this.id && this.progress.has(id)) this.progress.set(id, new Progress(this.log.lastIndex() + 1));
    return this.ready();
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** The shell has applied the entries up to `index`, and `data` is its state machine's state
   *  there: the core keeps it as its snapshot and drops the entries up to `index`; the ready
   *  asks the shell to store the snapshot and delete those entries (persist.snapshot and
   *  persist.compactTo). A sentence when it cannot: `index` not yet handed out to apply, or
   *  not past the snapshot the core already has. To keep entries for followers a little
   *  behind (so they get entries rather than a snapshot), compact to somewhat before the
   *  applied index; its state then must be the state at that index. */
  compact(index: number, data: string): RaftReady | string {
    if (!Number.isSafeInteger(index) || index > this.log.applied) return `cannot compact to ${index}: entries are handed out to apply only up to ${this.log.applied}`;
    if (index <= this.log.snapshotIndex()) return `already compacted to ${this.log.snapshotIndex()}`;
    // Followers refuse larger ones (wire.ts): the leader could never send it.
    if (data.length > MAX_SNAPSHOT_CHARS) return `a snapshot of ${data.length} characters is above the limit of ${MAX_SNAPSHOT_CHARS} a follower accepts`;
    const change = this.log.lastConf(index);
    // The membership before the newest change, for mayCampaign.
    const prior = change ? this.confAt(change.index - 1) : this.snap?.prior;
    this.snap = { index, term: this.log.term(index) as number, membership: this.confAt(index), ...(prior ? { prior } : {}), data };
    this.log.compact(index);
    this.unsavedSnapshot = { snapshot: this.snap, compactTo: index };
    return this.ready();
  }

  /** The newest snapshot this server holds (made here or received), if any. */
  snapshot(): Snapshot | undefined {
    return this.snap;
  }

  // ---- terms --------------------------------------------------------------------------------

  private stepTerm(m: RaftMessage): void {
    if (m.term > this.term) {
      if (m.type === 'vote') {
        // The lease: a server that has heard from a live leader within the election timeout
        // does not help depose it (unless the leader itself asked, to hand over).
        const inLease = this.leader !== null && this.electionElapsed < this.electionTicks;
        if (inLease && !m.transfer) return;
        // A pre-vote does not change anyone's term: it only asks.
        if (!m.pre) this.becomeFollower(m.term, null);
      } else if (m.type === 'vote-resp' && m.pre) {
        // A granted pre-vote carries the term we asked about, above ours; it changes nothing.
        if (m.granted) {
          this.onVoteResponse(m);
          return;
        }
        this.becomeFollower(m.term, null);
      } else {
        const leader = m.type === 'app' || m.type === 'heartbeat' || m.type === 'timeout-now' || m.type === 'snap' ? m.from : null;
        this.becomeFollower(m.term, leader);
      }
    } else if (m.term < this.term) {
      // A stale leader learns of the newer term from our answer (with check-quorum it would
      // otherwise step down only after an election timeout); a stale (pre-)candidate from
      // our refusal. Anything else stale is dropped.
      if (m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap') {
        this.out.push({ type: 'app-resp', from: this.id, to: m.from, term: this.term, index: 0, reject: true, hint: this.log.lastIndex() });
      } else if (m.type === 'vote') {
        this.out.push({ type: 'vote-resp', pre: m.pre, from: this.id, to: m.from, term: this.term, granted: false });
      }
      return;
    }
    this.stepRole(m);
  }

  private stepRole(m: RaftMessage): void {
    switch (m.type) {
      case 'vote':
        return this.onVoteRequest(m);
      case 'vote-resp':
        return this.onVoteResponse(m);
      case 'app':
        if (this.role === 'leader') return; // another leader of our term cannot exist
        this.follow(m.from);
        return this.onAppend(m.from, m.prevIndex, m.prevTerm, m.entries, m.commit);
      case 'heartbeat':
        if (this.role === 'leader') return;
        this.follow(m.from);
        this.commitTo(m.commit);
        this.out.push({ type: 'heartbeat-resp', from: this.id, to: m.from, term: this.term, ...(m.ctx !== undefined ? { ctx: m.ctx } : {}) });
        return;
      case 'app-resp':
        return this.onAppendResponse(m);
      case 'heartbeat-resp':
        if (m.ctx !== undefined) this.onReadAck(m.from, m.ctx);
        return this.onHeartbeatResponse(m.from);
      case 'timeout-now':
        if (this.role === 'follower') this.campaign(false, true);
        return;
      case 'snap':
        if (this.role === 'leader') return;
        this.follow(m.from);
        return this.onSnapshotChunk(m);
      case 'snap-resp':
        return this.onSnapshotResponse(m);
    }
  }

  // ---- elections ----------------------------------------------------------------------------

  private onVoteRequest(m: VoteRequest): void {
    // We may vote for m.from if we already did this term, or have voted for no one and know
    // no leader this term; a pre-vote asks about a term above ours, where we have no vote yet.
    const canVote = this.vote === m.from || (this.vote === null && this.leader === null) || (m.pre && m.term > this.term);
    // Fenced: a server that has just started may have started from less than it had (a data
    // dir restored from a backup), and so may not know of a vote it gave in a term whose
    // election is still under way. Any such election is over within one randomized election
    // timeout (at most 2 x electionTicks), or once a leader is heard from (an election has
    // ended since the start); until then this server grants no vote. Everyone starting at
    // once costs at most one more election timeout. (Not covered: a stale leader heard while
    // an election of a later term goes on; that needs a rollback, a partition and an election
    // at the same moment.)
    const fenced = !m.pre && !this.heardLeader && this.ticksSinceStart < VOTE_FENCE_TIMEOUTS * this.electionTicks;
    const granted = canVote && !fenced && this.log.isUpToDate(m.lastIndex, m.lastTerm);
    if (granted && !m.pre) {
      this.vote = m.from;
      this.electionElapsed = 0;
    }
    this.out.push({ type: 'vote-resp', pre: m.pre, from: this.id, to: m.from, term: granted ? m.term : this.term, granted });
  }

  private onVoteResponse(m: VoteResponse): void {
    const waiting = (m.pre && this.role === 'pre-candidate') || (!m.pre && this.role === 'candidate');
    if (!waiting || !this.voters.includes(m.from)) return;
    this.votes.set(m.from, m.granted);
    if (this.wonVote()) {
      if (m.pre) this.campaign(false);
      else this.becomeLeader();
    } else if (this.voters.filter((v) => this.votes.get(v) === false).length >= this.quorum()) {
      this.becomeFollower(this.term, null);
    }
  }

  /** A quorum of the voters granted (our own vote counts only if we are one). */
  private wonVote(): boolean {
    return this.voters.filter((v) => this.votes.get(v) === true).length >= this.quorum();
  }

  /** Whether this server may start an election: a voter, or one whose removal is the newest
   *  committed change. The latter because servers learn of commitment at different times: a
   *  remaining voter that does not yet know the removal committed may need the removed
   *  server's vote and be refused it (the removed one's log is longer), and with no election
   *  of its own the removed server would leave the cluster leaderless. Elected, it leads the
   *  membership it is not part of until the others know it (thesis §4.2.2), then steps down. */
  private mayCampaign(): boolean {
    if (this.voters.includes(this.id)) return true;
    const last = this.log.lastConf(this.log.committed);
    // The newest change may be in the snapshot, which keeps the membership before it.
    const before = last ? this.confAt(last.index - 1) : this.snap?.prior;
    return before?.voters.includes(this.id) ?? false;
  }

  /** Starts an election: a pre-vote round first unless `pre` is false (its quorum was won, or
   *  the leader handed over). */
  private campaign(pre: boolean, transfer = false): void {
    if (pre) {
      this.role = 'pre-candidate';
      this.leader = null;
      this.emitRole();
    } else {
      this.term++;
      this.vote = this.id;
      this.role = 'candidate';
      this.leader = null;
      this.emitRole();
    }
    this.resetElectionTimer();
    this.votes = new Map([[this.id, true]]);
    if (this.wonVote()) {
      if (pre) this.campaign(false, transfer);
      else this.becomeLeader();
      return;
    }
    const term = pre ? this.term + 1 : this.term;
    for (const to of this.voters) {
      if (to === this.id) continue;
      this.out.push({
        type: 'vote', pre, from: this.id, to, term, lastIndex: this.log.lastIndex(), lastTerm: this.log.lastTerm(),
        ...(transfer ? { transfer: true } : {}),
      });
    }
  }

  private becomeFollower(term: number, leader: string | null): void {
    const changed = this.role !== 'follower' || this.leader !== leader || this.term !== term;
    if (term > this.term) {
      this.term = term;
      this.vote = null;
    }
    this.role = 'follower';
    this.leader = leader;
    this.progress.clear();
    this.reads.clear();
    this.readsBeforeTermCommit = [];
    this.resetElectionTimer();
    if (changed) this.emitRole();
  }

  /** The leader of our term spoke: follow it. A follower that learns who leads (after voting in
   *  an election it did not start, it knows the term but not the winner) says so like any role
   *  change: requests waiting for a leader go to it at once, and its `leader-elected` event is
   *  reported on every manager, not only where the role changed. */
  private follow(leader: string): void {
    if (this.role !== 'follower') this.becomeFollower(this.term, leader);
    else if (this.leader !== leader) {
      this.leader = leader;
      this.emitRole();
    }
    this.electionElapsed = 0;
  }

  private becomeLeader(): void {
    this.role = 'leader';
    this.leader = this.id;
    this.heartbeatElapsed = 0;
    this.electionElapsed = 0;
    this.progress = new Map([this.id, ...this.others()].map((v) => [v, new Progress(this.log.lastIndex() + 1)]));
    this.emitRole();
    this.pendingConfIndex = this.log.lastIndex();
    // The no-op of our term: entries of earlier terms commit only through an entry of ours.
    this.log.append([{ index: this.log.lastIndex() + 1, term: this.term, data: null }]);
    this.broadcastAppend();
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.randomizedTimeout = this.electionTicks + Math.floor(this.random() * this.electionTicks);
  }

  // ---- replication --------------------------------------------------------------------------

  private onAppend(from: string, prevIndex: number, prevTerm: number, entries: readonly Entry[], commit: number): void {
    if (prevIndex < this.log.committed) {
      // Already committed here, so it matches: say how far we hold, and let the leader move on.
      this.out.push({ type: 'app-resp', from: this.id, to: from, term: this.term, index: this.log.committed, reject: false, hint: 0 });
      return;
    }
    const last = this.log.maybeAppend(prevIndex, prevTerm, entries);
    if (last === undefined) {
      this.out.push({ type: 'app-resp', from: this.id, to: from, term: this.term, index: prevIndex, reject: true, hint: Math.min(prevIndex - 1, this.log.lastIndex()) });
      return;
    }
    // Commit only what this message vouches for: later entries may still be replaced.
    this.commitTo(Math.min(commit, last));
    this.out.push({ type: 'app-resp', from: this.id, to: from, term: this.term, index: last, reject: false, hint: 0 });
  }

  private onAppendResponse(m: AppendResponse): void {
    if (this.role !== 'leader') return;
    const p = this.progress.get(m.from);
    if (!p) return;
    p.recentActive = true;
    if (m.reject) {
      if (p.rejected(m.index, m.hint)) this.sendAppend(m.from);
      return;
    }
    const wasPaused = p.paused(this.maxInflight);
    if (!p.acknowledged(m.index)) {
      if (wasPaused && !p.paused(this.maxInflight)) this.sendAppend(m.from);
      return;
    }
    // The snapshot is in (or the follower had what it stands for): continue from its match,
    // with entries, or with our newer snapshot if we compacted past it meanwhile. An answer to
    // an append sent before the transfer began changes nothing.
    if (p.state === 'snapshot' && p.match >= p.snapshot!.snapshot.index) p.becomeProbe();
    if (p.state === 'probe') p.becomeReplicate();
    if (this.maybeCommit()) this.broadcastAppend();
    else this.sendAppend(m.from);
  }

  private onHeartbeatResponse(from: string): void {
    if (this.role !== 'leader') return;
    const p = this.progress.get(from);
    if (!p) return;
    p.recentActive = true;
    if (p.state === 'snapshot') {
      if (p.snapshot!.stalled()) this.out.push(p.snapshot!.chunk(this.id, from, this.term));
      return;
    }
    // A probe or appends that were lost: one more goes out on each heartbeat's answer, and a
    // follower that acknowledged nothing over a heartbeat round is probed afresh.
    if (p.stalled(this.log.lastIndex())) p.becomeProbe();
    else if (p.paused(this.maxInflight)) p.freeOne();
    if (p.match < this.log.lastIndex()) this.sendAppend(from);
  }

  /** Sends what `to` lacks, if anything and if it is not paused; one message per call. */
  private sendAppend(to: string, sendEmpty = false): void {
    const p = this.progress.get(to);
    if (!p || p.paused(this.maxInflight)) return;
    const last = this.log.lastIndex();
    // Nothing new to send, unless it is a probe of a follower whose log we do not know yet
    // (a new leader's, or one reset by peerDisconnected): an empty append at our last index.
    if (p.next > last && !sendEmpty && !(p.state === 'probe' && p.match < last)) return;
    if (p.next <= this.log.snapshotIndex()) {
      // What it lacks is compacted: it gets the snapshot, then the entries after it.
      p.becomeSnapshot(this.snap as Snapshot, this.chunkChars);
      this.out.push(p.snapshot!.chunk(this.id, to, this.term));
      return;
    }
    const prevIndex = p.next - 1;
    const prevTerm = this.log.term(prevIndex) as number;
    const entries = p.next <= last ? this.log.slice(p.next, last, this.maxEntries) : [];
    this.out.push({ type: 'app', from: this.id, to, term: this.term, prevIndex, prevTerm, entries, commit: this.log.committed });
    p.sent(prevIndex + entries.length, entries.length);
  }

  /** A chunk from the leader: held until the last one, which installs the snapshot unless we
   *  have what it stands for already; either way the leader is told how far we hold. */
  private onSnapshotChunk(m: SnapshotChunk): void {
    if (m.index <= this.log.committed) {
      this.assembly.clear();
      this.out.push({ type: 'app-resp', from: this.id, to: m.from, term: this.term, index: this.log.committed, reject: false, hint: 0 });
      return;
    }
    const r = this.assembly.receive(m);
    if (r.kind === 'answer') {
      this.out.push({ type: 'snap-resp', from: this.id, to: m.from, term: this.term, index: m.index, offset: r.offset, reject: r.reject });
      return;
    }
    this.restore(r.snapshot);
    this.out.push({ type: 'app-resp', from: this.id, to: m.from, term: this.term, index: r.snapshot.index, reject: false, hint: 0 });
  }

  /** Installs a leader's snapshot newer than our commit index (raft.go's restore). */
  private restore(s: Snapshot): void {
    if (this.log.matchTerm(s.index, s.term)) {
      // We hold its last entry, so (log matching) every entry it stands for: our log up to
      // there is committed, and is applied as entries.
      this.commitTo(s.index);
      return;
    }
    this.log.restore(s.index, s.term);
    this.snap = s;
    this.unsavedSnapshot = { snapshot: s, compactTo: s.index };
    this.refreshConf();
    this.events.push({ type: 'restore', snapshot: s });
  }

  private onSnapshotResponse(m: SnapshotResponse): void {
    if (this.role !== 'leader') return;
    const p = this.progress.get(m.from);
    if (!p) return;
    p.recentActive = true;
    const sending = p.snapshot;
    if (p.state !== 'snapshot' || !sending || sending.snapshot.index !== m.index) return;
    if (sending.answered(m.offset, m.reject)) this.out.push(sending.chunk(this.id, m.from, this.term));
  }

  private broadcastAppend(): void {
    for (const to of this.others()) this.sendAppend(to, true);
  }

  private broadcastHeartbeat(ctx?: string): void {
    // A periodic round carries the newest read under way too: a lost round of its own does
    // not leave it waiting forever.
    const c = ctx ?? this.reads.newest();
    for (const to of this.others()) {
      // No more than the follower is known to hold: it must never commit what it has not
      // matched with us.
      const match = this.progress.get(to)?.match ?? 0;
      this.out.push({ type: 'heartbeat', from: this.id, to, term: this.term, commit: Math.min(match, this.log.committed), ...(c !== undefined ? { ctx: c } : {}) });
    }
  }

  private startRead(ctx: string): void {
    if (this.quorum() === 1) {
      this.events.push({ type: 'read', ctx, index: this.log.committed });
      return;
    }
    this.reads.add(ctx, this.log.committed, this.id);
    this.broadcastHeartbeat(ctx);
  }

  /** A quorum that answered a round for a read confirms leadership at a time after that read
   *  and every earlier one was asked: all of them may be served. */
  private onReadAck(from: string, ctx: string): void {
    if (!this.voters.includes(from)) return;
    for (const r of this.reads.ack(ctx, from, this.quorum())) this.events.push({ type: 'read', ...r });
  }

  /** Raft §5.4.2: the highest index a quorum of voters holds, if it is of our term. A leader
   *  that is no longer a voter (its removal is in its log) does not count itself. */
  private maybeCommit(): boolean {
    const matches = this.voters.map((v) => this.progress.get(v)?.match ?? 0).sort((a, b) => b - a);
    const n = matches[this.quorum() - 1] as number;
    if (n <= this.log.committed || this.log.term(n) !== this.term) return false;
    this.commitTo(n);
    if (this.role !== 'leader') return true;
    // The first entry of our term is committed: our commit index is now at least any earlier
    // leader's, and reads held back for it can start.
    for (const ctx of this.readsBeforeTermCommit.splice(0)) this.startRead(ctx);
    return true;
  }

  private commitTo(i: number): void {
    const before = this.log.committed;
    this.log.commitTo(i);
    if (this.log.committed !== before) this.refreshConf();
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const [id, p] of this.progress) {
      if (this.voters.includes(id) && (id === this.id || p.recentActive)) active++;
      p.recentActive = false;
    }
    return active >= this.quorum();
  }

  private selfProgress(): Progress {
    return this.progress.get(this.id) as Progress;
  }

  private quorum(): number {
    return Math.floor(this.voters.length / 2) + 1;
  }

  // ---- output -------------------------------------------------------------------------------

  private emitRole(): void {
    this.events.push({ type: 'role', role: this.role, term: this.term, leader: this.leader });
  }

  /** The ready of the call that just ran: persist before send, apply after both. */
  private ready(): RaftReady {
    const hs = this.hardState();
    const persist: RaftPersist = {};
    if (hs.term !== this.saved.term || hs.vote !== this.saved.vote || hs.commit !== this.saved.commit) {
      persist.hardState = hs;
      this.saved = hs;
    }
    if (this.unsavedSnapshot) {
      persist.snapshot = this.unsavedSnapshot.snapshot;
      persist.compactTo = this.unsavedSnapshot.compactTo;
      this.unsavedSnapshot = undefined;
    }
    const entries = this.log.unstable();
    if (entries) persist.entries = entries;
    const committed = this.log.takeCommitted();
    const events = this.events;
    if (committed.length > 0) events.push({ type: 'committed', entries: committed });
    const send: Send<RaftMessage>[] = this.out.map((msg) => ({ to: msg.to, msg }));
    this.out = [];
    this.events = [];
    return {
      persist: persist.hardState || persist.entries || persist.snapshot ? persist : undefined,
      send,
      events,
      rejected: [],
      next: undefined,
    };
  }
}
