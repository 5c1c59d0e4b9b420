// Readers of one key's value in one service: each returns the value in weft's type, or reports
// an error naming the service and the key and returns undefined. Shared by both forms.

import { Problems, show } from './errors.ts';
import { MAX_LIST_ITEMS, MAX_STRING_LENGTH } from './limits.ts';
import { isMap } from './parse.ts';

/** Where a value is read: the problems of the file and the service it belongs to. */
export interface At {
  p: Problems;
  service: string;
  /** Variables for an environment entry given by name only (`- PASSWORD`); see environment.ts. */
  variables: Readonly<Record<string, string>>;
}

export function fail(at: At, key: string, detail: string): undefined {
  at.p.error(at.service, key, detail);
  return undefined;
}

export function str(at: At, key: string, v: unknown): string | undefined {
  if (typeof v !== 'string') return fail(at, key, `${show(v)} is not a string`);
  if (v.length > MAX_STRING_LENGTH) return fail(at, key, `is longer than ${MAX_STRING_LENGTH} characters`);
  return v;
}

/** A scalar as text: YAML turns `PORT: 80` and `DEBUG: yes` into a number and a boolean, but an
 *  environment variable or a label is text. */
export function scalarText(at: At, key: string, v: unknown): string | undefined {
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return str(at, key, v);
}

export function bool(at: At, key: string, v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  return fail(at, key, `${show(v)} is not true or false`);
}

export function int(at: At, key: string, v: unknown, min: number, max: number): number | undefined {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    return fail(at, key, `${show(v)} is not a whole number from ${min} to ${max}`);
  }
  return n;
}

export function list(at: At, key: string, v: unknown): unknown[] | undefined {
  if (!Array.isArray(v)) return fail(at, key, `${show(v)} is not a list`);
  if (v.length > MAX_LIST_ITEMS) return fail(at, key, `has more than ${MAX_LIST_ITEMS} entries`);
  return v;
}

export function map(at: At, key: string, v: unknown): Record<string, unknown> | undefined {
  if (!isMap(v)) return fail(at, key, `${show(v)} is not a map`);
  if (Object.keys(v).length > MAX_LIST_ITEMS) return fail(at, key, `has more than ${MAX_LIST_ITEMS} entries`);
  return v;
}

export function stringList(at: At, key: string, v: unknown): string[] | undefined {
  const items = list(at, key, v);
  if (items === undefined) return undefined;
  const out: string[] = [];
  for (const item of items) {
    const s = str(at, key, item);
    if (s === undefined) return undefined;
    out.push(s);
  }
  return out;
}

/** One of `allowed` (weft's names, as ServiceSpec spells them), matched without regard to case
 *  and with `-` for `_` (Docker Cloud wrote `high_availability`, `on-failure`), or through
 *  `aliases` (lower case) for the spellings Tutum and Docker used (`no` for OFF; YAML 1.1 reads
 *  an unquoted `no` as false). */
export function oneOf<T extends string>(at: At, key: string, v: unknown, allowed: readonly T[], aliases: Readonly<Record<string, T>> = {}): T | undefined {
  const text = typeof v === 'boolean' ? (v ? 'true' : 'false') : v;
  if (typeof text === 'string') {
    const norm = text.trim().toUpperCase().replaceAll('-', '_');
    const hit = allowed.find((a) => a === norm) ?? aliases[text.trim().toLowerCase()];
    if (hit !== undefined) return hit;
  }
  return fail(at, key, `${show(v)} is not one of ${allowed.join(', ')}`);
}

/** Object.fromEntries, which defines own properties: a key `__proto__` in a file stays a key. */
export function record(entries: Iterable<readonly [string, string]>): Record<string, string> {
  return Object.fromEntries(entries);
}
