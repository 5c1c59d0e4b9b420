import type { Libp2p } from '@libp2p/interface';
import { backoffDelay } from './backoff.ts';
import { parseHostPort, toMultiaddr } from '../address.ts';
import { errorText, type Logger } from '../log.ts';

/** How long one dial may take: a live peer on a LAN answers in milliseconds; a cut-off one
 *  would otherwise hold the attempt for the kernel's SYN retries (over two minutes). */
const DIAL_TIMEOUT_MS = 3000;
/** Dials in flight at once. A peer joining a mesh of N learns N-1 addresses at once, and each
 *  dial is a handshake (CPace and Noise) on both sides: at 50 peers on two cores, dialing all
 *  at once starved every event loop and made the whole mesh flap. Four at a time connects a
 *  joiner to 100 peers in seconds (a handshake takes milliseconds), and the members that dial
 *  the joiner themselves, having heard of it, spread the rest. */
export const MAX_CONCURRENT_DIALS = 4;
/** A member learned by gossip is dialled after a random delay of up to this much per target
 *  we keep (capped below). Every member learns of a new peer within milliseconds of each
 *  other, and all dialling it at once is N−1 handshakes on a process that has only just
 *  started: at 32 peers on 2 cores a joiner could not admit them within DIAL_TIMEOUT_MS, and
 *  the dials that timed out began a minute of flapping. The joiner dials every member itself,
 *  four at a time, and a member it reached no longer needs to dial it: the members' own dials
 *  are the fallback, about three a second at the joiner. (At 100 ms per target, ten a second,
 *  a joiner at N = 85 on a host whose 84 idle peers took most of a core still timed out.) */
export const DIAL_SPREAD_PER_TARGET_MS = 300;
/** Beyond a few hundred members a full mesh is not the design (mesh/cost-model.md). */
export const DIAL_SPREAD_MAX_MS = 60_000;
/** Failed dials in a row before the member counts as unreachable (onFailed): one refused dial
 *  may be a restart, one timeout a host too busy to answer; three take ~1.5 s when refused
 *  (the process is gone) and ~10 s when timing out. */
export const UNREACHABLE_AFTER_FAILURES = 3;

interface Target {
  attempt: number;
  nextAt: number;
  dialing: boolean;
  peerId?: string;
  lastError?: string;
}

/**
 * Keeps connections to a set of addresses (`ip:port`): the --peers given at launch, those
 * added by `weft connect`, and the addresses of members learned through gossip. Each
 * failed dial is retried with exponential backoff and jitter.
 */
export class Dialer {
  private readonly targets = new Map<string, Target>();
  /** When a pass over the targets may next find one to dial: every target connected (the
   *  usual state) means none until something changes (add, a dial ends, wake). A pass reads
   *  every connection and target, ten times a second otherwise: the busiest JavaScript of an
   *  idle peer at N = 30. */
  private passAt = 0;
  private readonly node: Libp2p;
  private readonly log: Logger;
  private readonly self: Set<string>;
  private readonly onConnected: (addr: string, peerId: string) => void;
  private readonly onFailed: (addr: string, peerId: string) => void;
  private readonly random: () => number;

  constructor(node: Libp2p, opts: {
    log: Logger;
    selfAddrs: string[];
    onConnected: (addr: string, peerId: string) => void;
    /** Dials to a known peer's address failed UNREACHABLE_AFTER_FAILURES times in a row (not a
     *  seed's: its peer is not known yet). */
    onFailed?: (addr: string, peerId: string) => void;
    random?: () => number;
  }) {
    this.node = node;
    this.log = opts.log;
    this.self = new Set(opts.selfAddrs);
    this.onConnected = opts.onConnected;
    this.onFailed = opts.onFailed ?? (() => undefined);
    this.random = opts.random ?? Math.random;
  }

  /** Keeps `addr` connected; `peerId`, when known, lets us see a connection the peer made
   *  to us and not dial a second one. `spread`: learned by gossip, so dialled after a random
   *  delay (see DIAL_SPREAD_PER_TARGET_MS); it may well dial us first. */
  add(addr: string, now: number, peerId?: string, spread = false): void {
    if (this.self.has(addr)) return;
    const t = this.targets.get(addr);
    if (t) {
      if (peerId) t.peerId = peerId;
      return;
    }
    parseHostPort(addr);
    const delay = spread ? this.random() * Math.min(DIAL_SPREAD_MAX_MS, this.targets.size * DIAL_SPREAD_PER_TARGET_MS) : 0;
    this.targets.set(addr, { attempt: 0, nextAt: now + delay, dialing: false, peerId });
    this.passAt = Math.min(this.passAt, now + delay);
  }

  /** A connection closed: the next tick looks for targets to redial. */
  wake(): void {
    this.passAt = 0;
  }

  remove(addr: string): void {
    this.targets.delete(addr);
  }

  has(addr: string): boolean {
    return this.targets.has(addr);
  }

  list(): { addr: string; peerId?: string; attempt: number; lastError?: string }[] {
    return [...this.targets].map(([addr, t]) => ({ addr, peerId: t.peerId, attempt: t.attempt, lastError: t.lastError }));
  }

  /** Dials targets that are not connected and whose backoff has expired, a few at a time. */
  tick(now: number): void {
    if (now < this.passAt) return;
    this.passAt = Infinity;
    let inFlight = 0;
    for (const t of this.targets.values()) if (t.dialing) inFlight++;
    // A dial in flight wakes us when it ends.
    if (inFlight >= MAX_CONCURRENT_DIALS) return;
    // One pass over the connections per tick, not one per target (N^2 at every tick).
    const connected = new Set<string>();
    for (const c of this.node.getConnections()) if (c.status === 'open') connected.add(c.remotePeer.toString());
    for (const [addr, t] of this.targets) {
      if (t.dialing) continue;
      if (t.peerId && connected.has(t.peerId)) {
        t.attempt = 0;
        continue;
      }
      if (now < t.nextAt) {
        this.passAt = Math.min(this.passAt, t.nextAt);
        continue;
      }
      void this.dial(addr, t);
      if (++inFlight >= MAX_CONCURRENT_DIALS) return;
    }
  }

  /** Dial now regardless of backoff (weft connect). Resolves to the remote peer id. */
  async dialNow(addr: string): Promise<string> {
    const t = this.targets.get(addr) ?? { attempt: 0, nextAt: 0, dialing: false };
    this.targets.set(addr, t);
    const conn = await this.node.dial(toMultiaddr(parseHostPort(addr)), { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) });
    const id = conn.remotePeer.toString();
    t.peerId = id;
    t.attempt = 0;
    t.lastError = undefined;
    this.onConnected(addr, id);
    return id;
  }

  private async dial(addr: string, t: Target): Promise<void> {
    t.dialing = true;
    try {
      const conn = await this.node.dial(toMultiaddr(parseHostPort(addr)), { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) });
      t.peerId = conn.remotePeer.toString();
      t.attempt = 0;
      t.lastError = undefined;
      this.onConnected(addr, t.peerId);
    } catch (err) {
      const reason = errorText(err);
      // Say it once per streak of failures, not on every retry.
      if (t.attempt === 0 || reason !== t.lastError) this.log.debug('cannot connect', { addr, reason });
      t.lastError = reason;
      t.nextAt = Date.now() + backoffDelay(t.attempt, this.random());
      t.attempt++;
      if (t.peerId && t.attempt >= UNREACHABLE_AFTER_FAILURES) this.onFailed(addr, t.peerId);
    } finally {
      t.dialing = false;
      // Its success or its backoff may change what the next pass does.
      this.passAt = Math.min(this.passAt, t.nextAt);
    }
  }
}
