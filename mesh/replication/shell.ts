import type { Connection, Libp2p } from '@libp2p/interface';
import { Channel, type ChannelStats } from '../transport/channel.ts';
import type { Identity } from '../admission/identity.ts';
import { errorText, type Logger } from '../log.ts';
import { LogOnce } from '../log-once.ts';
import { pickTargets, PUSH_FANOUT } from '../gossip-targets.ts';
import { ReplicaInbox } from './inbox.ts';
import type { MembershipEvent } from '../membership/membership.ts';
import {
  Replica, entrySigningBytes, entryStorageKey, parseReplicaMessage,
  type Change, type Entry, type ReplicaMessage, type ReplicaMeta,
} from './replica.ts';
import type { Store } from '../store.ts';
import { WriteBehind } from '../write-behind.ts';

/** Anti-entropy period: one digest exchange with one random member per second repairs
 *  anything push missed (loss, partitions) within a few seconds on a mesh of tens. */
export const ANTI_ENTROPY_MS = 1000;
/** Repair exchanges started, on average, by the members for one that joins or returns, and by
 *  it for itself (see onMember). Each is a two-way repair, so with about 3 + 3 the chance that
 *  none happens is e^-6 (0.25 %), and anti-entropy repairs that within seconds. */
const JOIN_REPAIR_FANOUT = 3;
/** How often tombstones are checked for garbage collection; GC itself is age-based. */
const GC_EVERY_MS = 60_000;
/** Received entries are written in coalesced background batches: they can be fetched again
 *  from peers, so they need no sync; our own writes are synced before they are acknowledged. */
const PERSIST_DEBOUNCE_MS = 250;

/** On disk: one row per entry under ENTRY_PREFIX, and the replica's meta record. */
const ENTRY_PREFIX = 'replica/e/';
const META_KEY = 'replica/meta';

export interface ReplicaAttach {
  protocol: string;
  maxFrameBytes: number;
  maxQueueBytes: number;
  /** Ids of members currently alive: who we push to and exchange digests with. */
  alive(): string[];
  accept?(conn: Connection): boolean;
}

type Verify = (owner: string, bytes: Uint8Array, sig: string) => boolean;

/**
 * The I/O shell around the replica core: pushes our writes to PUSH_FANOUT random live members
 * at once and relays what others' pushes told us first the same way (gossip-targets.ts), runs
 * anti-entropy with one random member per period, persists to LevelDB, and tells local
 * consumers (DNS, IPAM) what changed.
 */
export class ReplicaShell {
  private readonly replica: Replica;
  private readonly store: Store;
  private readonly log: Logger;
  private channel?: Channel;
  private attachOpts?: ReplicaAttach;
  private lastAntiEntropy = 0;
  private lastGc = 0;
  /** Entry rows changed since the last batch, written with the meta record beside them. */
  private readonly rows: WriteBehind;
  private readonly listeners = new Set<(changes: Change[]) => void>();
  /** One line per owner past its quota (and a count now and then), not one per message. */
  private readonly quotaLog = new LogOnce();
  /** One line per sender whose backlog overflowed, not one per dropped message. */
  private readonly backlogLog = new LogOnce();
  /** Received messages, their signatures checked a slice per turn so a flood cannot stall us. */
  private readonly inbox: ReplicaInbox;

  private constructor(replica: Replica, store: Store, log: Logger, verify: Verify) {
    this.replica = replica;
    this.store = store;
    this.log = log;
    this.rows = new WriteBehind({
      store, log, what: 'replicated state', delayMs: PERSIST_DEBOUNCE_MS,
      // In every batch: the meta on disk never claims more than the rows beside it.
      extra: () => [{ key: META_KEY, value: this.replica.meta() }],
    });
    this.inbox = new ReplicaInbox({
      check: (e) => {
        try {
          return verify(e.owner, entrySigningBytes(e), e.sig) === true;
        } catch {
          return false;
        }
      },
      held: (e) => {
        const cur = replica.get(e.owner, e.key);
        return cur !== undefined && cur.version === e.version && cur.sig === e.sig && cur.value === e.value;
      },
      apply: (from, msg, checked) => this.apply(from, msg, checked),
      dropped: (from) => {
        this.stats().dropped++;
        const suppressed = this.backlogLog.shouldLog(from, Date.now());
        if (suppressed !== undefined) this.log.warn('dropped replication messages: the peer sends faster than we can check its signatures', { peer: from, repeats: suppressed });
      },
    });
  }

  static async open(init: { store: Store; identity: Identity; log: Logger; verify: Verify }): Promise<ReplicaShell> {
    const meta = await init.store.get<ReplicaMeta>(META_KEY);
    const rows = await init.store.scan<Entry>(ENTRY_PREFIX);
    const replica = Replica.load(init.identity.id, meta, rows.map((r) => r.value), { sign: init.identity.sign, verify: init.verify });
    return new ReplicaShell(replica, init.store, init.log, init.verify);
  }

  attach(node: Libp2p, opts: ReplicaAttach): void {
    this.attachOpts = opts;
    this.channel = new Channel(node, {
      protocol: opts.protocol,
      maxFrameBytes: opts.maxFrameBytes,
      maxQueueBytes: opts.maxQueueBytes,
      onMessage: (from, msg) => this.onMessage(from, msg),
      accept: opts.accept,
      // A member that opened its side is reachable: start a repair exchange at once rather
      // than waiting for the random anti-entropy round to pick it.
      onInbound: (from) => this.sendDigest(from),
    }, this.log);
  }

  async start(): Promise<void> {
    await this.channel?.start();
  }

  onChange(fn: (changes: Change[]) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Writes a value owned by this peer (null deletes); resolves once it is on disk. Rejects
   *  with a QuotaError, whose message is a sentence for the user, if this peer's space for that
   *  kind of entry is full (a deletion never is); nothing is then stored or sent. */
  async put(key: string, value: string | null): Promise<{ version: number }> {
    const { entry, change, push } = this.replica.write(key, value, Date.now());
    this.rows.set(ENTRY_PREFIX + entryStorageKey(entry.owner, entry.key), entry);
    await this.rows.write(true);
    if (change) this.emit([change]);
    this.broadcast([push]);
    return { version: entry.version };
  }

  /** Live entries under exactly `key` (every owner's), or under a prefix. */
  lookup(keyOrPrefix: string, prefix = false): Entry[] {
    const found = this.replica.entries({ prefix: keyOrPrefix });
    return prefix ? found : found.filter((e) => e.key === keyOrPrefix);
  }

  size(): number {
    return this.replica.size();
  }

  /** Entries of other owners refused for quota since start. */
  refused(): number {
    return this.replica.refused();
  }

  stats(): ChannelStats {
    return this.channel?.stats ?? { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, rejected: 0 };
  }

  reset(peer: string): void {
    this.channel?.reset(peer);
  }

  onMember(e: MembershipEvent): void {
    // A member that (re)appears gets a repair exchange now: this is what heals partitions fast.
    // Not from every peer, though: all N hear of a join at once, and N digests of N owners each,
    // each answered with a full state, landed on the one peer busy starting (the joiner, which
    // also sent one to each member it learned). One exchange repairs a pair both ways, and any
    // member's state is the whole mesh's, so a few suffice: each peer takes part with
    // probability JOIN_REPAIR_FANOUT / N, about that many exchanges per (re)appearing member from
    // each side; anti-entropy covers the rare member none picked. Not one that refuted a
    // suspicion (suspect to alive): it never left, so there is nothing to repair.
    if (e.type !== 'joined' && e.type !== 'rejoined') return;
    const n = this.attachOpts?.alive().length ?? 0;
    if (Math.random() < JOIN_REPAIR_FANOUT / Math.max(1, n)) this.sendDigest(e.member.id);
  }

  /** A peer removed from the mesh for good: its entries go, and gossip cannot bring them back. */
  async dropOwner(owner: string): Promise<void> {
    const changes = this.replica.dropOwner(owner);
    for (const { key } of (await this.store.scan<Entry>(ENTRY_PREFIX + entryStorageKey(owner, '')))) {
      this.rows.set(key, undefined);
    }
    await this.rows.write(true);
    if (changes.length) this.emit(changes);
  }

  tick(now: number): void {
    if (now - this.lastAntiEntropy >= ANTI_ENTROPY_MS) {
      this.lastAntiEntropy = now;
      const alive = this.attachOpts?.alive() ?? [];
      if (alive.length) this.sendDigest(alive[Math.floor(Math.random() * alive.length)] as string);
    }
    if (now - this.lastGc >= GC_EVERY_MS) {
      this.lastGc = now;
      const { dropped } = this.replica.gc(now);
      for (const e of dropped) this.rows.set(ENTRY_PREFIX + entryStorageKey(e.owner, e.key), undefined);
      if (dropped.length) this.rows.schedule();
    }
  }

  private sendDigest(to: string): void {
    for (const m of this.replica.digestMessages()) this.channel?.send(to, m);
  }

  /** Sends `msgs` to PUSH_FANOUT random live members other than `exclude`. */
  private broadcast(msgs: readonly ReplicaMessage[], exclude?: ReadonlySet<string>): void {
    if (msgs.length === 0) return;
    for (const id of pickTargets(this.attachOpts?.alive() ?? [], PUSH_FANOUT, Math.random, exclude)) {
      for (const m of msgs) this.channel?.send(id, m);
    }
  }

  /** Queues a received message; returns a promise while its sender has a large backlog (see
   *  ReplicaInbox.push), for a reader that holds off reading until it resolves. */
  private onMessage(from: string, raw: unknown): Promise<void> | undefined {
    const msg = parseReplicaMessage(raw);
    if (typeof msg === 'string') {
      this.stats().rejected++;
      this.log.warn('rejected replication message', { peer: from, reason: msg });
      return undefined;
    }
    return this.inbox.push(from, msg);
  }

  /** Entries received and not yet checked or merged. */
  backlog(): number {
    return this.inbox.backlog();
  }

  /** Most signatures checked in one turn of the event loop so far (see ReplicaInbox). */
  mostCheckedInOneTurn(): number {
    return this.inbox.mostCheckedInOneTurn();
  }

  /** A message whose signatures the inbox has checked, merged in one synchronous step. */
  private apply(from: string, msg: ReplicaMessage, checked: ReadonlyMap<Entry, boolean>): void {
    try {
      this.merge(from, msg, checked);
    } catch (err) {
      // Runs outside the channel's read loop: nothing a peer sent may end the process.
      this.stats().rejected++;
      this.log.error('cannot apply replication message', { peer: from, err: errorText(err) });
    }
  }

  private merge(from: string, msg: ReplicaMessage, checked: ReadonlyMap<Entry, boolean>): void {
    const res = this.replica.receive(msg, Date.now(), checked);
    if (res.rejected) {
      this.stats().rejected++;
      this.log.warn('rejected replicated entries', { peer: from, reason: res.rejected });
    }
    for (const r of res.refused ?? []) {
      const suppressed = this.quotaLog.shouldLog(r.owner, Date.now());
      if (suppressed !== undefined) this.log.warn('refused replicated entries past their owner\'s quota', { peer: from, owner: r.owner, reason: r.reason, entries: r.entries, repeats: suppressed });
    }
    for (const reply of res.reply) this.channel?.send(from, reply);
    this.broadcast(res.broadcast);
    // The sender and the owners hold what we relay already.
    if (res.relay.length > 0) this.broadcast(res.relay, new Set([from, ...res.relay.flatMap((m) => m.entries.map((e) => e.owner))]));
    for (const e of res.persist) this.rows.set(ENTRY_PREFIX + entryStorageKey(e.owner, e.key), e);
    for (const r of res.remove) this.rows.set(ENTRY_PREFIX + entryStorageKey(r.owner, r.key), undefined);
    if (res.persist.length || res.remove.length || res.broadcast.length) this.rows.schedule();
    if (res.changes.length) this.emit(res.changes);
  }

  private emit(changes: Change[]): void {
    for (const fn of this.listeners) {
      try {
        fn(changes);
      } catch (err) {
        this.log.error('replica listener failed', { err: errorText(err) });
      }
    }
  }

  /** Writes whatever is pending (at shutdown). */
  async flush(): Promise<void> {
    await this.rows.write(true);
  }

  async stop(): Promise<void> {
    this.inbox.stop();
    this.rows.cancel();
    await this.channel?.stop();
  }
}
