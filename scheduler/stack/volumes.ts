// Volumes: named volumes only (`data:/var/lib/data`, `data:/var/lib/data:ro`, or Compose's long
// form {type: volume, source, target, read_only}), kept as ServiceSpec's `name:/path[:ro]`.
// A host path (`/srv/data:/data`, `./conf:/conf`) is an error, not a warning: it names a
// directory of whichever node the container lands on, which changes when it is rescheduled,
// and dropping it silently would lose data. An anonymous volume (`/data`) is an error too:
// ServiceSpec has no form for it (and its data would not follow a rescheduled container).

import { show } from './errors.ts';
import { isMap } from './parse.ts';
import { type At, fail, list } from './values.ts';

/** Docker's rule for a volume name. */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const MAX_PATH_LENGTH = 4096; // PATH_MAX on Linux

export function readVolumes(at: At, key: string, v: unknown): string[] | undefined {
  const items = list(at, key, v);
  if (items === undefined) return undefined;
  const out: string[] = [];
  for (const item of items) {
    const one = isMap(item) ? longForm(at, key, item) : typeof item === 'string' ? shortForm(at, key, item) : fail(at, key, `${show(item)} is not a volume like "data:/var/lib/data"`);
    if (one === undefined) continue;
    const target = one.split(':')[1];
    if (out.some((o) => o.split(':')[1] === target)) fail(at, key, `${show(item)} mounts ${target} a second time`);
    else out.push(one);
  }
  return out;
}

function shortForm(at: At, key: string, s: string): string | undefined {
  const parts = s.split(':');
  if (parts.length === 1) return fail(at, key, `"${s}" is an anonymous volume; weft supports named volumes only ("name:${s}")`);
  if (parts.length > 3) return fail(at, key, `"${s}" is not a volume like "data:/var/lib/data[:ro]"`);
  const [source, target, mode] = parts as [string, string, string | undefined];
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') return fail(at, key, `"${s}" has mode "${mode}"; weft supports ro and rw`);
  return named(at, key, s, source, target, mode === 'ro');
}

function longForm(at: At, key: string, m: Record<string, unknown>): string | undefined {
  for (const k of Object.keys(m)) {
    if (!['type', 'source', 'target', 'read_only'].includes(k)) at.p.ignore(at.service, `${key}.${k}`);
  }
  if (m['type'] !== 'volume') return fail(at, key, `of type ${show(m['type'])}; weft supports named volumes only (type: volume)`);
  if (typeof m['source'] !== 'string' || typeof m['target'] !== 'string') return fail(at, key, `needs a source and a target (strings)`);
  if (m['read_only'] !== undefined && typeof m['read_only'] !== 'boolean') return fail(at, key, `read_only ${show(m['read_only'])} is not true or false`);
  return named(at, key, `${m['source']}:${m['target']}`, m['source'], m['target'], m['read_only'] === true);
}

function named(at: At, key: string, text: string, source: string, target: string, readOnly: boolean): string | undefined {
  if (source.startsWith('/') || source.startsWith('.') || source.startsWith('~')) {
    return fail(at, key, `"${text}" mounts a host path; weft supports named volumes only (a host path changes with the node a container runs on)`);
  }
  if (!VOLUME_NAME.test(source)) return fail(at, key, `"${text}" has volume name "${source}", which is not a Docker volume name`);
  if (!target.startsWith('/') || target.length > MAX_PATH_LENGTH) return fail(at, key, `"${text}" has "${target}" as its path in the container, which is not an absolute path`);
  return `${source}:${target}${readOnly ? ':ro' : ''}`;
}
