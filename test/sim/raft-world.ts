// A deterministic world for the Raft core: servers on a simulated network and clock, with
// message loss, duplication, reordering and delay, partitions (symmetric and one-way), crashes
// with restart from what was persisted (a crash between a call and its ready's write loses that
// ready: the unsynced tail), and tick rates that differ per server (clock skew). Raft's safety
// properties are checked after every step, over everything any server has ever held:
//   - election safety: at most one leader per term;
//   - log matching: entries with the same index and term hold the same command and follow the
//     same entry (so, by induction, the logs agree up to there);
//   - leader completeness: a new leader holds every entry any server has applied;
//   - state-machine safety: no two servers apply different entries at one index, and each
//     applies in order without gaps; a snapshot (made by compaction, or installed from a
//     leader) holds exactly the key-value state, term and membership that the committed
//     entries up to its index make.
// Servers compact their logs at random points after applying (with the key-value store's
// serialized state), so servers that lag, restart or join are caught up by snapshots sent in
// chunks; a server may crash mid-transfer. Log matching and leader completeness are checked
// over the entries a server still holds, and over its snapshot for those compacted.
// A violation throws with the seed's step and what broke.

import { Raft } from '../../scheduler/raft/raft.ts';
import { earlySends } from '../../scheduler/raft/early-sends.ts';
import type { MembershipChange } from '../../scheduler/raft/membership.ts';
import type { Entry, HardState, Membership, RaftMessage, RaftReady, Snapshot } from '../../scheduler/raft/types.ts';
import type { KvOperation } from '../linearizability.ts';
import { Rng } from './rng.ts';

export interface RaftWorldOptions {
  servers: number;
  /** Per message. */
  loss?: number;
  duplicate?: number;
  /** Delivery delay in steps, uniform in [1, maxDelay]: reordering comes with it. */
  maxDelay?: number;
  /** Per ready with something to write: the chance that the write takes 1-3 steps (a slow
   *  disk), during which a leader's appends are already out and the server may crash. */
  slowDiskRate?: number;
  /** Per step: the chance that the network's partition changes. */
  partitionRate?: number;
  /** Per step: the chance that an up server crashes, and that a down one restarts. */
  crashRate?: number;
  /** Per step: the chance that a leader crashes (on top of crashRate): elections, and the
   *  entries a leader replicated only partly, are where Raft's subtle cases are. */
  leaderCrashRate?: number;
  restartRate?: number;
  /** Per step: the chance that a client proposes a command to whoever leads. */
  proposeRate?: number;
  /** Servers tick every 1, 2 or 3 steps (a slow clock) when set. */
  skew?: boolean;
  /** The cores' batching and pipelining bounds; by default drawn per run from small and
   *  default values, since one-entry appends and a pipeline of one reach cases that batches
   *  of hundreds hide (an acknowledgement that covers an old term's entry but not the new
   *  leader's no-op). */
  maxEntriesPerAppend?: number;
  maxInflight?: number;
  /** Clients of a key-value store on top (puts through the log; gets through the log or by
   *  ReadIndex, half each), each with one operation at a time, recorded for the
   *  linearizability checker. */
  clients?: number;
  keys?: number;
  /** Servers beyond `servers` that start outside the cluster, to be added as learners,
   *  promoted and removed again by membership changes. */
  spares?: number;
  /** Per step: the chance that the leader proposes a random membership change. */
  confRate?: number;
  /** Per step and server: the chance that it compacts its log up to what it has applied. */
  compactRate?: number;
  /** Per snapshot chunk delivered: the chance that its receiver crashes right after. */
  snapCrashRate?: number;
  /** Characters per snapshot chunk; by default drawn per run (see CHUNKS). */
  snapshotChunkChars?: number;
}

/** Chunk sizes a run draws from: a few characters (a snapshot of the store takes tens of
 *  chunks, so transfers are long enough to lose chunks and crash in), and the default. */
const CHUNKS = [7, 16, 64 * 1024] as const;

/** Batching and pipelining bounds a run draws from: one entry per append (with a few in
 *  flight, or one at a time with large batches) next to the defaults. Not one entry with one
 *  in flight: that replicates slower than the clients write, and the backlog would outlast
 *  any settling time. */
const BOUNDS = [
  { maxEntriesPerAppend: 1, maxInflight: 4 }, { maxEntriesPerAppend: 2, maxInflight: 64 },
  { maxEntriesPerAppend: 256, maxInflight: 1 }, { maxEntriesPerAppend: 256, maxInflight: 64 },
] as const;

/** How long a client waits for an answer before it gives up (its operation stays in the
 *  history as one that may or may not have taken effect). */
const CLIENT_TIMEOUT_STEPS = 60;
/** Per step, the chance that an idle client invokes its next operation. */
const CLIENT_RATE = 0.2;

/** A key-value command as it travels in the log. */
interface KvCommand {
  c: string;
  n: number;
  kind: 'put' | 'get';
  key: string;
  value?: string;
}

interface Client {
  id: string;
  seq: number;
  waiting?: {
    op: KvOperation; n: number; server: string; life: number; deadline: number;
    /** A get by ReadIndex: its context, and once confirmed the index to wait for. */
    read?: { ctx: string; index?: number };
  };
}

interface Disk {
  hardState: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
}

/** The key-value store's state as a shell would serialize it for a snapshot: keys in order. */
function serializeKv(kv: Map<string, string>): string {
  return JSON.stringify([...kv].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

interface Server {
  id: string;
  raft?: Raft;
  disk: Disk;
  tickEvery: number;
  /** The state machine: the commands applied, in order (rebuilt from 1 after a restart),
   *  and the key-value store they make. */
  applied: Entry[];
  kv: Map<string, string>;
  /** Which life of the server this is: a client's answer must come from the life it asked. */
  life: number;
  /** Readies whose write is still under way (a slow disk), oldest first, with the messages
   *  that already left; a crash loses them. */
  writes: { at: number; ready: RaftReady; early: RaftMessage[] }[];
  /** The role and leader its events last reported: what the shell (raft-node.ts) acts on. */
  reported: { role: string; leader: string | null };
}

interface InFlight {
  at: number;
  msg: RaftMessage;
}

export class RaftWorld {
  readonly rng: Rng;
  readonly servers: Server[];
  private readonly o: Required<RaftWorldOptions>;
  private readonly seed: number;
  now = 0;
  private network: InFlight[] = [];
  /** from -> set of servers it cannot reach. */
  private cut = new Map<string, Set<string>>();
  /** Everything learnt about the run, for the invariants. */
  private readonly leaderOfTerm = new Map<number, string>();
  private readonly committed = new Map<number, { term: number; data: string | null }>();
  private readonly seen = new Map<string, { data: string | null; prevTerm: number }>();
  private nextCommand = 1;
  private readonly initialVoters: string[];
  private lives = 0;
  /** Every client operation, for the linearizability checker. */
  readonly history: KvOperation[] = [];
  private readonly clients: Client[];
  /** Reference state machines over the committed entries, for checking snapshots: each key's
   *  puts by index, and the indexes of membership entries. */
  private readonly puts = new Map<string, { index: number; value: string }[]>();
  private readonly confs: { index: number; conf: Membership }[] = [];
  stats = { elections: 0, crashes: 0, lostTails: 0, partitions: 0, proposed: 0, delivered: 0, confChanges: 0, compactions: 0, restores: 0, chunks: 0, installs: 0, crashesMidTransfer: 0 };

  constructor(seed: number, o: RaftWorldOptions) {
    this.seed = seed;
    this.rng = new Rng(seed);
    this.o = {
      loss: 0, duplicate: 0, maxDelay: 3, slowDiskRate: 0, partitionRate: 0, crashRate: 0, leaderCrashRate: 0, restartRate: 0.05, proposeRate: 0.2, skew: false,
      ...this.rng.pick(BOUNDS), clients: 0, keys: 3, spares: 0, confRate: 0, compactRate: 0, snapCrashRate: 0, snapshotChunkChars: this.rng.pick(CHUNKS), ...o,
    };
    const ids = Array.from({ length: o.servers + (o.spares ?? 0) }, (_, i) => `s${i + 1}`);
    this.initialVoters = ids.slice(0, o.servers);
    this.servers = ids.map((id) => ({
      id, disk: { hardState: { term: 0, vote: null, commit: 0 }, entries: [] }, tickEvery: this.o.skew ? 1 + this.rng.int(3) : 1, applied: [], kv: new Map(), life: 0, writes: [],
      reported: { role: 'follower', leader: null },
    }));
    this.clients = Array.from({ length: this.o.clients }, (_, i) => ({ id: `k${i + 1}`, seq: 0 }));
    for (const s of this.servers) this.start(s);
  }

  private ids(): string[] {
    return this.servers.map((s) => s.id);
  }

  private start(s: Server): void {
    // Each life of each server draws its election timeouts from its own seeded source.
    s.life = ++this.lives;
    s.kv = new Map();
    const rng = new Rng(this.seed * 1009 + this.servers.indexOf(s) * 131 + s.life * 7);
    s.raft = new Raft({
      id: s.id, voters: this.initialVoters, random: () => rng.next(), maxEntriesPerAppend: this.o.maxEntriesPerAppend, maxInflight: this.o.maxInflight,
      snapshotChunkChars: this.o.snapshotChunkChars,
    }, {
      hardState: { ...s.disk.hardState }, entries: s.disk.entries.map((e) => ({ ...e })), ...(s.disk.snapshot ? { snapshot: structuredClone(s.disk.snapshot) } : {}),
    });
    s.applied = [];
    s.reported = { role: s.raft.role, leader: s.raft.leader };
  }

  /** One step of simulated time: network changes, crashes, ticks, deliveries, proposals. */
  step(): void {
    this.now++;
    if (this.o.partitionRate > 0 && this.rng.chance(this.o.partitionRate)) this.repartition();
    for (const s of this.servers) {
      const rate = this.o.crashRate + (s.raft?.role === 'leader' ? this.o.leaderCrashRate : 0);
      if (s.raft && rate > 0 && this.rng.chance(rate)) this.crash(s);
      else if (!s.raft && this.rng.chance(this.o.restartRate)) this.start(s);
    }
    for (const s of this.servers) {
      while (s.raft && s.writes[0] && s.writes[0].at <= this.now) {
        const w = s.writes.shift()!;
        this.write(s, w.ready, w.early);
      }
    }
    for (const s of this.servers) if (s.raft && this.now % s.tickEvery === 0) this.carryOut(s, s.raft.tick());
    const due = this.network.filter((f) => f.at <= this.now);
    this.network = this.network.filter((f) => f.at > this.now);
    for (const f of this.rng.shuffle(due)) {
      const to = this.servers.find((s) => s.id === f.msg.to);
      if (!to?.raft) continue;
      this.stats.delivered++;
      const ready = to.raft.step(f.msg);
      this.carryOut(to, ready);
      if (f.msg.type === 'snap') {
        this.stats.chunks++;
        if (ready.events.some((e) => e.type === 'restore')) this.stats.installs++;
        // Mid-transfer: what it assembled is lost, and the leader must start it again.
        if (to.raft && this.rng.chance(this.o.snapCrashRate)) {
          this.stats.crashesMidTransfer++;
          this.crash(to);
        }
      }
    }
    if (this.o.compactRate > 0) for (const s of this.servers) if (s.raft && this.rng.chance(this.o.compactRate)) this.compact(s.id);
    if (this.rng.chance(this.o.proposeRate)) this.propose();
    if (this.o.confRate > 0 && this.rng.chance(this.o.confRate)) this.changeMembership();
    this.stepClients();
  }

  /** The leader adds a spare as a learner, promotes a learner, or removes a member (its own
   *  removal included), keeping between one and five voters. */
  private changeMembership(): void {
    const leaders = this.servers.filter((s) => s.raft?.role === 'leader');
    if (leaders.length === 0) return;
    const s = this.rng.pick(leaders);
    const { voters, learners } = s.raft!.membership();
    const outside = this.ids().filter((id) => !voters.includes(id) && !learners.includes(id));
    const options: MembershipChange[] = [
      ...outside.map((id) => ({ type: 'add-learner' as const, id })),
      ...(voters.length < 5 ? learners.map((id) => ({ type: 'promote' as const, id })) : []),
      ...learners.map((id) => ({ type: 'remove' as const, id })),
      ...(voters.length > 1 ? voters.map((id) => ({ type: 'remove' as const, id })) : []),
    ];
    if (options.length === 0) return;
    const ready = s.raft!.changeMembership(this.rng.pick(options));
    if (typeof ready === 'string') return;
    this.stats.confChanges++;
    this.carryOut(s, ready);
  }

  /** Server `id` compacts its log up to what it has applied, as a shell does, with its store's
   *  state; false if there was nothing new to compact. */
  compact(id: string): boolean {
    const s = this.servers.find((x) => x.id === id)!;
    const index = s.applied.length;
    const data = serializeKv(s.kv);
    const ready = s.raft!.compact(index, data);
    if (typeof ready === 'string') return false;
    this.stats.compactions++;
    this.checkSnapshot(s, s.raft!.snapshot()!, 'made');
    this.carryOut(s, ready);
    return true;
  }

  /** The index of server `id`'s snapshot (0 without one, or while it is down). */
  snapshotIndex(id: string): number {
    return this.servers.find((x) => x.id === id)!.raft?.log.snapshotIndex() ?? 0;
  }

  /** Crashes server `id` (for scenarios), or restarts it from its disk. */
  down(id: string): void {
    this.crash(this.servers.find((x) => x.id === id)!);
  }

  up(id: string): void {
    this.start(this.servers.find((x) => x.id === id)!);
  }

  /** The membership a leader acts on (any server's if none leads). */
  membership(): { voters: string[]; learners: string[] } {
    const s = this.servers.find((x) => x.raft?.role === 'leader') ?? this.servers.find((x) => x.raft);
    return s!.raft!.membership();
  }

  // ---- clients ------------------------------------------------------------------------------

  private stepClients(): void {
    if (this.o.clients === 0) return;
    for (const c of this.clients) {
      if (c.waiting && this.now >= c.waiting.deadline) c.waiting = undefined; // gave up
      if (c.waiting || !this.rng.chance(CLIENT_RATE)) continue;
      const leaders = this.servers.filter((s) => s.raft?.role === 'leader');
      if (leaders.length === 0) continue;
      const put = this.rng.chance(0.5);
      const how = put ? 'put' : this.rng.chance(0.5) ? 'read-index' : 'get';
      this.request(c, this.rng.pick(leaders), how, `key${this.rng.int(this.o.keys)}`);
    }
  }

  /** A client asks server `s` (false if `s` does not lead): a put or a get through the log, or
   *  a get by ReadIndex. The operation goes into the history. */
  private request(c: Client, s: Server, how: 'put' | 'get' | 'read-index', key: string): KvOperation | undefined {
    const n = ++c.seq;
    const cmd: KvCommand = how === 'put' ? { c: c.id, n, kind: 'put', key, value: `${c.id}.${n}` } : { c: c.id, n, kind: 'get', key };
    const op: KvOperation = how === 'put' ? { client: c.id, kind: 'put', key, value: cmd.value, invoked: this.now } : { client: c.id, kind: 'get', key, invoked: this.now };
    const ctx = `${c.id}#${n}`;
    const ready = how === 'read-index' ? s.raft?.readIndex(ctx) : s.raft?.propose([JSON.stringify(cmd)]);
    if (!ready) return undefined;
    this.history.push(op);
    c.waiting = { op, n, server: s.id, life: s.life, deadline: this.now + CLIENT_TIMEOUT_STEPS, ...(how === 'read-index' ? { read: { ctx } } : {}) };
    this.carryOut(s, ready);
    return op;
  }

  /** For scenarios: client `clientId` (a new one if unknown) asks server `serverId`. */
  ask(clientId: string, serverId: string, how: 'put' | 'get' | 'read-index', key: string): KvOperation | undefined {
    let c = this.clients.find((x) => x.id === clientId);
    if (!c) this.clients.push((c = { id: clientId, seq: 0 }));
    return this.request(c, this.servers.find((s) => s.id === serverId)!, how, key);
  }

  /** For scenarios: server `id` ticks every `every` steps from now on (a slow clock). */
  setTickEvery(id: string, every: number): void {
    this.servers.find((s) => s.id === id)!.tickEvery = every;
  }

  /** A ReadIndex read confirmed at `s`: served now if `s` has applied that far, else once it has. */
  private onRead(s: Server, ctx: string, index: number): void {
    const c = this.clients.find((x) => x.waiting?.read?.ctx === ctx);
    const w = c?.waiting;
    if (!c || !w?.read || w.server !== s.id || w.life !== s.life) return;
    w.read.index = index;
    this.serveReads(s);
  }

  private serveReads(s: Server): void {
    for (const c of this.clients) {
      const w = c.waiting;
      if (!w?.read || w.read.index === undefined || w.server !== s.id || w.life !== s.life) continue;
      if (s.applied.length < w.read.index) continue;
      w.op.output = s.kv.get(w.op.key) ?? null;
      w.op.returned = this.now;
      c.waiting = undefined;
    }
  }

  /** A server applies an entry to its store, and answers the client that asked it, if that
   *  client still waits on this life of this server. */
  private applyKv(s: Server, e: Entry): void {
    if (e.data === null || !e.data.startsWith('{')) return;
    const cmd = JSON.parse(e.data) as KvCommand;
    const output = s.kv.get(cmd.key) ?? null;
    if (cmd.kind === 'put') s.kv.set(cmd.key, cmd.value as string);
    const c = this.clients.find((x) => x.id === cmd.c);
    const w = c?.waiting;
    if (!c || !w || w.n !== cmd.n || w.server !== s.id || w.life !== s.life) return;
    w.op.returned = this.now;
    if (cmd.kind === 'get') w.op.output = output;
    c.waiting = undefined;
  }

  run(steps: number): void {
    for (let i = 0; i < steps; i++) this.step();
  }

  /** Every server up, the network whole and lossless, and no more crashes, writes from the
   *  background or the clients, from now on. */
  heal(): void {
    this.cut.clear();
    this.o.proposeRate = 0;
    this.o.clients = 0;
    this.o.loss = 0;
    this.o.duplicate = 0;
    this.o.crashRate = 0;
    this.o.leaderCrashRate = 0;
    this.o.partitionRate = 0;
    this.o.confRate = 0;
    this.o.snapCrashRate = 0;
    // Compaction goes on: servers still behind are caught up by snapshots.
    for (const s of this.servers) if (!s.raft) this.start(s);
  }

  /** Proposes a command to a leader, if there is one; returns it. */
  propose(): string | undefined {
    const leaders = this.servers.filter((s) => s.raft?.role === 'leader');
    if (leaders.length === 0) return undefined;
    const s = this.rng.pick(leaders);
    const data = `c${this.nextCommand++}`;
    const ready = s.raft!.propose([data]);
    if (!ready) return undefined;
    this.stats.proposed++;
    this.carryOut(s, ready);
    return data;
  }

  /** Cuts one server off from every other, both ways. */
  isolate(id: string): void {
    for (const other of this.ids()) {
      if (other === id) continue;
      this.cutOne(id, other);
      this.cutOne(other, id);
    }
  }

  reconnect(): void {
    this.cut.clear();
  }

  term(id: string): number {
    return this.servers.find((s) => s.id === id)!.raft!.term;
  }

  transfer(from: string, to: string): void {
    const s = this.servers.find((x) => x.id === from)!;
    const ready = s.raft!.transferLeadership(to);
    if (ready) this.carryOut(s, ready);
  }

  leaders(): string[] {
    return this.servers.filter((s) => s.raft?.role === 'leader').map((s) => s.id);
  }

  appliedBy(id: string): Entry[] {
    return this.servers.find((s) => s.id === id)!.applied;
  }

  // ---- carrying out a ready, as a shell does ---------------------------------------------

  private carryOut(s: Server, ready: RaftReady): void {
    // A leader's appends may leave before its own write (as the peer's shell sends them:
    // scheduler/manager/ready-queue.ts), if their term is on disk.
    const early = earlySends(ready, s.disk.hardState);
    for (const msg of early) this.send(msg);
    // The write takes a while (or an earlier one still does: they are done in order).
    if (s.writes.length > 0 || (ready.persist && this.o.slowDiskRate > 0 && this.rng.chance(this.o.slowDiskRate))) {
      s.writes.push({ at: this.now + 1 + this.rng.int(3), ready, early });
      return;
    }
    this.write(s, ready, early);
  }

  /** A ready's write, then the rest of it: its other messages, its events, and (for entries)
   *  telling the core they are on disk. */
  private write(s: Server, ready: RaftReady, early: readonly RaftMessage[]): void {
    // A crash before the write: the ready is lost (nothing else of it left the server).
    if (ready.persist && this.o.crashRate > 0 && this.rng.chance(this.o.crashRate / 4)) {
      this.stats.lostTails++;
      this.crash(s);
      return;
    }
    if (ready.persist?.hardState) s.disk.hardState = { ...ready.persist.hardState };
    if (ready.persist?.snapshot) s.disk.snapshot = structuredClone(ready.persist.snapshot);
    const compactTo = ready.persist?.compactTo;
    if (compactTo !== undefined) s.disk.entries = s.disk.entries.filter((e) => e.index > compactTo);
    if (ready.persist?.entries) {
      const { from, entries } = ready.persist.entries;
      s.disk.entries = [...s.disk.entries.filter((e) => e.index < from), ...entries.map((e) => ({ ...e }))];
      for (const e of entries) this.checkLogMatching(s, e);
    }
    const first = s.disk.entries[0];
    if (first && first.index !== (s.disk.snapshot?.index ?? 0) + 1) this.fail(`${s.id}'s disk holds entry ${first.index} first, after a snapshot at ${s.disk.snapshot?.index ?? 0}`);
    for (const { msg } of ready.send) if (!early.includes(msg)) this.send(msg);
    for (const ev of ready.events) {
      if (ev.type === 'restore') this.onRestore(s, ev.snapshot);
      if (ev.type === 'role') s.reported = { role: ev.role, leader: ev.leader };
      if (ev.type === 'role' && ev.role === 'leader') this.onLeader(s, ev.term);
      if (ev.type === 'committed') {
        for (const e of ev.entries) this.onApply(s, e);
        this.serveReads(s);
      }
      if (ev.type === 'read') this.onRead(s, ev.ctx, ev.index);
    }
    // Every change of role or leader is reported: the shell retries its requests and reports
    // `leader-elected` from these events alone.
    if (s.raft && s.writes.length === 0 && (s.reported.role !== s.raft.role || s.reported.leader !== s.raft.leader)) {
      this.fail(`${s.id} is ${s.raft.role} under ${s.raft.leader ?? 'no leader'}, but its events last said ${s.reported.role} under ${s.reported.leader ?? 'no leader'}`);
    }
    // The write is done: a leader now counts its own entries (Raft.appended).
    const last = ready.persist?.entries?.entries.at(-1);
    if (last && s.raft) this.carryOut(s, s.raft.appended(last.index, last.term));
  }

  private send(msg: RaftMessage): void {
    if (this.cut.get(msg.from)?.has(msg.to)) return;
    if (this.rng.chance(this.o.loss)) return;
    const copies = this.rng.chance(this.o.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) this.network.push({ at: this.now + 1 + this.rng.int(this.o.maxDelay), msg });
  }

  private crash(s: Server): void {
    s.raft = undefined;
    s.writes = [];
    s.applied = [];
    this.stats.crashes++;
    // Its connections close: the others' shells tell their cores (peer shell: raft-node.ts).
    for (const o of this.servers) {
      if (!o.raft || o === s) continue;
      this.carryOut(o, o.raft.peerDisconnected(s.id));
      if (o.raft && o.raft.leader === s.id) this.carryOut(o, o.raft.leaderUnreachable());
    }
  }

  /** A new partition: the whole network, a minority cut off, or one-way cuts. */
  private repartition(): void {
    this.cut.clear();
    this.stats.partitions++;
    const ids = this.rng.shuffle(this.ids());
    const kind = this.rng.int(4);
    if (kind === 0) return; // whole again
    if (kind === 1 || kind === 2) {
      // Two sides; with kind 1 the current leader (if any) goes to the smaller one.
      const small = 1 + this.rng.int(Math.floor((ids.length - 1) / 2) + (ids.length > 3 ? 1 : 0));
      let side = ids.slice(0, small);
      const leader = this.leaders()[0];
      if (kind === 1 && leader && !side.includes(leader)) side = [leader, ...side.slice(1)];
      for (const a of ids) for (const b of ids) if (side.includes(a) !== side.includes(b)) this.cutOne(a, b);
      return;
    }
    // Asymmetric: a few one-way cuts.
    for (let i = 0; i < 1 + this.rng.int(ids.length); i++) {
      const a = this.rng.pick(ids);
      const b = this.rng.pick(ids);
      if (a !== b) this.cutOne(a, b);
    }
  }

  private cutOne(from: string, to: string): void {
    let set = this.cut.get(from);
    if (!set) this.cut.set(from, (set = new Set()));
    set.add(to);
  }

  // ---- invariants -------------------------------------------------------------------------

  private fail(what: string): never {
    throw new Error(`seed ${this.seed}, step ${this.now}: ${what}`);
  }

  private onLeader(s: Server, term: number): void {
    this.stats.elections++;
    const other = this.leaderOfTerm.get(term);
    if (other !== undefined && other !== s.id) this.fail(`two leaders in term ${term}: ${other} and ${s.id}`);
    this.leaderOfTerm.set(term, s.id);
    // Leader completeness: everything applied anywhere is in the new leader's log, or in its
    // snapshot (checked when it was made or installed, and its term here).
    const base = s.raft!.log.snapshotIndex();
    for (const [index, c] of this.committed) {
      if (index < base) continue;
      if (s.raft!.log.term(index) !== c.term) this.fail(`leader ${s.id} of term ${term} lacks committed entry ${index} (term ${c.term})`);
    }
  }

  /** Log matching, over every entry any server ever persisted: an index and term name one
   *  command and one predecessor term. */
  private checkLogMatching(s: Server, e: Entry): void {
    const prev = s.disk.entries.find((x) => x.index === e.index - 1);
    const snap = s.disk.snapshot;
    const prevTerm = e.index === 1 ? 0 : (prev?.term ?? (snap?.index === e.index - 1 ? snap.term : -1));
    const key = `${e.index}/${e.term}`;
    const known = this.seen.get(key);
    if (!known) {
      this.seen.set(key, { data: e.data, prevTerm });
      return;
    }
    if (known.data !== e.data) this.fail(`entry ${key} holds ${String(e.data)} on ${s.id} and ${String(known.data)} elsewhere`);
    if (known.prevTerm !== prevTerm && prevTerm !== -1 && known.prevTerm !== -1) {
      this.fail(`entry ${key} follows term ${prevTerm} on ${s.id} and term ${known.prevTerm} elsewhere`);
    }
  }

  private onApply(s: Server, e: Entry): void {
    const expected = s.applied.length + 1;
    if (e.index !== expected) this.fail(`${s.id} applied ${e.index} when ${expected} was next`);
    s.applied.push(e);
    const c = this.committed.get(e.index);
    this.applyKv(s, e);
    if (c && (c.term !== e.term || c.data !== e.data)) {
      this.fail(`${s.id} applied ${String(e.data)} (term ${e.term}) at ${e.index}, where ${String(c.data)} (term ${c.term}) was applied`);
    }
    if (!c) this.learnCommitted(e);
  }

  /** A newly applied index (they are learnt in order: whoever applies one first applied, or
   *  holds a checked snapshot of, all before it): into the reference state machines. */
  private learnCommitted(e: Entry): void {
    this.committed.set(e.index, { term: e.term, data: e.data });
    if (e.conf) this.confs.push({ index: e.index, conf: e.conf });
    if (e.data === null || !e.data.startsWith('{')) return;
    const cmd = JSON.parse(e.data) as KvCommand;
    if (cmd.kind !== 'put') return;
    let list = this.puts.get(cmd.key);
    if (!list) this.puts.set(cmd.key, (list = []));
    list.push({ index: e.index, value: cmd.value as string });
  }

  /** The key-value state after the committed entries up to `index`, serialized. */
  private stateAt(index: number): string {
    const kv = new Map<string, string>();
    for (const [key, list] of this.puts) {
      let value: string | undefined;
      for (const p of list) if (p.index <= index) value = p.value;
      if (value !== undefined) kv.set(key, value);
    }
    return serializeKv(kv);
  }

  private membershipAt(index: number): Membership {
    let m: Membership = { voters: this.initialVoters, learners: [] };
    for (const c of this.confs) if (c.index <= index) m = c.conf;
    return m;
  }

  /** State-machine safety for snapshots: one stands for exactly the committed entries up to
   *  its index (their state, the term of the last, the membership they make). */
  private checkSnapshot(s: Server, snap: Snapshot, how: string): void {
    const c = this.committed.get(snap.index);
    if (!c) this.fail(`${s.id} ${how} a snapshot at ${snap.index}, which no server has applied`);
    if (c.term !== snap.term) this.fail(`${s.id} ${how} a snapshot at ${snap.index} of term ${snap.term}, where term ${c.term} was applied`);
    const state = this.stateAt(snap.index);
    if (snap.data !== state) this.fail(`${s.id} ${how} a snapshot at ${snap.index} holding ${snap.data}, where the entries make ${state}`);
    const m = this.membershipAt(snap.index);
    if (JSON.stringify(snap.membership) !== JSON.stringify(m)) {
      this.fail(`${s.id} ${how} a snapshot at ${snap.index} with membership ${JSON.stringify(snap.membership)}, where the entries make ${JSON.stringify(m)}`);
    }
  }

  /** A server's state machine becomes the snapshot's: its store, and the entries it stands for
   *  (as applied, for the checks that follow and for the clients' answers). */
  private onRestore(s: Server, snap: Snapshot): void {
    this.stats.restores++;
    this.checkSnapshot(s, snap, 'restored');
    if (snap.index < s.applied.length) this.fail(`${s.id} restored a snapshot at ${snap.index} after applying ${s.applied.length}`);
    s.kv = new Map(JSON.parse(snap.data) as [string, string][]);
    s.applied = [];
    for (let i = 1; i <= snap.index; i++) {
      const c = this.committed.get(i)!;
      s.applied.push({ index: i, term: c.term, data: c.data });
    }
    this.serveReads(s);
  }

  /** The highest index applied by any server. */
  committedIndex(): number {
    return this.committed.size;
  }
}
