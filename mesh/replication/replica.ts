// Gossip replication, pure core: a state-based CRDT of entries, each written only by its owning
// peer and signed by it. Messages and ticks in, a ready out (mesh/ready.ts): entries to persist,
// messages with their destinations, changes for consumers. The shell owns streams, disks and
// clocks; whom to tell is decided here, with a seeded random source, so a simulation replays it.
//
// Per (owner, key) the highest version wins. Each owner numbers its writes 1, 2, 3, ..., so a
// digest can say how far it knows each owner's history, and a delta is "every entry of O above
// version n". Deletions are tombstones, garbage-collected after TOMBSTONE_GC_MS; a peer that fell
// behind a collected deletion gets a snapshot that replaces its view of that owner.
//
// Dissemination: a write is pushed to PUSH_FANOUT random members at once, and every peer that a
// push told something first relays it once the same way (rumor mongering, gossip-targets.ts);
// once per ANTI_ENTROPY_MS a peer exchanges digests with one random member, which repairs what
// the pushes missed (loss, partitions); a member that joins or returns gets a few repair
// exchanges at once (`appeared`).
//
// What a peer says is trusted only as far as its owner signed it. Entries carry their owner's
// signature; digests and the range claims of deltas and snapshots do not, so: a digest only
// decides what we send (never our levels, never our own counter); a claim raises an owner's
// level at most to the highest version of that owner we hold signed (every honest level is
// witnessed by one, see gc), so nobody can make us believe we are up to date beyond what the
// owner wrote; and our own entries are never removed on another peer's word. How much one owner
// may make every peer hold is bounded by quota.ts.

import { pickTargets, PUSH_FANOUT } from '../gossip-targets.ts';
import type { Ready } from '../ready.ts';
import { mulberry32 } from '../seeded-random.ts';
import { keyChunks, pushChunks } from './chunks.ts';
import { FNV_OFFSET, OwnerLog, type Rec, fnv1a, makeRec, tieBreak } from './owner.ts';
import { QuotaError, localRefusal, remoteRefusal } from './quota.ts';
import type { ReplicaMeta, ReplicaSnapshot } from './store.ts';
import {
  type Change,
  type Digest,
  type DigestMessage,
  type Entry,
  type KeyRange,
  MAX_MESSAGE_BYTES,
  MAX_OWNERS_PER_DIGEST,
  MAX_VERSION,
  type OwnerDigest,
  type PushMessage,
  type ReplicaMessage,
  type SnapshotMessage,
  checkKey,
  checkOwner,
  checkValue,
  entrySigningBytes,
  inRange,
  parseEntry,
} from './wire.ts';


/** How long a deletion is remembered. Correctness does not depend on it (a peer that is behind a
 *  collected deletion receives a replacing snapshot of that owner), only cost does: a peer away
 *  for less than a day (a partition, a host rebooted for maintenance) catches up with a delta;
 *  one away longer is sent the owner's full state. A day of deletions is small next to that. */
export const TOMBSTONE_GC_MS = 24 * 60 * 60 * 1000;
/** Anti-entropy period: one digest exchange with one random member per second repairs anything
 *  push missed (loss, partitions) within a few seconds on a mesh of tens, at one digest (a row
 *  per owner) sent and answered per peer per second. The simulations' round (test/sim). */
export const ANTI_ENTROPY_MS = 1000;
/** Repair exchanges started, on average, by the members for one that joins or returns, and by
 *  it for itself (see appeared). Each is a two-way repair, so with about 3 + 3 the chance that
 *  none happens is e^-6 (0.25 %), and anti-entropy repairs that within seconds. */
export const JOIN_REPAIR_FANOUT = 3;
/** How often tombstones are checked for garbage collection; GC itself is age-based, so this
 *  only bounds how late past TOMBSTONE_GC_MS one goes, at a scan of the tombstones a minute. */
export const GC_EVERY_MS = 60_000;

export interface ReplicaOptions {
  /** Signs bytes as this peer (Ed25519 in the shell). */
  sign(bytes: Uint8Array): string;
  /** True if `sig` is `owner`'s signature over `bytes`; false for unknown owners. */
  verify(owner: string, bytes: Uint8Array, sig: string): boolean;
  tombstoneGcMs?: number;
  /** Bound on each encoded message deltaFor produces (default MAX_MESSAGE_BYTES). */
  maxMessageBytes?: number;
  /** Members we gossip with: those membership holds alive (a simulation: the peers it
   *  connects). Read at each choice of targets, so a push goes to whoever is alive then. */
  peers?: () => readonly string[];
  /** Uniform in [0, 1): chooses push, relay and anti-entropy targets and join repairs
   *  (default: seeded by the peer id, so a simulation that passes its own replays them). */
  random?: () => number;
  /** Members each write is pushed to and each rumor relayed to (default PUSH_FANOUT). */
  pushFanout?: number;
  /** Anti-entropy period (default ANTI_ENTROPY_MS); Infinity turns it off (a simulation of
   *  push alone). */
  antiEntropyMs?: number;
  /** How often tombstones are checked for collection (default GC_EVERY_MS). */
  gcIntervalMs?: number;
}

export interface EntryRef {
  owner: string;
  key: string;
}

/** What the replica keeps on disk, as one call changed it: one row per (owner, key)
 *  (entryStorageKey) and the meta record (Replica.meta(), written in the same batch, never
 *  ahead of the rows). How durable each part must be before the ready's messages leave: */
export interface ReplicaPersist {
  /** Entries this call signed (a write, or own entries re-issued at fresh versions): synced
   *  first. A restart finds its counter on disk from them; one that lost them would sign
   *  versions its peers already hold, with other values. */
  issued: Entry[];
  /** Entries of others (and own ones given back by peers): written behind, since anti-entropy
   *  fetches again whatever a crash lost. */
  put: Entry[];
  /** Rows to delete (tombstones collected, entries a replacing snapshot removed): written behind
   *  likewise. */
  remove: EntryRef[];
  /** Owners dropped for good (dropOwner): the meta record first or in the same batch, then
   *  their rows (the ownerStoragePrefix range) go; synced, as the caller was promised. */
  dropped: string[];
}

/** Whether a persist must be on disk before its ready goes on (see ReplicaPersist). */
export function mustSync(p: ReplicaPersist): boolean {
  return p.issued.length > 0 || p.dropped.length > 0;
}

export type ReplicaEvent =
  /** An effective change to the visible state, for consumers (DNS, IPAM). */
  | { type: 'changed'; change: Change }
  /** Entries not stored because their owner is past its quota here (quota.ts), one event per
   *  owner per message: not a forgery (the owner signed them), but not ours to hold. */
  | { type: 'over-quota'; from: string; owner: string; reason: string; entries: number };

export type ReplicaReady = Ready<ReplicaMessage, ReplicaPersist, ReplicaEvent>;

/** A write's ready, and the entry it signed. */
export type WriteReady = ReplicaReady & { entry: Entry };

/** The changes a ready reports, in order: what consumers apply. */
export function changesOf(ready: ReplicaReady): Change[] {
  const out: Change[] = [];
  for (const e of ready.events) if (e.type === 'changed') out.push(e.change);
  return out;
}

/** What receiving one message did, gathered before targets are chosen (see finishReceive). */
interface Step {
  changes: Change[];
  put: Entry[];
  issued: Entry[];
  remove: EntryRef[];
  /** Messages for the peer that sent this one. */
  reply: ReplicaMessage[];
  /** Own entries re-issued (see reissue): pushed like a local write. */
  broadcast: ReplicaMessage[];
  /** Entries of other owners this push told us first: the rumor to pass on once, to members
   *  other than the sender and the owners. */
  relay: PushMessage[];
  /** Why some or all of the message was refused; accepted parts took effect. */
  rejected?: string;
  refused?: Array<{ owner: string; reason: string; entries: number }>;
}

function row(d: Digest, owner: string): OwnerDigest | undefined {
  return Object.hasOwn(d, owner) ? d[owner] : undefined;
}

function emptyStep(): Step {
  return { changes: [], put: [], issued: [], remove: [], reply: [], broadcast: [], relay: [] };
}

export class Replica {
  readonly self: string;
  private readonly opts: ReplicaOptions;
  private readonly gcMs: number;
  private readonly maxBytes: number;
  private readonly logs = new Map<string, OwnerLog>();
  /** Owners removed for good, with the level we knew them to; their gossip is ignored. */
  private readonly dropped = new Map<string, number>();
  /** Highest version of our own we know to be used; the next write takes the one after. */
  private counter = 0;
  /** Own entries above this version were written by this incarnation of the process, so if a
   *  peer could not take one (it reused a version the previous incarnation had used before
   *  losing it), we write it again under a fresh version instead of dropping it. */
  private restoredLevel = 0;
  /** Entries of other owners refused for quota since start, for metrics. */
  private refusedCount = 0;
  private readonly peers: () => readonly string[];
  private readonly random: () => number;
  private readonly pushFanout: number;
  private readonly antiEntropyMs: number;
  private readonly gcIntervalMs: number;
  /** When the next anti-entropy round and tombstone scan are due (the first tick does both). */
  private nextAntiEntropy: number;
  private nextGc = -Infinity;

  constructor(selfId: string, opts: ReplicaOptions) {
    const bad = checkOwner(selfId);
    if (bad !== undefined) throw new RangeError(`replica: peer id ${JSON.stringify(selfId)}: ${bad}`);
    this.self = selfId;
    this.opts = opts;
    this.gcMs = opts.tombstoneGcMs ?? TOMBSTONE_GC_MS;
    this.maxBytes = opts.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.peers = opts.peers ?? (() => []);
    this.random = opts.random ?? mulberry32(fnv1a(selfId, FNV_OFFSET));
    this.pushFanout = opts.pushFanout ?? PUSH_FANOUT;
    this.antiEntropyMs = opts.antiEntropyMs ?? ANTI_ENTROPY_MS;
    this.gcIntervalMs = opts.gcIntervalMs ?? GC_EVERY_MS;
    this.nextAntiEntropy = this.antiEntropyMs === Infinity ? Infinity : -Infinity;
  }

  /** The version of our latest write (or the highest of ours seen from peers). */
  lastVersion(): number {
    return this.counter;
  }

  /** Writes one of our entries: persisted (synced) before it is pushed to PUSH_FANOUT random
   *  members. Throws QuotaError (a sentence for the user) if this peer's space for that kind is
   *  full; nothing is then stored or sent. A deletion always succeeds. */
  write(key: string, value: string | null, now: number): WriteReady {
    const bad = checkKey(key) ?? checkValue(value);
    if (bad !== undefined) throw new RangeError(`replica: cannot write ${JSON.stringify(String(key).slice(0, 64))}: ${bad}`);
    const { entry, change } = this.issue(key, value, now, true);
    const out = this.ready();
    out.persist = { issued: [entry], put: [], remove: [], dropped: [] };
    this.push(out, [{ t: 'push', v: 1, entries: [entry] }]);
    if (change !== null) out.events.push({ type: 'changed', change });
    return { ...this.done(out), entry };
  }

  /** Call every shell tick: an anti-entropy round with one random member when one is due, and
   *  a scan for tombstones old enough to collect. */
  tick(now: number): ReplicaReady {
    const out = this.ready();
    if (now >= this.nextAntiEntropy) {
      this.nextAntiEntropy = now + this.antiEntropyMs;
      const peers = this.peers();
      if (peers.length > 0) this.digestTo(out, peers[Math.floor(this.random() * peers.length)] as string);
    }
    if (now >= this.nextGc) {
      this.nextGc = now + this.gcIntervalMs;
      const remove = this.gc(now).map((e) => ({ owner: e.owner, key: e.key }));
      if (remove.length > 0) out.persist = { issued: [], put: [], remove, dropped: [] };
    }
    return this.done(out);
  }

  /** A repair exchange with `to` now (it just opened its side of the channel to us): our
   *  digest, which it answers with what we lack and asks for what it lacks. */
  repair(to: string): ReplicaReady {
    const out = this.ready();
    this.digestTo(out, to);
    return this.done(out);
  }

  /** A member joined or came back (not one that merely refuted a suspicion: it never left, so
   *  there is nothing to repair). It gets a repair exchange, but not from every peer: all N
   *  hear of a join at once, and N digests of N owners each, each answered with a full state,
   *  landed on the one peer busy starting (the joiner, which also sent one to each member it
   *  learned). One exchange repairs a pair both ways, and any member's state is the whole
   *  mesh's, so a few suffice: each peer takes part with probability JOIN_REPAIR_FANOUT / N,
   *  about that many exchanges per (re)appearing member from each side; anti-entropy covers the
   *  rare member none picked. */
  appeared(id: string): ReplicaReady {
    const out = this.ready();
    const n = this.peers().length;
    if (this.random() < JOIN_REPAIR_FANOUT / Math.max(1, n)) this.digestTo(out, id);
    return this.done(out);
  }

  private digestTo(out: ReplicaReady, to: string): void {
    for (const msg of this.digestMessages()) out.send.push({ to, msg });
  }

  /** Sends `msgs` to pushFanout random members other than `exclude` (one choice for all). */
  private push(out: ReplicaReady, msgs: readonly ReplicaMessage[], exclude?: ReadonlySet<string>): void {
    if (msgs.length === 0) return;
    for (const to of pickTargets(this.peers(), this.pushFanout, this.random, exclude)) {
      for (const msg of msgs) out.send.push({ to, msg });
    }
  }

  private ready(): ReplicaReady {
    return { persist: undefined, send: [], events: [], rejected: [], next: undefined };
  }

  /** Sets the ready's deadline: the next anti-entropy round or tombstone scan. */
  private done<R extends ReplicaReady>(out: R): R {
    const next = Math.min(this.nextAntiEntropy, this.nextGc);
    out.next = next === Infinity ? undefined : next;
    return out;
  }

  private issue(key: string, value: string | null, now: number, quota = false): { entry: Entry; change: Change | null } {
    const log = this.logFor(this.self);
    this.counter = Math.max(this.counter, log.complete, log.maxHeld);
    if (this.counter >= MAX_VERSION) throw new RangeError('replica: version counter exhausted');
    const version = this.counter + 1;
    const unsigned = { owner: this.self, key, version, value };
    const entry: Entry = { ...unsigned, sig: this.opts.sign(entrySigningBytes(unsigned)) };
    if (quota) {
      const full = localRefusal(log.usage, entry, log.byKey.get(key)?.e);
      if (full !== undefined) throw new QuotaError(full);
    }
    this.counter = version;
    const prev = log.put(makeRec(entry, now));
    log.seen(version - 1, version);
    const previous = prev?.e.value ?? null;
    return { entry, change: previous === value ? null : { owner: this.self, key, value, previous } };
  }

  /** Entries held, tombstones included; O(owners), for metrics. */
  size(): number {
    let n = 0;
    for (const log of this.logs.values()) n += log.size;
    return n;
  }

  /** Entries of other owners refused for quota since start. */
  refused(): number {
    return this.refusedCount;
  }

  /** The entry for (owner, key), a tombstone (value null) included. */
  get(owner: string, key: string): Entry | undefined {
    return this.logs.get(owner)?.byKey.get(key)?.e;
  }

  /** Entries sorted by owner then key; tombstones only if asked. */
  entries(filter: { owner?: string; prefix?: string; includeTombstones?: boolean } = {}): Entry[] {
    const out: Entry[] = [];
    const logs = filter.owner === undefined ? [...this.logs.values()] : [this.logs.get(filter.owner)].filter((l) => l !== undefined);
    for (const log of logs) {
      for (const rec of log.byKey.values()) {
        if (rec.e.value === null && filter.includeTombstones !== true) continue;
        if (filter.prefix !== undefined && !rec.e.key.startsWith(filter.prefix)) continue;
        out.push(rec.e);
      }
    }
    return out.sort((a, b) => (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  digest(owners?: KeyRange): Digest {
    const d: Digest = Object.create(null) as Digest;
    for (const log of this.logs.values()) {
      if (!inRange(log.owner, owners)) continue;
      d[log.owner] = log.clean() ? { complete: log.complete, floor: log.floor, hash: log.hash } : { complete: log.complete, floor: log.floor };
    }
    // Listing dropped owners at their level stops peers that still hold them from resending.
    for (const [owner, level] of this.dropped) if (inRange(owner, owners)) d[owner] = { complete: level, floor: level };
    return d;
  }

  /** Our digest as messages, split by owner-id range when the mesh is large. */
  digestMessages(reply = false, owners?: KeyRange): DigestMessage[] {
    const ids = [...this.logs.keys(), ...this.dropped.keys()].filter((o) => inRange(o, owners)).sort();
    const base = reply ? { t: 'digest' as const, v: 1 as const, reply: true } : { t: 'digest' as const, v: 1 as const };
    if (ids.length <= MAX_OWNERS_PER_DIGEST && owners === undefined) return [{ ...base, digest: this.digest() }];
    const out: DigestMessage[] = [];
    let from = owners?.from ?? '';
    for (let i = 0; i < ids.length || out.length === 0; i += MAX_OWNERS_PER_DIGEST) {
      const next = ids[i + MAX_OWNERS_PER_DIGEST];
      const range: KeyRange = { from, to: next ?? owners?.to ?? null };
      out.push({ ...base, digest: this.digest(range), owners: range });
      if (next === undefined) break;
      from = next;
    }
    return out;
  }

  /** Messages to send to a peer whose digest is `theirs` (each bounded by maxMessageBytes).
   *  With `owners`, only owners in that id range (the range of a split digest). */
  deltaFor(theirs: Digest, owners?: KeyRange): ReplicaMessage[] {
    const out: ReplicaMessage[] = [];
    const extra: Rec[] = [];
    for (const log of this.logs.values()) {
      if (!inRange(log.owner, owners)) continue;
      const d = row(theirs, log.owner);
      const t = d?.complete ?? 0;
      const base = { v: 1 as const, owner: log.owner };
      if (t < log.floor) {
        // A deletion they have not seen is gone from our log: only a replacing snapshot is correct.
        const recs = [...log.byKey.values()];
        out.push(...keyChunks(recs, { ...base, t: 'snapshot', level: log.complete, floor: log.floor, replace: true }, this.maxBytes));
      } else if (t < log.complete) {
        out.push(...keyChunks([...log.after(t)], { ...base, t: 'delta', from: t, to: log.complete }, this.maxBytes));
      } else {
        // Entries beyond their level that we hold out of order: they may lack them too.
        for (const rec of log.after(t)) extra.push(rec);
        if (t === log.complete && d?.hash !== undefined && log.clean() && d.hash !== log.hash) {
          // Same level, different live entries: an owner reused versions after losing state.
          const recs = [...log.byKey.values()];
          out.push(...keyChunks(recs, { ...base, t: 'snapshot', level: log.complete, floor: log.floor, replace: false }, this.maxBytes));
        }
      }
    }
    out.push(...pushChunks(extra, this.maxBytes));
    return out;
  }

  /** Handles a message from peer `from` (already validated by parseReplicaMessage). `checked`
   *  holds the outcome of signature checks the caller already made on this message's entries
   *  (the shell spreads them over several turns of its event loop); the others are checked here. */
  receive(from: string, msg: ReplicaMessage, now: number, checked?: ReadonlyMap<Entry, boolean>): ReplicaReady {
    const out = emptyStep();
    switch (msg.t) {
      case 'digest':
        this.onDigest(msg, out);
        break;
      case 'push': {
        const before = out.put.length;
        for (const e of msg.entries) this.accept(e, now, out, checked);
        // What was news to us is likely news to others: pass it on once (rumor mongering).
        // Entries we already held end the rumor here, which bounds it; anti-entropy repairs
        // what it misses.
        const news: Rec[] = [];
        for (const e of out.put.slice(before)) {
          const rec = e.owner === this.self ? undefined : this.logs.get(e.owner)?.byKey.get(e.key);
          if (rec !== undefined && rec.e === e) news.push(rec);
        }
        out.relay.push(...pushChunks(news, this.maxBytes));
        break;
      }
      case 'delta': {
        let ok = true;
        for (const e of msg.entries) ok = this.accept(e, now, out, checked) && ok;
        // A chunk with a forged entry does not prove it holds the sender's whole key range.
        if (!ok || this.dropped.has(msg.owner)) break;
        const log = this.logFor(msg.owner);
        const proved = log.covered({ keys: msg.keys, from: msg.from, to: msg.to, floor: undefined });
        if (proved !== undefined) log.seen(proved.from, Math.min(proved.to, log.maxHeld));
        break;
      }
      case 'snapshot':
        this.onSnapshot(msg, now, out, checked);
        break;
    }
    const self = this.logs.get(this.self);
    if (self !== undefined) this.counter = Math.max(this.counter, self.complete, self.maxHeld);
    return this.finishReceive(from, out);
  }

  /** Turns what a message did into its ready: replies to the sender, re-issued entries pushed
   *  like a write, news relayed to members other than the sender and the owners (who hold it). */
  private finishReceive(from: string, step: Step): ReplicaReady {
    const out = this.ready();
    if (step.put.length > 0 || step.issued.length > 0 || step.remove.length > 0) {
      out.persist = { issued: step.issued, put: step.put, remove: step.remove, dropped: [] };
    }
    for (const msg of step.reply) out.send.push({ to: from, msg });
    this.push(out, step.broadcast);
    if (step.relay.length > 0) this.push(out, step.relay, new Set([from, ...step.relay.flatMap((m) => m.entries.map((e) => e.owner))]));
    for (const change of step.changes) out.events.push({ type: 'changed', change });
    for (const r of step.refused ?? []) out.events.push({ type: 'over-quota', from, ...r });
    if (step.rejected !== undefined) out.rejected.push({ from, reason: step.rejected });
    return this.done(out);
  }

  private onDigest(msg: DigestMessage, out: Step): void {
    const theirs = msg.digest;
    out.reply.push(...this.deltaFor(theirs, msg.owners));
    let theyKnowMore = false;
    for (const owner of Object.keys(theirs)) {
      const d = theirs[owner] as OwnerDigest;
      if (this.dropped.has(owner)) continue;
      // A row is their unsigned word: it only decides what we ask for. About our own entries it
      // never moves our counter; if they hold writes of ours we lost, the signed entries they
      // send raise it (and a version reused meanwhile is repaired by reissue).
      const log = this.logs.get(owner);
      const mine = log?.complete ?? 0;
      if (d.complete > mine) theyKnowMore = true;
      else if (log !== undefined && d.complete === mine && d.hash !== undefined && log.clean() && d.hash !== log.hash) theyKnowMore = true;
    }
    if (theyKnowMore && msg.reply !== true) out.reply.push(...this.digestMessages(true, msg.owners));
  }

  private onSnapshot(msg: SnapshotMessage, now: number, out: Step, checked: ReadonlyMap<Entry, boolean> | undefined): void {
    if (this.dropped.has(msg.owner)) return;
    let ok = true;
    for (const e of msg.entries) ok = this.accept(e, now, out, checked) && ok;
    // With a forged entry we cannot trust what the chunk says is absent.
    if (!ok) return;
    const own = msg.owner === this.self;
    if (!msg.replace && !own) return;
    const log = this.logFor(msg.owner);
    const present = new Set(msg.entries.map((e) => e.key));
    const reissue: Rec[] = [];
    for (const rec of [...log.byKey.values()]) {
      if (rec.e.version > msg.level || present.has(rec.e.key) || !inRange(rec.e.key, msg.keys)) continue;
      if (own) {
        // Our own entries are never removed on another peer's word. One it lacks that we wrote
        // since restarting, it took for a version of our previous incarnation; one it says is
        // gone (a replacing snapshot) was deleted by a write of ours our disk lost, or not at
        // all: either way what we hold now is what we mean, so we write it again above its level.
        if (rec.e.version > this.restoredLevel || msg.replace) reissue.push(rec);
      } else {
        log.remove(rec.e.key);
        out.remove.push({ owner: msg.owner, key: rec.e.key });
        if (rec.e.value !== null) out.changes.push({ owner: msg.owner, key: rec.e.key, value: null, previous: rec.e.value });
      }
    }
    if (msg.replace) {
      const proved = log.covered({ keys: msg.keys, from: 0, to: msg.level, floor: msg.floor });
      if (proved !== undefined) {
        log.seen(proved.from, Math.min(proved.to, log.maxHeld));
        if (proved.floor !== undefined) log.floor = Math.max(log.floor, Math.min(proved.floor, log.complete));
      }
    }
    if (reissue.length > 0) this.reissue(reissue, msg.level, now, out);
  }

  /** A peer at `level` lacks own entries we wrote since restarting: it took their versions to be
   *  ones our previous incarnation used (and it may have collected their deletion). Writing the
   *  same values again above its level is the only way they reach everyone. */
  private reissue(recs: Rec[], level: number, now: number, out: Step): void {
    // Its level is its word; only the part of it we signed (our newest entry it sent) moves our
    // counter, so a forged level cannot use up our versions. If its level is higher than what
    // it sent so far, the next exchange reissues above it.
    this.counter = Math.max(this.counter, Math.min(level, this.logFor(this.self).maxHeld));
    const fresh: Rec[] = [];
    for (const rec of recs) {
      const { entry } = this.issue(rec.e.key, rec.e.value, now);
      out.issued.push(entry);
      fresh.push(this.logFor(this.self).byKey.get(entry.key) as Rec);
    }
    out.broadcast.push(...pushChunks(fresh, this.maxBytes));
  }

  /** Merges one entry; false if its signature is bad (nothing changed). */
  private accept(e: Entry, now: number, out: Step, checked?: ReadonlyMap<Entry, boolean>): boolean {
    if (this.dropped.has(e.owner)) return true;
    let log = this.logs.get(e.owner);
    const cur = log?.byKey.get(e.key);
    // Already held, so already verified: skipping the check makes repeated deltas cheap.
    if (cur !== undefined && cur.e.version === e.version && cur.e.sig === e.sig && cur.e.value === e.value) return true;
    if (!(checked?.get(e) ?? this.verifies(e))) {
      out.rejected = `entry ${e.owner}/${JSON.stringify(e.key.slice(0, 64))} v${e.version}: signature is not the owner's`;
      return false;
    }
    log ??= this.logFor(e.owner);
    log.seen(e.version - 1, e.version);
    if (cur !== undefined) {
      if (e.version < cur.e.version || (e.version === cur.e.version && tieBreak(e, cur.e) <= 0)) return true;
    } else if (e.version <= log.floor) {
      // Absent at or below our floor: deleted here and collected; this is a stale copy.
      return true;
    }
    // Our own entries (our signature) were within quota when we wrote them; another owner's may
    // not be. A refused one counts as seen, like one stored and dropped, so it is not fetched
    // again; the owner's checksum is set aside until a deletion makes room.
    const full = e.owner === this.self ? undefined : remoteRefusal(log.usage, e, cur?.e);
    if (full !== undefined) {
      log.overQuota = true;
      this.refusedCount++;
      out.refused ??= [];
      const row = out.refused.find((r) => r.owner === e.owner);
      if (row === undefined) out.refused.push({ owner: e.owner, reason: full, entries: 1 });
      else row.entries++;
      return true;
    }
    log.put(makeRec(e, now));
    out.put.push(e);
    const previous = cur?.e.value ?? null;
    if (previous !== e.value) out.changes.push({ owner: e.owner, key: e.key, value: e.value, previous });
    return true;
  }

  private verifies(e: Entry): boolean {
    try {
      return this.opts.verify(e.owner, entrySigningBytes(e), e.sig) === true;
    } catch {
      return false;
    }
  }

  private logFor(owner: string): OwnerLog {
    let log = this.logs.get(owner);
    if (log === undefined) {
      log = new OwnerLog(owner);
      this.logs.set(owner, log);
    }
    return log;
  }

  /** Drops tombstones older than the GC period and returns them, for the disk. Only
   *  tombstones at or below the owner's complete level go: the floor must never pass it. */
  private gc(now: number): Entry[] {
    const dropped: Entry[] = [];
    for (const log of this.logs.values()) {
      if (log.tombs.size === 0) continue;
      // The owner's newest entry is kept even if it is a tombstone: it is the signed witness of
      // the owner's level that receivers of our deltas and snapshots need (see receive).
      const top = log.top();
      for (const rec of [...log.tombs]) {
        if (rec.seen === undefined) {
          rec.seen = now;
        } else if (now - rec.seen >= this.gcMs && rec.e.version <= log.complete && rec.e.version < top) {
          log.remove(rec.e.key);
          log.floor = Math.max(log.floor, rec.e.version);
          dropped.push(rec.e);
        }
      }
    }
    return dropped;
  }

  /** Forgets an owner removed from the mesh for good; later gossip about it is ignored. Its
   *  ready persists the drop (see ReplicaPersist.dropped) and reports its entries gone. */
  dropOwner(owner: string): ReplicaReady {
    if (owner === this.self) throw new RangeError('replica: a peer cannot drop its own entries');
    const changes: Change[] = [];
    const log = this.logs.get(owner);
    let level = this.dropped.get(owner) ?? 0;
    if (log !== undefined) {
      for (const rec of log.byKey.values()) {
        if (rec.e.value !== null) changes.push({ owner, key: rec.e.key, value: null, previous: rec.e.value });
      }
      level = Math.max(level, log.complete, log.maxHeld);
      this.logs.delete(owner);
    }
    this.dropped.set(owner, level);
    const out = this.ready();
    out.persist = { issued: [], put: [], remove: [], dropped: [owner] };
    for (const change of changes.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) out.events.push({ type: 'changed', change });
    return this.done(out);
  }

  meta(): ReplicaMeta {
    const owners: ReplicaMeta['owners'] = Object.create(null) as ReplicaMeta['owners'];
    for (const log of this.logs.values()) owners[log.owner] = { complete: log.complete, floor: log.floor };
    const dropped: ReplicaMeta['dropped'] = Object.create(null) as ReplicaMeta['dropped'];
    for (const [owner, level] of this.dropped) dropped[owner] = level;
    return { v: 1, self: this.self, counter: this.counter, owners, dropped };
  }

  export(): ReplicaSnapshot {
    return { v: 1, meta: this.meta(), entries: this.entries({ includeTombstones: true }) };
  }

  static restore(selfId: string, snap: ReplicaSnapshot, opts: ReplicaOptions): Replica {
    return Replica.load(selfId, snap.meta, snap.entries, opts);
  }

  /** Rebuilds a replica from disk: the meta record (if any) and every stored entry. Entries come
   *  from our own disk, so their shape is checked but not their signatures. Tombstones restart
   *  their GC period. */
  static load(selfId: string, meta: ReplicaMeta | undefined, entries: Iterable<Entry>, opts: ReplicaOptions): Replica {
    const r = new Replica(selfId, opts);
    if (meta !== undefined && meta.self !== selfId) {
      throw new Error(`replica: stored state belongs to peer ${meta.self}, not ${selfId} (wrong data directory?)`);
    }
    if (meta !== undefined) {
      for (const [owner, level] of Object.entries(meta.dropped)) r.dropped.set(owner, level);
      for (const [owner, lv] of Object.entries(meta.owners)) {
        if (r.dropped.has(owner)) continue;
        const log = r.logFor(owner);
        log.complete = lv.complete;
        log.floor = Math.min(lv.floor, lv.complete);
      }
      r.counter = meta.counter;
    }
    for (const raw of entries) {
      const e = parseEntry(raw);
      if (typeof e === 'string') throw new Error(`replica: stored entry is corrupt: ${e}`);
      if (r.dropped.has(e.owner)) continue;
      const log = r.logFor(e.owner);
      const cur = log.byKey.get(e.key);
      if (cur !== undefined && (e.version < cur.e.version || (e.version === cur.e.version && tieBreak(e, cur.e) <= 0))) continue;
      log.put(makeRec(e, undefined));
      log.seen(e.version - 1, e.version);
    }
    // State written by a version that believed forged levels (up to 2^53 − 1): levels past the
    // bound fall back to what the stored entries witness, so a poisoned counter heals.
    if (r.counter > MAX_VERSION) r.counter = 0;
    for (const log of r.logs.values()) {
      if (log.complete <= MAX_VERSION) continue;
      log.complete = log.maxHeld;
      log.floor = Math.min(log.floor, log.complete);
    }
    const self = r.logs.get(selfId);
    if (self !== undefined) {
      // Our own writes reach disk before they are sent, so the disk has our whole history up to
      // our newest stored write; meta may be older, and if we do not claim the versions our later
      // writes superseded, nobody else can either.
      self.seen(0, self.maxHeld);
      r.counter = Math.max(r.counter, self.complete, self.maxHeld);
    }
    r.restoredLevel = r.counter;
    return r;
  }
}
