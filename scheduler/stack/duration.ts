// Durations as Compose writes them (Go's form, as docker-compose accepts it): `1m30s`, `10s`,
// `500ms`, `1.5h`, `2us`; a bare number is seconds in Tutum's `reschedule_after`, and Compose
// itself never has one.

const UNIT_MS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;

/** A day is longer than any interval, timeout or delay a stack means; past it is a typo. */
export const MAX_DURATION_MS = 24 * 3_600_000;

/** Milliseconds (rounded), or undefined if `s` is not a duration within a day. */
export function parseDuration(s: string): number | undefined {
  if (!WHOLE.test(s)) return undefined;
  let ms = 0;
  for (const m of s.matchAll(PART)) ms += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  ms = Math.round(ms);
  return ms <= MAX_DURATION_MS ? ms : undefined;
}
