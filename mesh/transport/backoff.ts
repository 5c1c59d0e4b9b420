/**
 * Redial schedule: exponential backoff with jitter, so that a mesh whose peers all lost
 * a common neighbour does not redial it in lock-step (the thundering herd Weave Net's
 * connection maker avoids the same way).
 */

/** First retry soon: most disconnections are a restart that takes a second or two. */
export const BACKOFF_BASE_MS = 500;
/** Cap: a peer gone for hours is still retried about every half minute, cheaply. */
export const BACKOFF_MAX_MS = 30_000;
/** ±50 % spread de-synchronises peers that lost the same neighbour at the same moment. */
export const BACKOFF_JITTER = 0.5;

/** Delay before retry number `attempt` (0 = first retry); `random` is in [0, 1). */
export function backoffDelay(attempt: number, random: number): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 16));
  return Math.round(base * (1 - BACKOFF_JITTER + 2 * BACKOFF_JITTER * random));
}
