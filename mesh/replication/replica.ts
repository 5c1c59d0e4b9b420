// Gossip replication, pure core: a state-based CRDT of entries, each written only by its owning
// peer and signed by it. Messages and ticks in, state changes and messages out; the shell owns
// streams, disks, clocks and randomness.
//
// Per (owner, key) the highest version wins. Each owner numbers its writes 1, 2, 3, ..., so a
// digest can say how far it knows each owner's history, and a delta is "every entry of O above
// version n". Deletions are tombstones, garbage-collected after TOMBSTONE_GC_MS; a peer that fell
// behind a collected deletion gets a snapshot that replaces its view of that owner.
//
// What a peer says is trusted only as far as its owner signed it. Entries carry their owner's
// signature; digests and the range claims of deltas and snapshots do not, so: a digest only
// decides what we send (never our levels, never our own counter); a claim raises an owner's
// level at most to the highest version of that owner we hold signed (every honest level is
// witnessed by one, see gc), so nobody can make us believe we are up to date beyond what the
// owner wrote; and our own entries are never removed on another peer's word. How much one owner
// may make every peer hold is bounded by quota.ts.

import { keyChunks, pushChunks } from './chunks.ts';
import { OwnerLog, type Rec, makeRec, tieBreak } from './owner.ts';
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

export * from './quota.ts';
export * from './store.ts';
export * from './wire.ts';
export { MAX_COVER_CHUNKS, MAX_PENDING_RANGES } from './owner.ts';

/** How long a deletion is remembered. Correctness does not depend on it (a peer that is behind a
 *  collected deletion receives a replacing snapshot of that owner), only cost does: a peer away
 *  for less than a day (a partition, a host rebooted for maintenance) catches up with a delta;
 *  one away longer is sent the owner's full state. A day of deletions is small next to that. */
export const TOMBSTONE_GC_MS = 24 * 60 * 60 * 1000;

export interface ReplicaOptions {
  /** Signs bytes as this peer (Ed25519 in the shell). */
  sign(bytes: Uint8Array): string;
  /** True if `sig` is `owner`'s signature over `bytes`; false for unknown owners. */
  verify(owner: string, bytes: Uint8Array, sig: string): boolean;
  tombstoneGcMs?: number;
  /** Bound on each encoded message deltaFor produces (default MAX_MESSAGE_BYTES). */
  maxMessageBytes?: number;
}

export interface EntryRef {
  owner: string;
  key: string;
}

export interface ReceiveResult {
  /** Effective changes to the visible state, for consumers (DNS, IPAM). */
  changes: Change[];
  /** Entries to write to disk, one LevelDB key per (owner, key): see entryStorageKey. */
  persist: Entry[];
  /** Entries to delete from disk. */
  remove: EntryRef[];
  /** Messages for the peer that sent this one. */
  reply: ReplicaMessage[];
  /** Messages to push like a local write, to PUSH_FANOUT random members (we re-issued own
   *  entries a peer could not accept, see Replica.reissue). */
  broadcast: ReplicaMessage[];
  /** Entries of other owners this push told us first: the rumor to pass on once, to
   *  PUSH_FANOUT random members other than the sender and the owners (gossip-targets.ts). */
  relay: PushMessage[];
  /** Why some or all of the message was refused; accepted parts took effect. */
  rejected?: string;
  /** Entries not stored because their owner is past its quota here (quota.ts), one row
   *  per owner: not a forgery (the owner signed them), but not ours to hold. */
  refused?: Array<{ owner: string; reason: string; entries: number }>;
}

export interface WriteResult {
  entry: Entry;
  change: Change | null;
  /** The push to send to PUSH_FANOUT random members (gossip-targets.ts). */
  push: PushMessage;
}

function row(d: Digest, owner: string): OwnerDigest | undefined {
  return Object.hasOwn(d, owner) ? d[owner] : undefined;
}

function emptyResult(): ReceiveResult {
  return { changes: [], persist: [], remove: [], reply: [], broadcast: [], relay: [] };
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

  constructor(selfId: string, opts: ReplicaOptions) {
    const bad = checkOwner(selfId);
    if (bad !== undefined) throw new RangeError(`replica: peer id ${JSON.stringify(selfId)}: ${bad}`);
    this.self = selfId;
    this.opts = opts;
    this.gcMs = opts.tombstoneGcMs ?? TOMBSTONE_GC_MS;
    this.maxBytes = opts.maxMessageBytes ?? MAX_MESSAGE_BYTES;
  }

  /** The version of our latest write (or the highest of ours seen from peers). */
  lastVersion(): number {
    return this.counter;
  }

  /** Writes one of our entries. Throws QuotaError (a sentence for the user) if this peer's
   *  space for that kind is full; nothing is then stored or sent. A deletion always succeeds. */
  write(key: string, value: string | null, now: number): WriteResult {
    const bad = checkKey(key) ?? checkValue(value);
    if (bad !== undefined) throw new RangeError(`replica: cannot write ${JSON.stringify(String(key).slice(0, 64))}: ${bad}`);
    const { entry, change } = this.issue(key, value, now, true);
    return { entry, change, push: { t: 'push', v: 1, entries: [entry] } };
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

  /** Handles a message from a peer (already validated by parseReplicaMessage). `checked` holds
   *  the outcome of signature checks the caller already made on this message's entries (the
   *  shell spreads them over several turns of its event loop); the others are checked here. */
  receive(msg: ReplicaMessage, now: number, checked?: ReadonlyMap<Entry, boolean>): ReceiveResult {
    const out = emptyResult();
    switch (msg.t) {
      case 'digest':
        this.onDigest(msg, out);
        break;
      case 'push': {
        const before = out.persist.length;
        for (const e of msg.entries) this.accept(e, now, out, checked);
        // What was news to us is likely news to others: pass it on once (rumor mongering).
        // Entries we already held end the rumor here, which bounds it; anti-entropy repairs
        // what it misses.
        const news: Rec[] = [];
        for (const e of out.persist.slice(before)) {
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
    return out;
  }

  private onDigest(msg: DigestMessage, out: ReceiveResult): void {
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

  private onSnapshot(msg: SnapshotMessage, now: number, out: ReceiveResult, checked: ReadonlyMap<Entry, boolean> | undefined): void {
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
  private reissue(recs: Rec[], level: number, now: number, out: ReceiveResult): void {
    // Its level is its word; only the part of it we signed (our newest entry it sent) moves our
    // counter, so a forged level cannot use up our versions. If its level is higher than what
    // it sent so far, the next exchange reissues above it.
    this.counter = Math.max(this.counter, Math.min(level, this.logFor(this.self).maxHeld));
    const fresh: Rec[] = [];
    for (const rec of recs) {
      const { entry } = this.issue(rec.e.key, rec.e.value, now);
      out.persist.push(entry);
      fresh.push(this.logFor(this.self).byKey.get(entry.key) as Rec);
    }
    out.broadcast.push(...pushChunks(fresh, this.maxBytes));
  }

  /** Merges one entry; false if its signature is bad (nothing changed). */
  private accept(e: Entry, now: number, out: ReceiveResult, checked?: ReadonlyMap<Entry, boolean>): boolean {
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
    out.persist.push(e);
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

  /** Drops tombstones older than the GC period; the shell deletes `dropped` from disk. Only
   *  tombstones at or below the owner's complete level go: the floor must never pass it. */
  gc(now: number): { dropped: Entry[] } {
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
    return { dropped };
  }

  /** Forgets an owner removed from the mesh for good; later gossip about it is ignored. The shell
   *  writes meta() and then deletes the ownerStoragePrefix(owner) range. */
  dropOwner(owner: string): Change[] {
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
    return changes.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
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
