// The hash of what a service's containers are made from: two containers of one service with the
// same hash are interchangeable, and a task whose hash is not its service's runs an outdated
// container (a rolling redeploy replaces it). Only what goes into the container counts: scaling,
// placement, the grace period or the update policy change no container. `deployment` is bumped
// by `weft service redeploy` to replace containers whose spec did not change (a new image under
// the same tag). Pure.

import { createHash } from 'node:crypto';
import type { ServiceSpec } from './spec.ts';

/** Fields of ServiceSpec that do not go into a container. */
const NOT_IN_CONTAINER = new Set<keyof ServiceSpec>([
  'targetNumContainers', 'tags', 'deploymentStrategy', 'sequentialDeployment', 'rescheduleAfterSeconds', 'update', 'autodestroy', 'retiredIndexes',
]);

export function containerConfigHash(spec: ServiceSpec, deployment: number): string {
  const parts: Record<string, unknown> = { deployment };
  for (const k of Object.keys(spec).sort() as (keyof ServiceSpec)[]) if (!NOT_IN_CONTAINER.has(k)) parts[k] = spec[k];
  return createHash('sha256').update(canonical(parts)).digest('hex').slice(0, 16);
}

/** JSON with object keys sorted at every level, so equal specs hash equal however built. */
function canonical(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(canonical).join(',')}]`;
  if (x && typeof x === 'object') {
    return `{${Object.keys(x).sort().filter((k) => (x as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((x as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(x);
}
