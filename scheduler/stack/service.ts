// One service's map of keys → a ServiceSpec, through a table of key readers (one per supported
// key; tutum.ts and compose.ts each add their own to the common ones here). A key with no
// reader is reported once as ignored; `x-*` keys are Compose's extension fields, meant to be
// ignored by every tool, and pass silently (in both forms: they hold YAML anchors).

import { AUTORESTART, type Autorestart, type ServiceSpec } from '../service/spec.ts';
import { DEFAULT_AUTODESTROY, DEFAULT_AUTORESTART, DEFAULT_DEPLOYMENT_STRATEGY, DEFAULT_RESCHEDULE_AFTER_SECONDS, DEFAULT_SEQUENTIAL_DEPLOYMENT, DEFAULT_TARGET_NUM_CONTAINERS, DEFAULT_UPDATE } from './defaults.ts';
import { readEnvironment, readLabels } from './environment.ts';
import { show } from './errors.ts';
import { readHealthcheck } from './healthcheck.ts';
import { readLinks } from './links.ts';
import { MAX_STRING_LENGTH } from './limits.ts';
import { MAX_MEMORY_BYTES, parseMemory } from './memory.ts';
import { isMap } from './parse.ts';
import { finishPorts, type ReadPorts, readPorts } from './ports.ts';
import { splitWords } from './shell-words.ts';
import { type At, fail, int, oneOf, str, stringList } from './values.ts';
import { readVolumes } from './volumes.ts';

/** A service being read: the spec so far and what is checked once all its keys are read. */
export interface Draft {
  spec: ServiceSpec;
  ports: ReadPorts;
  hasImage: boolean;
  /** Services this one must find in the stack (Compose's depends_on). */
  dependsOn: string[];
  /** Where autorestart came from, to refuse two keys that disagree. */
  restartKey?: string;
}

export type KeyReader = (at: At, v: unknown, d: Draft) => void;

/** Docker's maximum CPU weight. */
const MAX_CPU_SHARES = 262_144;

/** The spellings Tutum, Docker Cloud, Compose and swarm used for a restart policy. */
export const RESTART_ALIASES: Readonly<Record<string, Autorestart>> = { no: 'OFF', false: 'OFF', none: 'OFF', any: 'ALWAYS', 'unless-stopped': 'ALWAYS' };

export function newDraft(name: string, stack: string): Draft {
  return {
    spec: {
      name,
      stack,
      image: '',
      environment: {},
      ports: [],
      targetNumContainers: DEFAULT_TARGET_NUM_CONTAINERS,
      tags: [],
      deploymentStrategy: DEFAULT_DEPLOYMENT_STRATEGY,
      autorestart: DEFAULT_AUTORESTART,
      autodestroy: DEFAULT_AUTODESTROY,
      sequentialDeployment: DEFAULT_SEQUENTIAL_DEPLOYMENT,
      links: [],
      memoryBytes: 0,
      cpuShares: 0,
      labels: {},
      volumes: [],
      rescheduleAfterSeconds: DEFAULT_RESCHEDULE_AFTER_SECONDS,
      update: { ...DEFAULT_UPDATE },
    },
    ports: { ports: [], randomHost: [] },
    hasImage: false,
    dependsOn: [],
  };
}

/** A command or entrypoint: a list of words, or one string split as a shell would. */
function words(at: At, key: string, v: unknown): string[] | undefined {
  if (typeof v === 'string') {
    if (v.length > MAX_STRING_LENGTH) return fail(at, key, `is longer than ${MAX_STRING_LENGTH} characters`);
    return splitWords(v) ?? fail(at, key, `${show(v)} has a quote that is not closed`);
  }
  return stringList(at, key, v);
}

/** Sets autorestart from `key`. A second key that says otherwise is an error, unless this key
 *  `overrides` (Compose's deploy.restart_policy over `restart`: swarm mode reads the first and
 *  docker-compose the second, and a file often has both for the two tools), then a warning. */
export function setRestart(at: At, d: Draft, key: string, value: Autorestart | undefined, overrides = false): void {
  if (value === undefined) return;
  if (d.restartKey !== undefined && d.spec.autorestart !== value) {
    if (!overrides) {
      fail(at, key, `says ${value} but ${d.restartKey} says ${d.spec.autorestart}`);
      return;
    }
    at.p.warn(at.service, key, `says ${value} and ${d.restartKey} says ${d.spec.autorestart}; weft follows ${key}, as swarm mode does`);
  }
  d.restartKey = key;
  d.spec.autorestart = value;
}

/** `restart: no | always | on-failure[:N] | unless-stopped` (Docker Cloud's and Compose's). */
function readRestart(at: At, v: unknown, d: Draft): void {
  let value = v;
  if (typeof v === 'string' && /^on-failure:\d+$/.test(v)) {
    at.p.warn(at.service, 'restart', `"${v}": the retry count is not kept; weft restarts on every failure`);
    value = 'on-failure';
  }
  setRestart(at, d, 'restart', oneOf(at, 'restart', value, AUTORESTART, RESTART_ALIASES));
}

export function memory(at: At, key: string, v: unknown): number | undefined {
  return parseMemory(v) ?? fail(at, key, `${show(v)} is not a memory size like "512m" or "1g" (at most ${MAX_MEMORY_BYTES / 1024 ** 4} TiB)`);
}

export const COMMON_KEYS: Readonly<Record<string, KeyReader>> = {
  image: (at, v, d) => {
    const s = str(at, 'image', v);
    if (s === undefined) return;
    if (s.trim() === '' || /\s/.test(s)) fail(at, 'image', `${show(s)} is not an image name`);
    else {
      d.spec.image = s;
      d.hasImage = true;
    }
  },
  command: (at, v, d) => {
    const w = words(at, 'command', v);
    if (w !== undefined && w.length > 0) d.spec.command = w;
  },
  entrypoint: (at, v, d) => {
    const w = words(at, 'entrypoint', v);
    if (w !== undefined && w.length > 0) d.spec.entrypoint = w;
  },
  environment: (at, v, d) => {
    const e = readEnvironment(at, 'environment', v);
    if (e !== undefined) d.spec.environment = e;
  },
  ports: (at, v, d) => readPorts(at, 'ports', v, d.ports),
  expose: (at, v, d) => readPorts(at, 'expose', v, d.ports),
  links: (at, v, d) => {
    const l = readLinks(at, 'links', v);
    if (l !== undefined) d.spec.links = l;
  },
  labels: (at, v, d) => {
    const l = readLabels(at, 'labels', v);
    if (l !== undefined) d.spec.labels = l;
  },
  volumes: (at, v, d) => {
    const vs = readVolumes(at, 'volumes', v);
    if (vs !== undefined) d.spec.volumes = vs;
  },
  healthcheck: (at, v, d) => {
    const h = readHealthcheck(at, 'healthcheck', v);
    if (h === null) delete d.spec.healthcheck;
    else if (h !== undefined) d.spec.healthcheck = h;
  },
  mem_limit: (at, v, d) => {
    const m = memory(at, 'mem_limit', v);
    if (m !== undefined) d.spec.memoryBytes = m;
  },
  cpu_shares: (at, v, d) => {
    const n = int(at, 'cpu_shares', v, 0, MAX_CPU_SHARES);
    if (n !== undefined) d.spec.cpuShares = n;
  },
  restart: readRestart,
};

/** Reads one service's keys through `table`, then checks what needs all of them. */
export function readService(at: At, raw: unknown, draft: Draft, table: Readonly<Record<string, KeyReader>>, keyOrder: readonly string[] = []): Draft {
  if (!isMap(raw)) {
    fail(at, 'definition', `${show(raw)} is not a map of keys (image, ports, ...)`);
    return draft;
  }
  // Keys some readers depend on go first (Compose's `restart` before `deploy`), the rest in file order.
  const keys = [...keyOrder.filter((k) => k in raw), ...Object.keys(raw).filter((k) => !keyOrder.includes(k))];
  for (const key of keys) {
    if (key.startsWith('x-')) continue;
    const reader = Object.hasOwn(table, key) ? table[key] : undefined;
    if (reader === undefined) at.p.ignore(at.service, key);
    else reader(at, raw[key], draft);
  }
  if (!draft.hasImage && !('image' in raw)) fail(at, 'image', 'is missing; every service needs one (weft does not build images)');
  draft.spec.ports = finishPorts(at, draft.ports);
  for (const p of draft.ports.randomHost) {
    at.p.warn(at.service, 'ports', `"${p}" has no host port; weft cannot publish on a random host port, so it is exposed in the mesh only (give "HOST:${p}" to publish it)`);
  }
  return draft;
}
