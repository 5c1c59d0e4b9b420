// A task: one container of a service assigned to one node, as desired state holds it (swarm's
// word). The leader's reconciler writes tasks; each node's agent runs the tasks assigned to it
// and removes every scheduled container that no task of its node matches. A task's name is
// its service's object name and its index (`shop/web/2`), so it names the container's identity
// (`web-2`) for as long as the service has that index, wherever it runs. Pure.

import type { ServiceSpec } from '../service/spec.ts';

export interface TaskSpec {
  /** The service's placement key, `${stack}/${name}` (`/web` in no stack). */
  service: string;
  /** n in `<service>-<n>`. */
  index: number;
  /** The node (peer id) it runs on. */
  node: string;
  /** Fencing epoch: every new container of this name gets a higher one, so that of two copies
   *  (one on a node that was cut off and came back) the newer wins and the older is removed. */
  epoch: number;
  /** The service's container configuration this task runs (containerConfigHash): a task whose
   *  hash differs from its service's is outdated and is replaced by a rolling redeploy. */
  config: string;
}

/** Container labels the agent sets, so that observed state and `docker ps` say what a
 *  container is; the agent touches only containers carrying SCHEDULED_LABEL. */
export const SCHEDULED_LABEL = 'weft.scheduled';
export const TASK_LABEL = 'weft.task';
export const EPOCH_LABEL = 'weft.epoch';
export const CONFIG_LABEL = 'weft.config';
export const STACK_LABEL = 'weft.stack';
export const SERVICE_LABEL = 'weft.service';
export const INDEX_LABEL = 'weft.index';

/** The object name of a service in desired state: `stack/name`, or `name` in no stack. */
export function serviceObjectName(spec: Pick<ServiceSpec, 'stack' | 'name'>): string {
  return spec.stack ? `${spec.stack}/${spec.name}` : spec.name;
}

/** The service key (placement's) from a service object name. */
export function keyOfServiceObject(objectName: string): string {
  return objectName.includes('/') ? objectName : `/${objectName}`;
}

/** The service object name from a service key. */
export function serviceObjectOfKey(key: string): string {
  return key.startsWith('/') ? key.slice(1) : key;
}

export function taskName(serviceKey: string, index: number): string {
  return `${serviceObjectOfKey(serviceKey)}/${index}`;
}

/** The Docker name of a task's container: unique on its host across stacks, and reading like
 *  its DNS name (`web-2.shop` answers as `web-2.shop.weft.local`). */
export function dockerName(spec: Pick<ServiceSpec, 'stack' | 'name'>, index: number): string {
  return spec.stack ? `${spec.name}-${index}.${spec.stack}` : `${spec.name}-${index}`;
}

const MAX_ID = 256;
const HASH = /^[0-9a-f]{16,64}$/;

/** Why `x` is not a task (undefined: it is one). Desired state runs this on every put. */
export function taskProblem(x: unknown): string | undefined {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'a task must be an object';
  const t = x as Record<string, unknown>;
  const extra = Object.keys(t).find((k) => !['service', 'index', 'node', 'epoch', 'config'].includes(k));
  if (extra !== undefined) return `a task has no field "${extra}"`;
  if (typeof t.service !== 'string' || !/^[a-z0-9-]*\/[a-z0-9-]+$/i.test(t.service) || t.service.length > 200) return 'a task needs its service key';
  if (!Number.isSafeInteger(t.index) || (t.index as number) < 1) return 'a task index is an integer from 1';
  if (typeof t.node !== 'string' || t.node.length === 0 || t.node.length > MAX_ID) return 'a task needs its node';
  if (!Number.isSafeInteger(t.epoch) || (t.epoch as number) < 1) return 'a task epoch is an integer from 1';
  if (typeof t.config !== 'string' || !HASH.test(t.config)) return 'a task needs its configuration hash';
  return undefined;
}
