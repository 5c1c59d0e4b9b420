// What one replica holds of one owner: its entries indexed by key and by version, how far its
// history is known (complete, floor, ranges known beyond), and a checksum of its live entries.

import { Usage } from './quota.ts';
import { type Entry, type KeyRange, entryWireBytes } from './wire.ts';

/** Out-of-order ranges kept while waiting for the gap below them to fill. Entries pushed or
 *  chunked out of order leave one each until a range claim closes the gap; a full message of
 *  shuffled entries leaves up to ~MAX_ENTRIES_PER_MESSAGE/2. 16384 covers several such bursts;
 *  past that we forget the highest ranges, which costs a refetch, never correctness. */
export const MAX_PENDING_RANGES = 16384;

/** Chunk claims remembered while assembling a full key coverage. A 64 MiB owner at 1 MiB per
 *  chunk needs ~70; 1024 bounds memory if a peer sends endless narrow chunks. */
export const MAX_COVER_CHUNKS = 1024;

/** A chunk's claim: for keys in `keys`, every change in (from, to] is held (or a newer one).
 *  `floor` set: it came from a replacing snapshot whose sender collected deletions up to it. */
export interface Claim {
  keys: KeyRange;
  from: number;
  to: number;
  floor: number | undefined;
}

export interface Rec {
  e: Entry;
  /** Bytes on the wire, computed once: chunking reads it for every entry of a delta. */
  size: number;
  /** Contribution to the owner's checksum (0 for tombstones, which are not checksummed because
   *  peers garbage-collect them at different times). */
  hash: number;
  /** Local time a tombstone was stored; undefined after a restore until the next gc tick. */
  seen: number | undefined;
}

/** FNV-1a's offset basis: the starting `h` of a fresh hash. */
export const FNV_OFFSET = 0x811c9dc5;

/** FNV-1a, 32 bits: cheap, and a checksum mismatch only triggers a repair exchange. */
export function fnv1a(s: string, h: number): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function makeRec(e: Entry, seen: number | undefined): Rec {
  // The signature covers the value, so hashing it stands in for hashing a large value.
  const hash = e.value === null ? 0 : fnv1a(`${e.key}\u0000${e.version}\u0000${e.sig}`, FNV_OFFSET);
  return { e, size: entryWireBytes(e), hash, seen: e.value === null ? seen : undefined };
}

/** Total order between two different entries at the same (owner, key, version), which only an
 *  owner that lost state and reused a version can produce; any fixed order keeps merge
 *  commutative. Positive if a wins. */
export function tieBreak(a: Entry, b: Entry): number {
  if (a.sig !== b.sig) return a.sig > b.sig ? 1 : -1;
  const av = a.value ?? '';
  const bv = b.value ?? '';
  if (av !== bv) return av > bv ? 1 : -1;
  if (a.value === b.value) return 0;
  return a.value === null ? -1 : 1;
}

export class OwnerLog {
  readonly owner: string;
  readonly byKey = new Map<string, Rec>();
  readonly tombs = new Set<Rec>();
  complete = 0;
  floor = 0;
  /** XOR of live recs' hashes. */
  hash = 0;
  /** Highest version ever stored here; with no pending ranges and this ≤ complete, the log holds
   *  nothing above complete and the checksum is comparable. */
  maxHeld = 0;
  /** What this owner's entries cost here, for the quotas (quota.ts). */
  readonly usage = new Usage();
  /** Set when an entry of this owner was refused for quota: the checksum then no longer stands
   *  for the owner's state, so it is not offered or compared (no repair exchange that could
   *  only be refused again). Cleared by the next deletion, which may make room. */
  overQuota = false;

  // Append-only by version; superseded recs stay until compaction (lazy deletion keeps a merge of
  // n entries O(n log n) instead of O(n²) splices). Sorted on demand.
  private byVersion: Rec[] = [];
  private sorted = true;
  private stale = 0;
  /** Disjoint ranges (lo, hi] above complete known to be fully seen, ascending, non-adjacent. */
  private pending: Array<[number, number]> = [];
  private cover: Claim[] = [];

  constructor(owner: string) {
    this.owner = owner;
  }

  get size(): number {
    return this.byKey.size;
  }

  clean(): boolean {
    return !this.overQuota && this.pending.length === 0 && this.maxHeld <= this.complete;
  }

  /** Stores rec as the current one for its key; returns the one it replaced. */
  put(rec: Rec): Rec | undefined {
    const prev = this.byKey.get(rec.e.key);
    if (prev !== undefined) this.unlink(prev);
    this.byKey.set(rec.e.key, rec);
    this.hash = (this.hash ^ rec.hash) >>> 0;
    this.usage.add(rec.e, rec.size, 1);
    if (rec.e.value === null) {
      this.tombs.add(rec);
      this.overQuota = false;
    }
    const last = this.byVersion[this.byVersion.length - 1];
    if (last !== undefined && last.e.version > rec.e.version) this.sorted = false;
    this.byVersion.push(rec);
    if (rec.e.version > this.maxHeld) this.maxHeld = rec.e.version;
    return prev;
  }

  remove(key: string): Rec | undefined {
    const prev = this.byKey.get(key);
    if (prev === undefined) return undefined;
    this.unlink(prev);
    this.byKey.delete(key);
    return prev;
  }

  private unlink(rec: Rec): void {
    this.hash = (this.hash ^ rec.hash) >>> 0;
    this.usage.add(rec.e, rec.size, -1);
    this.tombs.delete(rec);
    this.stale++;
  }

  /** The highest version held now (0 if none). */
  top(): number {
    let top = 0;
    for (const rec of this.byKey.values()) if (rec.e.version > top) top = rec.e.version;
    return top;
  }

  /** Current recs with version > after, ascending by version. */
  *after(after: number): Generator<Rec> {
    this.tidy();
    const v = this.byVersion;
    let lo = 0;
    let hi = v.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((v[mid] as Rec).e.version <= after) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < v.length; i++) {
      const rec = v[i] as Rec;
      if (this.byKey.get(rec.e.key) === rec) yield rec;
    }
  }

  private tidy(): void {
    if (this.stale > 0 && (this.stale > this.byKey.size || !this.sorted)) {
      this.byVersion = this.byVersion.filter((r) => this.byKey.get(r.e.key) === r);
      this.stale = 0;
    }
    if (!this.sorted) {
      this.byVersion.sort((a, b) => a.e.version - b.e.version || (a.e.key < b.e.key ? -1 : a.e.key > b.e.key ? 1 : 0));
      this.sorted = true;
    }
  }

  /** Records that every change in (lo, hi] has been seen, and advances complete if it can. */
  seen(lo: number, hi: number): void {
    if (hi <= this.complete) return;
    if (lo <= this.complete) {
      this.complete = hi;
      this.absorb();
      return;
    }
    const p = this.pending;
    // First range that ends at or after lo: it may touch or overlap the new one.
    let i = 0;
    let top = p.length;
    while (i < top) {
      const mid = (i + top) >>> 1;
      if ((p[mid] as [number, number])[1] < lo) i = mid + 1;
      else top = mid;
    }
    let nlo = lo;
    let nhi = hi;
    let j = i;
    while (j < p.length && (p[j] as [number, number])[0] <= nhi) {
      const r = p[j] as [number, number];
      nlo = Math.min(nlo, r[0]);
      nhi = Math.max(nhi, r[1]);
      j++;
    }
    p.splice(i, j - i, [nlo, nhi]);
    if (p.length > MAX_PENDING_RANGES) p.length = MAX_PENDING_RANGES;
  }

  private absorb(): void {
    const p = this.pending;
    let n = 0;
    while (n < p.length && (p[n] as [number, number])[0] <= this.complete) {
      this.complete = Math.max(this.complete, (p[n] as [number, number])[1]);
      n++;
    }
    if (n > 0) p.splice(0, n);
  }

  /** Notes a chunk's claim. Once claims at least as strong as this one (from ≤ its from, to ≥ its
   *  to) cover every key, returns the range they prove for the whole owner, and the floor if all
   *  of them came from replacing snapshots. Claims from different senders combine: each is a
   *  fact about what the receiver now holds for its keys. */
  covered(claim: Claim): { from: number; to: number; floor: number | undefined } | undefined {
    this.cover = this.cover.filter((c) => c.to > this.complete);
    if (this.cover.length >= MAX_COVER_CHUNKS) this.cover = [];
    this.cover.push(claim);
    const usable = this.cover
      .filter((c) => c.from <= claim.from && c.to >= claim.to)
      .sort((a, b) => (a.keys.from < b.keys.from ? -1 : a.keys.from > b.keys.from ? 1 : 0));
    let reach = '';
    let floor: number | undefined = Infinity;
    for (const c of usable) {
      if (c.keys.from > reach) return undefined;
      floor = floor === undefined || c.floor === undefined ? undefined : Math.min(floor, c.floor);
      if (c.keys.to === null) {
        this.cover = this.cover.filter((x) => !usable.includes(x));
        return { from: claim.from, to: claim.to, floor };
      }
      if (c.keys.to > reach) reach = c.keys.to;
    }
    return undefined;
  }
}
