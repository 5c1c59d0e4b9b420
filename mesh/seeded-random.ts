/** A seeded pseudo-random generator (mulberry32): tiny, fast, reproducible. For the pure
 *  cores' default choices (probe helpers, gossip targets) and the simulations; the choices
 *  need spread, not secrecy, so it is never used for anything cryptographic. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
