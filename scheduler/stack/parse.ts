// YAML text → a plain value, within limits, and which of the two forms it is. Pure.
//
// The YAML is read as YAML 1.1, as PyYAML reads it for docker-compose (and Tutum's tools were
// Python too): `yes`/`no`/`on`/`off` are booleans and `<<:` merge keys work. Two 1.1 types are
// left out on purpose: sexagesimal numbers (an unquoted `22:22` stays the port mapping the user
// meant, not 1342) and timestamps (an unquoted date stays a string). Explicit tags outside
// YAML's core types (`!!binary`, `!!set`, `!custom`) are errors: a stack file has no use for them.

import { parseDocument, type Tags } from 'yaml';
import { MAX_ALIAS_COUNT, MAX_DOCUMENT_BYTES, MAX_NESTING_DEPTH } from './limits.ts';

export type StackForm = 'tutum' | 'compose';

export type Parsed = { ok: true; value: unknown } | { ok: false; error: string };

/** Indentation beyond this many columns is nesting no stack file has (MAX_NESTING_DEPTH levels
 *  at up to 4 columns each); the parser recurses once per level. */
const MAX_INDENT_COLUMNS = MAX_NESTING_DEPTH * 4;

const DROPPED_TAGS = new Set(['tag:yaml.org,2002:binary', 'tag:yaml.org,2002:omap', 'tag:yaml.org,2002:pairs', 'tag:yaml.org,2002:set', 'tag:yaml.org,2002:timestamp']);

/** The same types by the names the yaml package also accepts in a schema's tag list. */
const DROPPED_NAMES = new Set(['binary', 'omap', 'pairs', 'set', 'timestamp', 'intTime', 'floatTime']);

/** PyYAML's booleans; the yaml package's YAML 1.1 schema also reads `y` and `n` as booleans,
 *  which would turn `image: y` or a service `n` into true and false where docker-compose sees
 *  strings. */
const BOOL_TAG = 'tag:yaml.org,2002:bool';
const TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const FALSE = /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/;
const PY_BOOLS: Tags = [
  { identify: (v) => v === true, default: true, tag: BOOL_TAG, test: TRUE, resolve: () => true },
  { identify: (v) => v === false, default: true, tag: BOOL_TAG, test: FALSE, resolve: () => false },
];

function stackTags(tags: Tags): Tags {
  const kept = tags.filter((t) => (typeof t === 'string' ? !DROPPED_NAMES.has(t) && t !== 'bool' : !DROPPED_TAGS.has(t.tag) && t.tag !== BOOL_TAG && !('format' in t && t.format === 'TIME')));
  return [...PY_BOOLS, ...kept];
}

export function parseYaml(text: string): Parsed {
  // Cheap checks first, so that a hostile document costs a linear scan, not a parse.
  if (text.length > MAX_DOCUMENT_BYTES || Buffer.byteLength(text, 'utf8') > MAX_DOCUMENT_BYTES) {
    return { ok: false, error: `is larger than ${MAX_DOCUMENT_BYTES / 1024 / 1024} MiB` };
  }
  if (/[\u0000-\u0008\u000e-\u001f\ufffd\ufffe\uffff]/.test(text)) {
    return { ok: false, error: 'is not a text file (it holds control characters or bytes that are not UTF-8)' };
  }
  const deep = tooDeep(text);
  if (deep !== undefined) return { ok: false, error: `is nested too deeply at line ${deep} (more than ${MAX_NESTING_DEPTH} levels)` };

  let value: unknown;
  try {
    const doc = parseDocument(text, {
      version: '1.1',
      merge: true,
      uniqueKeys: true, // a key given twice is a mistake PyYAML hides (the last one wins); refuse it
      stringKeys: true, // `on:` or `80:` as a key is the text the user wrote
      customTags: stackTags,
      prettyErrors: true,
    });
    const first = doc.errors[0] ?? doc.warnings[0]; // an unknown tag is only a warning to the parser
    if (first !== undefined) return { ok: false, error: `is not valid YAML: ${oneLine(first.message)}` };
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    // toJS throws when aliases expand past the limit; anything else the parser throws is junk too.
    const msg = e instanceof Error ? e.message : String(e);
    if (/alias/i.test(msg)) return { ok: false, error: `uses YAML aliases too much (more than ${MAX_ALIAS_COUNT} expansions)` };
    return { ok: false, error: `is not valid YAML: ${oneLine(msg)}` };
  }
  return { ok: true, value };
}

/** The form of a parsed file, or why it is neither. A Compose file has a top-level `services:`
 *  map; a Tutum stackfile has the services themselves at the top level (so does a Compose file
 *  of format 1, which reads the same way). A Tutum service named `services` is told apart by its
 *  `image:` string. */
export function detectForm(value: unknown): { form: StackForm } | { error: string } {
  if (!isMap(value)) return { error: value === null || value === undefined ? 'is empty' : 'is not a map of services' };
  const services = value['services'];
  if (isMap(services) && typeof services['image'] !== 'string') return { form: 'compose' };
  if ('version' in value && !('services' in value)) return { error: 'has a Compose `version:` but no `services:` map' };
  return { form: 'tutum' };
}

export function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function oneLine(s: string): string {
  const MAX_PARSER_MESSAGE = 200; // the parser's first line says what and where; its excerpt is noise
  const first = s.split('\n')[0] ?? '';
  return first.length > MAX_PARSER_MESSAGE ? `${first.slice(0, MAX_PARSER_MESSAGE)}...` : first;
}

/** The line where nesting first passes the limit, by a linear scan: flow brackets and block
 *  indentation (with `- ` sequence markers counted as indent). Brackets are counted everywhere,
 *  in quotes and comments too: telling those apart needs the parser this scan protects, and a
 *  stack file never has 64 unbalanced brackets, so over-counting refuses nothing honest. */
function tooDeep(text: string): number | undefined {
  let flow = 0;
  let line = 1;
  let atLineStart = true;
  let indent = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === NEWLINE) {
      line++;
      atLineStart = true;
      indent = 0;
      continue;
    }
    if (atLineStart) {
      const next = text.charCodeAt(i + 1);
      if (c === SPACE || (c === DASH && (next === SPACE || next === NEWLINE))) {
        if (++indent > MAX_INDENT_COLUMNS) return line;
        continue;
      }
      atLineStart = false;
    }
    if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++flow > MAX_NESTING_DEPTH) return line;
    } else if ((c === CLOSE_BRACKET || c === CLOSE_BRACE) && flow > 0) flow--;
  }
  return undefined;
}

const NEWLINE = 0x0a;
const SPACE = 0x20;
const DASH = 0x2d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
