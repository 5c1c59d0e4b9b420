// Bounded polling for end-to-end tests: the only sanctioned way to wait for a condition.
import { setTimeout as sleep } from 'node:timers/promises';

/** Default patience. Convergence on 2 shared, loaded cores takes seconds; 30 s means
 *  "it is not going to happen", not "it is slow". */
export const WAIT_TIMEOUT_MS = 30_000;

/** Default poll period: fine enough not to add latency to a test, coarse enough that
 *  polling a CLI (a Node start per poll) does not load the cores it is measuring. */
export const WAIT_INTERVAL_MS = 250;

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** What is awaited, for the failure message: "h2 to see 3 peers". */
  what?: string;
}

/**
 * Calls `fn` until it returns a truthy value (which is returned) or the time is up, then
 * throws with `what`, the last value and the last error. Exceptions from `fn` count as "not
 * yet". Bounded in time and in attempts; each attempt is awaited, so attempts never overlap.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: WaitOptions = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? WAIT_TIMEOUT_MS;
  const intervalMs = Math.max(1, opts.intervalMs ?? WAIT_INTERVAL_MS);
  const maxAttempts = Math.ceil(timeoutMs / intervalMs) + 1;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let lastError: unknown;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    try {
      last = await fn();
      lastError = undefined;
      if (last) return last as NonNullable<T>;
    } catch (e) {
      lastError = e;
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await sleep(Math.min(intervalMs, left));
  }
  const parts = [`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'a condition'}`];
  if (lastError !== undefined) parts.push(`last error: ${errorText(lastError)}`);
  else parts.push(`last result: ${preview(last)}`);
  throw new Error(parts.join('; '));
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function preview(v: unknown): string {
  let s: string;
  try {
    s = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 500 ? `${s.slice(0, 500)}…` : s;
}
