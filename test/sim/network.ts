import { Rng } from './rng.ts';

/** A message in flight between two simulated nodes. */
export interface Envelope<M> {
  from: string;
  to: string;
  msg: M;
  deliverAt: number;
}

export interface NetworkOptions {
  /** Probability that any one message is lost. */
  loss?: number;
  /** Delivery delay range in simulated milliseconds. */
  minDelayMs?: number;
  maxDelayMs?: number;
}

/**
 * A simulated network with a simulated clock: lossy, reordering, partitionable.
 * Deterministic for a given Rng. Nodes are plain ids; the caller delivers what `due()` returns.
 */
export class SimNetwork<M> {
  now = 0;
  private queue: Envelope<M>[] = [];
  private groups = new Map<string, number>();
  private down = new Set<string>();
  readonly loss: number;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  sent = 0;
  dropped = 0;

  private readonly rng: Rng;

  constructor(rng: Rng, opts: NetworkOptions = {}) {
    this.rng = rng;
    this.loss = opts.loss ?? 0;
    this.minDelayMs = opts.minDelayMs ?? 1;
    this.maxDelayMs = opts.maxDelayMs ?? 20;
  }

  send(from: string, to: string, msg: M): void {
    this.sent++;
    if (!this.connected(from, to) || this.rng.chance(this.loss)) {
      this.dropped++;
      return;
    }
    const delay = this.minDelayMs + this.rng.int(this.maxDelayMs - this.minDelayMs + 1);
    this.queue.push({ from, to, msg, deliverAt: this.now + delay });
  }

  /** Splits nodes into partitions; nodes in different groups cannot reach each other. */
  partition(groups: string[][]): void {
    this.groups.clear();
    groups.forEach((g, i) => g.forEach((id) => this.groups.set(id, i)));
  }

  heal(): void {
    this.groups.clear();
  }

  /** A crashed node neither sends nor receives; messages to it are lost. */
  crash(id: string): void {
    this.down.add(id);
  }

  restart(id: string): void {
    this.down.delete(id);
  }

  isDown(id: string): boolean {
    return this.down.has(id);
  }

  connected(a: string, b: string): boolean {
    if (this.down.has(a) || this.down.has(b)) return false;
    return (this.groups.get(a) ?? -1) === (this.groups.get(b) ?? -1);
  }

  /** Advances the clock to `until` and returns the messages due by then, in delivery order.
   *  Messages to a node that is down or partitioned away at delivery time are dropped. */
  advance(until: number): Envelope<M>[] {
    this.now = until;
    const due: Envelope<M>[] = [];
    const rest: Envelope<M>[] = [];
    for (const e of this.queue) (e.deliverAt <= until ? due : rest).push(e);
    this.queue = rest;
    due.sort((a, b) => a.deliverAt - b.deliverAt);
    return due.filter((e) => {
      const ok = this.connected(e.from, e.to);
      if (!ok) this.dropped++;
      return ok;
    });
  }

  get inFlight(): number {
    return this.queue.length;
  }
}
