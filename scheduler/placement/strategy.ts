// Which node takes the next container of an EMPTIEST_NODE or HIGH_AVAILABILITY service, among
// the usable nodes that have room for it. (EVERY_NODE needs no choice: placement.ts.) Pure.

import type { DeploymentStrategy } from '../service/spec.ts';
import type { Ledger } from './ledger.ts';
import { type PlacementNode, byNodeName, cmp, zoneOf } from './node.ts';

/** Nodes without a `zone=` tag count as one zone of their own when others carry zones. */
const NO_ZONE = '';

export interface Choice {
  service: string;
  strategy: Exclude<DeploymentStrategy, 'EVERY_NODE'>;
  /** Every usable node of the service (for counting its spread), fitting or not. */
  usable: readonly PlacementNode[];
  /** The usable nodes with room for one more container. */
  fitting: readonly PlacementNode[];
}

export function choose(c: Choice, ledger: Ledger): PlacementNode | undefined {
  return c.strategy === 'EMPTIEST_NODE' ? emptiest(c.fitting, ledger) : spread(c, ledger);
}

/** The node with the fewest containers of all services. */
function emptiest(fitting: readonly PlacementNode[], ledger: Ledger): PlacementNode | undefined {
  return [...fitting].sort((a, b) => ledger.containers(a.id) - ledger.containers(b.id) || byNodeName(a, b))[0];
}

/** HIGH_AVAILABILITY: the zone with the fewest of this service's containers, then its node with
 *  the fewest of them (then the emptiest). Always adding where there are fewest keeps counts
 *  within one of each other, between zones and between the nodes of a zone, as long as memory
 *  allows; containers already running are not moved to even out (placement is stable). */
function spread(c: Choice, ledger: Ledger): PlacementNode | undefined {
  const zone = (n: PlacementNode) => zoneOf(n) ?? NO_ZONE;
  const inZone = new Map<string, number>();
  for (const n of c.usable) inZone.set(zone(n), (inZone.get(zone(n)) ?? 0) + ledger.ofService(c.service, n.id));
  const zoneCount = (n: PlacementNode) => inZone.get(zone(n)) ?? 0;
  return [...c.fitting].sort(
    (a, b) =>
      zoneCount(a) - zoneCount(b) ||
      cmp(zone(a), zone(b)) ||
      ledger.ofService(c.service, a.id) - ledger.ofService(c.service, b.id) ||
      ledger.containers(a.id) - ledger.containers(b.id) ||
      byNodeName(a, b),
  )[0];
}
