// The IPAM ownership ring, a state-based CRDT (Weave Net's design, kept small). The range is a
// ring of offsets 0 .. size-1 cut by tokens; a token owns the offsets from its start up to the
// next token's start. Each token carries its owner and a version.
//
// Rules that make ownership exclusive (argued in ipam.ts, checked by test/sim/ipam.test.ts):
//   - Merge is per token start: the higher version wins; tokens are never deleted, so merge is a
//     union and is commutative, associative and idempotent.
//   - Only the owner of a range changes it: it inserts tokens inside it (a split) and writes a
//     token's new owner under version + 1 (a transfer). The one exception is the settled removal
//     of a dead peer (removal.ts).
//   - A ring travels whole: whoever learns a token's version also learns every token that
//     existed when it was written, so the owner of a token always knows where its range ends.

import { fnv1a64 } from './hash.ts';

/** Bound on tokens a ring may hold, so a ring message stays bounded (~25 bytes a token on the
 *  wire: 32768 make ~800 KiB). A mesh of 100 peers after a year of churn holds a few thousand:
 *  each donation adds at most two tokens and each moved reservation two more. */
export const MAX_TOKENS = 32768;

export interface Token {
  start: number;
  owner: string;
  version: number;
}

/** A ring on the wire: the owner ids once, then tokens flat as [start, owner index, version]. */
export interface RingWire {
  genesis: string;
  peers: string[];
  tokens: number[];
}

export interface MergeResult {
  changed: boolean;
  /** One line per token both sides wrote at the same version with different owners, which a
   *  correct mesh never produces; resolved by the lower owner id so that views still converge. */
  conflicts: string[];
}

function wins(a: Token, b: Token): boolean {
  return a.version > b.version || (a.version === b.version && a.owner < b.owner);
}

export class Ring {
  readonly size: number;
  /** Identifies the bootstrap decision this ring descends from (bootstrap.ts); rings of
   *  different geneses were created independently and are never merged. */
  readonly genesis: string;
  private tokens: Token[];

  private constructor(size: number, genesis: string, tokens: Token[]) {
    this.size = size;
    this.genesis = genesis;
    this.tokens = tokens;
  }

  /** The first ring: the range cut into equal parts, one per member in id order. */
  static create(size: number, genesis: string, members: readonly string[]): Ring {
    const sorted = [...new Set(members)].sort();
    if (sorted.length === 0) throw new RangeError('ipam ring: no members');
    const n = Math.min(sorted.length, size);
    const tokens = sorted.slice(0, n).map((owner, i) => ({ start: Math.floor((i * size) / n), owner, version: 1 }));
    return new Ring(size, genesis, tokens);
  }

  clone(): Ring {
    return new Ring(this.size, this.genesis, this.tokens.map((t) => ({ ...t })));
  }

  get length(): number {
    return this.tokens.length;
  }

  all(): readonly Token[] {
    return this.tokens;
  }

  /** Index of the token whose range holds `off`. */
  private indexOf(off: number): number {
    let lo = 0;
    let hi = this.tokens.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.tokens[mid] as Token).start <= off) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private endOf(i: number): number {
    return i + 1 < this.tokens.length ? (this.tokens[i + 1] as Token).start : this.size;
  }

  ownerOf(off: number): string {
    return (this.tokens[this.indexOf(off)] as Token).owner;
  }

  /** [start, end) ranges owned by `peer`, adjacent ones joined, ascending. */
  rangesOf(peer: string): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < this.tokens.length; i++) {
      if ((this.tokens[i] as Token).owner !== peer) continue;
      const s = (this.tokens[i] as Token).start;
      const e = this.endOf(i);
      const last = out[out.length - 1];
      if (last !== undefined && last[1] === s) last[1] = e;
      else out.push([s, e]);
    }
    return out;
  }

  /** Addresses per owner. */
  sizes(): Map<string, number> {
    const out = new Map<string, number>();
    for (let i = 0; i < this.tokens.length; i++) {
      const t = this.tokens[i] as Token;
      out.set(t.owner, (out.get(t.owner) ?? 0) + this.endOf(i) - t.start);
    }
    return out;
  }

  owners(): Set<string> {
    return new Set(this.tokens.map((t) => t.owner));
  }

  /** True if `peer` owns every offset of [start, end). */
  owns(peer: string, start: number, end: number): boolean {
    if (start < 0 || end > this.size || start >= end) return false;
    for (let i = this.indexOf(start); i < this.tokens.length && (this.tokens[i] as Token).start < end; i++) {
      if ((this.tokens[i] as Token).owner !== peer) return false;
    }
    return true;
  }

  /** Tokens needed to give [start, end) away: 0, 1 or 2 splits. */
  splitsFor(start: number, end: number): number {
    let n = 0;
    if ((this.tokens[this.indexOf(start)] as Token).start !== start) n++;
    if (end < this.size && (this.tokens[this.indexOf(end)] as Token).start !== end) n++;
    return n;
  }

  /** A new token at `off` with the owner of the range it cuts. Only that owner may call this;
   *  version 1 is safe because no ring anywhere can already hold a token at `off` (the owner
   *  of a range knows every token inside it). */
  private split(off: number): void {
    const i = this.indexOf(off);
    const t = this.tokens[i] as Token;
    if (t.start === off) return;
    this.tokens.splice(i + 1, 0, { start: off, owner: t.owner, version: 1 });
  }

  /** `from` gives [start, end) to `to`: splits at both ends, then writes each token inside under
   *  its next version. Throws if `from` does not own all of it or the ring would be too big. */
  give(from: string, to: string, start: number, end: number): void {
    if (!this.owns(from, start, end)) throw new RangeError(`ipam ring: ${from} does not own [${start}, ${end})`);
    if (this.tokens.length + this.splitsFor(start, end) > MAX_TOKENS) throw new RangeError('ipam ring: too many tokens');
    this.split(start);
    if (end < this.size) this.split(end);
    for (let i = this.indexOf(start); i < this.tokens.length && (this.tokens[i] as Token).start < end; i++) {
      const t = this.tokens[i] as Token;
      t.owner = to;
      t.version++;
    }
  }

  /** Every token of `dead` goes to `heir` under its next version (a settled removal only). */
  takeOver(dead: string, heir: string): number {
    let n = 0;
    for (const t of this.tokens) {
      if (t.owner !== dead) continue;
      t.owner = heir;
      t.version++;
      n++;
    }
    return n;
  }

  /** Merges another view of the same ring (same size and genesis: the caller checks). */
  merge(other: Ring): MergeResult {
    const a = this.tokens;
    const b = other.tokens;
    const out: Token[] = [];
    const conflicts: string[] = [];
    let changed = false;
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      const x = a[i];
      const y = b[j];
      if (y === undefined || (x !== undefined && x.start < y.start)) {
        out.push(x as Token);
        i++;
      } else if (x === undefined || y.start < x.start) {
        out.push({ ...y });
        changed = true;
        j++;
      } else {
        if (x.version === y.version && x.owner !== y.owner) {
          conflicts.push(`token ${x.start} version ${x.version}: owned by ${x.owner} and by ${y.owner}`);
        }
        if (wins(y, x)) {
          out.push({ ...y });
          changed = true;
        } else {
          out.push(x);
        }
        i++;
        j++;
      }
    }
    if (out.length > MAX_TOKENS) {
      conflicts.push(`merged ring would hold ${out.length} tokens, over the limit of ${MAX_TOKENS}; not merged`);
      return { changed: false, conflicts };
    }
    this.tokens = out;
    return { changed, conflicts };
  }

  hash(): string {
    const parts: string[] = [this.genesis];
    for (const t of this.tokens) parts.push(`${t.start}:${t.owner}:${t.version}`);
    return fnv1a64(parts.join(','));
  }

  toWire(): RingWire {
    const index = new Map<string, number>();
    const peers: string[] = [];
    const tokens: number[] = [];
    for (const t of this.tokens) {
      let k = index.get(t.owner);
      if (k === undefined) {
        k = peers.length;
        peers.push(t.owner);
        index.set(t.owner, k);
      }
      tokens.push(t.start, k, t.version);
    }
    return { genesis: this.genesis, peers, tokens };
  }

  /** Rebuilds a ring from a wire form already checked for types (wire.ts); checks the
   *  structure. Returns a reason on failure. */
  static fromWire(size: number, w: RingWire): Ring | string {
    if (w.tokens.length % 3 !== 0) return 'ring tokens are not triples';
    const n = w.tokens.length / 3;
    if (n === 0) return 'ring has no tokens';
    if (n > MAX_TOKENS) return `ring has ${n} tokens, over the limit of ${MAX_TOKENS}`;
    const tokens: Token[] = [];
    let prev = -1;
    for (let k = 0; k < n; k++) {
      const start = w.tokens[3 * k] as number;
      const owner = w.peers[w.tokens[3 * k + 1] as number];
      const version = w.tokens[3 * k + 2] as number;
      if (!Number.isSafeInteger(start) || start <= prev || start >= size) return `ring token ${k}: start ${start} out of order or outside the range`;
      if (k === 0 && start !== 0) return 'ring does not start at offset 0';
      if (owner === undefined) return `ring token ${k}: unknown owner index`;
      if (!Number.isSafeInteger(version) || version < 1) return `ring token ${k}: bad version`;
      tokens.push({ start, owner, version });
      prev = start;
    }
    return new Ring(size, w.genesis, tokens);
  }
}
