// What every placement plan must satisfy, checked from outside the implementation: the rules of
// issue 12 §2 restated over (input, plan). Each returns sentences naming what is wrong.

import { type CurrentContainer, serviceKey } from '../../scheduler/placement/container.ts';
import { type PlacementNode, zoneOf } from '../../scheduler/placement/node.ts';
import type { PlacementInput } from '../../scheduler/placement/placement.ts';
import type { Assignment, Plan } from '../../scheduler/placement/plan.ts';
import type { ServiceSpec } from '../../scheduler/service/spec.ts';

const hasTags = (n: PlacementNode, s: ServiceSpec) => s.tags.every((t) => n.tags.includes(t));
const usableFor = (n: PlacementNode | undefined, s: ServiceSpec) => !!n && n.alive && !n.draining && hasTags(n, s);
const inGrace = (n: PlacementNode | undefined, s: ServiceSpec) => !!n && !n.alive && (n.downForSeconds ?? 0) < s.rescheduleAfterSeconds;
const reserved = (used: number, cap: number) => used === 0 || used <= cap;

export function violations(input: PlacementInput, plan: Plan): string[] {
  const bad: string[] = [];
  const nodes = new Map(input.nodes.map((n) => [n.id, n]));
  const services = new Map(input.services.map((s) => [serviceKey(s), s]));

  // Every current container is kept or removed, once.
  const seen = new Map<string, number>();
  for (const c of [...plan.keep, ...plan.remove.map((r) => r.container)]) seen.set(c.id, (seen.get(c.id) ?? 0) + 1);
  for (const c of input.containers) if (seen.get(c.id) !== 1) bad.push(`${c.id} is kept or removed ${seen.get(c.id) ?? 0} times`);

  // Kept containers: still wanted, on a node that suits them or is down within grace.
  for (const c of plan.keep) {
    const s = services.get(c.service);
    const n = nodes.get(c.node);
    if (!s) bad.push(`${c.id} kept for a removed service`);
    else if (!usableFor(n, s) && !inGrace(n, s)) bad.push(`${c.id} kept on ${c.node}, which does not suit ${c.service}`);
    else if (n?.alive && c.state === 'dead') bad.push(`${c.id} kept though dead`);
  }
  // Fencing: of two copies of a name, the newer epoch stays.
  for (const r of plan.remove) {
    const winner = plan.keep.find((c) => c.service === r.container.service && c.index === r.container.index);
    if (r.why === 'duplicate' && winner && winner.epoch < r.container.epoch) bad.push(`${winner.id} (epoch ${winner.epoch}) kept over newer ${r.container.id}`);
  }
  // Creations: on a live, tagged, undrained node; newer than every copy of the name.
  for (const a of plan.create) {
    const s = services.get(a.service);
    if (!s || !usableFor(nodes.get(a.node), s)) bad.push(`${a.name} created on ${a.node}, which does not suit it`);
    const older = input.containers.filter((c) => c.service === a.service && c.index === a.index && c.epoch >= a.epoch);
    if (older.length) bad.push(`${a.name} created with epoch ${a.epoch}, not above ${older[0]?.id}'s`);
  }

  // Memory: no node over its capacity.
  const used = new Map<string, number>();
  const add = (node: string, key: string) => used.set(node, (used.get(node) ?? 0) + (services.get(key)?.memoryBytes ?? 0));
  for (const c of plan.keep) add(c.node, c.service);
  for (const a of plan.create) add(a.node, a.service);
  for (const [id, u] of used) if (!reserved(u, nodes.get(id)?.memoryBytes ?? 0)) bad.push(`${id} holds ${u} bytes of ${nodes.get(id)?.memoryBytes}`);

  for (const sp of plan.services) {
    const s = services.get(sp.service);
    if (!s) {
      bad.push(`plan for unknown service ${sp.service}`);
      continue;
    }
    bad.push(...serviceViolations(s, sp.wanted, sp.pending?.reason, sp.pending?.unplaced, input, plan, used).map((m) => `${sp.service}: ${m}`));
  }
  if (plan.services.length !== services.size) bad.push(`${plan.services.length} service plans for ${services.size} services`);

  bad.push(...stabilityViolations(input, plan));
  return bad;
}

function serviceViolations(
  s: ServiceSpec,
  wanted: Assignment[],
  reason: NonNullable<Plan['services'][number]['pending']>['reason'] | undefined,
  unplaced: number | undefined,
  input: PlacementInput,
  plan: Plan,
  used: Map<string, number>,
): string[] {
  const bad: string[] = [];
  const key = serviceKey(s);
  const indexes = wanted.map((a) => a.index);
  if (new Set(indexes).size !== indexes.length) bad.push(`an index twice: ${indexes}`);
  const usable = input.nodes.filter((n) => usableFor(n, s));
  const free = (n: PlacementNode) => n.memoryBytes - (used.get(n.id) ?? 0);
  const room = (n: PlacementNode) => s.memoryBytes === 0 || free(n) >= s.memoryBytes;

  if (s.deploymentStrategy === 'EVERY_NODE') {
    const on = wanted.map((a) => a.node);
    if (new Set(on).size !== on.length) bad.push('two containers on one node');
    const missing = usable.filter((n) => !on.includes(n.id));
    if (!reason && missing.length) bad.push(`none on ${missing.map((n) => n.id)}`);
    if (reason?.kind === 'memory' && (unplaced !== missing.length || missing.some(room))) bad.push(`memory pending, yet ${missing.length} missing, some with room`);
  } else {
    if (indexes.some((i) => i < 1 || i > s.targetNumContainers)) bad.push(`indexes ${indexes} outside 1..${s.targetNumContainers}`);
    if (!reason && wanted.length !== s.targetNumContainers) bad.push(`${wanted.length} of ${s.targetNumContainers} and not pending`);
    if (reason && unplaced !== s.targetNumContainers - wanted.length) bad.push(`pending ${unplaced}, has ${wanted.length} of ${s.targetNumContainers}`);
    if (reason?.kind === 'memory' && usable.some(room)) bad.push('memory pending, yet a usable node has room');
  }
  if (reason?.kind === 'no-tagged-node' && input.nodes.some((n) => hasTags(n, s))) bad.push('says no node carries its tags, one does');
  if (reason?.kind === 'no-usable-node' && usable.length) bad.push('says every tagged node is down or draining, one is not');

  // Scale down takes the highest indexes: nothing kept above the target, removals above it.
  for (const r of plan.remove) if (r.container.service === key && r.why === 'scaled-down' && r.container.index <= s.targetNumContainers) bad.push(`scaled down ${r.container.id} within the target`);

  if (s.deploymentStrategy === 'HIGH_AVAILABILITY' && s.memoryBytes === 0) bad.push(...spreadViolations(s, plan, usable));
  return bad;
}

/** HIGH_AVAILABILITY without reservations: a plan never leaves the spread (between zones, and
 *  between the nodes of each zone) above max(1, the spread of what it kept). */
function spreadViolations(s: ServiceSpec, plan: Plan, usable: PlacementNode[]): string[] {
  const key = serviceKey(s);
  const bad: string[] = [];
  const kept = plan.keep.filter((c) => c.service === key).map((c) => c.node);
  const all = [...kept, ...plan.create.filter((a) => a.service === key).map((a) => a.node)];
  const zone = (n: PlacementNode) => zoneOf(n) ?? '';
  const zones = [...new Set(usable.map(zone))];
  const zoneCounts = (on: string[]) => zones.map((z) => usable.filter((n) => zone(n) === z).reduce((k, n) => k + on.filter((x) => x === n.id).length, 0));
  const spread = (xs: number[]) => (xs.length ? Math.max(...xs) - Math.min(...xs) : 0);
  if (spread(zoneCounts(all)) > Math.max(1, spread(zoneCounts(kept)))) bad.push(`zones hold ${zoneCounts(all)} (kept ${zoneCounts(kept)})`);
  for (const z of zones) {
    const inZ = usable.filter((n) => zone(n) === z);
    const counts = (on: string[]) => inZ.map((n) => on.filter((x) => x === n.id).length);
    if (spread(counts(all)) > Math.max(1, spread(counts(kept)))) bad.push(`zone '${z}' nodes hold ${counts(all)} (kept ${counts(kept)})`);
  }
  return bad;
}

/** A container that is fine where it is stays: wanted, not broken, the only copy of its name
 *  (and, EVERY_NODE, of its service on its node), on a node that suits it (or down within
 *  grace) and that has the memory for all such containers. */
function stabilityViolations(input: PlacementInput, plan: Plan): string[] {
  const nodes = new Map(input.nodes.map((n) => [n.id, n]));
  const services = new Map(input.services.map((s) => [serviceKey(s), s]));
  const kept = new Set(plan.keep.map((c) => c.id));
  const copies = (c: CurrentContainer) => input.containers.filter((x) => x.service === c.service && (x.index === c.index || (services.get(c.service)?.deploymentStrategy === 'EVERY_NODE' && x.node === c.node)));
  const keepable = input.containers.filter((c) => {
    const s = services.get(c.service);
    const n = nodes.get(c.node);
    if (!s || !Number.isInteger(c.index) || c.index < 1) return false;
    if (s.deploymentStrategy !== 'EVERY_NODE' && c.index > s.targetNumContainers) return false;
    return (usableFor(n, s) && c.state !== 'dead') || inGrace(n, s);
  });
  const fine = keepable.filter((c) => copies(c).length === 1);
  // Memory evicts only on a node that cannot hold every container that might stay there.
  const total = new Map<string, number>();
  for (const c of keepable) total.set(c.node, (total.get(c.node) ?? 0) + (services.get(c.service)?.memoryBytes ?? 0));
  return fine
    .filter((c) => reserved(total.get(c.node) ?? 0, nodes.get(c.node)?.memoryBytes ?? 0) && !kept.has(c.id))
    .map((c) => `${c.id} (${c.service} #${c.index} on ${c.node}) is fine where it is, yet not kept`);
}

/** Nothing left to do but removals waiting for a down or forgotten node's agent. */
export function settled(input: PlacementInput, plan: Plan): boolean {
  const alive = new Set(input.nodes.filter((n) => n.alive).map((n) => n.id));
  return plan.create.length === 0 && plan.remove.every((r) => !alive.has(r.container.node));
}

/** Replays the creations in the order decided: each EMPTIEST_NODE one went to a node with the
 *  fewest containers among the usable ones with room; each HIGH_AVAILABILITY one to a zone with
 *  the fewest of the service's containers, and there to a node with the fewest of them. */
export function strategyViolations(input: PlacementInput, plan: Plan): string[] {
  const bad: string[] = [];
  const services = new Map(input.services.map((s) => [serviceKey(s), s]));
  const count = new Map<string, number>();
  const mem = new Map<string, number>();
  const mine = new Map<string, number>();
  const put = (node: string, key: string) => {
    count.set(node, (count.get(node) ?? 0) + 1);
    mem.set(node, (mem.get(node) ?? 0) + (services.get(key)?.memoryBytes ?? 0));
    mine.set(`${key} ${node}`, (mine.get(`${key} ${node}`) ?? 0) + 1);
  };
  for (const c of plan.keep) put(c.node, c.service);
  for (const a of plan.create) {
    const s = services.get(a.service) as ServiceSpec;
    const usable = input.nodes.filter((n) => usableFor(n, s));
    const fit = usable.filter((n) => s.memoryBytes === 0 || (mem.get(n.id) ?? 0) + s.memoryBytes <= n.memoryBytes);
    const chosen = fit.find((n) => n.id === a.node);
    const zone = (n: PlacementNode) => zoneOf(n) ?? '';
    const of = (n: PlacementNode) => mine.get(`${a.service} ${n.id}`) ?? 0;
    const zoneCount = (z: string) => usable.filter((n) => zone(n) === z).reduce((k, n) => k + of(n), 0);
    if (!chosen) bad.push(`${a.name} on ${a.node}: no room there`);
    else if (s.deploymentStrategy === 'EMPTIEST_NODE' && fit.some((n) => (count.get(n.id) ?? 0) < (count.get(chosen.id) ?? 0))) bad.push(`${a.name} on ${a.node}: an emptier node had room`);
    else if (s.deploymentStrategy === 'HIGH_AVAILABILITY') {
      if (fit.some((n) => zoneCount(zone(n)) < zoneCount(zone(chosen)))) bad.push(`${a.name} on ${a.node}: a zone with fewer had room`);
      else if (fit.some((n) => zone(n) === zone(chosen) && of(n) < of(chosen))) bad.push(`${a.name} on ${a.node}: a node with fewer in its zone had room`);
    }
    put(a.node, a.service);
  }
  return bad;
}
