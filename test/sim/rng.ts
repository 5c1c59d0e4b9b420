import { mulberry32 } from '../../mesh/seeded-random.ts';

/** Seeded pseudo-random numbers for deterministic simulations (mulberry32: tiny, fast,
 *  good enough for choosing message loss and peers; not for cryptography). */
export class Rng {
  private readonly source: () => number;

  constructor(seed: number) {
    this.source = mulberry32(seed);
  }

  /** A float in [0, 1). */
  next(): number {
    return this.source();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)] as T;
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j] as T, items[i] as T];
    }
    return items;
  }
}

/** Seeds 1..n, for `test.each(seeds(n))`. A failing seed is printed by the test name. */
export function seeds(n: number, first = 1): number[] {
  return Array.from({ length: n }, (_, i) => first + i);
}
