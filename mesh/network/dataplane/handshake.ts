// First contact in encrypted mode: making sure two hosts that just learnt each other's keys
// complete a WireGuard handshake at once instead of after WireGuard's own 5 s retry.
//
// Why it is needed. Each host adds a new peer with a persistent keepalive, so wireguard-go
// sends a handshake initiation the moment the peer is configured. Gossip often hands two hosts
// each other's record at the same moment (a third host relays both in one round), so both
// initiate at once, and the initiations cross: each side answers the other's initiation,
// which replaces its own pending one, so each side then drops the response to its own (it is
// no longer waiting for it; wireguard-go checks the handshake state and the receiver index).
// No session results on either side, and wireguard-go waits REKEY_TIMEOUT (5 s, plus up to
// 1/3 s of jitter) before it initiates again; a packet sent meanwhile cannot start a new
// handshake either (at most one initiation per 5 s). The same 5 s wait follows a first
// initiation lost on the underlay. Measured here (wireguard-go, two namespaces, both sides
// configured at once): about 1 first contact in 40 took 5.2 s instead of about 0.1 s.
//
// What is done. Of two hosts, the one with the lower public key checks, shortly after it
// added the other, whether a handshake completed; if not, it removes and re-adds the peer in
// one `wg set` (same endpoint, keepalive and allowed-ips). A new peer object has no 5 s limit,
// so it initiates at once, and the other side, which is now waiting for nothing, answers. Only
// one side does it, so the retries themselves never cross. When the other host had not
// learnt our key yet, nothing is lost: it initiates itself the moment it does.
//
// Pure: times and handshake states in, which peers to re-initiate out. The shell
// (dataplane.ts) owns the timer and runs `wg`.

/** When to check a newly added peer for a completed handshake, in ms after it was added, one
 *  entry per check (a re-initiation follows each failed one). The first at 250 ms: a
 *  handshake takes one round trip and a few Curve25519 operations, a few ms even on a loaded
 *  machine, so a peer still without one then is stuck (or the other host does not know us
 *  yet). Then every 250-1000 ms for 2 s, so that a retry lost in turn, or a path that comes
 *  back a moment later, still connects within about a second; after the last check
 *  WireGuard's own retries (every 5 s, for 90 s, then with each keepalive) take over. Cost: at
 *  most 4 `wg show` and 4 handshake initiations per new peer, none once it connected. */
export const HANDSHAKE_CHECKS_MS: readonly number[] = [250, 500, 1_000, 2_000];

export interface PendingHandshake {
  /** When the peer was added (ms, the caller's clock). */
  since: number;
  /** How many of HANDSHAKE_CHECKS_MS were done. */
  checks: number;
}

/** Whether we are the side that re-initiates with the peer whose public key is `theirs`: the
 *  lower key, so both hosts agree without a word. */
export function weReinitiate(ours: string, theirs: string): boolean {
  return ours < theirs;
}

export interface HandshakeCheck {
  /** Peers (public keys) to remove and re-add now. */
  reinitiate: string[];
  /** What is still to be checked later. */
  pending: Map<string, PendingHandshake>;
  /** When the next check is due (ms, the caller's clock), if any is. */
  nextAt?: number;
}

/**
 * One check at `now`. `handshakes`: each configured peer's latest handshake (Unix seconds; 0
 * or absent: none yet, as `wg show DEV latest-handshakes` says). A peer with a handshake is
 * done; one whose check is due and has none is re-initiated; one that is no longer configured
 * is forgotten.
 */
export function checkHandshakes(now: number, pending: ReadonlyMap<string, PendingHandshake>, handshakes: ReadonlyMap<string, number>): HandshakeCheck {
  const reinitiate: string[] = [];
  const next = new Map<string, PendingHandshake>();
  for (const [key, p] of pending) {
    const at = handshakes.get(key);
    if (at === undefined || at > 0) continue; // gone, or connected
    const due = p.since + (HANDSHAKE_CHECKS_MS[p.checks] ?? Infinity);
    if (now < due) {
      next.set(key, p);
      continue;
    }
    reinitiate.push(key);
    if (p.checks + 1 < HANDSHAKE_CHECKS_MS.length) next.set(key, { since: p.since, checks: p.checks + 1 });
  }
  return { reinitiate: reinitiate.sort(), pending: next, nextAt: nextDue(next) };
}

/** When the first of `pending` is due, if any is. */
export function nextDue(pending: ReadonlyMap<string, PendingHandshake>): number | undefined {
  let at: number | undefined;
  for (const p of pending.values()) {
    const due = p.since + (HANDSHAKE_CHECKS_MS[p.checks] ?? Infinity);
    if (Number.isFinite(due) && (at === undefined || due < at)) at = due;
  }
  return at;
}
