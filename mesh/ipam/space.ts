// This peer's allocations inside the ranges it owns: the local, fast part of IPAM. Nothing here
// is gossiped; it is persisted with the rest of the core's state (ipam.ts export()).
//
// Allocation scans from a cursor that moves forward, so a released address is not handed out
// again until the peer has gone round its space: a container that just died leaves its address
// in other hosts' ARP caches and in DNS answers for a while.

export interface Allocation {
  handle: string;
  off: number;
  identity: string | null;
}

export class Space {
  readonly size: number;
  private ranges: Array<[number, number]> = [];
  /** Allocatable offsets in `ranges` (the range's network and broadcast offsets excluded). */
  private ownedCount = 0;
  private readonly byOff = new Map<number, Allocation>();
  private readonly byHandle = new Map<string, Allocation>();
  private cursor = 1;

  constructor(size: number) {
    this.size = size;
  }

  /** The first and last offsets are the network and broadcast addresses of the range. */
  allocatable(off: number): boolean {
    return off > 0 && off < this.size - 1;
  }

  setRanges(ranges: Array<[number, number]>): void {
    this.ranges = ranges;
    let n = 0;
    for (const [s, e] of ranges) {
      n += e - s;
      if (s === 0) n--;
      if (e === this.size) n--;
    }
    this.ownedCount = Math.max(0, n);
  }

  owned(): number {
    return this.ownedCount;
  }

  mine(): ReadonlyArray<readonly [number, number]> {
    return this.ranges;
  }

  contains(off: number): boolean {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = this.ranges[mid] as [number, number];
      if (off < r[0]) hi = mid - 1;
      else if (off >= r[1]) lo = mid + 1;
      else return true;
    }
    return false;
  }

  inUse(): number {
    return this.byOff.size;
  }

  byHandleGet(handle: string): Allocation | undefined {
    return this.byHandle.get(handle);
  }

  at(off: number): Allocation | undefined {
    return this.byOff.get(off);
  }

  all(): Allocation[] {
    return [...this.byOff.values()].sort((a, b) => a.off - b.off);
  }

  add(handle: string, off: number, identity: string | null): Allocation {
    const a: Allocation = { handle, off, identity };
    this.byOff.set(off, a);
    this.byHandle.set(handle, a);
    return a;
  }

  remove(handle: string): Allocation | undefined {
    const a = this.byHandle.get(handle);
    if (a === undefined) return undefined;
    this.byHandle.delete(handle);
    this.byOff.delete(a.off);
    return a;
  }

  /** The next free offset from the cursor on that `skip` does not refuse, or undefined. */
  next(skip: (off: number) => boolean): number | undefined {
    if (this.byOff.size >= this.ownedCount || this.ranges.length === 0) return undefined;
    // Start in the range holding the cursor (or the next one), wrap round once.
    let first = this.ranges.findIndex(([, e]) => e > this.cursor);
    if (first < 0) first = 0;
    const n = this.ranges.length;
    for (let k = 0; k <= n; k++) {
      const [s, e] = this.ranges[(first + k) % n] as [number, number];
      const from = k === 0 ? Math.max(s, this.cursor) : s;
      const to = k === n ? Math.min(e, this.cursor) : e;
      for (let off = from; off < to; off++) {
        if (!this.allocatable(off) || this.byOff.has(off) || skip(off)) continue;
        this.cursor = off + 1 >= this.size ? 1 : off + 1;
        return off;
      }
    }
    return undefined;
  }

  /** The longest run of owned offsets that are neither allocated nor `blocked`. */
  largestFreeRun(blocked: Iterable<number>): [number, number] | undefined {
    const stops = new Set<number>(this.byOff.keys());
    for (const b of blocked) stops.add(b);
    stops.add(0);
    stops.add(this.size - 1);
    const sorted = [...stops].sort((a, b) => a - b);
    let best: [number, number] | undefined;
    let j = 0;
    for (const [s, e] of this.ranges) {
      while (j < sorted.length && (sorted[j] as number) < s) j++;
      let from = s;
      while (from < e) {
        const stop = j < sorted.length && (sorted[j] as number) < e ? (sorted[j] as number) : e;
        if (stop - from > 0 && (best === undefined || stop - from > best[1] - best[0])) best = [from, stop];
        from = stop + 1;
        if (stop < e) j++;
      }
    }
    return best;
  }
}
