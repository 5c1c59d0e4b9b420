import type { Libp2p } from '@libp2p/interface';
import { backoffDelay } from './backoff.ts';
import { parseHostPort, toMultiaddr } from './address.ts';
import { errorText, type Logger } from './log.ts';

/** How long one dial may take: a live peer on a LAN answers in milliseconds; a cut-off one
 *  would otherwise hold the attempt for the kernel's SYN retries (over two minutes). */
const DIAL_TIMEOUT_MS = 3000;

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
  private readonly random: () => number;

  constructor(node: Libp2p, opts: { log: Logger; selfAddrs: string[]; onConnected: (addr: string, peerId: string) => void; random?: () => number }) {
    this.node = node;
    this.log = opts.log;
    this.self = new Set(opts.selfAddrs);
    this.onConnected = opts.onConnected;
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

  /** Dials every target that is not connected and whose backoff has expired. */
  tick(now: number): void {
    for (const [addr, t] of this.targets) {
      if (t.dialing || now < t.nextAt) continue;
      if (t.peerId && this.node.getConnections().some((c) => c.remotePeer.toString() === t.peerId && c.status === 'open')) {
        t.attempt = 0;
        continue;
      }
      void this.dial(addr, t);
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
    } finally {
      t.dialing = false;
    }
  }
}
