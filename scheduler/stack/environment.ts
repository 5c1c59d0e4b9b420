// `environment` and `labels`, each a map (`KEY: value`) or a list (`- KEY=value`), as both forms
// allow. A variable given by name only (`- PASSWORD`, or `PASSWORD:` with no value) takes its
// value from the variables the caller passes (the CLI passes its own environment, as Tutum's
// CLI and docker-compose do); if it is not set there, it is left out, with a warning. A later
// entry for the same name wins, as in Docker.

import { show } from './errors.ts';
import { isMap } from './parse.ts';
import { type At, fail, list, map, record, scalarText } from './values.ts';

/** Labels weft puts on the containers it creates (stack, service, index, identity, attach): a
 *  file must not set or fake them. */
export const RESERVED_LABEL_PREFIX = 'weft.';

const ENV_NAME_MAX = 1024; // far above any real variable name; bounds the record

export function readEnvironment(at: At, key: string, v: unknown): Record<string, string> | undefined {
  const pairs = readPairs(at, key, v);
  if (pairs === undefined) return undefined;
  const out: [string, string][] = [];
  for (const [name, value] of pairs) {
    if (name === '' || name.length > ENV_NAME_MAX || name.includes('=') || name.includes('\0')) {
      fail(at, key, `${show(name)} is not a variable name`);
      continue;
    }
    if (value === null) {
      const given = Object.hasOwn(at.variables, name) ? at.variables[name] : undefined;
      if (given === undefined) at.p.warn(at.service, key, `"${name}" has no value here and is not set in the environment; it is left out`);
      else out.push([name, given]);
      continue;
    }
    if (value.includes('\0')) {
      fail(at, key, `"${name}" holds a NUL character, which no process environment can`);
      continue;
    }
    out.push([name, value]);
  }
  return record(out);
}

export function readLabels(at: At, key: string, v: unknown): Record<string, string> | undefined {
  const pairs = readPairs(at, key, v);
  if (pairs === undefined) return undefined;
  const out: [string, string][] = [];
  for (const [name, value] of pairs) {
    if (name === '' || name.includes('\0')) fail(at, key, `${show(name)} is not a label name`);
    else if (name.startsWith(RESERVED_LABEL_PREFIX)) fail(at, key, `"${name}" is reserved: weft sets the ${RESERVED_LABEL_PREFIX}* labels of its containers itself`);
    else out.push([name, value ?? '']); // a label given by name only has an empty value (Docker's rule)
  }
  return record(out);
}

/** [name, value] in file order; value null when given by name only. */
function readPairs(at: At, key: string, v: unknown): [string, string | null][] | undefined {
  if (isMap(v)) {
    const m = map(at, key, v);
    if (m === undefined) return undefined;
    const out: [string, string | null][] = [];
    for (const [name, value] of Object.entries(m)) {
      if (value === null) out.push([name, null]);
      else {
        const text = scalarText(at, `${key} "${name}"`, value);
        if (text !== undefined) out.push([name, text]);
      }
    }
    return out;
  }
  const items = list(at, key, v);
  if (items === undefined) return undefined;
  const out: [string, string | null][] = [];
  for (const item of items) {
    const text = scalarText(at, key, item);
    if (text === undefined) continue;
    const eq = text.indexOf('=');
    out.push(eq < 0 ? [text, null] : [text.slice(0, eq), text.slice(eq + 1)]);
  }
  return out;
}
