// The checked shape of a service as the API takes it and desired state stores it: every field of
// ServiceSpec with its bounds, so that a spec that did not come from the stack reader (an older
// CLI, a hand-made API call, a buggy leader's entry) is refused whole with the field named.
// The bounds are the stack reader's (scheduler/stack/limits.ts): what a file may say, the API
// may say. Pure.

import * as v from 'valibot';
import { MAX_LIST_ITEMS, MAX_PORTS_PER_SERVICE, MAX_STRING_LENGTH, MAX_TAG_LENGTH, MAX_TAGS, MAX_TARGET_NUM_CONTAINERS } from '../stack/limits.ts';
import { serviceNameProblem } from '../stack/names.ts';
import { AUTODESTROY, AUTORESTART, DEPLOYMENT_STRATEGIES, type ServiceSpec } from './spec.ts';

const str = v.pipe(v.string(), v.maxLength(MAX_STRING_LENGTH));
const label = v.pipe(v.string(), v.check((s) => serviceNameProblem(s) === undefined, 'must be a DNS label'));
const count = (max: number) => v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(max));
const port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65_535));
const ms = count(365 * 24 * 3600 * 1000);
const words = v.pipe(v.array(str), v.maxLength(MAX_LIST_ITEMS));
const record = v.pipe(v.record(v.pipe(v.string(), v.minLength(1), v.maxLength(256)), str), v.check((r) => Object.keys(r).length <= MAX_LIST_ITEMS, 'too many entries'));

export const serviceSpecSchema = v.strictObject({
  name: label,
  stack: v.union([v.literal(''), label]),
  image: v.pipe(v.string(), v.minLength(1), v.maxLength(1024)),
  command: v.optional(words),
  entrypoint: v.optional(words),
  environment: record,
  ports: v.pipe(v.array(v.strictObject({ container: port, protocol: v.picklist(['tcp', 'udp']), host: v.optional(port) })), v.maxLength(MAX_PORTS_PER_SERVICE)),
  targetNumContainers: count(MAX_TARGET_NUM_CONTAINERS),
  tags: v.pipe(v.array(v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_TAG_LENGTH))), v.maxLength(MAX_TAGS)),
  deploymentStrategy: v.picklist(DEPLOYMENT_STRATEGIES),
  autorestart: v.picklist(AUTORESTART),
  autodestroy: v.picklist(AUTODESTROY),
  sequentialDeployment: v.boolean(),
  links: v.pipe(v.array(v.strictObject({ service: v.pipe(v.string(), v.minLength(1), v.maxLength(200)), alias: label })), v.maxLength(MAX_LIST_ITEMS)),
  healthcheck: v.optional(v.strictObject({ test: v.pipe(words, v.minLength(1)), intervalMs: ms, timeoutMs: ms, retries: count(1000), startPeriodMs: ms })),
  memoryBytes: count(Number.MAX_SAFE_INTEGER),
  cpuShares: count(262_144),
  labels: record,
  // Named volumes only, as the stack reader gives them: a host path (`/etc:/x`) in a spec that
  // did not come from a file would mount the node's own files into the container.
  volumes: v.pipe(v.array(v.pipe(v.string(), v.maxLength(4096), v.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*:\/[^:]*(:(ro|rw))?$/, 'must be a named volume, name:/path[:ro]'))), v.maxLength(MAX_LIST_ITEMS)),
  rescheduleAfterSeconds: count(7 * 24 * 3600),
  update: v.strictObject({ parallelism: v.pipe(count(MAX_TARGET_NUM_CONTAINERS), v.minValue(1)), delayMs: ms, onFailure: v.picklist(['pause', 'continue', 'rollback']) }),
  retiredIndexes: v.optional(v.pipe(v.array(v.pipe(count(1_000_000), v.minValue(1))), v.maxLength(MAX_TARGET_NUM_CONTAINERS))),
});

/** A service object's spec in desired state: the service, how many times it was redeployed
 *  (part of its containers' configuration hash), and the spec before the last update (for
 *  `weft service rollback`). */
export interface StoredService {
  spec: ServiceSpec;
  deployment: number;
  previous?: ServiceSpec;
  /** `weft service stop`: its containers are kept, stopped, until `weft service start`. */
  stopped?: boolean;
}

const storedServiceSchema = v.strictObject({
  spec: serviceSpecSchema,
  deployment: count(Number.MAX_SAFE_INTEGER),
  previous: v.optional(serviceSpecSchema),
  stopped: v.optional(v.boolean()),
});

/** Why `x` is not a service spec (undefined: it is one), naming the first bad field. */
export function serviceSpecProblem(x: unknown): string | undefined {
  return problem(v.safeParse(serviceSpecSchema, x));
}

/** A service rides in one Raft entry (at most 1 MiB, scheduler/raft/wire.ts) with its previous
 *  spec: half of that each leaves room for the envelope. Real services are a few KiB. */
export const MAX_SERVICE_BYTES = 400 * 1024;

export function storedServiceProblem(x: unknown): string | undefined {
  const shape = problem(v.safeParse(storedServiceSchema, x));
  if (shape !== undefined) return shape;
  if (Buffer.byteLength(JSON.stringify(x)) > MAX_SERVICE_BYTES) return `a service and its previous spec must be at most ${MAX_SERVICE_BYTES} bytes`;
  return undefined;
}

/** The first issue of a failed parse, as `field.path: message` (undefined: it parsed). */
export function problem(r: v.SafeParseResult<v.GenericSchema>): string | undefined {
  if (r.success) return undefined;
  const issue = r.issues[0];
  const path = v.getDotPath(issue);
  return path ? `${path}: ${issue.message}` : issue.message;
}
