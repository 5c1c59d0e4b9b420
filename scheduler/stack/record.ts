// A deployed stack as desired state keeps it: the file it came from and its services' names
// (the services themselves are `service` objects named `stack/service`). `weft stack ls` lists
// these; a deploy of a file without a service the stack had removes that service. Pure.

import { MAX_SERVICES } from './limits.ts';
import { serviceNameProblem } from './names.ts';

export interface StackRecord {
  /** The file as the user named it when deploying (shown by `weft stack inspect`). */
  file: string;
  /** Its services' names, sorted. */
  services: string[];
}

const MAX_FILE_NAME = 4096;

export function stackRecordProblem(x: unknown): string | undefined {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'a stack must be an object';
  const r = x as Record<string, unknown>;
  const extra = Object.keys(r).find((k) => k !== 'file' && k !== 'services');
  if (extra !== undefined) return `a stack has no field "${extra}"`;
  if (typeof r.file !== 'string' || r.file.length > MAX_FILE_NAME) return 'a stack needs the name of its file';
  if (!Array.isArray(r.services) || r.services.length > MAX_SERVICES) return `a stack has at most ${MAX_SERVICES} services`;
  for (const s of r.services) if (typeof s !== 'string' || serviceNameProblem(s) !== undefined) return `a stack's service "${String(s)}" is not a service name`;
  return undefined;
}
