import type { Libp2p } from '@libp2p/interface';
import { backoffDelay } from './backoff.ts';
import { parseHostPort, toMultiaddr } from './address.ts';
import { errorText, type Logger } from './log.ts';

/** How long one dial may take: a live peer on a LAN answers in milliseconds; a cut-off one
 *  would otherwise hold the attempt for the kernel's SYN retries (over two minutes). */
const DIAL_TIMEOUT_MS = 3000;
/** Dials in flight at once. A peer joining a mesh of N learns N-1 addresses at once, and each
 *  dial is a handshake (CPace and Noise) on both sides: at 50 peers on two cores, dialing all
 *  at once starved every event loop and made the whole mesh flap. Four at a time connects a
 *  joiner to 100 peers in seconds (a handshake takes milliseconds), and the members that dial
 *  the joiner themselves, having heard of it, spread the rest. */
export const MAX_CONCURRENT_DIALS = 4;

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
    /** A dial to a known peer's address failed (not a seed's, whose peer is not known yet). */
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
   *  to us and not dial a second one. */
  add(addr: string, now: number, peerId?: string): void {
    if (this.self.has(addr)) return;
    const t = this.targets.get(addr);
    if (t) {
      if (peerId) t.peerId = peerId;
      return;
    }
    parseHostPort(addr);
    this.targets.set(addr, { attempt: 0, nextAt: now, dialing: false, peerId });
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
    let inFlight = 0;
    for (const t of this.targets.values()) if (t.dialing) inFlight++;
    if (inFlight >= MAX_CONCURRENT_DIALS) return;
    // One pass over the connections per tick, not one per target (N^2 at every tick).
    const connected = new Set<string>();
    for (const c of this.node.getConnections()) if (c.status === 'open') connected.add(c.remotePeer.toString());
    for (const [addr, t] of this.targets) {
      if (t.dialing || now < t.nextAt) continue;
      if (t.peerId && connected.has(t.peerId)) {
        t.attempt = 0;
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
      if (t.peerId) this.onFailed(addr, t.peerId);
    } finally {
      t.dialing = false;
    }
  }
}
