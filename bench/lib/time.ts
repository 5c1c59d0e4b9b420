// Clock and bounded waiting for the benchmarks. Every measurement in a run is taken in the
// bench process with one monotonic clock (performance.now), so times from different
// namespaces compare directly.
import { setTimeout as sleepFor } from 'node:timers/promises';

export const now = (): number => performance.now();

export const sleep = (ms: number): Promise<void> => sleepFor(ms).then(() => undefined);

/** `p`, or a rejection naming `what` after `ms`; the timer never outlives it. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A small random pause, so that repetitions do not lock into the peers' timer phases. */
export const jitter = (baseMs: number, spreadMs: number): Promise<void> => sleep(baseMs + Math.random() * spreadMs);
