// Placement's output: what every service should have and where, and the changes from what runs
// now. The reconciler writes the assignments to desired state and orders the changes (a
// replacement is started only once the copies it replaces are gone or fenced). Types only.

import type { CurrentContainer } from './container.ts';
import type { Pending } from './reasons.ts';

export interface Assignment {
  /** Service key, `${stack}/${name}`. */
  service: string;
  /** `<service name>-<index>`: the identity kept wherever it runs. */
  name: string;
  index: number;
  /** Node id. */
  node: string;
  /** Fencing epoch: a kept container's own; a creation's is above every copy of its name. */
  epoch: number;
}

export interface Creation extends Assignment {
  /** `new`: the name has no copy now; `replacement`: it has, and `replaces` are their ids
   *  (all in `remove`): the same name and address, on another node or in place of a broken one. */
  why: 'new' | 'replacement';
  replaces: string[];
}

export type RemovalReason =
  | 'service-removed' // no desired service has its key
  | 'scaled-down' // its index is above the target (the highest indexes go first)
  | 'invalid-index' // not an integer from 1
  | 'duplicate' // another copy of its name (or, EVERY_NODE, of its service on its node) is kept
  | 'container-dead' // Docker's `dead` state: recreated
  | 'node-gone' // its node is no longer known
  | 'node-dead' // its node has been down longer than the service's grace
  | 'node-lost-tags' // its node no longer carries the service's tags
  | 'node-draining' // its node is being drained
  | 'over-memory'; // its node reports less memory than its containers reserve

export interface Removal {
  container: CurrentContainer;
  why: RemovalReason;
}

export interface ServicePlan {
  service: string;
  /** Every container it should have, kept or created, by index. */
  wanted: Assignment[];
  /** Set when it cannot be fully placed; it stays pending until a later placement can. */
  pending?: Pending;
}

export interface NodeUsage {
  node: string;
  containers: number;
  memoryBytes: number;
}

export interface Plan {
  /** One per desired service, by key. */
  services: ServicePlan[];
  /** Containers that stay where they are, as they are. */
  keep: CurrentContainer[];
  /** In the order they were decided (each choice saw the ones before it). */
  create: Creation[];
  /** Every current container not kept, once. */
  remove: Removal[];
  /** What each node holds once the plan is carried out, by node name. */
  nodes: NodeUsage[];
}
