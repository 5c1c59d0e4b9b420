/**
 * Says a repeated condition once, then again at most once per window with a count: a peer
 * with the wrong password redials with backoff forever, and the operator needs one clear
 * line about it, not one per attempt.
 */

/** Long enough to keep logs readable, short enough that a persisting problem stays visible. */
export const REPEAT_WINDOW_MS = 60_000;
/** Bounds memory: keys come from remote addresses. */
const MAX_KEYS = 1024;

export class LogOnce {
  private readonly seen = new Map<string, { at: number; suppressed: number }>();

  /** Returns undefined to stay silent, or the number of repeats suppressed since the last line. */
  shouldLog(key: string, now: number): number | undefined {
    const s = this.seen.get(key);
    if (s && now - s.at < REPEAT_WINDOW_MS) {
      s.suppressed++;
      return undefined;
    }
    if (this.seen.size >= MAX_KEYS) this.seen.clear();
    this.seen.set(key, { at: now, suppressed: 0 });
    return s?.suppressed ?? 0;
  }
}
