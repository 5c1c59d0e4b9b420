// Whom to probe next: SWIM's shuffled round-robin (the paper's section 4.3). Each period a peer
// probes one member; the members are walked in a random order that is shuffled again at the
// end of each cycle, so a member present for a whole cycle is probed exactly once in it (every
// member within two cycles, N-1 periods each, at worst), while who probes whom still varies
// from cycle to cycle. Pure: the caller brings the random source (seeded in simulations).

export class ProbeSchedule {
  private order: string[] = [];
  private readonly members = new Set<string>();
  private next = 0;
  private readonly random: () => number;

  constructor(random: () => number) {
    this.random = random;
  }

  get size(): number {
    return this.members.size;
  }

  has(id: string): boolean {
    return this.members.has(id);
  }

  /** A member to probe from now on. It goes to a random place among those not yet probed this
   *  cycle (as memberlist does), so it is probed within the current cycle or the next. */
  add(id: string): void {
    if (this.members.has(id)) return;
    this.members.add(id);
    const at = this.next + Math.floor(this.random() * (this.order.length - this.next + 1));
    this.order.splice(at, 0, id);
  }

  /** No longer probed (dead, left, forgotten). Removed from the walk lazily, at the next
   *  reshuffle: until then pick() steps over it. */
  remove(id: string): void {
    this.members.delete(id);
  }

  /** The next member to probe, or undefined if there is none. Amortised O(1): each removed id
   *  is stepped over at most once before the reshuffle drops it. */
  pick(): string | undefined {
    if (this.members.size === 0) {
      this.order = [];
      this.next = 0;
      return undefined;
    }
    // Bounded: at most one pass over the stale entries and one reshuffle.
    for (let steps = 0; steps <= this.order.length + 1; steps++) {
      if (this.next >= this.order.length) this.reshuffle();
      const id = this.order[this.next++] as string;
      if (this.members.has(id)) return id;
    }
    return undefined;
  }

  private reshuffle(): void {
    const a = [...this.members];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [a[i], a[j]] = [a[j] as string, a[i] as string];
    }
    this.order = a;
    this.next = 0;
  }
}
