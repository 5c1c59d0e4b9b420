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
      known, records, listings: new Map<string, Listing>([['c', { nodes, zones: ['local'] }]]), clusters: new Set(['c']), up: (p) => up.includes(p),
    });
    expect(at([machine(1, 1, 'running'), machine(2, 1, 'running')])).toEqual([]);
    expect(at([machine(1, 1, 'running')], ['two', 'old'])).toEqual([]); // back up: never
    expect(at([machine(1, 1, 'terminated'), machine(1, 2, 'pending'), machine(2, 1, 'running')])).toEqual(['old']);
    expect(at([machine(1, 2, 'pending'), machine(2, 1, 'running')])).toEqual(['old']); // no longer listed
    expect(at([machine(2, 1, 'running')], [])).toEqual(['old']); // 'two' is down but named by its record
  });

  test('a provider that does not answer: nothing is retired; a removed cluster: its peers go once down', () => {
    const known = new Map<string, PeerMachine>([['old', { cluster: 'c', clientToken: `${UID}-1-1` }]]);
    const base = { known, records: [] as NodeRecord[], up: () => false };
    expect(peersToRetire({ ...base, listings: new Map<string, Listing>([['c', { error: 'RequestLimitExceeded' }]]), clusters: new Set(['c']) })).toEqual([]);
    expect(peersToRetire({ ...base, listings: new Map(), clusters: new Set(['c']) })).toEqual([]);
    expect(peersToRetire({ ...base, listings: new Map(), clusters: new Set() })).toEqual(['old']);
    expect(peersToRetire({ ...base, up: () => true, listings: new Map(), clusters: new Set() })).toEqual([]);
  });
});
