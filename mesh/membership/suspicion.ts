// How long a suspected member has to refute before it is declared dead: Lifeguard's dynamic
// suspicion timeout (Dadgar et al., "Lifeguard: Local Health Awareness for More Accurate
// Failure Detection", 2018, section IV.B), as memberlist implements it.
//
// The timeout starts at a maximum and falls towards a minimum as independent members confirm
// the suspicion (each one that suspects the member on its own probe is evidence that the
// trouble is the member's, not the first accuser's). The maximum scales with log N, because a
// larger mesh needs more rounds of gossip for an unconfirmed rumor to meet its refutation;
// the minimum does not (see SUSPICION_MIN_MS).

/** The minimum timeout, reached once enough independent accusers confirm the suspicion.
 *  Lifeguard and memberlist scale it with log N (and with the probe period); we do not. The
 *  time a live suspect needs to refute does not grow with N: every member that suspects it on
 *  its own probe pings it each period with the suspicion (the buddy system), so it answers
 *  them directly, in one round trip, however large the mesh, and the refutation spreads by
 *  gossip in milliseconds; and about SUSPICION_CHECKERS members check it once whatever N, so
 *  confirmations of a real failure come within a probe timeout, not with N. Scaling the minimum put
 *  kill -9 detection at N = 100 past the 2 s budget (1.6 s of minimum alone). Two requirements
 *  pull on it: detection (median 2 s, of which ~0.6 s is the failed direct and indirect probe;
 *  after a kill -9 every peer probes at once, so confirmations bring the minimum) wants it
 *  short; a member frozen for a GC pause or on a starved host must have woken and refuted
 *  before its confirmed suspicion runs out: the simulations freeze peers for 1.2 s, and 600 ms
 *  let some die there. */
export const SUSPICION_MIN_MS = 800;
/** The maximum, as a multiple of the minimum, per log10(N), for a suspicion nobody confirms:
 *  one member's word alone waits 3x as long up to 10 peers, 6x at 100, 9x at 1,000: it is
 *  what protects a member whose only trouble is a bad link to its accuser, and an unconfirmed
 *  rumor takes about log N rounds to meet its refutation everywhere. memberlist uses 6 with
 *  1 s periods and a minimum that also scales. */
export const SUSPICION_MAX_MULT = 3;
/** Confirmations after which the timeout is at its minimum: memberlist's SuspicionMult - 2.
 *  With k probe helpers per failed probe, three independent accusers are rare unless the
 *  member really is gone. */
export const SUSPICION_CONFIRMATIONS = 3;

export interface SuspicionBounds {
  minMs: number;
  maxMs: number;
}

/** The bounds for a mesh of `n` members. */
export function suspicionBounds(n: number, minMs = SUSPICION_MIN_MS, maxMult = SUSPICION_MAX_MULT): SuspicionBounds {
  const scale = Math.max(1, Math.log10(Math.max(1, n)));
  return { minMs, maxMs: Math.round(maxMult * scale * minMs) };
}

/** The timeout after `confirmations` independent confirmations (not counting the first
 *  accuser): the maximum with none, falling logarithmically to the minimum at `expected`. */
export function suspicionTimeout(b: SuspicionBounds, confirmations: number, expected = SUSPICION_CONFIRMATIONS): number {
  if (expected <= 0 || confirmations >= expected) return b.minMs;
  const frac = Math.log(Math.max(0, confirmations) + 1) / Math.log(expected + 1);
  return Math.max(b.minMs, Math.floor(b.maxMs - frac * (b.maxMs - b.minMs)));
}
