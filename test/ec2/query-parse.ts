// EC2 Query parameters: the form-encoded body of a request, and EC2's flattened encoding of
// lists and structures in it (`InstanceId.1`, `Filter.2.Value.1`, `TagSpecification.1.Tag.3.Key`).
// Decoding is strict: a bad percent-escape or invalid UTF-8 is refused as EC2's
// MalformedQueryString, not repaired, so a client bug shows up here rather than on EC2.

import { invalidValueFor, malformedQuery, missingParameter, unknownParameter } from './errors.ts';

/** Parameters one request may carry. The largest request weft sends (RunInstances with
 *  50 tags, a few groups and user data) has under 150; this bounds the work a hostile body costs. */
export const MAX_PARAMETERS = 2_000;

/** List positions are 1-based and EC2 lists hold at most a few thousand items. */
const LIST_INDEX = /^[1-9][0-9]{0,4}$/;

/** Decodes `application/x-www-form-urlencoded` (`+` is a space) into name → value. */
export function decodeForm(body: string): Map<string, string> {
  const params = new Map<string, string>();
  if (body === '') return params;
  const pairs = body.split('&');
  if (pairs.length > MAX_PARAMETERS) {
    throw malformedQuery(`The request has more than ${MAX_PARAMETERS} parameters`);
  }
  for (const pair of pairs) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decodeComponent(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? '' : decodeComponent(pair.slice(eq + 1));
    if (name === '') throw malformedQuery('The query string has a parameter with no name');
    if (params.has(name)) throw malformedQuery(`The parameter ${name} is given more than once`);
    params.set(name, value);
  }
  return params;
}

function decodeComponent(raw: string): string {
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '));
  } catch {
    throw malformedQuery(`The query string contains a syntax error near '${raw.slice(0, 40)}'`);
  }
}

/** A view of the parameters under one prefix: the whole request, or one list item of it. */
export class QueryParams {
  readonly #map: ReadonlyMap<string, string>;
  readonly #prefix: string;

  constructor(map: ReadonlyMap<string, string>, prefix = '') {
    this.#map = map;
    this.#prefix = prefix;
  }

  /** The full name of a member, for messages (`IpPermissions.1.FromPort`). */
  fullName(name: string): string {
    return this.#prefix + name;
  }

  get(name: string): string | undefined {
    return this.#map.get(this.#prefix + name);
  }

  require(name: string): string {
    const value = this.get(name);
    if (value === undefined || value === '') throw missingParameter(this.fullName(name));
    return value;
  }

  /** Whether `name` or anything under `name.` is present. */
  has(name: string): boolean {
    const full = this.#prefix + name;
    for (const key of this.#map.keys()) {
      if (key === full || key.startsWith(full + '.')) return true;
    }
    return false;
  }

  int(name: string, min: number, max: number): number | undefined {
    const raw = this.get(name);
    if (raw === undefined) return undefined;
    const value = /^-?[0-9]{1,10}$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(value) || value < min || value > max) throw invalidValueFor(this.fullName(name), raw);
    return value;
  }

  bool(name: string): boolean | undefined {
    const raw = this.get(name);
    if (raw === undefined) return undefined;
    if (raw === 'true') return true;
    if (raw === 'false') return false;
    throw invalidValueFor(this.fullName(name), raw);
  }

  /** A list of scalars: `name.1`, `name.2`, … in index order. */
  list(name: string): string[] {
    return this.#indexed(name, false).map(([, key]) => this.#map.get(key) ?? '');
  }

  /** A list of structures: one view per `name.N.` prefix, in index order. Members other than
   *  `known` (when given) are refused as EC2 refuses an unknown parameter. */
  structs(name: string, known?: readonly string[]): QueryParams[] {
    return this.#indexed(name, true).map(([index]) => {
      const item = new QueryParams(this.#map, `${this.#prefix}${name}.${index}.`);
      if (known) item.refuseUnknown(known);
      return item;
    });
  }

  /** A structure: the view under `name.` (`Placement.AvailabilityZone`). */
  struct(name: string, known?: readonly string[]): QueryParams {
    if (this.#map.has(`${this.#prefix}${name}`)) throw unknownParameter(`${this.#prefix}${name}`);
    const item = new QueryParams(this.#map, `${this.#prefix}${name}.`);
    if (known) item.refuseUnknown(known);
    return item;
  }

  /** Refuses any member whose first name segment is not in `known`. */
  refuseUnknown(known: readonly string[]): void {
    for (const key of this.#map.keys()) {
      if (!key.startsWith(this.#prefix)) continue;
      const head = key.slice(this.#prefix.length).split('.')[0] ?? '';
      if (!known.includes(head)) throw unknownParameter(this.#prefix + head);
    }
  }

  /** Every (name, value) under this prefix, prefix removed; used to compare idempotent requests. */
  entries(): [string, string][] {
    const out: [string, string][] = [];
    for (const [key, value] of this.#map) {
      if (key.startsWith(this.#prefix)) out.push([key.slice(this.#prefix.length), value]);
    }
    return out;
  }

  #indexed(name: string, nested: boolean): [number, string][] {
    const head = `${this.#prefix}${name}.`;
    if (this.#map.has(`${this.#prefix}${name}`)) throw unknownParameter(`${this.#prefix}${name}`);
    const seen = new Map<number, string>();
    for (const key of this.#map.keys()) {
      if (!key.startsWith(head)) continue;
      const rest = key.slice(head.length);
      const dot = rest.indexOf('.');
      const index = dot < 0 ? rest : rest.slice(0, dot);
      if (!LIST_INDEX.test(index)) throw unknownParameter(key);
      if (nested !== dot >= 0) throw unknownParameter(key);
      seen.set(Number(index), key);
    }
    return [...seen.entries()].sort((a, b) => a[0] - b[0]);
  }
}

