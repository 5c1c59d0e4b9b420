// Tutum's stackfile (docker-cloud.yml): services at the top level, each a map of keys. Read:
// image (required), command, entrypoint, environment, ports, expose, links, labels, volumes
// (named), mem_limit, cpu_shares, target_num_containers, tags, deployment_strategy,
// autorestart (Tutum's: OFF | ON_FAILURE | ALWAYS), restart (Docker Cloud's: no | on-failure |
// always), autodestroy (OFF | ON_SUCCESS | ALWAYS, or Docker Cloud's no | on-success | always),
// sequential_deployment; and two keys Tutum lacked: healthcheck (Compose's form) and
// reschedule_after (weft's: seconds, or a duration like "2m", before a dead node's containers
// move). Tutum's other keys (roles, autoredeploy, cap_add, devices, dns, net, pid, privileged,
// user, working_dir, volumes_from, ...) are reported once each as ignored.

import { AUTODESTROY, AUTORESTART, DEPLOYMENT_STRATEGIES } from '../service/spec.ts';
import { parseDuration } from './duration.ts';
import { show } from './errors.ts';
import { MAX_TAG_LENGTH, MAX_TAGS, MAX_TARGET_NUM_CONTAINERS } from './limits.ts';
import { COMMON_KEYS, type Draft, type KeyReader, newDraft, readService, RESTART_ALIASES, setRestart } from './service.ts';
import { type At, bool, fail, int, oneOf, stringList } from './values.ts';

/** A day: longer than any outage worth waiting out before moving containers. */
const MAX_RESCHEDULE_AFTER_SECONDS = 86_400;

export const TUTUM_KEYS: Readonly<Record<string, KeyReader>> = {
  ...COMMON_KEYS,
  target_num_containers: (at, v, d) => {
    const n = int(at, 'target_num_containers', v, 0, MAX_TARGET_NUM_CONTAINERS);
    if (n !== undefined) d.spec.targetNumContainers = n;
  },
  tags: (at, v, d) => {
    const t = readTags(at, 'tags', v);
    if (t !== undefined) d.spec.tags = t;
  },
  deployment_strategy: (at, v, d) => {
    const s = oneOf(at, 'deployment_strategy', v, DEPLOYMENT_STRATEGIES);
    if (s !== undefined) d.spec.deploymentStrategy = s;
  },
  autorestart: (at, v, d) => setRestart(at, d, 'autorestart', oneOf(at, 'autorestart', v, AUTORESTART, RESTART_ALIASES)),
  autodestroy: (at, v, d) => {
    const a = oneOf(at, 'autodestroy', v, AUTODESTROY, { no: 'OFF', false: 'OFF' });
    if (a !== undefined) d.spec.autodestroy = a;
  },
  sequential_deployment: (at, v, d) => {
    const b = bool(at, 'sequential_deployment', v);
    if (b !== undefined) d.spec.sequentialDeployment = b;
  },
  reschedule_after: (at, v, d) => {
    const seconds = typeof v === 'string' && !/^\d+$/.test(v) ? (parseDuration(v) ?? NaN) / 1000 : v;
    const n = int(at, 'reschedule_after', Number.isInteger(seconds) ? seconds : v, 0, MAX_RESCHEDULE_AFTER_SECONDS);
    if (n !== undefined) d.spec.rescheduleAfterSeconds = n;
  },
};

/** Deploy tags: strings a node must all carry, within the bounds the mesh gossips them in. */
export function readTags(at: At, key: string, v: unknown): string[] | undefined {
  const tags = stringList(at, key, v);
  if (tags === undefined) return undefined;
  if (tags.length > MAX_TAGS) return fail(at, key, `has ${tags.length} tags; a node carries at most ${MAX_TAGS}`);
  for (const t of tags) {
    if (t === '' || t.length > MAX_TAG_LENGTH || t.includes(',') || /\s/.test(t)) {
      return fail(at, key, `${show(t)} is not a tag (1 to ${MAX_TAG_LENGTH} characters, no commas or spaces)`);
    }
  }
  return [...new Set(tags)];
}

/** The services of a Tutum stackfile, in file order, as drafts (checked across services by read.ts). */
export function readTutum(at: Omit<At, 'service'>, doc: Record<string, unknown>, stack: string): Draft[] {
  const out: Draft[] = [];
  for (const [name, raw] of Object.entries(doc)) {
    if (name.startsWith('x-')) continue; // anchors' holders, as in Compose
    out.push(readService({ ...at, service: name }, raw, newDraft(name, stack), TUTUM_KEYS));
  }
  return out;
}
