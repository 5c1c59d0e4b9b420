// Placement, rule by rule: one small named cluster per behaviour a user relies on, and each
// reason a service gives for staying pending.

import { describe, expect, test } from 'vitest';
import type { CurrentContainer } from '../../scheduler/placement/container.ts';
import type { PlacementNode } from '../../scheduler/placement/node.ts';
import { place } from '../../scheduler/placement/placement.ts';
import type { Plan } from '../../scheduler/placement/plan.ts';
import { formatBytes } from '../../scheduler/placement/reasons.ts';
import type { ServiceSpec } from '../../scheduler/service/spec.ts';
import { spec } from '../sim/placement-world.ts';
import { wantedIndexes } from '../../scheduler/placement/container.ts';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

function node(name: string, p: Partial<PlacementNode> = {}): PlacementNode {
  return { id: name, name, tags: [], memoryBytes: 4 * GIB, alive: true, ...p };
}

function running(service: ServiceSpec, index: number, on: string, p: Partial<CurrentContainer> = {}): CurrentContainer {
  return { id: `${service.name}-${index}@${on}`, service: `${service.stack}/${service.name}`, index, node: on, state: 'running', epoch: 1, ...p };
}

/** `name-index` → node, for every container the service should have. */
function where(plan: Plan, s: ServiceSpec): Record<string, string> {
  const sp = plan.services.find((x) => x.service === `${s.stack}/${s.name}`);
  return Object.fromEntries((sp?.wanted ?? []).map((a) => [a.name, a.node]));
}

function pendingOf(plan: Plan, s: ServiceSpec): string | undefined {
  return plan.services.find((x) => x.service === `${s.stack}/${s.name}`)?.pending?.message;
}

describe('tags', () => {
  test('a service runs only on nodes carrying all of its tags', () => {
    const web = spec({ name: 'web', targetNumContainers: 4, tags: ['ssd', 'gpu'] });
    const plan = place({ services: [web], nodes: [node('a', { tags: ['ssd'] }), node('b', { tags: ['gpu', 'ssd'] }), node('c')], containers: [] });
    expect(Object.values(where(plan, web))).toEqual(['b', 'b', 'b', 'b']);
  });

  test('no node carries the tags: pending, saying which tags', () => {
    const web = spec({ name: 'web', targetNumContainers: 2, tags: ['gpu', 'ssd'] });
    const plan = place({ services: [web], nodes: [node('a', { tags: ['ssd'] })], containers: [] });
    expect(pendingOf(plan, web)).toBe('no node carries tags gpu,ssd');
    expect(plan.services[0]?.pending?.unplaced).toBe(2);
    expect(plan.create).toEqual([]);
  });

  test('every tagged node is down or draining: pending, saying how many of each', () => {
    const web = spec({ name: 'web', tags: ['gpu'] });
    const nodes = [node('a', { tags: ['gpu'], alive: false }), node('b', { tags: ['gpu'], draining: true }), node('c')];
    expect(pendingOf(place({ services: [web], nodes, containers: [] }), web)).toBe('every node carrying tags gpu is down or draining (1 down, 1 draining)');
  });

  test('a node that loses a tag sees its containers recreated elsewhere under the same names', () => {
    const web = spec({ name: 'web', targetNumContainers: 2, tags: ['ssd'] });
    const nodes = [node('a'), node('b', { tags: ['ssd'] })];
    const old = running(web, 2, 'a', { epoch: 4 });
    const plan = place({ services: [web], nodes, containers: [running(web, 1, 'b'), old] });
    expect(plan.remove).toEqual([{ container: old, why: 'node-lost-tags' }]);
    expect(plan.create).toEqual([{ service: 's/web', name: 'web-2', index: 2, node: 'b', epoch: 5, why: 'replacement', replaces: [old.id] }]);
  });
});

describe('memory', () => {
  test('no node is filled over its capacity, counting every service; the rest waits and says why', () => {
    const db = spec({ name: 'db', memoryBytes: 512 * MIB });
    const web = spec({ name: 'web', targetNumContainers: 5, memoryBytes: 512 * MIB });
    const nodes = [node('a', { memoryBytes: GIB }), node('b', { memoryBytes: 768 * MIB })];
    const plan = place({ services: [db, web], nodes, containers: [running(db, 1, 'a')] });
    expect(Object.keys(where(plan, web))).toEqual(['web-1', 'web-2']);
    expect(pendingOf(plan, web)).toBe('not enough memory (needs 512 MiB, most free 256 MiB on node b)');
    expect(plan.nodes).toEqual([
      { node: 'a', containers: 2, memoryBytes: GIB },
      { node: 'b', containers: 1, memoryBytes: 512 * MIB },
    ]);
  });

  test('bytes read the way Docker takes them', () => {
    expect([formatBytes(300), formatBytes(512 * MIB), formatBytes(1.5 * GIB), formatBytes(0)]).toEqual(['300 B', '512 MiB', '1.5 GiB', '0 B']);
  });
});

describe('strategies', () => {
  test('EMPTIEST_NODE goes to the node with the fewest containers of all services, ties by name', () => {
    const other = spec({ name: 'other', targetNumContainers: 2 });
    const web = spec({ name: 'web', targetNumContainers: 3 });
    const nodes = [node('c'), node('b'), node('a')];
    const plan = place({ services: [other, web], nodes, containers: [running(other, 1, 'a'), running(other, 2, 'b')] });
    expect(where(plan, web)).toEqual({ 'web-1': 'c', 'web-2': 'a', 'web-3': 'b' });
  });

  test('HIGH_AVAILABILITY spreads within one container between nodes', () => {
    const web = spec({ name: 'web', targetNumContainers: 5, deploymentStrategy: 'HIGH_AVAILABILITY' });
    const plan = place({ services: [web], nodes: [node('a'), node('b'), node('c')], containers: [] });
    expect(where(plan, web)).toEqual({ 'web-1': 'a', 'web-2': 'b', 'web-3': 'c', 'web-4': 'a', 'web-5': 'b' });
  });

  test('HIGH_AVAILABILITY spreads between zones first, then between the nodes of a zone', () => {
    const web = spec({ name: 'web', targetNumContainers: 4, deploymentStrategy: 'HIGH_AVAILABILITY' });
    const nodes = [node('a1', { tags: ['zone=a'] }), node('b1', { tags: ['zone=b'] }), node('b2', { tags: ['zone=b'] }), node('b3', { tags: ['zone=b'] })];
    const plan = place({ services: [web], nodes, containers: [] });
    expect(where(plan, web)).toEqual({ 'web-1': 'a1', 'web-2': 'b1', 'web-3': 'a1', 'web-4': 'b2' });
  });

  test('HIGH_AVAILABILITY does not move running containers to even out; new ones go where there are fewest', () => {
    const web = spec({ name: 'web', targetNumContainers: 4, deploymentStrategy: 'HIGH_AVAILABILITY' });
    const containers = [running(web, 1, 'a'), running(web, 2, 'a')];
    const plan = place({ services: [web], nodes: [node('a'), node('b'), node('c')], containers });
    expect(plan.keep).toEqual(containers);
    expect(where(plan, web)).toEqual({ 'web-1': 'a', 'web-2': 'a', 'web-3': 'b', 'web-4': 'c' });
  });

  test('EVERY_NODE runs one per eligible node and follows nodes joining and leaving, each keeping its index', () => {
    const agent = spec({ name: 'agent', deploymentStrategy: 'EVERY_NODE', targetNumContainers: 0, rescheduleAfterSeconds: 30 });
    const first = place({ services: [agent], nodes: [node('a'), node('b'), node('c', { draining: true })], containers: [] });
    expect(where(first, agent)).toEqual({ 'agent-1': 'a', 'agent-2': 'b' });
    // a dies for good, d joins: a's is removed (not recreated), d takes the free index 1.
    const now = [running(agent, 1, 'a'), running(agent, 2, 'b')];
    const nodes = [node('a', { alive: false, downForSeconds: 60 }), node('b'), node('d')];
    const next = place({ services: [agent], nodes, containers: now });
    expect(next.remove.map((r) => [r.container.id, r.why])).toEqual([['agent-1@a', 'node-dead']]);
    expect(where(next, agent)).toEqual({ 'agent-1': 'd', 'agent-2': 'b' });
  });

  test('EVERY_NODE with no node to run on says why', () => {
    const agent = spec({ name: 'agent', deploymentStrategy: 'EVERY_NODE', tags: ['edge'] });
    expect(pendingOf(place({ services: [agent], nodes: [node('a')], containers: [] }), agent)).toBe('no node carries tags edge');
    const none = spec({ name: 'none', deploymentStrategy: 'EVERY_NODE' });
    expect(pendingOf(place({ services: [none], nodes: [], containers: [] }), none)).toBe('no node has joined the cluster');
  });
});

describe('scaling and stability', () => {
  test('scaling down removes the highest indexes first', () => {
    const web = spec({ name: 'web', targetNumContainers: 2 });
    const containers = [1, 2, 3, 4].map((i) => running(web, i, i % 2 ? 'a' : 'b'));
    const plan = place({ services: [web], nodes: [node('a'), node('b')], containers });
    expect(plan.remove.map((r) => [r.container.index, r.why])).toEqual([[3, 'scaled-down'], [4, 'scaled-down']]);
    expect(plan.create).toEqual([]);
  });

  test('a converged cluster placed again changes nothing', () => {
    const web = spec({ name: 'web', targetNumContainers: 3, deploymentStrategy: 'HIGH_AVAILABILITY' });
    const first = place({ services: [web], nodes: [node('a'), node('b')], containers: [] });
    const containers = first.create.map((a) => running(web, a.index, a.node));
    const again = place({ services: [web], nodes: [node('a'), node('b')], containers });
    expect([again.create, again.remove, again.keep]).toEqual([[], [], containers]);
  });

  test('a removed service has its containers removed', () => {
    const gone = spec({ name: 'gone' });
    const plan = place({ services: [], nodes: [node('a')], containers: [running(gone, 1, 'a')] });
    expect(plan.remove.map((r) => r.why)).toEqual(['service-removed']);
  });

  test('a broken (dead) container is recreated under its name, with a newer epoch', () => {
    const web = spec({ name: 'web' });
    const plan = place({ services: [web], nodes: [node('a')], containers: [running(web, 1, 'a', { state: 'dead', epoch: 3 })] });
    expect(plan.remove.map((r) => r.why)).toEqual(['container-dead']);
    expect(plan.create.map((c) => [c.name, c.node, c.epoch, c.why])).toEqual([['web-1', 'a', 4, 'replacement']]);
  });
});

describe('dead nodes', () => {
  const web = spec({ name: 'web', targetNumContainers: 1, rescheduleAfterSeconds: 30 });

  test('within the grace period a dead node keeps its containers as they are', () => {
    const c = running(web, 1, 'a');
    const plan = place({ services: [web], nodes: [node('a', { alive: false, downForSeconds: 29 }), node('b')], containers: [c] });
    expect([plan.keep, plan.create]).toEqual([[c], []]);
  });

  test('past the grace period its containers are recreated elsewhere with the same names', () => {
    const c = running(web, 1, 'a', { epoch: 1 });
    const plan = place({ services: [web], nodes: [node('a', { alive: false, downForSeconds: 30 }), node('b')], containers: [c] });
    expect(plan.remove).toEqual([{ container: c, why: 'node-dead' }]);
    expect(plan.create.map((x) => [x.name, x.node, x.epoch])).toEqual([['web-1', 'b', 2]]);
  });

  test('when the node comes back, its stale copy loses to the newer one, running or not', () => {
    const stale = running(web, 1, 'a', { epoch: 1 });
    const fresh = running(web, 1, 'b', { epoch: 2, state: 'starting' });
    const plan = place({ services: [web], nodes: [node('a'), node('b')], containers: [stale, fresh] });
    expect(plan.keep).toEqual([fresh]);
    expect(plan.remove).toEqual([{ container: stale, why: 'duplicate' }]);
  });
});

describe('indexes autodestroy retired', () => {
  test('are never wanted again; the count is of the others', () => {
    expect(wantedIndexes({ targetNumContainers: 3 })).toEqual([1, 2, 3]);
    expect(wantedIndexes({ targetNumContainers: 2, retiredIndexes: [2] })).toEqual([1, 3]);
    expect(wantedIndexes({ targetNumContainers: 0, retiredIndexes: [1, 2] })).toEqual([]);
  });
});
