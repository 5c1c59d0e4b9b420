// The provisioner's round (provisioner/reconcile.ts) in the simulated world of
// test/sim/provisioner-world.ts: each behaviour the issue asks for, one scenario each.

import { describe, expect, test } from 'vitest';
import { chooseZone, BACKOFF_MAX_MS, backoffMs, DRAIN_TIMEOUT_MS } from '../../provisioner/reconcile.ts';
import { ProviderError } from '../../provisioner/provider.ts';
import { TIMING, World } from '../sim/provisioner-world.ts';
import { clusterState } from '../../provisioner/cluster/cluster-state.ts';

const settled = (w: World, name: string, n: number) => () => w.deployed(name) === n && w.records(name).length === n && w.live(name).length === n;

describe('provisioner round', () => {
  test('a cluster of 3 is created, spread over the zones, and reaches Deployed', () => {
    const w = new World();
    w.createCluster('web', 3);
    const first = w.round();
    expect(first.creates.map((c) => c.node).sort()).toEqual(['web-1', 'web-2', 'web-3']);
    expect(first.creates.map((c) => c.zone).sort()).toEqual(['a', 'b', 'c']);
    expect(first.creates[0]?.tags).toEqual(expect.arrayContaining(['provider=sim', 'region=r', 'cluster=web']));
    expect(w.runUntil(settled(w, 'web', 3))).toBe(true);
    expect(clusterState(w.cluster('web')!, w.records('web'))).toBe('Deployed');
    expect(w.calls.create).toBe(3);
  });

  test('scale 0 -> 3 -> 5 -> 2 keeps the nodes that serve and terminates the rest', () => {
    const w = new World();
    w.createCluster('c', 0);
    w.round();
    expect(clusterState(w.cluster('c')!, w.records('c'))).toBe('Empty cluster');
    for (const n of [3, 5, 2]) {
      w.change('c', (c) => ({ ...c, target: n }));
      expect(w.runUntil(settled(w, 'c', n)), `scale to ${n}`).toBe(true);
    }
    expect(w.records('c').map((r) => r.index).sort()).toEqual([1, 2]);
    expect(w.calls.create).toBe(5);
  });

  test('a node whose machine stops is terminated and replaced at once, in the same slot', () => {
    const w = new World();
    w.createCluster('c', 2);
    expect(w.runUntil(settled(w, 'c', 2))).toBe(true);
    const victim = w.live('c').find((n) => n.node === 'c-1')!;
    victim.state = 'stopped';
    expect(w.runUntil(() => w.records('c').find((r) => r.name === 'c-1')?.attempt === 2)).toBe(true);
    expect(w.nodes.get(victim.id)?.state).toBe('terminated');
    expect(w.runUntil(settled(w, 'c', 2))).toBe(true);
    expect(w.events.some((e) => e.startsWith('node-unreachable c-1: its machine stopped'))).toBe(true);
  });

  test('a node killed with its machine: the new attempt does not take the dead peer, still suspect, for its own; the leader forgets the dead one', () => {
    const w = new World();
    w.detectLagMs = 5_000;
    w.idIsName = true;
    w.createCluster('c', 1);
    expect(w.runUntil(settled(w, 'c', 1))).toBe(true);
    const old = w.records('c')[0]!;
    const machine = w.live('c')[0]!;
    // The provider says gone at once; the mesh holds the peer suspect (up) for 5 s more.
    w.terminate(machine.id);
    w.round();
    w.advance(1000);
    w.round();
    const next = w.records('c')[0]!;
    expect(next.attempt).toBe(2);
    expect(next.clientToken).not.toBe(old.clientToken);
    expect(next.formerPeers).toEqual([old.peer]);
    expect(w.runUntil(settled(w, 'c', 1))).toBe(true);
    const now = w.records('c')[0]!;
    expect(now.peer).toBeDefined();
    expect(now.peer).not.toBe(old.peer);
    expect(w.runUntil(() => w.forgotten.has(old.peer!), 10)).toBe(true);
  });

  test('a slot removed and made again gets a token of its own, never its old machine', () => {
    const w = new World();
    w.createCluster('c', 2);
    expect(w.runUntil(settled(w, 'c', 2))).toBe(true);
    const first = w.records('c').find((r) => r.index === 2)!.clientToken;
    w.change('c', (c) => ({ ...c, target: 1 }));
    expect(w.runUntil(settled(w, 'c', 1))).toBe(true);
    w.change('c', (c) => ({ ...c, target: 2 }));
    expect(w.runUntil(settled(w, 'c', 2))).toBe(true);
    const again = w.records('c').find((r) => r.index === 2)!;
    expect(again.attempt).toBe(1);
    expect(again.clientToken).not.toBe(first);
    expect(w.calls.create).toBe(3);
  });

  test("a deployed node's peer gone past the grace is replaced; back within it, it is kept", () => {
    const w = new World();
    w.createCluster('c', 1);
    expect(w.runUntil(settled(w, 'c', 1))).toBe(true);
    const n = w.live('c')[0]!;
    w.downPeers.add(n.id);
    w.runUntil(() => false, 10);
    expect(w.records('c')[0]?.state).toBe('unreachable');
    w.downPeers.delete(n.id);
    w.runUntil(() => false, 3);
    expect(w.records('c')[0]?.state).toBe('deployed');
    w.downPeers.add(n.id);
    expect(w.runUntil(() => w.nodes.get(n.id)?.state === 'terminated', TIMING.unreachableGraceMs / 1000 + 10)).toBe(true);
    expect(w.runUntil(settled(w, 'c', 1))).toBe(true);
  });

  test('no capacity in one zone: the node is made in another, with a new client token', () => {
    const w = new World();
    w.noCapacity.add('a');
    w.createCluster('c', 1);
    w.round();
    w.advance(1000);
    w.round();
    const r = w.records('c')[0]!;
    expect(r.zone).not.toBe('a');
    expect(r.attempt).toBe(2);
    expect(w.runUntil(settled(w, 'c', 1))).toBe(true);
    expect(w.live('c')[0]?.zone).not.toBe('a');
  });

  test('bad credentials: one clear failure, then one call per backoff, never a storm', () => {
    const w = new World();
    w.createFailure = new ProviderError('credentials', 'AuthFailure', 'AWS was not able to validate the provided access credentials');
    w.createCluster('c', 1);
    w.runUntil(() => false, 600); // ten minutes of rounds a second apart
    // 10 s, 20, 40, 80, 160, 320: about 7 attempts in 600 s, not 600.
    expect(w.calls.create).toBeLessThanOrEqual(8);
    expect(w.calls.create).toBeGreaterThanOrEqual(5);
    const r = w.records('c')[0]!;
    expect(['failed', 'creating']).toContain(r.state);
    expect(w.events.filter((e) => e.includes('AuthFailure')).length).toBe(w.calls.create);
    w.createFailure = undefined;
    expect(w.runUntil(settled(w, 'c', 1), 700)).toBe(true);
  });

  test('a leader that dies between the create call and its answer leaves its successor the token: no duplicate', () => {
    const w = new World();
    w.listLagMs = 20_000; // and the provider does not list the new node yet
    w.createCluster('c', 2);
    w.round();
    expect(w.nodes.size).toBe(2);
    w.crash(); // the answers are lost with the leader
    w.advance(1000);
    const again = w.round(); // the new leader repeats the creates with the same tokens
    expect(again.creates.length).toBe(2);
    expect(w.nodes.size).toBe(2);
    expect(w.runUntil(settled(w, 'c', 2))).toBe(true);
    expect(w.nodes.size).toBe(2);
  });

  test('a node whose peer never joins is terminated after the provision timeout and retried after a backoff', () => {
    const w = new World();
    w.neverJoin = true;
    w.createCluster('c', 1);
    expect(w.runUntil(() => w.records('c')[0]?.state === 'failed', TIMING.provisionTimeoutMs / 1000 + 20)).toBe(true);
    expect(w.records('c')[0]?.error).toMatch(/did not join within 120 s/);
    expect(w.live('c').length).toBe(0);
    w.neverJoin = false;
    expect(w.runUntil(settled(w, 'c', 1))).toBe(true);
  });

  test('a node the provider holds for the cluster but no record names is terminated after the grace', () => {
    const w = new World();
    w.createCluster('c', 1);
    expect(w.runUntil(settled(w, 'c', 1))).toBe(true);
    const stray = w.create({ node: 'c-9', cluster: 'c', clientToken: 'abc0000000000001-9-1', zone: 'a', nodeType: 't', tags: [], options: {} }) as { id: string };
    w.runUntil(() => false, 30);
    expect(w.nodes.get(stray.id)?.state).not.toBe('terminated');
    expect(w.runUntil(() => w.nodes.get(stray.id)?.state === 'terminated', 60)).toBe(true);
    expect(w.live('c').length).toBe(1);
  });

  test('rm terminates every node, then removes the cluster and its timeline', () => {
    const w = new World();
    w.createCluster('c', 3);
    expect(w.runUntil(settled(w, 'c', 3))).toBe(true);
    expect(w.state.get('timeline', 'c')).toBeDefined();
    w.change('c', (c) => ({ ...c, terminating: true }));
    expect(w.runUntil(() => w.cluster('c') === undefined)).toBe(true);
    expect(w.live('c').length).toBe(0);
    expect(w.records('c').length).toBe(0);
    expect(w.state.get('timeline', 'c')).toBeUndefined();
  });

  test('a slot whose attempts share one provider id (local nodes) is terminated at once after a replacement', () => {
    const w = new World();
    w.idIsName = true;
    w.createCluster('c', 1);
    expect(w.runUntil(settled(w, 'c', 1))).toBe(true);
    w.live('c')[0]!.state = 'stopped';
    expect(w.runUntil(() => w.records('c')[0]?.attempt === 2 && w.deployed('c') === 1)).toBe(true);
    w.change('c', (c) => ({ ...c, terminating: true }));
    // The terminate of attempt 1 was asked moments ago: attempt 2's is another call.
    expect(w.runUntil(() => w.cluster('c') === undefined, 5)).toBe(true);
  });

  test('a provider that cannot list: nothing decided, its words said once in the cluster log, cleared when it answers', () => {
    const w = new World();
    w.createCluster('c', 2);
    w.listFails = true;
    const r = w.round();
    expect(r.ops.map((o) => `${o.op} ${o.kind}`)).toEqual(['put timeline']);
    expect(r.creates).toEqual([]);
    expect(r.status[0]?.error).toMatch(/RequestLimitExceeded/);
    expect(r.events.map((e) => e.type)).toEqual(['nodecluster-error']);
    expect((w.state.get('timeline', 'c')?.spec as { error?: string }).error).toMatch(/RequestLimitExceeded/);
    const again = w.round();
    expect(again.ops).toEqual([]);
    expect(again.events).toEqual([]);
    w.listFails = false;
    w.round();
    expect((w.state.get('timeline', 'c')?.spec as { error?: string }).error).toBeUndefined();
    expect(w.records('c').length).toBe(2);
  });

  test('the scheduler grows a cluster whose nodes would carry a pending service\'s tags, and an idle node goes after the cool-down', () => {
    const w = new World();
    w.createCluster('gpu', 0, { min: 0, max: 2, tags: ['gpu=yes'], scaleDownAfterS: 30 });
    w.createCluster('plain', 0, { min: 0, max: 5 });
    w.demands = [{ service: 'ml/train', reason: { kind: 'no-tagged-node', tags: ['gpu=yes'] }, unplaced: 2 }];
    const first = w.round();
    expect(first.events.map((e) => e.detail)).toContain('gpu: 0 -> 1 nodes: service ml/train has 2 container(s) pending (no node carries tags gpu=yes)');
    // One node at a time: no second growth while the first is coming up.
    expect(w.runUntil(() => w.deployed('gpu') === 1)).toBe(true);
    expect(w.cluster('gpu')?.target).toBe(1);
    expect(w.cluster('plain')?.target).toBe(0);
    // The new node took the containers: nothing pending, the node busy, nothing more grows.
    w.demands = [];
    w.busy.add('gpu-1');
    w.runUntil(() => false, 60);
    expect(w.cluster('gpu')?.target).toBe(1);
    // The service is removed: the node runs nothing, and after 30 s it goes, down to min.
    w.busy.clear();
    w.runUntil(() => false, 20);
    expect(w.cluster('gpu')?.target).toBe(1);
    expect(w.runUntil(() => w.cluster('gpu')?.target === 0 && w.live('gpu').length === 0, 40)).toBe(true);
    expect(w.events.some((e) => e.includes('gpu: 1 -> 0 nodes: gpu-1 has run nothing for 30 s'))).toBe(true);
  });

  test('autoscaling: never past max, never below min, not for tags a new node would not carry, and an empty node goes before a busy one', () => {
    const w = new World();
    w.createCluster('c', 2, { min: 1, max: 2, scaleDownAfterS: 5 });
    expect(w.runUntil(settled(w, 'c', 2))).toBe(true);
    w.demands = [{ service: 's', reason: { kind: 'no-tagged-node', tags: [] }, unplaced: 1 }, { service: 't', reason: { kind: 'no-tagged-node', tags: ['ssd'] }, unplaced: 1 }];
    w.runUntil(() => false, 5);
    expect(w.cluster('c')?.target).toBe(2);
    w.demands = [];
    w.busy.add('c-2');
    expect(w.runUntil(() => w.cluster('c')?.target === 1 && w.records('c').length === 1, 30)).toBe(true);
    expect(w.records('c').map((r) => r.name)).toEqual(['c-2']);
    w.busy.clear();
    w.runUntil(() => false, 30);
    expect(w.cluster('c')?.target).toBe(1);
  });

  test('termination drains first: a node that still runs containers is terminated once they have moved, or after the drain timeout', () => {
    const w = new World();
    w.createCluster('c', 3);
    expect(w.runUntil(settled(w, 'c', 3))).toBe(true);
    for (const n of ['c-1', 'c-2', 'c-3']) w.busy.add(n);
    w.change('c', (c) => ({ ...c, target: 2, min: 2, max: 2 }));
    w.runUntil(() => false, 30);
    const r3 = w.records('c').find((r) => r.name === 'c-3');
    expect(r3?.state).toBe('terminating');
    expect(w.live('c').length).toBe(3);
    w.busy.delete('c-3'); // the scheduler moved its containers
    expect(w.runUntil(() => w.live('c').length === 2, 5)).toBe(true);
    // Still busy after the timeout: terminated anyway.
    w.change('c', (c) => ({ ...c, target: 1, min: 1, max: 1 }));
    expect(w.runUntil(() => w.live('c').length === 1, DRAIN_TIMEOUT_MS / 1000 + 10)).toBe(true);
  });

  test('an upgrade replaces every node one at a time: the new one joins before an old one goes, never fewer than the target serving', () => {
    const w = new World();
    w.createCluster('c', 3);
    expect(w.runUntil(settled(w, 'c', 3))).toBe(true);
    w.change('c', (c) => ({ ...c, generation: 2, nodeType: 't2' }));
    let fewest = 3;
    let most = 3;
    const done = () => w.records('c').every((r) => r.generation === 2 && r.state === 'deployed') && w.records('c').length === 3 && w.live('c').length === 3;
    for (let i = 0; i < 600 && !done(); i++) {
      w.round();
      w.advance(1000);
      fewest = Math.min(fewest, w.deployed('c'));
      most = Math.max(most, w.live('c').length);
    }
    expect(done()).toBe(true);
    expect(fewest).toBe(3);
    expect(most).toBe(4);
    expect(w.calls.create).toBe(6);
    expect(w.events.filter((e) => e.includes('replaced by an upgraded node (type t2)')).length).toBe(3);
  });

  test('zones: least populated first, avoided ones last; backoff doubles up to its cap', () => {
    expect(chooseZone(['a', 'b'], [], [])).toBe('a');
    expect(chooseZone(['a', 'b'], [], ['a'])).toBe('b');
    expect(chooseZone(['a'], [], ['a'])).toBeUndefined();
    expect(backoffMs(1)).toBe(10_000);
    expect(backoffMs(2)).toBe(20_000);
    expect(backoffMs(50)).toBe(BACKOFF_MAX_MS);
  });
});
