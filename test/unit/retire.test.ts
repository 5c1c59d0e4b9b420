// Which terminated nodes' peers the leader forgets: only once their machine is gone by the
// provider's word, never one that is up or still named by a record.
import { describe, expect, test } from 'vitest';
import type { NodeRecord } from '../../provisioner/cluster/node-record.ts';
import type { ProviderNode } from '../../provisioner/provider.ts';
import type { Listing } from '../../provisioner/reconcile.ts';
import { notePeerMachines, peersToRetire, type PeerMachine } from '../../provisioner/retire.ts';

const UID = '0123456789abcdef';
const record = (index: number, attempt: number, peer?: string): NodeRecord => ({
  cluster: 'c', index, name: `c-${index}`, attempt, clientToken: `${UID}-${index}-${attempt}`, zone: 'local',
  state: peer ? 'deployed' : 'provisioning', since: 0, providerId: `c-${index}`, ...(peer ? { peer } : {}), timeline: [],
});
const machine = (index: number, attempt: number, state: ProviderNode['state']): ProviderNode => ({
  id: `c-${index}`, node: `c-${index}`, cluster: 'c', clientToken: `${UID}-${index}-${attempt}`, zone: 'local', state,
});

describe('retiring the peers of terminated nodes', () => {
  test('a replaced node: its old peer goes once the old attempt is terminated, not before; the new one stays', () => {
    const known = new Map<string, PeerMachine>();
    notePeerMachines(known, [record(1, 1, 'old'), record(2, 1, 'two')]);
    // Replaced: the record is on attempt 2 (its peer not joined yet); the machine of attempt 1
    // still shows as running, then as terminated. (A local node keeps its id across attempts.)
    const records = [record(1, 2), record(2, 1, 'two')];
    const at = (nodes: ProviderNode[], up: string[] = ['two']) => peersToRetire({
      known, records, listings: new Map<string, Listing>([['c', { nodes, zones: ['local'] }]]), clusters: new Set(['c']), member: (p: string) => (up.includes(p) ? 'up' : 'down'),
    });
    expect(at([machine(1, 1, 'running'), machine(2, 1, 'running')])).toEqual([]);
    expect(at([machine(1, 1, 'running')], ['two', 'old'])).toEqual([]); // back up: never
    expect(at([machine(1, 1, 'terminated'), machine(1, 2, 'pending'), machine(2, 1, 'running')])).toEqual(['old']);
    expect(at([machine(1, 2, 'pending'), machine(2, 1, 'running')])).toEqual(['old']); // no longer listed
    expect(at([machine(2, 1, 'running')], [])).toEqual(['old']); // 'two' is down but named by its record
  });

  test('a provider that does not answer: nothing is retired; a removed cluster: its peers go once down', () => {
    const known = new Map<string, PeerMachine>([['old', { cluster: 'c', clientToken: `${UID}-1-1` }]]);
    const base = { known, records: [] as NodeRecord[], member: () => 'down' as const };
    expect(peersToRetire({ ...base, listings: new Map<string, Listing>([['c', { error: 'RequestLimitExceeded' }]]), clusters: new Set(['c']) })).toEqual([]);
    expect(peersToRetire({ ...base, listings: new Map(), clusters: new Set(['c']) })).toEqual([]);
    expect(peersToRetire({ ...base, listings: new Map(), clusters: new Set() })).toEqual(['old']);
    expect(peersToRetire({ ...base, member: () => 'up', listings: new Map(), clusters: new Set() })).toEqual([]);
    expect(peersToRetire({ ...base, member: () => undefined, listings: new Map(), clusters: new Set() })).toEqual([]); // forgotten already
  });

  test('a peer belongs to the attempt that first named it: a later record naming it does not move it', () => {
    const known = new Map<string, PeerMachine>();
    notePeerMachines(known, [record(1, 1, 'old')]);
    notePeerMachines(known, [record(1, 2, 'old')]);
    expect(known.get('old')?.clientToken).toBe(`${UID}-1-1`);
  });

  test("a record's former peers: retired once down, while no other machine is listed under the slot's name", () => {
    const r = { ...record(1, 3), formerPeers: ['p1', 'p2'] };
    const at = (nodes: ProviderNode[], states: Record<string, 'up' | 'down'>) => peersToRetire({
      known: new Map(), records: [r], listings: new Map<string, Listing>([['c', { nodes, zones: ['local'] }]]), clusters: new Set(['c']), member: (p) => states[p],
    });
    expect(at([machine(1, 3, 'pending')], { p1: 'down', p2: 'up' })).toEqual(['p1']);
    expect(at([machine(1, 3, 'pending')], { p2: 'down' })).toEqual(['p2']); // p1 forgotten already
    expect(at([machine(1, 2, 'stopped'), machine(1, 3, 'pending')], { p1: 'down', p2: 'down' })).toEqual([]);
    expect(at([machine(1, 2, 'terminated'), machine(1, 3, 'pending')], { p1: 'down', p2: 'down' })).toEqual(['p1', 'p2']);
  });
});
