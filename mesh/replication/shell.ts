// The I/O shell around the replica core: the channel its messages travel on, the disk its
// entries live on, and the local consumers (DNS, IPAM) it tells what changed. The core decides
// what to send to whom (pushes, relays, anti-entropy, repairs); this carries out its ready
// (applyReady, mesh/ready.ts): persist, send, report.
import type { Connection, Libp2p } from '@libp2p/interface';
import { Channel, type ChannelStats } from '../transport/channel.ts';
import type { Identity } from '../admission/identity.ts';
import { REPLICA_ENTRY_PREFIX, REPLICA_META_KEY } from '../keyspace.ts';
import { errorText, type Logger } from '../log.ts';
import { LogOnce } from '../log-once.ts';
import { applyReady, type ReadyIo, type Rejection } from '../ready.ts';
import { ReplicaInbox } from './inbox.ts';
import type { MembershipEvent } from '../membership/member.ts';
import { Replica, mustSync, type ReplicaEvent, type ReplicaPersist, type ReplicaReady } from './replica.ts';
import { entrySigningBytes, parseReplicaMessage, type Change, type Entry, type ReplicaMessage } from './wire.ts';
import { entryStorageKey, type ReplicaMeta } from './store.ts';
import type { Store } from '../store.ts';
import { WriteBehind } from '../write-behind.ts';

/** Received entries are written in coalesced background batches: they can be fetched again
 *  from peers, so they need no sync; our own writes are synced before anything leaves. */
const PERSIST_DEBOUNCE_MS = 250;

export interface ReplicaAttach {
  protocol: string;
  maxFrameBytes: number;
  maxQueueBytes: number;
  /** Ids of members currently alive: who we push to and exchange digests with. */
  alive(): string[];
  accept?(conn: Connection): boolean;
}

type Verify = (owner: string, bytes: Uint8Array, sig: string) => boolean;

/** Whom the core may gossip with, known once the shell is attached to the mesh. */
interface PeerSource {
  alive(): readonly string[];
}

export class ReplicaShell {
  private readonly replica: Replica;
  private readonly store: Store;
  private readonly log: Logger;
  private channel?: Channel;
  private readonly peers: PeerSource;
  /** Entry rows changed since the last batch, written with the meta record beside them. */
  private readonly rows: WriteBehind;
  private readonly listeners = new Set<(changes: Change[]) => void>();
  /** One line per owner past its quota (and a count now and then), not one per message. */
  private readonly quotaLog = new LogOnce();
  /** One line per sender whose backlog overflowed, not one per dropped message. */
  private readonly backlogLog = new LogOnce();
  /** Received messages, their signatures checked a slice per turn so a flood cannot stall us. */
  private readonly inbox: ReplicaInbox;
  private readonly io: ReadyIo<ReplicaMessage, ReplicaPersist, ReplicaEvent> = {
    persist: (p) => this.persist(p),
    send: (to, msg) => this.channel?.send(to, msg),
    events: (events) => this.onEvents(events),
    rejected: (rejected) => this.onRejected(rejected),
  };

  private constructor(replica: Replica, store: Store, log: Logger, verify: Verify, peers: PeerSource) {
    this.replica = replica;
    this.store = store;
    this.log = log;
    this.peers = peers;
    this.rows = new WriteBehind({
      store, log, what: 'replicated state', delayMs: PERSIST_DEBOUNCE_MS,
      // In every batch: the meta on disk never claims more than the rows beside it.
      extra: () => [{ key: REPLICA_META_KEY, value: this.replica.meta() }],
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
    const meta = await init.store.get<ReplicaMeta>(REPLICA_META_KEY);
    const rows = await init.store.scan<Entry>(REPLICA_ENTRY_PREFIX);
    // Nobody to gossip with until attach says who is alive.
    const peers: PeerSource = { alive: () => [] };
    const replica = Replica.load(init.identity.id, meta, rows.map((r) => r.value), {
      sign: init.identity.sign, verify: init.verify, peers: () => peers.alive(),
    });
    return new ReplicaShell(replica, init.store, init.log, init.verify, peers);
  }

  attach(node: Libp2p, opts: ReplicaAttach): void {
    this.peers.alive = () => opts.alive();
    this.channel = new Channel(node, {
      protocol: opts.protocol,
      maxFrameBytes: opts.maxFrameBytes,
      maxQueueBytes: opts.maxQueueBytes,
      onMessage: (from, msg) => this.onMessage(from, msg),
      accept: opts.accept,
      // A member that opened its side is reachable: start a repair exchange at once rather
      // than waiting for the random anti-entropy round to pick it.
      onInbound: (from) => this.carryOut(this.replica.repair(from)),
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
    const ready = this.replica.write(key, value, Date.now());
    await applyReady(ready, this.io);
    return { version: ready.entry.version };
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

  /** A member that (re)appears may get a repair exchange now (the core decides, see
   *  Replica.appeared): this is what heals partitions fast. Not one that refuted a suspicion
   *  (suspect to alive): it never left, so there is nothing to repair. */
  onMember(e: MembershipEvent): void {
    if (e.type !== 'joined' && e.type !== 'rejoined') return;
    this.carryOut(this.replica.appeared(e.member.id));
  }

  /** A peer removed from the mesh for good: its entries go, and gossip cannot bring them back. */
  async dropOwner(owner: string): Promise<void> {
    await applyReady(this.replica.dropOwner(owner), this.io);
  }

  tick(now: number): void {
    this.carryOut(this.replica.tick(now));
  }

  /** Carries out a ready no caller waits for; a failed write was logged where it failed. */
  private carryOut(ready: ReplicaReady): void {
    applyReady(ready, this.io)?.catch(() => undefined);
  }

  /** Rows for the disk. Own entries (issued here) and dropped owners are synced before the rest
   *  of the ready goes out; others' entries and deletions are written behind (refetched from
   *  peers if a crash loses them). */
  private persist(p: ReplicaPersist): Promise<void> | void {
    for (const e of [...p.issued, ...p.put]) this.rows.set(REPLICA_ENTRY_PREFIX + entryStorageKey(e.owner, e.key), e);
    for (const r of p.remove) this.rows.set(REPLICA_ENTRY_PREFIX + entryStorageKey(r.owner, r.key), undefined);
    if (p.dropped.length > 0) return this.drop(p.dropped);
    if (mustSync(p)) return this.rows.write(true);
    this.rows.schedule();
  }

  /** Deletes dropped owners' rows, in one synced batch with the meta record that lists them as
   *  dropped (Replica.load skips entries of dropped owners, so a crash between is harmless). */
  private async drop(owners: readonly string[]): Promise<void> {
    for (const owner of owners) {
      for (const { key } of await this.store.scan<Entry>(REPLICA_ENTRY_PREFIX + entryStorageKey(owner, ''))) this.rows.set(key, undefined);
    }
    await this.rows.write(true);
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
    let ready: ReplicaReady;
    try {
      ready = this.replica.receive(from, msg, Date.now(), checked);
    } catch (err) {
      // Runs outside the channel's read loop: nothing a peer sent may end the process.
      this.stats().rejected++;
      this.log.error('cannot apply replication message', { peer: from, err: errorText(err) });
      return;
    }
    this.carryOut(ready);
  }

  private onRejected(rejected: readonly Rejection[]): void {
    for (const r of rejected) {
      this.stats().rejected++;
      this.log.warn('rejected replicated entries', { peer: r.from, reason: r.reason });
    }
  }

  private onEvents(events: readonly ReplicaEvent[]): void {
    const changes: Change[] = [];
    for (const e of events) {
      if (e.type === 'changed') {
        changes.push(e.change);
        continue;
      }
      const suppressed = this.quotaLog.shouldLog(e.owner, Date.now());
      if (suppressed !== undefined) this.log.warn('refused replicated entries past their owner\'s quota', { peer: e.from, owner: e.owner, reason: e.reason, entries: e.entries, repeats: suppressed });
    }
    if (changes.length > 0) this.emit(changes);
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
