// A node as placement sees it, and what a node may do for one service. The reconciler builds
// these from the mesh view (liveness), the node records in desired state (tags, draining) and
// what each agent reports (memory). Pure.

import type { ServiceSpec } from '../service/spec.ts';

/** A node's availability zone is a tag `zone=<name>` (what the provisioner sets), so an operator
 *  can set or change it like any deploy tag and a service can even require one (`zone=a`). */
export const ZONE_TAG_PREFIX = 'zone=';

export interface PlacementNode {
  /** Stable id (the peer's id); what assignments name. */
  id: string;
  /** The peer's name: the first tie-break, so plans read the same on every manager. */
  name: string;
  /** Deploy tags it carries; a service goes only where every one of its tags is. */
  tags: readonly string[];
  /** Memory placement may reserve on it, bytes; the sum of the reservations of the containers
   *  placed on it never exceeds this. */
  memoryBytes: number;
  /** Alive in the mesh's failure detector. */
  alive: boolean;
  /** When not alive: seconds since it was last alive, as the reconciler measured it (absent:
   *  0, i.e. it just died). Compared with each service's `rescheduleAfterSeconds`. */
  downForSeconds?: number;
  /** The operator is emptying it: nothing new goes there and its containers move. */
  draining?: boolean;
}

/** The zone from the node's `zone=` tag; undefined without one. A node should carry one
 *  zone tag; with several, the smallest wins so every manager agrees. */
export function zoneOf(node: PlacementNode): string | undefined {
  const zones = node.tags
    .filter((t) => t.startsWith(ZONE_TAG_PREFIX) && t.length > ZONE_TAG_PREFIX.length)
    .map((t) => t.slice(ZONE_TAG_PREFIX.length))
    .sort();
  return zones[0];
}

export function carriesTags(node: PlacementNode, tags: readonly string[]): boolean {
  return tags.every((t) => node.tags.includes(t));
}

/** What a node is for one service's containers:
 *  - `usable`: alive, carries the tags, not draining: keeps its containers, takes new ones;
 *  - `in-grace`: down for less than the service's grace: its containers are kept as they are
 *    (it may only be partitioned; moving them early risks two copies of one name), nothing new;
 *  - the others: its containers of the service are recreated elsewhere (or just removed). */
export type Standing = 'usable' | 'in-grace' | 'gone' | 'dead' | 'lost-tags' | 'draining';

export function standing(node: PlacementNode | undefined, spec: ServiceSpec): Standing {
  if (node === undefined) return 'gone';
  // Liveness first: a down node's containers are left alone for the grace period whatever its
  // tags or draining say, since we cannot tell it to stop them and they may still be running.
  if (!node.alive) return (node.downForSeconds ?? 0) >= spec.rescheduleAfterSeconds ? 'dead' : 'in-grace';
  if (!carriesTags(node, spec.tags)) return 'lost-tags';
  if (node.draining === true) return 'draining';
  return 'usable';
}

/** The deterministic order of nodes everywhere in placement: by name, then id. */
export function byNodeName(a: PlacementNode, b: PlacementNode): number {
  return cmp(a.name, b.name) || cmp(a.id, b.id);
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
