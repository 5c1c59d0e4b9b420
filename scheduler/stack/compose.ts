// A Docker Compose file: `services:` at the top level. Read, besides the keys common with
// Tutum's stackfile (service.ts): depends_on (its services must exist; weft does not order
// starts by it), and deploy: mode (global → EVERY_NODE), replicas, placement.constraints (as
// tags, constraints.ts), restart_policy.condition (→ autorestart), update_config (parallelism,
// delay, failure_action → update), resources.limits (memory, cpus). `version` is ignored
// silently (it only told docker-compose which schema to check); top-level `volumes` declares
// the named volumes services use; any other key, at any level, is reported once as ignored.

import { AUTORESTART } from '../service/spec.ts';
import { CPU_SHARES_PER_CPU } from './defaults.ts';
import { parseDuration } from './duration.ts';
import { show } from './errors.ts';
import { constraintTags } from './constraints.ts';
import { MAX_SERVICES, MAX_TARGET_NUM_CONTAINERS } from './limits.ts';
import { interpolate } from './interpolate.ts';
import { isMap } from './parse.ts';
import { COMMON_KEYS, type Draft, type KeyReader, memory, newDraft, readService, RESTART_ALIASES, setRestart } from './service.ts';
import { type At, fail, int, list, map, oneOf, str } from './values.ts';

/** Swarm's `parallelism: 0` updates every container at once; no service has more than this. */
const ALL_AT_ONCE = MAX_TARGET_NUM_CONTAINERS;
const MAX_CPUS = 1024; // more CPUs than any host has; beyond it is a typo

/** Reads each known key of a sub-map through its reader; other keys are ignored as `prefix.key`. */
function subKeys(at: At, prefix: string, v: unknown, readers: Readonly<Record<string, (v: unknown) => void>>): void {
  const m = map(at, prefix, v);
  if (m === undefined) return;
  for (const [k, x] of Object.entries(m)) {
    const r = Object.hasOwn(readers, k) ? readers[k] : undefined;
    if (r === undefined) at.p.ignore(at.service, `${prefix}.${k}`);
    else r(x);
  }
}

function readDeploy(at: At, v: unknown, d: Draft): void {
  let mode: 'replicated' | 'global' | undefined;
  let replicas = false;
  subKeys(at, 'deploy', v, {
    mode: (x) => {
      if (x === 'replicated' || x === 'global') mode = x;
      else fail(at, 'deploy.mode', `${show(x)} is not one of replicated, global`);
      if (mode === 'global') d.spec.deploymentStrategy = 'EVERY_NODE';
    },
    replicas: (x) => {
      const n = int(at, 'deploy.replicas', x, 0, MAX_TARGET_NUM_CONTAINERS);
      if (n !== undefined) d.spec.targetNumContainers = n;
      replicas = true;
    },
    placement: (x) =>
      subKeys(at, 'deploy.placement', x, {
        constraints: (c) => {
          const tags = constraintTags(at, 'deploy.placement.constraints', c);
          if (tags !== undefined) d.spec.tags = tags;
        },
      }),
    restart_policy: (x) => {
      // Swarm's default condition is `any` once a restart_policy is given at all.
      let condition: unknown = 'any';
      subKeys(at, 'deploy.restart_policy', x, { condition: (c) => (condition = c) });
      setRestart(at, d, 'deploy.restart_policy.condition', oneOf(at, 'deploy.restart_policy.condition', condition, AUTORESTART, RESTART_ALIASES), true);
    },
    update_config: (x) =>
      subKeys(at, 'deploy.update_config', x, {
        parallelism: (p) => {
          const n = int(at, 'deploy.update_config.parallelism', p, 0, MAX_TARGET_NUM_CONTAINERS);
          if (n !== undefined) d.spec.update.parallelism = n === 0 ? ALL_AT_ONCE : n;
        },
        delay: (t) => {
          const ms = typeof t === 'string' ? parseDuration(t) : undefined;
          if (ms === undefined) fail(at, 'deploy.update_config.delay', `${show(t)} is not a duration like "10s" or "1m30s"`);
          else d.spec.update.delayMs = ms;
        },
        failure_action: (a) => {
          if (a === 'pause' || a === 'continue' || a === 'rollback') d.spec.update.onFailure = a;
          else fail(at, 'deploy.update_config.failure_action', `${show(a)} is not one of pause, continue, rollback`);
        },
      }),
    resources: (x) =>
      subKeys(at, 'deploy.resources', x, {
        limits: (l) =>
          subKeys(at, 'deploy.resources.limits', l, {
            memory: (m) => {
              const bytes = memory(at, 'deploy.resources.limits.memory', m);
              if (bytes !== undefined) d.spec.memoryBytes = bytes;
            },
            cpus: (c) => readCpus(at, c, d),
          }),
      }),
  });
  if (mode === 'global' && replicas) fail(at, 'deploy.replicas', 'cannot be given with mode: global (one container on every node)');
}

/** `cpus: 0.5` is a hard quota in Docker; ServiceSpec has only CPU shares (a relative weight),
 *  so it becomes shares in proportion (1024 per CPU), and the user is told. */
function readCpus(at: At, c: unknown, d: Draft): void {
  const n = typeof c === 'string' && /^\d+(\.\d+)?$/.test(c) ? Number(c) : c;
  if (typeof n !== 'number' || !(n > 0) || n > MAX_CPUS) {
    fail(at, 'deploy.resources.limits.cpus', `${show(c)} is not a number of CPUs like 0.5 or 2`);
    return;
  }
  d.spec.cpuShares = Math.max(2, Math.round(n * CPU_SHARES_PER_CPU)); // 2: Docker's smallest weight
  at.p.warn(at.service, 'deploy.resources.limits.cpus', `${n} is applied as cpu_shares ${d.spec.cpuShares}, a relative weight, not a hard limit`);
}

function readDependsOn(at: At, v: unknown, d: Draft): void {
  // A list of services, or a map of service → {condition}; weft never orders starts, it only
  // checks that the services exist.
  const names = isMap(v) ? Object.keys(v) : list(at, 'depends_on', v)?.map((x) => str(at, 'depends_on', x));
  if (names === undefined) return;
  for (const n of names) if (n !== undefined) d.dependsOn.push(n);
  if (d.dependsOn.length > 0) at.p.warn(at.service, 'depends_on', 'does not order starts in weft: services find each other by name in the mesh whenever they run');
}

export const COMPOSE_KEYS: Readonly<Record<string, KeyReader>> = {
  ...COMMON_KEYS,
  deploy: readDeploy,
  depends_on: readDependsOn,
};

/** `restart` before `deploy`, so that deploy.restart_policy overrides it whatever the file's order. */
const KEY_ORDER = ['restart', 'deploy'];

export function readCompose(at: Omit<At, 'service'>, file: Record<string, unknown>, stack: string): Draft[] {
  // docker-compose substitutes variables before it reads anything else; so does weft.
  const { value, unset, errors } = interpolate(file, at.variables);
  for (const e of errors) at.p.fileError(`variable ${e}`);
  if (errors.length > 0) return []; // the file's values are not what its author meant; reading on would only add noise
  for (const name of unset) at.p.warn(undefined, `variable "${name}"`, 'is not set; a blank string is used (as docker-compose does)');
  const doc = value as Record<string, unknown>;
  for (const [key, v] of Object.entries(doc)) {
    if (key === 'services' || key === 'version' || key.startsWith('x-')) continue;
    if (key === 'volumes' && isMap(v)) readVolumeDeclarations(at, v);
    else at.p.ignore(undefined, key);
  }
  const services = doc['services'] as Record<string, unknown>;
  if (Object.keys(services).length > MAX_SERVICES) return [];
  return Object.entries(services).map(([name, raw]) => readService({ ...at, service: name }, raw, newDraft(name, stack), COMPOSE_KEYS, KEY_ORDER));
}

/** Top-level `volumes:` names the volumes services use; how they are created (driver,
 *  driver_opts, external, labels, name) is left to each node's Docker, so those are ignored. */
function readVolumeDeclarations(at: Omit<At, 'service'>, v: Record<string, unknown>): void {
  for (const decl of Object.values(v)) {
    if (isMap(decl)) for (const k of Object.keys(decl)) at.p.ignore(undefined, `volumes.${k}`);
  }
}
