// Whom to tell: k distinct members picked uniformly at random, by the membership and replica
// cores with their seeded generators, so what the simulations replay is what runs.

/** Members a replicated change is pushed to by its writer, and relayed to by every peer that
 *  first learns it from a push (rumor mongering: each peer forwards a rumor once). In push
 *  gossip where every newly told peer tells k others, a given peer is missed with probability
 *  about e^-k (0.25 % at 6): at 100 peers a write reaches everyone by push alone about 78 % of
 *  the time, and a peer it missed gets it from anti-entropy within a period or two. The cost
 *  per peer per change is k sends and about k receives whatever the size of the mesh, where
 *  the writer used to send N-1. With k >= N-1 (meshes of up to 7 peers) the writer still tells
 *  every other peer at once, as before, so small meshes lose nothing in latency. */
export const PUSH_FANOUT = 6;

/** Up to k distinct entries of `candidates` not in `exclude`, uniformly at random (a partial
 *  Fisher-Yates shuffle); all of them, in random order, if there are no more than k. */
export function pickTargets<T>(candidates: readonly T[], k: number, random: () => number, exclude?: ReadonlySet<T>): T[] {
  const pool = exclude === undefined ? [...candidates] : candidates.filter((c) => !exclude.has(c));
  const n = Math.min(k, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j] as T, pool[i] as T];
  }
  return pool.slice(0, n);
}
