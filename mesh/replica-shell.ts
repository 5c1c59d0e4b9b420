import type { Libp2p } from '@libp2p/interface';
import { Channel, type ChannelStats } from './channel.ts';
import type { Identity } from './identity.ts';
import { errorText, type Logger } from './log.ts';
import type { MembershipEvent } from './membership.ts';
import { Replica, parseReplicaMessage, type Change, type Entry, type ReplicaMessage, type ReplicaSnapshot } from './replica.ts';
import type { Store } from './store.ts';

/** Anti-entropy period: one digest exchange with one random member per second repairs
 *  anything push missed (loss, partitions) within a few seconds on a mesh of tens. */
export const ANTI_ENTROPY_MS = 1000;
/** How often tombstones are checked for garbage collection; GC itself is age-based. */
const GC_EVERY_MS = 60_000;
/** Received state is persisted in the background, coalesced over this window: it can be
 *  fetched again from peers, so it need not be synced; our own writes are synced at once. */
const PERSIST_DEBOUNCE_MS = 2000;

const SNAPSHOT_KEY = 'replica/snapshot';
const OWN_PREFIX = 'replica/own/';

export interface ReplicaAttach {
  protocol: string;
  maxFrameBytes: number;
  maxQueueBytes: number;
  /** Ids of members currently alive: who we push to and exchange digests with. */
  alive(): string[];
}

/**
 * The I/O shell around the replica core: pushes our writes to every live member at once,
 * runs anti-entropy with one random member per period, persists to LevelDB, and tells
 * local consumers (DNS, IPAM) what changed.
 */
export class ReplicaShell {
  private replica: Replica;
  private readonly store: Store;
  private readonly identity: Identity;
  private readonly log: Logger;
  private channel?: Channel;
  private attachOpts?: ReplicaAttach;
  private lastAntiEntropy = 0;
  private lastGc = 0;
  private dirty = false;
  private persistTimer?: NodeJS.Timeout;
  private readonly listeners = new Set<(changes: Change[]) => void>();
  private readonly verify: (owner: string, bytes: Uint8Array, sig: string) => boolean;

  private constructor(init: { replica: Replica; store: Store; identity: Identity; log: Logger; verify: (owner: string, bytes: Uint8Array, sig: string) => boolean }) {
    this.replica = init.replica;
    this.store = init.store;
    this.identity = init.identity;
    this.log = init.log;
    this.verify = init.verify;
  }

  static async open(init: { store: Store; identity: Identity; log: Logger; verify: (owner: string, bytes: Uint8Array, sig: string) => boolean }): Promise<ReplicaShell> {
    const opts = { sign: init.identity.sign, verify: init.verify };
    const snap = await init.store.get<ReplicaSnapshot>(SNAPSHOT_KEY);
    const replica = snap ? Replica.restore(init.identity.id, snap, opts) : new Replica(init.identity.id, opts);
    // Our own acknowledged writes are synced one by one; replay any newer than the snapshot.
    const own = (await init.store.scan<Entry>(OWN_PREFIX)).map((r) => r.value);
    if (own.length) replica.receive({ t: 'push', entries: own } as ReplicaMessage, Date.now());
    return new ReplicaShell({ replica, ...init });
  }

  attach(node: Libp2p, opts: ReplicaAttach): void {
    this.attachOpts = opts;
    this.channel = new Channel(node, {
      protocol: opts.protocol,
      maxFrameBytes: opts.maxFrameBytes,
      maxQueueBytes: opts.maxQueueBytes,
      onMessage: (from, msg) => this.onMessage(from, msg),
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

  /** Writes a value owned by this peer (null deletes); resolves once it is on disk. */
  async put(key: string, value: string | null): Promise<{ version: number }> {
    const { entry, change } = this.replica.write(key, value, Date.now());
    await this.store.put(OWN_PREFIX + key, entry);
    this.markDirty();
    if (change) this.emit([change]);
    for (const id of this.attachOpts?.alive() ?? []) this.channel?.send(id, { t: 'push', entries: [entry] });
    return { version: entry.version };
  }

  /** Entries under a key (every owner's), or under a prefix. Tombstones excluded. */
  lookup(keyOrPrefix: string, prefix = false): Entry[] {
    return prefix
      ? this.replica.entries({ prefix: keyOrPrefix })
      : this.replica.entries({ prefix: keyOrPrefix }).filter((e) => e.key === keyOrPrefix);
  }

  size(): number {
    return this.replica.entries({ includeTombstones: true }).length;
  }

  stats(): ChannelStats {
    return this.channel?.stats ?? { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, rejected: 0 };
  }

  reset(peer: string): void {
    this.channel?.reset(peer);
  }

  onMember(e: MembershipEvent): void {
    // A member that (re)appears gets a repair exchange now: this is what heals partitions fast.
    if (e.type === 'joined' || e.type === 'rejoined' || e.type === 'alive') this.sendDigest(e.member.id);
  }

  tick(now: number): void {
    if (now - this.lastAntiEntropy >= ANTI_ENTROPY_MS) {
      this.lastAntiEntropy = now;
      const alive = this.attachOpts?.alive() ?? [];
      if (alive.length) this.sendDigest(alive[Math.floor(Math.random() * alive.length)] as string);
    }
    if (now - this.lastGc >= GC_EVERY_MS) {
      this.lastGc = now;
      if (this.replica.gc(now).dropped.length) this.markDirty();
    }
  }

  private sendDigest(to: string): void {
    this.channel?.send(to, { t: 'digest', digest: this.replica.digest() });
  }

  private onMessage(from: string, raw: unknown): void {
    const msg = parseReplicaMessage(raw);
    if (typeof msg === 'string') {
      this.stats().rejected++;
      this.log.warn('rejected replication message', { peer: from, reason: msg });
      return;
    }
    const res = this.replica.receive(msg, Date.now());
    if (res.rejected) {
      this.stats().rejected++;
      this.log.warn('rejected replicated entries', { peer: from, reason: res.rejected });
    }
    for (const reply of res.reply) this.channel?.send(from, reply);
    if (res.persist.length || res.changes.length) this.markDirty();
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

  private markDirty(): void {
    this.dirty = true;
    this.persistTimer ??= setTimeout(() => {
      this.persistTimer = undefined;
      void this.flush();
    }, PERSIST_DEBOUNCE_MS);
  }

  /** Writes the replica snapshot if anything changed since the last one. */
  async flush(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      await this.store.put(SNAPSHOT_KEY, this.replica.export(), false);
    } catch (err) {
      this.log.error('cannot persist replicated state', { err: errorText(err) });
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    await this.channel?.stop();
  }
}
