// Which remote addresses a host routes where, from the registry (pure parts of mesh/network/network.ts).
import { describe, expect, test } from 'vitest';
import { dropSharedKeys, remoteRoutes } from '../../mesh/network/network.ts';
import type { ContainerEndpoint, DataplaneRecord } from '../../mesh/endpoint.ts';

const key = (c: string) => c.repeat(43) + '=';
const host = (k: string, extra: Partial<DataplaneRecord> = {}): DataplaneRecord => ({ v: 1, mode: 'encrypted', endpoint: '192.0.2.1', wgPublicKey: k, ...extra });
const c = (addr: string, peer: string, since: number, state: 'running' | 'stopped' = 'running'): ContainerEndpoint => ({
  v: 1, id: `${peer}-${addr}-${since}`, name: 'x', addr, mac: '02:00:00:00:00:01', peer, host: peer, state, health: 'none', labels: {}, since,
});

describe('remoteRoutes', () => {
  test("others' containers and exposed hosts are routed to their host; ours and unknown hosts' are not", () => {
    const hosts = new Map([['me', host(key('A'))], ['b', host(key('B'), { exposed: '10.32.9.9' })]]);
    const routes = remoteRoutes('me', [c('10.32.0.1', 'me', 1), c('10.32.0.2', 'b', 1), c('10.32.0.3', 'stranger', 1)], hosts);
    expect(routes).toEqual([{ addr: '10.32.0.2', peer: 'b' }, { addr: '10.32.9.9', peer: 'b' }]);
  });

  test('a moved container: the running record wins over the held one, then the newest', () => {
    const hosts = new Map([['a', host(key('A'))], ['b', host(key('B'))]]);
    expect(remoteRoutes('me', [c('10.32.0.5', 'a', 2, 'stopped'), c('10.32.0.5', 'b', 1)], hosts)).toEqual([{ addr: '10.32.0.5', peer: 'b' }]);
    expect(remoteRoutes('me', [c('10.32.0.5', 'a', 3), c('10.32.0.5', 'b', 1)], hosts)).toEqual([{ addr: '10.32.0.5', peer: 'a' }]);
  });
});

describe('dropSharedKeys', () => {
  test('two peers with one WireGuard key (or VXLAN MAC) are both left out, and reported', () => {
    const hosts = new Map([['a', host(key('A'))], ['b', host(key('A'))], ['c', host(key('C'))]]);
    const seen: string[] = [];
    dropSharedKeys(hosts, (p) => seen.push(p));
    expect([...hosts.keys()]).toEqual(['c']);
    expect(seen.sort()).toEqual(['a', 'b']);
    const fast = new Map([['a', { v: 1, mode: 'fast', endpoint: '192.0.2.1', vxlanMac: '02:00:00:00:00:09' } as DataplaneRecord], ['b', { v: 1, mode: 'fast', endpoint: '192.0.2.2', vxlanMac: '02:00:00:00:00:0a' } as DataplaneRecord]]);
    dropSharedKeys(fast, () => undefined);
    expect(fast.size).toBe(2);
  });
});
