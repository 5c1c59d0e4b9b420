// Removing a dead peer from the ring (`weft rmpeer`), as a grow-only CRDT of removal records.
//
// Weave lets the peer where rmpeer runs take the dead peer's tokens at once. Two operators (or
// one, twice) running rmpeer on two sides of a partition then both own the space, and a peer
// that had just received a range from the dead one keeps it too: addresses are handed out twice.
// Here a removal is a record {dead, claims, acks}, merged by union:
//   - rmpeer adds a claim by the peer it runs on; many claims may exist, made anywhere.
//   - Every peer that merges the record acks it, and from then on ignores messages from the dead
//     peer, so nothing the dead peer said can reach it any more.
//   - One claimer is the heir: the lowest id among claimers that are not removed themselves.
//   - The heir takes the dead peer's tokens only once every peer it knows of (membership, ring
//     owners, claimers), except removed ones, has acked. A ring travels whole with the acks, so
//     by then the heir has every token any live peer knows: whatever the dead peer gave away
//     before dying is in the heir's view and is not taken.
// Trade-off: safety over availability. A removal during a partition completes only when the
// partition heals (or the peers behind it are removed too); until then the dead peer's space is
// counted as "owned by unreachable peers" and nobody allocates from it.
// What this cannot make safe:
//   - Removing a peer that is in fact alive (both sides of a partition removing each other). The
//     core refuses rmpeer of a peer membership sees alive; beyond that it is the operator's word
//     that the peer is gone for good. A removed peer that comes back learns it was removed and
//     stops allocating (ipam.ts).
//   - A peer the heir has never heard of, that got space from the dead peer and told nobody
//     else: a peer that joined behind a partition with only the dead peer, while rmpeer runs on
//     the other side. Membership gossips every member it knows, so this needs rmpeer to run
//     while the mesh is still partitioned; run it once the mesh is whole (as with Weave).

export interface RemovalWire {
  dead: string;
  claims: string[];
  acks: string[];
  /** The heir that took the tokens; once set, claims and acks no longer matter and are dropped. */
  heir: string | null;
}

interface Removal {
  claims: Set<string>;
  acks: Set<string>;
  heir: string | null;
}

export class Removals {
  private readonly map = new Map<string, Removal>();

  has(id: string): boolean {
    return this.map.has(id);
  }

  get size(): number {
    return this.map.size;
  }

  ids(): string[] {
    return [...this.map.keys()].sort();
  }

  /** Removals whose tokens have not been taken yet. */
  pending(): string[] {
    return this.ids().filter((d) => (this.map.get(d) as Removal).heir === null);
  }

  claimers(dead: string): string[] {
    return [...(this.map.get(dead)?.claims ?? [])].sort();
  }

  acks(dead: string): ReadonlySet<string> {
    return this.map.get(dead)?.acks ?? new Set();
  }

  heirOf(dead: string): string | null {
    return this.map.get(dead)?.heir ?? null;
  }

  /** Who takes the tokens: the lowest claimer not itself removed; undefined if none is left
   *  (then someone must run rmpeer again). */
  winner(dead: string): string | undefined {
    const r = this.map.get(dead);
    if (r === undefined) return undefined;
    if (r.heir !== null) return r.heir;
    return [...r.claims].filter((c) => !this.map.has(c)).sort()[0];
  }

  private entry(dead: string): Removal {
    let r = this.map.get(dead);
    if (r === undefined) {
      r = { claims: new Set(), acks: new Set(), heir: null };
      this.map.set(dead, r);
    }
    return r;
  }

  /** Returns true if anything changed. */
  claim(dead: string, by: string): boolean {
    const r = this.entry(dead);
    if (r.heir !== null || r.claims.has(by)) return false;
    r.claims.add(by);
    r.acks.add(by);
    return true;
  }

  ack(dead: string, by: string): boolean {
    const r = this.map.get(dead);
    if (r === undefined || r.heir !== null || r.acks.has(by)) return false;
    r.acks.add(by);
    return true;
  }

  done(dead: string, heir: string): void {
    const r = this.entry(dead);
    r.heir = heir;
    r.claims.clear();
    r.acks.clear();
  }

  merge(list: readonly RemovalWire[]): { changed: boolean; added: string[] } {
    let changed = false;
    const added: string[] = [];
    for (const w of list) {
      const fresh = !this.map.has(w.dead);
      const r = this.entry(w.dead);
      if (fresh) {
        added.push(w.dead);
        changed = true;
      }
      if (w.heir !== null) {
        // Two heirs only if one completed and was then removed before its takeover spread; any
        // fixed choice keeps merge commutative, and the ring's own merge decides the tokens.
        const heir = r.heir === null || w.heir < r.heir ? w.heir : r.heir;
        if (heir !== r.heir) {
          this.done(w.dead, heir);
          changed = true;
        }
        continue;
      }
      if (r.heir !== null) continue;
      for (const c of w.claims) if (!r.claims.has(c)) (r.claims.add(c), (changed = true));
      for (const a of w.acks) if (!r.acks.has(a)) (r.acks.add(a), (changed = true));
    }
    return { changed, added };
  }

  toWire(): RemovalWire[] {
    return this.ids().map((dead) => {
      const r = this.map.get(dead) as Removal;
      return { dead, claims: [...r.claims].sort(), acks: [...r.acks].sort(), heir: r.heir };
    });
  }

  static fromWire(list: readonly RemovalWire[]): Removals {
    const r = new Removals();
    r.merge(list);
    return r;
  }

  /** Canonical text for the state checksum. */
  canonical(): string {
    return JSON.stringify(this.toWire());
  }
}
