// The addresses a peer keeps dialling, on disk: --peers, `weft connect`, and members' addresses
// as membership learns them, so that a restarted peer finds the mesh again even when every
// address it was given at launch is gone. The dialer (dialer.ts) does the dialling; this keeps
// its targets and their rows (keyspace.ts DIAL_TARGET_PREFIX) in step.

import { DIAL_TARGET_PREFIX } from '../keyspace.ts';
import type { Store } from '../store.ts';
import type { Dialer } from './dialer.ts';

export class DialTargets {
  private readonly dialer: Dialer;
  private readonly store: Store;
  /** Targets on disk (or being written), so each is written once, not per membership event. */
  private readonly stored = new Set<string>();

  constructor(dialer: Dialer, store: Store) {
    this.dialer = dialer;
    this.store = store;
  }

  /** At start: the targets of earlier lives, and the launch's --peers (kept from now on). */
  async restore(launchPeers: readonly string[], now: number): Promise<void> {
    for (const { value } of await this.store.scan<string>(DIAL_TARGET_PREFIX)) {
      this.dialer.add(value, now);
      this.stored.add(value);
    }
    for (const addr of launchPeers) {
      this.dialer.add(addr, now);
      this.stored.add(addr);
      await this.store.put(DIAL_TARGET_PREFIX + addr, addr, false);
    }
  }

  /** A member's addresses, learned from membership: dialled after a spread delay (the dialer
   *  says why), and written behind (a lost row is learned again from any member). */
  learned(addrs: readonly string[], at: number, peerId: string): void {
    for (const addr of addrs) {
      this.dialer.add(addr, at, peerId, true);
      if (this.stored.has(addr)) continue;
      this.stored.add(addr);
      void this.store.put(DIAL_TARGET_PREFIX + addr, addr, false).catch(() => undefined);
    }
  }

  /** `weft connect`: dial now, and keep the address (synced: the user was told it is kept). */
  async connect(addr: string): Promise<string> {
    const id = await this.dialer.dialNow(addr);
    this.stored.add(addr);
    await this.store.put(DIAL_TARGET_PREFIX + addr, addr);
    return id;
  }

  has(addr: string): boolean {
    return this.dialer.has(addr);
  }

  /** Stops dialling these addresses, and forgets them on disk. */
  async remove(addrs: Iterable<string>): Promise<void> {
    for (const a of addrs) {
      this.dialer.remove(a);
      this.stored.delete(a);
      await this.store.del(DIAL_TARGET_PREFIX + a);
    }
  }
}
