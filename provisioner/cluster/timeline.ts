// A timeline: what happened to a cluster or a node, newest last, for `weft nodecluster inspect`
// and `weft node inspect` (Tutum showed one per cluster and per node). Bounded, so a cluster that
// fails for a week keeps its last words, not all of them. Pure.

import * as v from 'valibot';

/** Enough to read back through a scale, a failure and its retries. */
export const TIMELINE_LENGTH = 20;
const MAX_TEXT = 500;

export interface TimelineEntry {
  at: number;
  text: string;
}

export const timelineSchema = v.pipe(
  v.array(v.strictObject({ at: v.pipe(v.number(), v.integer(), v.minValue(0)), text: v.pipe(v.string(), v.maxLength(MAX_TEXT)) })),
  v.maxLength(TIMELINE_LENGTH),
);

/** `entries` with `text` added at `at`, the oldest dropped beyond the bound. */
export function appended(entries: readonly TimelineEntry[], at: number, text: string): TimelineEntry[] {
  const t = text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text;
  return [...entries, { at, text: t }].slice(-TIMELINE_LENGTH);
}

/** What desired state keeps of a cluster besides its spec and nodes (kind `timeline`): its
 *  recent events, and why its provider cannot be used right now (a refused listing: bad
 *  credentials, a throttled API), so `weft nodecluster ls` carries the provider's own words. */
export interface ClusterLog {
  entries: TimelineEntry[];
  error?: string;
  /** Attempts begun in the cluster so far. Each takes the next number as the last part of its
   *  client token, so no two attempts ever share one, though a slot's index is reused after a
   *  shrink: EC2 answers a token with the same instance for ever, and a reused one would hand
   *  the new slot the old slot's machine (and its peer). */
  serial?: number;
}

export const clusterLogSchema = v.strictObject({
  entries: timelineSchema,
  error: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_TEXT))),
  serial: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER))),
});
