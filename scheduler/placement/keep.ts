// Which current containers stay where they are. A container stays when its service still wants
// its index, its node still suits the service (or is down within the grace period), it is the
// copy of its name that wins, and its node has the memory for it; every other one is removed,
// with the reason. Pure.

import type { ServiceSpec } from '../service/spec.ts';
import { type CurrentContainer, keepOrder, wantedIndexes } from './container.ts';
import type { Ledger } from './ledger.ts';
import { type PlacementNode, type Standing, standing } from './node.ts';
import type { Removal, RemovalReason } from './plan.ts';

const LEAVES: Partial<Record<Standing, RemovalReason>> = {
  gone: 'node-gone',
  dead: 'node-dead',
  'lost-tags': 'node-lost-tags',
  draining: 'node-draining',
};

export interface Kept {
  keep: CurrentContainer[];
  remove: Removal[];
}

export function keepCurrent(
  containers: readonly CurrentContainer[],
  services: ReadonlyMap<string, ServiceSpec>,
  nodes: ReadonlyMap<string, PlacementNode>,
  ledger: Ledger,
): Kept {
  const remove: Removal[] = [];
  const candidates: CurrentContainer[] = [];
  // Each service's wanted indexes, once per placement (not once per container).
  const wanted = new Map<string, ReadonlySet<number>>();
  const wantedOf = (key: string, spec: ServiceSpec): ReadonlySet<number> => {
    let w = wanted.get(key);
    if (!w) wanted.set(key, (w = new Set(wantedIndexes(spec))));
    return w;
  };
  for (const c of containers) {
    const why = leaves(c, services.get(c.service), nodes, wantedOf);
    if (why) remove.push({ container: c, why });
    else candidates.push(c);
  }
  // Best copies first, across all services, so that the winner of a name and the containers a
  // node has memory for do not depend on the order observed state was read in.
  candidates.sort(keepOrder((id) => nodes.get(id)?.alive === true));
  const names = new Set<string>();
  const perNode = new Set<string>();
  const keep: CurrentContainer[] = [];
  for (const c of candidates) {
    const spec = services.get(c.service) as ServiceSpec;
    const name = `${c.service}\n${c.index}`;
    const onNode = `${c.service}\n${c.node}`;
    const everyNode = spec.deploymentStrategy === 'EVERY_NODE';
    if (names.has(name) || (everyNode && perNode.has(onNode))) {
      remove.push({ container: c, why: 'duplicate' });
    } else if (!ledger.fits(c.node, spec.memoryBytes)) {
      remove.push({ container: c, why: 'over-memory' });
    } else {
      names.add(name);
      perNode.add(onNode);
      ledger.add(c.node, c.service, spec.memoryBytes);
      keep.push(c);
    }
  }
  return { keep, remove };
}

/** Why a container goes whatever the other containers are, if it does. */
function leaves(c: CurrentContainer, spec: ServiceSpec | undefined, nodes: ReadonlyMap<string, PlacementNode>, wantedOf: (key: string, spec: ServiceSpec) => ReadonlySet<number>): RemovalReason | undefined {
  if (!spec) return 'service-removed';
  if (!Number.isInteger(c.index) || c.index < 1) return 'invalid-index';
  if (spec.deploymentStrategy !== 'EVERY_NODE' && !wantedOf(c.service, spec).has(c.index)) return 'scaled-down';
  const s = standing(nodes.get(c.node), spec);
  const why = LEAVES[s];
  if (why) return why;
  // A broken container on a down node within grace is left alone like the rest there.
  if (c.state === 'dead' && s === 'usable') return 'container-dead';
  return undefined;
}
