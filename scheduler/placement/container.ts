// A container as observed (the agents' reports), its names, and which copy of a name wins when
// observed state holds several. Pure.

import type { ServiceSpec } from '../service/spec.ts';
import { cmp } from './node.ts';

export const CONTAINER_STATES = ['running', 'starting', 'stopped', 'dead'] as const;
export type ContainerState = (typeof CONTAINER_STATES)[number];

export interface CurrentContainer {
  /** Its record's id in observed state: tells apart two copies of one name. */
  id: string;
  /** The service key, `${stack}/${name}` (serviceKey). */
  service: string;
  /** n in `<service>-<n>`. */
  index: number;
  /** The node id it is on. */
  node: string;
  state: ContainerState;
  /** Fencing epoch from its record: each recreation of a name gets a higher one, and of two
   *  copies of a name the newer wins (a stale copy on a node that comes back is removed). 0 when
   *  unknown. */
  epoch: number;
}

/** A service's key in placement: the stack and the name (`/web` for a service in no stack). */
export function serviceKey(spec: Pick<ServiceSpec, 'stack' | 'name'>): string {
  return `${spec.stack}/${spec.name}`;
}

/** The indexes a counted service wants: the first `targetNumContainers` from 1 that
 *  `autodestroy` has not retired (without retirements, 1..target). */
export function wantedIndexes(spec: Pick<ServiceSpec, 'targetNumContainers' | 'retiredIndexes'>): number[] {
  const retired = new Set(spec.retiredIndexes ?? []);
  const out: number[] = [];
  for (let i = 1; out.length < spec.targetNumContainers; i++) if (!retired.has(i)) out.push(i);
  return out;
}

/** The container's name: its identity (`weft.name`) and DNS name, kept across recreations. */
export function containerName(spec: Pick<ServiceSpec, 'name'>, index: number): string {
  return `${spec.name}-${index}`;
}

/** Running before starting before stopped: the copy most likely serving is the one to keep.
 *  `dead` (Docker's broken state) is never kept. */
const STATE_RANK: Record<ContainerState, number> = { running: 0, starting: 1, stopped: 2, dead: 3 };

/** Which copy to keep first, when copies compete for a name or for a node's memory: the newest
 *  epoch (fencing), then the one most likely serving, then on a live node, then a fixed order
 *  so that every manager decides the same. */
export function keepOrder(nodeAlive: (id: string) => boolean) {
  return (a: CurrentContainer, b: CurrentContainer): number =>
    b.epoch - a.epoch ||
    STATE_RANK[a.state] - STATE_RANK[b.state] ||
    Number(nodeAlive(b.node)) - Number(nodeAlive(a.node)) ||
    cmp(a.service, b.service) ||
    a.index - b.index ||
    cmp(a.node, b.node) ||
    cmp(a.id, b.id);
}
