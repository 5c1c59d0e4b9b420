// How many requests one address may make of the install listener per minute. Install tokens are
// unguessable, so this is not about guessing: it bounds the work and the log lines anyone who
// can reach the port can cause. Pure: the caller gives the time.

/** An install makes three requests (script, bundle, join token); a few retries, or a handful of
 *  hosts behind one NAT installing at once, stay far below. */
export const REQUESTS_PER_WINDOW = 30;
export const WINDOW_MS = 60_000;
/** Bounds memory: keys are remote addresses. */
const MAX_ADDRESSES = 1024;

export class RequestBudget {
  private readonly windows = new Map<string, { start: number; count: number }>();

  /** Counts a request from `address`; false when it is over its budget for this window. */
  take(address: string, now: number): boolean {
    let w = this.windows.get(address);
    if (!w || now - w.start >= WINDOW_MS) {
      if (!w && this.windows.size >= MAX_ADDRESSES) {
        for (const [k, old] of this.windows) if (now - old.start >= WINDOW_MS) this.windows.delete(k);
        // Still full: these are all addresses active this very minute; forget them rather
        // than grow (each may then make a fresh window's worth, which is still bounded).
        if (this.windows.size >= MAX_ADDRESSES) this.windows.clear();
      }
      w = { start: now, count: 0 };
      this.windows.set(address, w);
    }
    w.count++;
    return w.count <= REQUESTS_PER_WINDOW;
  }
}
