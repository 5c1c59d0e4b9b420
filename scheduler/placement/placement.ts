// Placement: where every container of every desired service should run, given the nodes and
// what runs now. Pure and deterministic: no clock, no I/O, no randomness; ties go by node name
// then id. Stable: a container that is fine where it is stays there. Carrying a plan out and
// placing again changes nothing (a fixed point), except for removals the agent of a down node
// cannot carry out yet.
//
// Order of decisions: first what stays (keep.ts), then the missing containers, EVERY_NODE
// services first (a per-node daemon claims its node before anything else competes for the
// memory), then the others by key, each by index from 1.

import type { ServiceSpec } from '../service/spec.ts';
import { type CurrentContainer, containerName, serviceKey, wantedIndexes } from './container.ts';
import { keepCurrent } from './keep.ts';
import { Ledger } from './ledger.ts';
import { type PlacementNode, byNodeName, cmp, standing } from './node.ts';
import type { Assignment, Creation, Plan, ServicePlan } from './plan.ts';
import { type Pending, diagnose, memoryReason, pending } from './reasons.ts';
import { choose } from './strategy.ts';

export interface PlacementInput {
  /** The desired services; keys (`${stack}/${name}`) are unique (a repeated key: the first). */
  services: readonly ServiceSpec[];
  /** Every node known to the cluster, alive or not. */
  nodes: readonly PlacementNode[];
  /** Every container of weft's services in observed state, on any node. */
  containers: readonly CurrentContainer[];
}

export function place(input: PlacementInput): Plan {
  const services = new Map<string, ServiceSpec>();
  for (const s of input.services) if (!services.has(serviceKey(s))) services.set(serviceKey(s), s);
  const nodes = new Map<string, PlacementNode>();
  for (const n of input.nodes) if (!nodes.has(n.id)) nodes.set(n.id, n);
  const sortedNodes = [...nodes.values()].sort(byNodeName);
  const ledger = new Ledger(nodes);

  const { keep, remove } = keepCurrent(input.containers, services, nodes, ledger);
  const world: World = { nodes: sortedNodes, ledger, keep, remove, create: [] };

  const order = [...services.entries()].sort(
    ([ka, a], [kb, b]) => Number(b.deploymentStrategy === 'EVERY_NODE') - Number(a.deploymentStrategy === 'EVERY_NODE') || cmp(ka, kb),
  );
  const pendings = new Map<string, Pending>();
  for (const [key, spec] of order) {
    const p = spec.deploymentStrategy === 'EVERY_NODE' ? placeEveryNode(key, spec, world) : placeCounted(key, spec, world);
    if (p) pendings.set(key, p);
  }

  const plans: ServicePlan[] = [...services.keys()].sort(cmp).map((key) => {
    const wanted: Assignment[] = [
      ...keep.filter((c) => c.service === key).map((c) => assignment(services.get(key) as ServiceSpec, c.index, c.node, c.epoch)),
      ...world.create.filter((c) => c.service === key).map(({ service, name, index, node, epoch }) => ({ service, name, index, node, epoch })),
    ].sort((a, b) => a.index - b.index);
    const p = pendings.get(key);
    return p ? { service: key, wanted, pending: p } : { service: key, wanted };
  });
  const usage = sortedNodes.map((n) => ({ node: n.id, containers: ledger.containers(n.id), memoryBytes: ledger.memoryUsed(n.id) }));
  // Removals in a fixed order, so the plan does not depend on the order observed state was read in.
  const removals = [...remove].sort((a, b) => byContainer(a.container, b.container));
  return { services: plans, keep, create: world.create, remove: removals, nodes: usage };
}

interface World {
  nodes: readonly PlacementNode[];
  ledger: Ledger;
  keep: readonly CurrentContainer[];
  remove: readonly { container: CurrentContainer }[];
  create: Creation[];
}

/** EMPTIEST_NODE and HIGH_AVAILABILITY: the wanted indexes (1..target, less those autodestroy
 *  retired), each missing one placed by strategy. */
function placeCounted(key: string, spec: ServiceSpec, w: World): Pending | undefined {
  const strategy = spec.deploymentStrategy === 'HIGH_AVAILABILITY' ? 'HIGH_AVAILABILITY' : 'EMPTIEST_NODE';
  const have = new Set(w.keep.filter((c) => c.service === key).map((c) => c.index));
  const usable = w.nodes.filter((n) => standing(n, spec) === 'usable');
  const wanted = wantedIndexes(spec);
  for (const [at, index] of wanted.entries()) {
    if (have.has(index)) continue;
    const fitting = usable.filter((n) => w.ledger.fits(n.id, spec.memoryBytes));
    const node = choose({ service: key, strategy, usable, fitting }, w.ledger);
    if (!node) {
      // Every later index needs the same room: none fits either.
      const unplaced = wanted.slice(at).filter((i) => !have.has(i)).length;
      return pending(diagnose(spec, w.nodes, w.ledger), unplaced);
    }
    create(key, spec, index, node, w);
  }
  return undefined;
}

/** EVERY_NODE: one container on each usable node; a node keeps its index for as long as its
 *  container stays, and a node without one takes the smallest index free. */
function placeEveryNode(key: string, spec: ServiceSpec, w: World): Pending | undefined {
  const mine = w.keep.filter((c) => c.service === key);
  const served = new Set(mine.map((c) => c.node));
  const taken = new Set(mine.map((c) => c.index));
  const usable = w.nodes.filter((n) => standing(n, spec) === 'usable');
  if (usable.length === 0) return pending(diagnose(spec, w.nodes, w.ledger), 0);
  let next = 1;
  const short: PlacementNode[] = [];
  for (const node of usable) {
    if (served.has(node.id)) continue;
    if (!w.ledger.fits(node.id, spec.memoryBytes)) {
      short.push(node);
      continue;
    }
    while (taken.has(next)) next++;
    taken.add(next);
    create(key, spec, next, node, w);
  }
  return short.length ? pending(memoryReason(spec, short, w.ledger), short.length) : undefined;
}

function create(key: string, spec: ServiceSpec, index: number, node: PlacementNode, w: World): void {
  const copies = [...w.keep, ...w.remove.map((r) => r.container)].filter((c) => c.service === key && c.index === index);
  const epoch = 1 + Math.max(0, ...copies.map((c) => c.epoch));
  const replaces = copies.map((c) => c.id).sort(cmp);
  w.ledger.add(node.id, key, spec.memoryBytes);
  w.create.push({ ...assignment(spec, index, node.id, epoch), why: replaces.length ? 'replacement' : 'new', replaces });
}

function byContainer(a: CurrentContainer, b: CurrentContainer): number {
  return cmp(a.service, b.service) || a.index - b.index || cmp(a.node, b.node) || cmp(a.id, b.id);
}

function assignment(spec: ServiceSpec, index: number, node: string, epoch: number): Assignment {
  return { service: serviceKey(spec), name: containerName(spec, index), index, node, epoch };
}
