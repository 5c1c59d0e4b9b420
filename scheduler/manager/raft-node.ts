// The I/O shell around the Raft core (scheduler/raft/raft.ts) on every peer: a tick timer, the
// core's readies carried out in order (ready-queue.ts), its committed entries applied to the
// desired state, and the requests of peers that are not the leader forwarded to it. Every peer
// runs one, manager or not: a peer is made a manager by the leader adding it to the Raft
// membership (autopilot.ts), and until then its core has no membership and only listens.

import { randomBytes } from 'node:crypto';
import { Raft } from '../raft/raft.ts';
import { RaftDisk } from '../raft/storage.ts';
import type { Entry, RaftEvent, RaftMessage, RaftStorage, Role } from '../raft/types.ts';
import type { MembershipChange } from '../raft/membership.ts';
import type { Store } from '../../mesh/store.ts';
import { DesiredState, validateCommand, type Command, type Outcome, type StateChange } from './desired-state.ts';
import { ReadyQueue } from './ready-queue.ts';
import { ClusterId, newClusterId } from './cluster-id.ts';
import { parseManagerMessage, type ForwardOp, type ManagerMessage, type Query } from './wire.ts';
import { ATTEMPT_MS, expire, Forwards, LEADER_POLL_MS, LeaderWatch, REQUEST_TIMEOUT_MS, settle, viaLeader, type Waiter } from './forwarding.ts';
import type { ManagerView, NodeEvent, NodeIo, NodeStatus, QueryAnswer } from './node-types.ts';

/** Proposals whose apply latency is measured at once: far above the writes in flight. */
const MAX_TIMED_PROPOSALS = 10_000;
/** Messages only a leader sends: a peer in no cluster yet joins the sender's on one of these. */
const LEADER_MESSAGES = new Set<RaftMessage['type']>(['app', 'heartbeat', 'snap']);

/** Raft's clock. 100 ms heartbeats and elections after 1-2 s without one are etcd's defaults,
 *  which hold on loaded machines; failover is made quicker by a closed connection to the
 *  leader (see connectionClosed), not by shorter timeouts that a GC pause could trip. */
export const TICK_MS = 100;
export const ELECTION_TICKS = 10;
/** Entries between compactions. etcd snapshots every 10,000 (its --snapshot-count before 3.2):
 *  desired state is small, so a snapshot costs little, and a follower that fell this far
 *  behind is better sent the state than the history. */
export const COMPACT_EVERY_ENTRIES = 10_000;
/** A leader asked to step down waits this long for the transfer to complete. */
const TRANSFER_WAIT_MS = 3_000;

export class RaftNode {
  readonly self: string;
  readonly state = new DesiredState();
  private core: Raft;
  private disk: RaftDisk;
  private readonly io: NodeIo;
  private readonly queue: ReadyQueue;
  private timer?: NodeJS.Timeout;
  private seq = 0;
  /** Unique per process: request ids never repeat across restarts. */
  private readonly nonce = randomBytes(6).toString('hex');
  private readonly proposals = new Map<string, Waiter<Outcome>[]>();
  private readonly reads = new Map<string, Waiter<number>>();
  private readonly forwards = new Forwards((to, m) => this.io.send(to, m), () => this.requestId());
  private applyWaiters: { index: number; resolve(): void }[] = [];
  private readonly lastContact = new Map<string, number>();
  private readonly matched = new Map<string, number>();
  private readonly eventListeners = new Set<(e: NodeEvent) => void>();
  private readonly changeListeners = new Set<(c: StateChange) => void>();
  private stopped = false;
  /** Requests waiting for a leader (viaLeader), woken when one is known. */
  private readonly leaderWatch = new LeaderWatch();
  /** A leadership transfer is under way (proposals wait for the next leader). */
  private transferring = false;
  private readonly cluster: ClusterId;
  private readonly store: Store;
  /** The applied index at the last compaction. */
  private compactedAt = 0;
  private lastRole: { role: Role; leader: string | null } = { role: 'follower', leader: null };
  /** Refused messages, for /metrics. */
  rejected = 0;
  /** From proposal to apply, of the writes proposed here (the leader's), for /metrics. */
  readonly applyLatency = { sumSeconds: 0, count: 0 };
  /** The size of the last snapshot made or installed here, for /metrics. */
  snapshotBytes = 0;
  private readonly proposedAt = new Map<string, number>();

  private constructor(self: string, store: Store, disk: RaftDisk, storage: RaftStorage, io: NodeIo, cluster: ClusterId) {
    this.self = self;
    this.store = store;
    this.disk = disk;
    this.cluster = cluster;
    this.io = io;
    this.core = this.makeCore(storage);
    this.replay(storage);
    this.compactedAt = storage.snapshot?.index ?? 0;
    this.previousConf = this.core.membership();
    this.queue = new ReadyQueue({
      persist: async (p) => {
        await this.cluster.save();
        await this.disk.write(p);
      },
      send: (to, m) => this.io.send(to, { k: 'raft', ...(this.cluster.value ? { c: this.cluster.value } : {}), m }),
      events: (es) => this.onEvents(es),
      rejected: () => undefined,
    }, (err) => {
      this.io.log.error('cannot write Raft state to disk: this peer stops serving as a manager', { err: String(err) });
      this.stop();
      this.io.onFatal(err);
    }, {
      durableTerm: storage.hardState.term,
      // A leader counts its own entries only once they are on disk (early-sends.ts).
      onWritten: (last) => this.queue.push(this.core.appended(last.index, last.term)),
    });
  }

  static async open(self: string, store: Store, io: NodeIo): Promise<RaftNode> {
    const { disk, storage } = await RaftDisk.open(store);
    return new RaftNode(self, store, disk, storage, io, await ClusterId.load(store));
  }

  private makeCore(storage: RaftStorage): Raft {
    return new Raft({ id: this.self, voters: [], random: Math.random, electionTicks: ELECTION_TICKS }, storage);
  }

  /** Replaces desired state with a snapshot's. A snapshot that cannot be read (a leader's bug,
   *  or a damaged disk) stops this node rather than the peer: the mesh and DNS go on, and the
   *  control plane here says what is wrong until `weft manager reset`. */
  private tryRestore(data: string): boolean {
    try {
      this.state.restore(data);
      return true;
    } catch (err) {
      this.damaged = `this peer's control-plane state is damaged (${(err as Error).message}): weft manager reset --yes drops it, and the leader adds the peer afresh`;
      this.io.log.error('cannot read a Raft snapshot: the control plane stops on this peer', { err: (err as Error).message });
      clearInterval(this.timer);
      return false;
    }
  }

  /** Set when this node stopped on damaged state (see tryRestore). */
  damaged?: string;

  /** The snapshot and committed entries on disk, applied again (the state machine is in
   *  memory). The core reports the stored snapshot again as its first event; it is then no
   *  newer than what was applied here, and is skipped. */
  private replay(storage: RaftStorage): void {
    if (storage.snapshot && !this.tryRestore(storage.snapshot.data)) return;
    for (const e of storage.entries) {
      if (e.index > storage.hardState.commit) break;
      this.applyEntry(e);
    }
  }

  start(): void {
    if (this.damaged) return;
    this.timer = setInterval(() => this.queue.push(this.core.tick()), TICK_MS);
    this.timer.unref?.();
  }

  /** Whether this peer has ever been part of a Raft cluster (its log is not empty). */
  hasState(): boolean {
    return this.core.log.lastIndex() > 0;
  }

  /** Makes this peer a one-manager cluster: only for a peer with no Raft state, which has
   *  looked and found no cluster in the mesh (see bootstrap.ts). Its first entry names it the
   *  only voter, so every manager added later learns the membership from the log. */
  async bootstrap(): Promise<void> {
    if (this.hasState()) throw new Error('this peer already holds Raft state');
    const entries: Entry[] = [{ index: 1, term: 1, data: null, conf: { voters: [this.self], learners: [] } }];
    const hardState = { term: 1, vote: null, commit: 1 };
    this.cluster.set(newClusterId());
    await this.cluster.save();
    await this.disk.write({ hardState, entries: { from: 1, entries } });
    this.core = this.makeCore({ hardState, entries });
    this.queue.reset(hardState.term);
    this.state.applied = 1;
    this.previousConf = this.core.membership();
    this.io.log.info('bootstrapped a new control-plane cluster with this peer as its only manager');
  }

  /** After a permanent loss of quorum, on a surviving manager: it keeps its log and desired
   *  state (entries its log holds that were not known committed are committed now, as etcd's
   *  --force-new-cluster does) and becomes the only voter of a new cluster, with a new cluster
   *  id; the autopilot then adds other peers. Old managers still running are refused until
   *  they are reset (their logs may hold what this one lacks, and must not be merged). */
  async forceNewCluster(): Promise<{ cluster: string; index: number; term: number }> {
    if (!this.hasState()) throw new Error('this peer holds no Raft state: there is nothing to keep; launch it as the first peer of a mesh instead');
    if (this.core.leader !== null) throw new Error(`a leader is known (${this.core.leader}): quorum is not lost; this is only for a cluster that can no longer elect one`);
    return this.rebuild(async () => {
      const { storage } = await RaftDisk.open(this.store);
      const last = storage.entries.at(-1)?.index ?? storage.snapshot?.index ?? 0;
      const term = storage.hardState.term + 1;
      const conf: Entry = { index: last + 1, term, data: null, conf: { voters: [this.self], learners: [] } };
      this.cluster.set(newClusterId());
      await this.cluster.save();
      await this.disk.write({ hardState: { term, vote: this.self, commit: conf.index }, entries: { from: conf.index, entries: [conf] } });
      this.io.log.warn('forced a new control-plane cluster with this peer as its only manager', { cluster: this.cluster.value, index: conf.index, term });
      return { cluster: this.cluster.value as string, index: conf.index, term };
    });
  }

  /** Drops this peer's Raft state and desired state, so that it can be added afresh to the
   *  cluster the mesh has (`weft manager reset`). Refused while it votes in a cluster that has a
   *  leader: demote it first. */
  async reset(): Promise<{ dropped: number }> {
    const m = this.core.membership();
    if (m.voters.includes(this.self) && this.core.leader !== null) throw new Error('this peer is a voting manager of a cluster with a leader: demote it first (weft manager demote)');
    const dropped = this.state.applied;
    this.damaged = undefined;
    return this.rebuild(async () => {
      await RaftDisk.wipe(this.store);
      await this.cluster.clear();
      this.state.restore(JSON.stringify({ applied: 0, objects: [], recent: [] }));
      this.io.log.warn('dropped this peer\'s control-plane state', { applied: dropped });
      return { dropped };
    });
  }

  /** Stops the core, changes what is on disk, and starts a core from it again. */
  private async rebuild<T>(change: () => Promise<T>): Promise<T> {
    clearInterval(this.timer);
    await this.queue.idle();
    try {
      return await change();
    } finally {
      const { disk, storage } = await RaftDisk.open(this.store);
      this.disk = disk;
      this.core = this.makeCore(storage);
      this.queue.reset(storage.hardState.term);
      this.replay(storage);
      this.compactedAt = storage.snapshot?.index ?? 0;
      this.previousConf = this.core.membership();
      if (!this.stopped) this.start();
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    for (const ws of this.proposals.values()) for (const w of ws) settle(w, new Error('the peer is stopping'));
    for (const w of this.reads.values()) settle(w, new Error('the peer is stopping'));
    this.forwards.failAll(new Error('the peer is stopping'));
    this.proposals.clear();
    this.reads.clear();
  }

  // ---- what others send -------------------------------------------------------------------

  /** A message from `from` (a mesh member's peer id, as the connection proved it). */
  onMessage(from: string, raw: unknown): void {
    if (this.stopped || this.damaged) return;
    const msg = parseManagerMessage(raw);
    if (typeof msg === 'string') return this.refuse(from, msg);
    switch (msg.k) {
      case 'raft':
        if (msg.m.from !== from) return this.refuse(from, `a Raft message claiming to be from ${msg.m.from}`);
        // A peer in no cluster joins one only from the leader the mesh announces: any member
        // can send an append, and a peer that joined the wrong cluster is stuck until reset.
        if (!this.cluster.admits(msg.c, () => LEADER_MESSAGES.has(msg.m.type) && this.leaderHint?.() === from)) return this.otherCluster(from, msg.c);
        this.lastContact.set(from, Date.now());
        if (msg.m.type === 'app-resp' && !msg.m.reject) this.matched.set(from, Math.max(this.matched.get(from) ?? 0, msg.m.index));
        this.queue.push(this.core.step(msg.m));
        return;
      case 'req':
        void this.serve(from, msg);
        return;
      case 'res':
        this.forwards.answered(msg);
        return;
    }
  }

  /** The connection to `peer` closed. If it is the leader, this follower stops waiting out its
   *  election timeout: a killed leader's connections all close at once, so its followers all
   *  learn of it together and elect a successor within a few ticks (pre-vote still protects a
   *  leader that only this follower lost). */
  connectionClosed(peer: string): void {
    this.queue.push(this.core.peerDisconnected(peer));
    if (this.core.leader === peer && this.core.role !== 'leader') this.queue.push(this.core.leaderUnreachable());
  }

  /** Logged once per peer and cluster: a second cluster in the mesh is an operator's matter. */
  private readonly warnedClusters = new Set<string>();

  private otherCluster(from: string, theirs: string | undefined): void {
    this.rejected++;
    const key = `${from}/${theirs}`;
    if (this.warnedClusters.has(key) || this.cluster.value === null) return;
    this.warnedClusters.add(key);
    this.io.log.warn('refused Raft messages of another control-plane cluster', {
      from, theirs: theirs ?? 'none', ours: this.cluster.value,
      hint: 'two clusters were founded, or one was forced anew: `weft manager reset --yes` on the peers that should join this one',
    });
  }

  private refuse(from: string, why: string): void {
    this.rejected++;
    this.io.log.debug('refused a manager message', { from, why });
  }

  private async serve(from: string, req: { k: 'req'; id: string } & ForwardOp): Promise<void> {
    const reply = (m: ManagerMessage) => this.io.send(from, m);
    if (this.core.role !== 'leader') {
      reply({ k: 'res', id: req.id, ok: false, error: 'not the leader' });
      return;
    }
    try {
      const value = await this.serveAsLeader(req);
      reply({ k: 'res', id: req.id, ok: true, value });
    } catch (err) {
      reply({ k: 'res', id: req.id, ok: false, error: (err as Error).message });
    }
  }

  private async serveAsLeader(req: ForwardOp): Promise<unknown> {
    switch (req.op) {
      case 'propose':
        return this.proposeHere(req.cmd);
      case 'read-index':
        return this.readIndexHere();
      case 'managers':
        return this.managersHere();
      case 'transfer':
        return this.transferHere(req.to);
      case 'query':
        if (req.consistent) await this.sync();
        return this.answer(req.query, req.consistent);
      case 'change':
        if (!this.knownPeer?.(req.peer)) throw new Error(`no peer ${req.peer} is known in the mesh`);
        return this.proposeHere({ op: 'put', kind: 'node-role', name: req.peer, spec: req.change === 'promote' ? 'manager' : 'worker', req: this.requestId() });
    }
  }

  // ---- the core's output ------------------------------------------------------------------

  private onEvents(events: readonly RaftEvent[]): void {
    for (const e of events) {
      switch (e.type) {
        case 'committed':
          for (const entry of e.entries) this.applyEntry(entry, true);
          break;
        case 'role':
          this.onRole(e.role, e.term, e.leader);
          break;
        case 'restore':
          if (e.snapshot.index > this.state.applied) {
            if (!this.tryRestore(e.snapshot.data)) return;
            this.snapshotBytes = Buffer.byteLength(e.snapshot.data);
            this.onConf(e.snapshot.membership);
            this.io.log.info('desired state replaced by the leader\'s snapshot', { index: e.snapshot.index });
          }
          break;
        case 'read': {
          const w = this.reads.get(e.ctx);
          if (w) {
            this.reads.delete(e.ctx);
            settle(w, undefined, e.index);
          }
          break;
        }
      }
    }
    const applied = this.state.applied;
    if (applied - this.compactedAt >= COMPACT_EVERY_ENTRIES) this.compact();
    const due = this.applyWaiters.filter((w) => w.index <= applied);
    this.applyWaiters = this.applyWaiters.filter((w) => w.index > applied);
    for (const w of due) w.resolve();
  }

  /** Keeps the log short: the state as of the applied index becomes the snapshot, and the
   *  entries it stands for are dropped. */
  private compact(): void {
    const data = this.state.serialize();
    this.snapshotBytes = Buffer.byteLength(data);
    const r = this.core.compact(this.state.applied, data);
    if (typeof r === 'string') {
      this.io.log.warn('could not compact the Raft log', { why: r });
      this.compactedAt = this.state.applied;
      return;
    }
    this.compactedAt = this.state.applied;
    this.queue.push(r);
  }

  private applyEntry(e: Entry, live = false): void {
    if (e.index <= this.state.applied) return;
    if (e.data === null) {
      this.state.applied = e.index;
      if (live && e.conf) this.onConf(e.conf);
      return;
    }
    const { req, outcome, changes } = this.state.apply(e.index, e.data);
    for (const c of changes) for (const l of this.changeListeners) l(c);
    if (req === undefined) return;
    const t0 = this.proposedAt.get(req);
    if (t0 !== undefined) {
      this.proposedAt.delete(req);
      this.applyLatency.sumSeconds += (performance.now() - t0) / 1000;
      this.applyLatency.count++;
    }
    const ws = this.proposals.get(req);
    if (!ws) return;
    this.proposals.delete(req);
    for (const w of ws) settle(w, undefined, outcome);
  }

  /** The membership last reported in events. */
  private previousConf: { voters: string[]; learners: string[] } = { voters: [], learners: [] };

  /** Membership events, from the difference between the last membership reported and `conf`. */
  private onConf(conf: { voters: string[]; learners: string[] }): void {
    const was = this.previousConf;
    for (const id of conf.learners) if (!was.learners.includes(id) && !was.voters.includes(id)) this.report({ type: 'manager-added', peer: id });
    for (const id of conf.voters) {
      if (was.learners.includes(id)) this.report({ type: 'manager-promoted', peer: id });
      else if (!was.voters.includes(id)) this.report({ type: 'manager-added', peer: id });
    }
    for (const id of [...was.voters, ...was.learners]) if (!conf.voters.includes(id) && !conf.learners.includes(id)) this.report({ type: 'manager-removed', peer: id });
    this.previousConf = { voters: [...conf.voters], learners: [...conf.learners] };
  }

  private onRole(role: Role, term: number, leader: string | null): void {
    const before = this.lastRole;
    this.lastRole = { role, leader };
    // Requests sent to a leader that no longer leads are tried again at once on the next one,
    // rather than after the attempt's timeout (a leader cut off never answers).
    if (leader !== before.leader) {
      this.forwards.leaderChanged(leader);
      this.leaderWatch.changed();
    }
    if (leader !== null && leader !== before.leader) {
      this.io.log.info('leader elected', { term, leader, self: leader === this.self });
      this.report({ type: 'leader-elected', term, leader });
    } else if (leader === null && before.leader !== null) {
      this.io.log.info('leader lost', { term, was: before.leader });
      this.report({ type: 'leader-lost', term, leader: before.leader });
    }
  }

  private report(e: NodeEvent): void {
    for (const l of this.eventListeners) l(e);
  }

  onEvent(fn: (e: NodeEvent) => void): () => void {
    this.eventListeners.add(fn);
    return () => this.eventListeners.delete(fn);
  }

  /** Called with every applied change of desired state, in index order. */
  onChange(fn: (c: StateChange) => void): () => void {
    this.changeListeners.add(fn);
    return () => this.changeListeners.delete(fn);
  }

  // ---- what this peer asks ----------------------------------------------------------------

  requestId(): string {
    return `${this.self.slice(-12)}.${this.nonce}.${++this.seq}`;
  }

  status(): NodeStatus {
    const m = this.core.membership();
    const role = m.voters.includes(this.self) ? this.core.role : m.learners.includes(this.self) ? 'learner' : 'none';
    return { role, leader: this.core.leader, term: this.core.term, commit: this.core.log.committed, applied: this.state.applied, voters: m.voters, learners: m.learners };
  }

  isLeader(): boolean {
    return this.core.role === 'leader';
  }

  /** Proposes a command and resolves with its outcome once applied. Works on any peer: a peer
   *  that does not lead forwards it to the leader, and every try carries the same request id,
   *  so a write retried across a leader change applies once. */
  async write(cmd: Command): Promise<Outcome> {
    const invalid = validateCommand(cmd);
    if (invalid) throw new Error(invalid);
    return this.viaLeader((leader) => (leader === this.self ? this.proposeHere(cmd) : this.forward(leader, { op: 'propose', cmd }) as Promise<Outcome>), 'write');
  }

  /** Resolves once this peer's state reflects every write committed before the call: then a
   *  local read is linearizable (ReadIndex; a follower asks the leader for the index). */
  async sync(): Promise<void> {
    const index = await this.viaLeader((leader) => (leader === this.self ? this.readIndexHere() : this.forward(leader, { op: 'read-index' }) as Promise<number>), 'consistent read');
    await this.appliedTo(index);
  }

  /** Whether this peer holds desired state (a voter or a learner). */
  holdsState(): boolean {
    const m = this.core.membership();
    return m.voters.includes(this.self) || m.learners.includes(this.self);
  }

  /** A read of desired state: answered here by a manager (after a ReadIndex when
   *  `consistent`), by the leader for a peer that holds none. */
  async query(query: Query, consistent: boolean): Promise<QueryAnswer> {
    if (this.damaged) throw new Error(this.damaged);
    if (this.holdsState()) {
      if (consistent) await this.sync();
      return this.answer(query, consistent);
    }
    return this.viaLeader((leader) => this.forward(leader, { op: 'query', query, consistent }) as Promise<QueryAnswer>, 'read');
  }

  private answer(query: Query, consistent: boolean): QueryAnswer {
    const base = { applied: this.state.applied, consistent, leader: this.core.leader };
    switch (query.q) {
      case 'get': {
        const o = this.state.get(query.kind, query.name);
        return { ...base, objects: o ? [o] : [] };
      }
      case 'list':
        return { ...base, objects: this.state.list(query.kind, query.prefix) };
      case 'backup':
        return { ...base, objects: [], data: this.state.serialize() };
    }
  }

  /** The managers as the leader sees them. */
  managers(): Promise<ManagerView[]> {
    return this.viaLeader((leader) => (leader === this.self ? Promise.resolve(this.managersHere()) : this.forward(leader, { op: 'managers' }) as Promise<ManagerView[]>), 'manager list');
  }

  /** Asks the leader to hand leadership to `to` (or the most caught-up voter). */
  transfer(to?: string): Promise<{ from: string; to: string }> {
    let first: string | undefined;
    let moved = false;
    return this.viaLeader(async (leader) => {
      first ??= leader;
      // A try again after the transfer happened (its answer lost to the leader change).
      if ((to !== undefined && leader === to) || (moved && leader !== first)) return { from: first, to: leader };
      try {
        return await (leader === this.self ? this.transferHere(to) : this.forward(leader, { op: 'transfer', ...(to ? { to } : {}) }) as Promise<{ from: string; to: string }>);
      } catch (err) {
        // Leadership moved while we waited: that was the transfer; trying again would move it on.
        const now = this.core.leader;
        if (/leader change/.test((err as Error).message)) {
          moved = true;
          if (now !== null && now !== leader) return { from: first, to: now };
        }
        throw err;
      }
    }, 'transfer');
  }

  /** Tries `attempt` on the leader it knows, again on whoever leads next, until it succeeds
   *  or REQUEST_TIMEOUT_MS passes. A failure the leader reports as an answer is final. */
  private viaLeader<T>(attempt: (leader: string) => Promise<T>, what: string): Promise<T> {
    if (this.damaged) return Promise.reject(new Error(this.damaged));
    return viaLeader({ leader: () => this.core.leader ?? this.leaderHint?.(), stopped: () => this.stopped, next: (ms) => this.leaderWatch.next(ms) }, attempt, what);
  }

  /** For a peer that is not a manager: the leader other peers announce (composition sets it). */
  leaderHint?: () => string | undefined;
  /** Whether a peer id is a member of the mesh (composition sets it). */
  knownPeer?: (id: string) => boolean;

  private proposeHere(cmd: Command): Promise<Outcome> {
    const known = this.state.outcomeOf(cmd.req);
    if (known) return Promise.resolve(known);
    // While handing over, new writes wait for the next leader (as etcd drops proposals during
    // a transfer): otherwise the successor might never be caught up enough to take over.
    if (this.transferring) return Promise.reject(new Error('not the leader: handing leadership over'));
    const ready = this.core.propose([JSON.stringify(cmd)]);
    if (!ready) return Promise.reject(new Error('not the leader'));
    // Bounded: an entry never applied here (leadership lost) is forgotten with the oldest.
    if (this.proposedAt.size >= MAX_TIMED_PROPOSALS) this.proposedAt.delete(this.proposedAt.keys().next().value as string);
    this.proposedAt.set(cmd.req, performance.now());
    const done = new Promise<Outcome>((resolve, reject) => {
      const w: Waiter<Outcome> = { resolve, reject, timer: setTimeout(() => this.dropProposal(cmd.req, w), ATTEMPT_MS) };
      this.proposals.set(cmd.req, [...(this.proposals.get(cmd.req) ?? []), w]);
    });
    this.queue.push(ready);
    return done;
  }

  private dropProposal(req: string, w: Waiter<Outcome>): void {
    const rest = (this.proposals.get(req) ?? []).filter((x) => x !== w);
    if (rest.length) this.proposals.set(req, rest);
    else this.proposals.delete(req);
    settle(w, new Error('not committed in time (leader change?)'));
  }

  private readIndexHere(): Promise<number> {
    const ctx = this.requestId();
    const ready = this.core.readIndex(ctx);
    if (!ready) return Promise.reject(new Error('not the leader'));
    const done = new Promise<number>((resolve, reject) => {
      this.reads.set(ctx, { resolve, reject, timer: setTimeout(() => expire(this.reads, ctx, 'leadership not confirmed in time'), ATTEMPT_MS) });
    });
    this.queue.push(ready);
    return done;
  }

  private managersHere(): ManagerView[] {
    if (!this.isLeader()) throw new Error('not the leader');
    const m = this.core.membership();
    const now = Date.now();
    return [...m.voters.map((id) => [id, true] as const), ...m.learners.map((id) => [id, false] as const)].map(([id, voter]) => ({
      id, voter, leader: id === this.self,
      match: id === this.self ? this.core.log.lastIndex() : this.matched.get(id) ?? 0,
      lastContactMs: id === this.self ? 0 : this.lastContact.has(id) ? now - (this.lastContact.get(id) as number) : null,
    }));
  }

  /** The voter most caught up, other than this one. */
  successor(): string | undefined {
    const m = this.core.membership();
    return m.voters.filter((id) => id !== this.self).sort((a, b) => (this.matched.get(b) ?? 0) - (this.matched.get(a) ?? 0))[0];
  }

  private async transferHere(to?: string): Promise<{ from: string; to: string }> {
    const target = to ?? this.successor();
    if (!target) throw new Error('there is no other voting manager to transfer leadership to');
    if (!this.core.membership().voters.includes(target)) throw new Error(`${target} is not a voting manager`);
    const ready = this.core.transferLeadership(target);
    if (!ready) throw new Error('not the leader');
    this.queue.push(ready);
    this.transferring = true;
    try {
      return await this.awaitSuccessor(target);
    } finally {
      this.transferring = false;
    }
  }

  private async awaitSuccessor(target: string): Promise<{ from: string; to: string }> {
    for (let i = 0; i < TRANSFER_WAIT_MS / LEADER_POLL_MS; i++) {
      await this.leaderWatch.next(LEADER_POLL_MS);
      // The target may have needed entries first: ask again now that it may have them.
      if (this.core.role === 'leader') this.queue.push(this.core.transferLeadership(target));
      // Done once another leads: only then may a leader that is stopping go, or its vote for
      // the successor might never leave, and an election would be needed after all.
      if (this.core.role !== 'leader' && this.core.leader !== null) return { from: this.self, to: this.core.leader };
    }
    throw new Error(`leadership was not transferred to ${target} within ${TRANSFER_WAIT_MS / 1000} s`);
  }

  /** Proposes a membership change (the autopilot's). */
  changeMembership(change: MembershipChange): string | undefined {
    const r = this.core.changeMembership(change);
    if (typeof r === 'string') return r;
    this.queue.push(r);
    return undefined;
  }

  /** What the leader knows of each manager's log, for the autopilot. */
  progressOf(id: string): { match: number; lastContact: number | undefined } {
    return { match: id === this.self ? this.core.log.lastIndex() : this.matched.get(id) ?? 0, lastContact: this.lastContact.get(id) };
  }

  lastIndex(): number {
    return this.core.log.lastIndex();
  }

  private forward(leader: string, op: ForwardOp): Promise<unknown> {
    return this.forwards.send(leader, op);
  }

  /** Resolves once entries up to `index` are applied here. */
  appliedTo(index: number): Promise<void> {
    if (this.state.applied >= index) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.applyWaiters = this.applyWaiters.filter((w) => w !== waiter);
        reject(new Error(`this peer did not apply index ${index} within ${REQUEST_TIMEOUT_MS / 1000} s (applied ${this.state.applied})`));
      }, REQUEST_TIMEOUT_MS);
      const waiter = { index, resolve: () => { clearTimeout(timer); resolve(); } };
      this.applyWaiters.push(waiter);
    });
  }

  /** Waits for what was handed to the disk and the network to be carried out. */
  flushed(): Promise<void> {
    return this.queue.idle();
  }
}
