// Which of two beliefs about a member wins. Beliefs are ordered by (incarnation, rank) and the
// larger one wins, so merging is taking a maximum: idempotent, commutative and associative, and
// every peer that has seen the same records holds the same table whatever order they came in.
//
// Ranks at one incarnation: alive < suspect < dead < left < forgotten. Spelled out as SWIM's
// precedence rules (i is the incoming incarnation, j the one held):
//   alive(i)     beats anything(j)           iff i > j   only the member itself raises i, so a
//                                                        higher alive is its own refutation
//   suspect(i)   beats alive(j)              iff i >= j  suspicion of the current life
//                beats suspect/dead/left(j)  iff i > j
//   dead(i)      beats alive/suspect(j)      iff i >= j  a verdict on the current life
//                beats dead/left(j)          iff i > j
//   left(i)      beats alive/suspect/dead(j) iff i >= j  a member that said goodbye is not dead:
//                                                        its leave and our failure detector race,
//                                                        and the leave must win everywhere
//                beats left(j)               iff i > j
//   forgotten(i) beats every state(j)        iff i >= j  the operator's `forget` outlives stale
//                                                        gossip about that life; only a new life
//                                                        (alive at i+1) brings the member back
// A record never beats itself, so re-delivering one changes nothing and causes no relay.

import type { HeldState, MemberState } from './wire.ts';

export const RANK: Readonly<Record<MemberState | 'forgotten', number>> = {
  alive: 0,
  suspect: 1,
  dead: 2,
  left: 3,
  forgotten: 4,
};

export function rankOf(state: HeldState): number {
  return state === 'unknown' ? -1 : RANK[state];
}

/** True when belief (inc, rank) supersedes the held (heldInc, heldRank). */
export function outranks(inc: number, rank: number, heldInc: number, heldRank: number): boolean {
  return inc > heldInc || (inc === heldInc && rank > heldRank);
}

/** 32-bit FNV-1a: cheap, stable across peers, spreads short strings well enough for a digest
 *  whose collisions only delay an anti-entropy exchange, never corrupt state. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** One record's share of a table digest; the digest is the sum of shares mod 2^32, so it does
 *  not depend on table order. Member info is left out: it only changes with the incarnation. */
export function digestShare(id: string, inc: number, state: MemberState): number {
  return fnv1a(`${id}\u0000${inc}\u0000${state}`);
}
