// Address reservations for identities (`weft.name=db`, later `stack/service/index`): a
// last-writer-wins map identity -> address, replicated with the ring. A reservation is not an
// allocation: it says which address an identity's container gets wherever it starts, and keeps
// the owner of that address from giving it to anyone else. Handing an address out stays the
// owner's job alone (ipam.ts), so a reservation can never cause a duplicate, even when two
// partitions reserve different addresses for the same identity (one wins the merge, the other
// container keeps its address as an ordinary allocation).

import { fnv1a64 } from './hash.ts';

/** Bound on reservations, deleted ones included, so that the whole map stays a few MiB in the
 *  worst case (identities are at most MAX_IDENTITY_LENGTH); Tutum-sized deployments reserve a
 *  few thousand. The scheduler's reservations will live in Raft (ARCHITECTURE.md). */
export const MAX_RESERVATIONS = 65536;
/** `stack/service/index` with DNS-label-sized parts, or `weft.name=` and a DNS name. */
export const MAX_IDENTITY_LENGTH = 300;

/** [identity, offset or null (deleted), version, writer]. */
export type ReservationWire = [identity: string, addr: number | null, ver: number, by: string];

interface Reservation {
  addr: number | null;
  ver: number;
  by: string;
}

function newer(a: Reservation, b: Reservation): boolean {
  if (a.ver !== b.ver) return a.ver > b.ver;
  if (a.by !== b.by) return a.by > b.by;
  return (a.addr ?? -1) > (b.addr ?? -1);
}

export class Reservations {
  private readonly map = new Map<string, Reservation>();
  private readonly byAddr = new Map<number, Set<string>>();
  private cachedHash: string | null = null;
  private live = 0;

  get size(): number {
    return this.map.size;
  }

  /** Reservations with an address (not deleted). */
  get count(): number {
    return this.live;
  }

  get(identity: string): number | undefined {
    return this.map.get(identity)?.addr ?? undefined;
  }

  /** True if `off` is reserved for an identity other than `identity`. */
  reservedForOther(off: number, identity: string | undefined): boolean {
    const ids = this.byAddr.get(off);
    if (ids === undefined) return false;
    for (const id of ids) if (id !== identity) return true;
    return false;
  }

  isReserved(off: number): boolean {
    return this.byAddr.has(off);
  }

  /** Reserved offsets, for the allocator's free-space arithmetic. */
  addresses(): IterableIterator<number> {
    return this.byAddr.keys();
  }

  /** Writes identity -> addr (null deletes) above every version seen for it. */
  set(identity: string, addr: number | null, by: string): ReservationWire {
    const cur = this.map.get(identity);
    const r: Reservation = { addr, ver: (cur?.ver ?? 0) + 1, by };
    this.put(identity, r);
    return [identity, addr, r.ver, by];
  }

  /** Merges items; returns those that changed our view. */
  merge(items: readonly ReservationWire[]): ReservationWire[] {
    const changed: ReservationWire[] = [];
    for (const it of items) {
      const [identity, addr, ver, by] = it;
      const r: Reservation = { addr, ver, by };
      const cur = this.map.get(identity);
      if (cur !== undefined && !newer(r, cur)) continue;
      if (cur === undefined && this.map.size >= MAX_RESERVATIONS) continue;
      this.put(identity, r);
      changed.push(it);
    }
    return changed;
  }

  private put(identity: string, r: Reservation): void {
    const cur = this.map.get(identity);
    if (cur?.addr != null) {
      const ids = this.byAddr.get(cur.addr);
      ids?.delete(identity);
      if (ids?.size === 0) this.byAddr.delete(cur.addr);
      this.live--;
    }
    this.map.set(identity, r);
    if (r.addr !== null) {
      let ids = this.byAddr.get(r.addr);
      if (ids === undefined) this.byAddr.set(r.addr, (ids = new Set()));
      ids.add(identity);
      this.live++;
    }
    this.cachedHash = null;
  }

  all(): ReservationWire[] {
    return [...this.map.entries()]
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([identity, r]) => [identity, r.addr, r.ver, r.by]);
  }

  hash(): string {
    this.cachedHash ??= fnv1a64(JSON.stringify(this.all()));
    return this.cachedHash;
  }
}
