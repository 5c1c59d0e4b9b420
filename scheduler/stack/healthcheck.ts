// `healthcheck`, as Compose writes it (Tutum had none; weft reads the same key in both forms):
// test (a string: run by the shell; a list starting CMD, CMD-SHELL or NONE), interval, timeout,
// start_period (Compose durations, `1m30s`), retries; `disable: true` or test [NONE] turns off
// the image's check. Timings not given take Docker's defaults (defaults.ts).

import type { HealthCheck } from '../service/spec.ts';
import { DEFAULT_HEALTH_INTERVAL_MS, DEFAULT_HEALTH_RETRIES, DEFAULT_HEALTH_START_PERIOD_MS, DEFAULT_HEALTH_TIMEOUT_MS } from './defaults.ts';
import { MAX_DURATION_MS, parseDuration } from './duration.ts';
import { show } from './errors.ts';
import { type At, bool, fail, int, map, stringList } from './values.ts';

/** Retries past this are a typo: at Docker's 30 s interval it is over a day of failing. */
const MAX_HEALTH_RETRIES = 10_000;
const KNOWN = new Set(['test', 'interval', 'timeout', 'retries', 'start_period', 'disable']);

/** The check; null when the file turns checks off; undefined after an error. */
export function readHealthcheck(at: At, key: string, v: unknown): HealthCheck | null | undefined {
  const m = map(at, key, v);
  if (m === undefined) return undefined;
  for (const k of Object.keys(m)) if (!KNOWN.has(k)) at.p.ignore(at.service, `${key}.${k}`);
  if (m['disable'] !== undefined) {
    const off = bool(at, `${key}.disable`, m['disable']);
    if (off === undefined) return undefined;
    if (off) return null;
  }
  const test = readTest(at, `${key}.test`, m['test']);
  if (test === undefined) return undefined;
  if (test[0] === 'NONE') return null;
  const intervalMs = duration(at, `${key}.interval`, m['interval'], DEFAULT_HEALTH_INTERVAL_MS);
  const timeoutMs = duration(at, `${key}.timeout`, m['timeout'], DEFAULT_HEALTH_TIMEOUT_MS);
  const startPeriodMs = duration(at, `${key}.start_period`, m['start_period'], DEFAULT_HEALTH_START_PERIOD_MS);
  const retries = m['retries'] === undefined ? DEFAULT_HEALTH_RETRIES : int(at, `${key}.retries`, m['retries'], 1, MAX_HEALTH_RETRIES);
  if (intervalMs === undefined || timeoutMs === undefined || startPeriodMs === undefined || retries === undefined) return undefined;
  return { test, intervalMs, timeoutMs, retries, startPeriodMs };
}

function readTest(at: At, key: string, v: unknown): string[] | undefined {
  if (v === undefined) return fail(at, key, 'is missing (a command, or a list starting with CMD, CMD-SHELL or NONE)');
  if (typeof v === 'string') return v.trim() === '' ? fail(at, key, 'is empty') : ['CMD-SHELL', v];
  const words = stringList(at, key, v);
  if (words === undefined) return undefined;
  const kind = words[0];
  if (kind === 'NONE') return ['NONE'];
  if ((kind !== 'CMD' && kind !== 'CMD-SHELL') || words.length < 2) return fail(at, key, `${show(words.join(' '))} does not start with CMD, CMD-SHELL or NONE followed by a command`);
  return words;
}

function duration(at: At, key: string, v: unknown, dflt: number): number | undefined {
  if (v === undefined) return dflt;
  const ms = typeof v === 'string' ? parseDuration(v) : undefined;
  return ms ?? fail(at, key, `${show(v)} is not a duration like "30s" or "1m30s" (at most ${MAX_DURATION_MS / 3_600_000} h)`);
}
