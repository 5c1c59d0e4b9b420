// A simulated mesh of replicas for the gossip replication tests: a seeded lossy network, a
// simulated clock in rounds of anti-entropy, a simulated disk per peer, crash and restart, and an
// oracle of every write ever made against which invariants are checked. Each peer's core chooses
// its own push, relay and anti-entropy targets with its own seeded random source, as in the
// shell; the world carries out its readies as the shell does (persist, send, report).

import { ANTI_ENTROPY_MS, Replica, type ReplicaOptions, type ReplicaReady, changesOf, mustSync } from '../../mesh/replication/replica.ts';
import { type Change, type Entry, MAX_MESSAGE_BYTES, type ReplicaMessage, entrySigningBytes, parseReplicaMessage, utf8Length } from '../../mesh/replication/wire.ts';
import { type ReplicaMeta, type ReplicaSnapshot, entryStorageKey, ownerStoragePrefix } from '../../mesh/replication/store.ts';
import { tieBreak } from '../../mesh/replication/owner.ts';
import { PUSH_FANOUT } from '../../mesh/gossip-targets.ts';
import { type Envelope, SimNetwork } from './network.ts';
import { Rng } from './rng.ts';

/** One simulated round: the core's anti-entropy period. */
export const ROUND_MS = ANTI_ENTROPY_MS;
/** Network processing granularity inside a round (messages take 1-20 ms). */
const STEP_MS = 10;
/** How long rows written behind wait before they are on the simulated disk: about the shell's
 *  write-behind delay (a quarter second), so a kill -9 while entries arrive loses the last
 *  quarter second of them, as on a real peer. */
const ROWS_BEHIND_MS = 250;

// A cheap deterministic stand-in for Ed25519: FNV-1a (two 32-bit lanes) keyed by a per-owner
// secret. Forging needs the owner's secret, which tests only use deliberately.
export function fakeSig(owner: string, bytes: Uint8Array): string {
  let a = 0x811c9dc5;
  let b = 0x2545f491;
  const secret = `secret:${owner}:`;
  for (let i = 0; i < secret.length; i++) {
    const c = secret.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193);
  }
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i] as number;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ (c + 0x9e), 0x01000193);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}

export function fakeCrypto(self: string, extra: Partial<ReplicaOptions> = {}): ReplicaOptions {
  return {
    sign: (bytes) => fakeSig(self, bytes),
    verify: (owner, bytes, sig) => fakeSig(owner, bytes) === sig,
    ...extra,
  };
}

export function peerId(i: number): string {
  return `p${String(i).padStart(4, '0')}`;
}

/** Every write ever made, by anyone: the ground truth invariants are checked against. */
export class Oracle {
  private readonly byId = new Map<string, Entry>();
  /** owner → key → writes ascending by version. */
  readonly history = new Map<string, Map<string, Entry[]>>();
  readonly maxVersion = new Map<string, number>();
  /** Owners that reused a version (lost writes after a crash): the per-version checks skip them. */
  readonly collided = new Set<string>();
  private readonly used = new Map<string, Set<number>>();

  /** Notes a write; false if it was known already. */
  record(e: Entry): boolean {
    const id = `${e.owner}\u0000${e.version}\u0000${e.key}`;
    if (this.byId.has(id)) return false;
    this.byId.set(id, e);
    const used = this.used.get(e.owner) ?? new Set<number>();
    if (used.has(e.version)) this.collided.add(e.owner);
    used.add(e.version);
    this.used.set(e.owner, used);
    let keys = this.history.get(e.owner);
    if (keys === undefined) this.history.set(e.owner, (keys = new Map()));
    const list = keys.get(e.key) ?? [];
    list.push(e);
    list.sort((a, b) => a.version - b.version || tieBreak(a, b));
    keys.set(e.key, list);
    this.maxVersion.set(e.owner, Math.max(this.maxVersion.get(e.owner) ?? 0, e.version));
    return true;
  }

  written(e: Entry): Entry | undefined {
    return this.byId.get(`${e.owner}\u0000${e.version}\u0000${e.key}`);
  }

  /** The state every peer must converge to: per (owner, key) the winning write, live only. */
  expected(dropped: ReadonlySet<string>): Map<string, Entry> {
    const out = new Map<string, Entry>();
    for (const [owner, keys] of this.history) {
      if (dropped.has(owner)) continue;
      for (const [key, list] of keys) {
        const last = list[list.length - 1] as Entry;
        if (last.value !== null) out.set(`${owner}\u0000${key}`, last);
      }
    }
    return out;
  }
}

export interface WorldOptions {
  seed: number;
  peers: number;
  loss?: number;
  /** Each peer's core sends a digest to one random connected peer each round (default on):
   *  off measures push alone. */
  antiEntropy?: boolean;
  /** Peers a local write is pushed to at once, and a rumor relayed to, by the core (default
   *  PUSH_FANOUT, what the shell does); 0 means only anti-entropy spreads writes. */
  pushFanout?: number;
  /** Round-trip every message through JSON and parseReplicaMessage, checking its size. */
  wire?: boolean;
  maxMessageBytes?: number;
  tombstoneGcMs?: number;
  /** Invariants after every delivered message (for the receiver) and every round (for all),
   *  or only every round (large worlds). */
  check?: 'message' | 'round';
  /** Members that lie (the test sends their forged messages with `inject`): what they send may
   *  be rejected, and their own entries are not expected to converge (they may be over quota),
   *  only to stay bounded. */
  hostile?: string[];
}

interface Disk {
  entries: Map<string, Entry>;
  meta: ReplicaMeta | undefined;
  /** Rows written behind and not yet on disk (undefined: a deletion): a crash loses them. */
  pending: Map<string, Entry | undefined>;
  /** When the oldest of them was queued. */
  pendingSince: number | undefined;
}

export class World {
  readonly rng: Rng;
  readonly net: SimNetwork<ReplicaMessage>;
  readonly ids: string[];
  readonly replicas = new Map<string, Replica>();
  readonly oracle = new Oracle();
  readonly dropped = new Set<string>();
  /** Each peer's random source, kept across its restarts (as the shell's is seeded by its id). */
  private readonly randoms = new Map<string, () => number>();
  /** Per peer, the highest version it signed (a write, or a re-issue) since it last started:
   *  what a restart from its disk must not fall below (own entries are synced before they
   *  leave, so its peers never hold a version of it that its disk lacks). */
  private readonly signed = new Map<string, number>();
  /** Called after each network step, for tests that act the moment something happens. */
  onStep: () => void = () => {};
  /** When each peer's core next wants a tick (its readies' `next`). */
  private readonly due = new Map<string, number>();
  /** Owners each peer has been told to drop. */
  private readonly droppedAt = new Map<string, Set<string>>();
  /** Each peer's view rebuilt only from the changes it reported: must equal its live entries. */
  private readonly shadow = new Map<string, Map<string, string>>();
  private readonly disks = new Map<string, Disk>();
  /** Highest complete level each peer has reported per owner, within one incarnation. */
  private readonly levels = new Map<string, Map<string, number>>();
  private readonly opts: Required<Omit<WorldOptions, 'maxMessageBytes' | 'tombstoneGcMs' | 'hostile'>> & WorldOptions;
  readonly hostile: ReadonlySet<string>;
  round = 0;
  delivered = 0;
  /** Delivered messages by kind ('digest', 'push', 'delta', 'replace', 'union') and re-issued
   *  entries ('reissued'), so tests can show the path they target was taken. */
  readonly stats = new Map<string, number>();

  constructor(opts: WorldOptions) {
    this.opts = { loss: 0, antiEntropy: true, pushFanout: PUSH_FANOUT, wire: false, check: 'message', ...opts };
    this.hostile = new Set(opts.hostile ?? []);
    this.rng = new Rng(opts.seed);
    this.net = new SimNetwork<ReplicaMessage>(new Rng(opts.seed ^ 0x5eed), { loss: this.opts.loss });
    this.ids = Array.from({ length: opts.peers }, (_, i) => peerId(i));
    for (const [i, id] of this.ids.entries()) {
      const rng = new Rng(opts.seed * 31 + i + 1);
      this.randoms.set(id, () => rng.next());
      this.replicas.set(id, new Replica(id, this.replicaOptions(id)));
      this.shadow.set(id, new Map());
      this.disks.set(id, { entries: new Map(), meta: undefined, pending: new Map(), pendingSince: undefined });
      this.levels.set(id, new Map());
    }
  }

  private replicaOptions(id: string): ReplicaOptions {
    return fakeCrypto(id, {
      tombstoneGcMs: this.opts.tombstoneGcMs,
      maxMessageBytes: this.opts.maxMessageBytes,
      // As the shell's membership view: the peers it can reach, so its gossip is not wasted.
      peers: () => this.ids.filter((o) => o !== id && this.net.connected(id, o) && !this.dropped.has(o)),
      random: this.randoms.get(id),
      pushFanout: this.opts.pushFanout,
      antiEntropyMs: this.opts.antiEntropy ? ROUND_MS : Infinity,
      // Every round, so tests can collect tombstones within a few rounds.
      gcIntervalMs: ROUND_MS,
    });
  }

  get now(): number {
    return this.net.now;
  }

  replica(id: string): Replica {
    const r = this.replicas.get(id);
    if (r === undefined) throw new Error(`no peer ${id}`);
    return r;
  }

  live(): string[] {
    return this.ids.filter((id) => !this.net.isDown(id) && !this.dropped.has(id));
  }

  write(id: string, key: string, value: string | null): Entry {
    const ready = this.replica(id).write(key, value, this.now);
    this.oracle.record(ready.entry);
    this.apply(id, ready);
    return ready.entry;
  }

  /** A random write from a random live peer: set or delete one of a few keys. */
  randomWrite(keys = 8): Entry {
    const id = this.rng.pick(this.live());
    const key = `k${this.rng.int(keys)}`;
    const value = this.rng.chance(0.25) ? null : `v${this.round}.${this.rng.int(1e6)}`;
    return this.write(id, key, value);
  }

  send(from: string, to: string, msg: ReplicaMessage): void {
    this.net.send(from, to, msg);
  }

  /** Sends a hostile member's crafted message. Entries in it that carry their owner's valid
   *  signature become part of the ground truth (the owner did sign them); any other is a forgery
   *  no peer may ever hold. */
  inject(from: string, to: string, msg: ReplicaMessage): void {
    if (!this.hostile.has(from)) throw new Error(`${from} is not a hostile member of this world`);
    if ('entries' in msg) {
      const sigOk = fakeCrypto(from).verify;
      for (const e of msg.entries) if (sigOk(e.owner, entrySigningBytes(e), e.sig)) this.oracle.record(e);
    }
    this.net.send(from, to, msg);
  }

  /** One anti-entropy period: each core ticked when it asked to be (digests sent, tombstones
   *  collected), all traffic delivered. `midway`: something done `atMs` into the round, while
   *  messages are in flight (a crash, say). */
  runRound(midway?: { atMs: number; act: () => void }): void {
    const start = this.now;
    for (const id of this.live()) {
      if (start >= (this.due.get(id) ?? -Infinity)) this.apply(id, this.replica(id).tick(start));
    }
    if (midway !== undefined) {
      this.runUntil(start + midway.atMs);
      midway.act();
    }
    this.runUntil(start + ROUND_MS);
    this.round++;
    this.checkAll();
  }

  runUntil(t: number): void {
    while (this.now < t) {
      for (const env of this.net.advance(Math.min(t, this.now + STEP_MS))) this.deliver(env);
      for (const id of this.live()) {
        const since = this.disk(id).pendingSince;
        if (since !== undefined && this.now >= since + ROWS_BEHIND_MS) this.flush(id);
      }
      this.onStep();
    }
  }

  private deliver(env: Envelope<ReplicaMessage>): void {
    const r = this.replicas.get(env.to);
    if (r === undefined || this.dropped.has(env.to)) return;
    let msg = env.msg;
    if (this.opts.wire) {
      const json = JSON.stringify(msg);
      const bytes = utf8Length(json);
      const entries = 'entries' in msg ? msg.entries.length : 0;
      if (bytes > (this.opts.maxMessageBytes ?? MAX_MESSAGE_BYTES) && entries > 1) {
        throw new Error(`message of ${bytes} bytes exceeds the bound (${msg.t}, ${entries} entries)`);
      }
      const back = parseReplicaMessage(JSON.parse(json));
      if (typeof back === 'string') {
        if (this.hostile.has(env.from)) {
          this.count('invalid');
          return;
        }
        throw new Error(`honest peer sent an invalid message: ${back}`);
      }
      msg = back;
    }
    const res = r.receive(env.from, msg, this.now);
    this.delivered++;
    this.count(msg.t === 'snapshot' ? (msg.replace ? 'replace' : 'union') : msg.t);
    for (const x of res.rejected) if (!this.hostile.has(x.from)) throw new Error(`honest message rejected at ${env.to}: ${x.reason}`);
    for (const e of res.events) {
      if (e.type !== 'over-quota') continue;
      if (!this.hostile.has(e.owner)) throw new Error(`${env.to} refused entries of honest ${e.owner}: ${e.reason}`);
      this.count('refused', e.entries);
    }
    // Own entries signed again at fresh versions (Replica.reissue): new writes of the owner's.
    for (const e of res.persist?.issued ?? []) if (this.oracle.record(e)) this.count('reissued');
    this.apply(env.to, res);
    if (this.opts.check === 'message') this.checkPeer(env.to);
  }

  private count(kind: string, n = 1): void {
    this.stats.set(kind, (this.stats.get(kind) ?? 0) + n);
  }

  /** What the shell does with a ready (applyReady): persist, then send, then report the
   *  changes to consumers. As the shell's disk: rows are queued and written behind in one batch
   *  with the meta record (see flush), and a persist that must be synced (own entries, dropped
   *  owners) writes the queued rows at once, before anything is sent. */
  private apply(id: string, ready: ReplicaReady): void {
    this.due.set(id, ready.next ?? Infinity);
    const p = ready.persist;
    if (p !== undefined) {
      for (const e of p.issued) this.signed.set(id, Math.max(this.signed.get(id) ?? 0, e.version));
      const disk = this.disk(id);
      for (const e of [...p.issued, ...p.put]) disk.pending.set(entryStorageKey(e.owner, e.key), e);
      for (const k of p.remove) disk.pending.set(entryStorageKey(k.owner, k.key), undefined);
      disk.pendingSince ??= this.now;
      // The shell writes the meta record in that batch too; here it is left as it was (unless
      // owners are dropped), to hold the core to what load() allows: a meta record behind the
      // rows beside it, never ahead.
      if (mustSync(p)) this.flush(id, p.dropped.length > 0, p.dropped);
    }
    for (const { to, msg } of ready.send) this.send(id, to, msg);
    this.applyChanges(id, changesOf(ready));
  }

  /** Writes a peer's queued rows, and with `meta` its meta record, as one batch, as the shell's
   *  write-behind does: the meta on disk never claims more than the rows beside it. Dropped
   *  owners' rows go in the same batch, after the meta that lists them as dropped. */
  private flush(id: string, meta = true, dropped: readonly string[] = []): void {
    const disk = this.disk(id);
    for (const [k, e] of disk.pending) {
      if (e === undefined) disk.entries.delete(k);
      else disk.entries.set(k, e);
    }
    disk.pending.clear();
    disk.pendingSince = undefined;
    if (meta) disk.meta = structuredClone(this.replica(id).meta());
    for (const owner of dropped) {
      for (const k of [...disk.entries.keys()]) if (k.startsWith(ownerStoragePrefix(owner))) disk.entries.delete(k);
    }
  }

  private applyChanges(id: string, changes: Change[]): void {
    const view = this.shadow.get(id) as Map<string, string>;
    for (const c of changes) {
      const k = `${c.owner}\u0000${c.key}`;
      const before = view.get(k) ?? null;
      if (before !== c.previous) throw new Error(`${id}: change of ${k} reports previous ${c.previous}, consumers saw ${before}`);
      if (c.value === null) view.delete(k);
      else view.set(k, c.value);
    }
  }

  private disk(id: string): Disk {
    return this.disks.get(id) as Disk;
  }

  /** kill -9: what was written behind and not yet on disk is lost. */
  crash(id: string): void {
    this.net.crash(id);
    const disk = this.disk(id);
    this.count('rows lost in a crash', disk.pending.size);
    disk.pending.clear();
    disk.pendingSince = undefined;
  }

  /** Restarts a crashed peer from its simulated disk (entries and meta as last flushed), or from an
   *  exported snapshot taken earlier (losing everything since). */
  restart(id: string, from: 'disk' | ReplicaSnapshot): Replica {
    let r: Replica;
    if (from === 'disk') {
      const disk = this.disk(id);
      r = Replica.load(id, disk.meta, disk.entries.values(), this.replicaOptions(id));
      const signed = this.signed.get(id) ?? 0;
      if (r.lastVersion() < signed) throw new Error(`seed ${this.opts.seed} t=${this.now} ${id}: restarted from its disk at version ${r.lastVersion()}, below v${signed} that it signed and sent`);
    } else {
      r = Replica.restore(id, structuredClone(from), this.replicaOptions(id));
      const disk = this.disk(id);
      disk.entries = new Map(from.entries.map((e) => [entryStorageKey(e.owner, e.key), e]));
      disk.meta = structuredClone(from.meta);
      disk.pending.clear();
      disk.pendingSince = undefined;
      // A lost disk: this life starts from the snapshot's counter.
      this.signed.delete(id);
    }
    this.replicas.set(id, r);
    this.due.delete(id);
    this.shadow.set(id, new Map(r.entries().map((e) => [`${e.owner}\u0000${e.key}`, e.value as string])));
    this.levels.set(id, new Map());
    this.net.restart(id);
    return r;
  }

  partition(groups: string[][]): void {
    this.net.partition(groups);
  }

  heal(): void {
    this.net.heal();
  }

  /** Removes a peer for good: it stops, and every live peer but `except` drops its entries
   *  (the others learn of the removal later, through dropAt). */
  removePeer(id: string, except: string[] = []): void {
    this.net.crash(id);
    this.dropped.add(id);
    for (const other of this.live()) if (!except.includes(other)) this.dropAt(other, id);
  }

  /** One peer applies the removal of `owner`, persisting as the shell must: meta first. */
  dropAt(id: string, owner: string): void {
    this.apply(id, this.replica(id).dropOwner(owner));
    const set = this.droppedAt.get(id) ?? new Set<string>();
    set.add(owner);
    this.droppedAt.set(id, set);
  }

  // ---- invariants ----

  checkAll(): void {
    for (const id of this.live()) this.checkPeer(id);
  }

  /** Invariants of one live peer, true after every step. */
  checkPeer(id: string): void {
    const r = this.replica(id);
    const fail = (what: string) => {
      throw new Error(`seed ${this.opts.seed} round ${this.round} t=${this.now} ${id}: ${what}`);
    };
    // Soundness: everything held was written by its owner, exactly so.
    const live = r.entries({ includeTombstones: true });
    let liveCount = 0;
    for (const e of live) {
      const w = this.oracle.written(e);
      if (w === undefined || w.value !== e.value || w.sig !== e.sig) fail(`holds ${e.owner}/${e.key} v${e.version} that its owner never wrote`);
      if (this.droppedAt.get(id)?.has(e.owner) === true) fail(`holds an entry of dropped owner ${e.owner}`);
      if (e.value !== null) liveCount++;
    }
    // Consumers that applied the reported changes see exactly the live state.
    const view = this.shadow.get(id) as Map<string, string>;
    if (view.size !== liveCount) fail(`reported changes give ${view.size} live entries, replica has ${liveCount}`);
    for (const e of live) if (e.value !== null && view.get(`${e.owner}\u0000${e.key}`) !== e.value) fail(`change stream missed ${e.owner}/${e.key}`);
    const digest = r.digest();
    const seen = this.levels.get(id) as Map<string, number>;
    for (const owner of Object.keys(digest)) {
      const { complete, floor } = digest[owner] as { complete: number; floor: number };
      if (floor > complete) fail(`floor ${floor} above complete ${complete} for ${owner}`);
      if (complete < (seen.get(owner) ?? 0)) fail(`complete for ${owner} went back from ${seen.get(owner)} to ${complete}`);
      seen.set(owner, complete);
      if (owner === id && r.lastVersion() < complete) fail(`own counter ${r.lastVersion()} below own complete ${complete}`);
      if (this.dropped.has(owner) || this.oracle.collided.has(owner)) continue;
      // Nobody, hostile or not, can make a peer believe in versions no owner signed.
      if (complete > (this.oracle.maxVersion.get(owner) ?? 0)) fail(`complete ${complete} for ${owner} beyond its last write`);
      if (this.hostile.has(owner)) continue;
      // Completeness: for every key, we hold its latest write at or below our level (or newer),
      // or it was deleted at some point since.
      for (const [key, list] of this.oracle.history.get(owner) ?? []) {
        let w: Entry | undefined;
        for (const x of list) if (x.version <= complete) w = x;
        if (w === undefined) continue;
        const held = r.get(owner, key);
        if (held !== undefined) {
          if (held.version < w.version) fail(`claims ${owner} complete to ${complete} but holds ${key} v${held.version} < v${w.version}`);
        } else if (!list.some((x) => x.value === null && x.version >= (w as Entry).version)) {
          fail(`claims ${owner} complete to ${complete} but lacks live ${key} v${w.version}`);
        }
      }
    }
    for (const e of live) {
      if (e.owner === id && e.version > r.lastVersion()) fail(`holds own v${e.version} above its counter ${r.lastVersion()}`);
    }
    // Our counter moves only with versions we signed: what others say cannot use it up.
    if (r.lastVersion() > (this.oracle.maxVersion.get(id) ?? 0)) fail(`own counter ${r.lastVersion()} above its last write v${this.oracle.maxVersion.get(id) ?? 0}`);
  }

  /** Every live peer holds exactly the oracle's final state and is complete to every owner's
   *  last write. */
  converged(): boolean {
    const skip = new Set([...this.dropped, ...this.hostile]);
    const want = this.oracle.expected(skip);
    for (const id of this.live()) {
      const r = this.replica(id);
      const have = r.entries().filter((e) => !this.hostile.has(e.owner));
      if (have.length !== want.size) return false;
      for (const e of have) {
        const w = want.get(`${e.owner}\u0000${e.key}`);
        if (w === undefined || w.version !== e.version || w.sig !== e.sig) return false;
      }
      const d = r.digest();
      for (const [owner, max] of this.oracle.maxVersion) {
        if (skip.has(owner)) continue;
        if ((d[owner]?.complete ?? 0) !== max) return false;
      }
    }
    return true;
  }

  /** Runs rounds until converged; returns how many it took, or throws after `max`. */
  roundsToConverge(max = 100): number {
    for (let n = 0; n <= max; n++) {
      if (this.converged()) return n;
      this.runRound();
    }
    throw new Error(`seed ${this.opts.seed}: ${this.live().length} peers not converged after ${max} rounds`);
  }
}
