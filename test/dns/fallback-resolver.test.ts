// The second resolver a container gets (mesh/network/network.ts, mesh/network/docker/container-info.ts): which
// other peer's DNS a host's containers list second, and the resolv.conf that lists it.

import { describe, expect, test } from 'vitest';
import { resolvConf } from '../../mesh/network/docker/container-info.ts';
import type { DataplaneRecord } from '../../mesh/endpoint.ts';
import type { PeerLiveness } from '../../mesh/mesh-view.ts';
import { chooseFallbackResolver, parseResolverOffer, remoteRoutes } from '../../mesh/network/network.ts';

const offers = [
  { peer: 'p1', addr: '10.32.0.1' },
  { peer: 'p2', addr: '10.32.64.1' },
  { peer: 'p3', addr: '10.32.128.1' },
  { peer: 'p4', addr: '10.32.192.1' },
];
const all = (state: PeerLiveness) => () => state;

describe('the second resolver of a host\'s containers', () => {
  test('is another peer that is alive, never the host itself', () => {
    for (const self of ['p1', 'p2', 'p3', 'p4']) {
      const pick = chooseFallbackResolver(self, offers, all('alive'));
      expect(pick).toBeDefined();
      expect(pick).not.toBe(offers.find((o) => o.peer === self)!.addr);
    }
  });

  test('moves to another live peer when the chosen one is suspect, dead or gone, and back when it returns', () => {
    const first = chooseFallbackResolver('p1', offers, all('alive'))!;
    const chosen = offers.find((o) => o.addr === first)!.peer;
    for (const state of ['suspect', 'dead', 'left', undefined] as const) {
      const pick = chooseFallbackResolver('p1', offers, (id) => (id === chosen ? state : 'alive'));
      expect(pick).toBeDefined();
      expect([first, offers[0]!.addr]).not.toContain(pick);
    }
    expect(chooseFallbackResolver('p1', offers, all('alive'))).toBe(first);
  });

  test('the choice of one host does not change when an unrelated peer goes', () => {
    const first = chooseFallbackResolver('p1', offers, all('alive'))!;
    const other = offers.find((o) => o.peer !== 'p1' && o.addr !== first)!.peer;
    expect(chooseFallbackResolver('p1', offers, (id) => (id === other ? 'dead' : 'alive'))).toBe(first);
  });

  test('hosts spread over the candidates rather than all choosing one', () => {
    const many = Array.from({ length: 40 }, (_, i) => ({ peer: `peer-${i}`, addr: `10.32.${i}.1` }));
    const picks = new Set(many.map((o) => chooseFallbackResolver(o.peer, many, all('alive'))));
    expect(picks.size).toBeGreaterThan(10);
  });

  test('none when no other peer offers DNS or none is alive', () => {
    expect(chooseFallbackResolver('p1', [offers[0]!], all('alive'))).toBeUndefined();
    expect(chooseFallbackResolver('p1', offers, (id) => (id === 'p1' ? 'alive' : 'dead'))).toBeUndefined();
  });

  test('kept while no peer is alive (all briefly suspect after our own restart), unless its peer left', () => {
    const first = chooseFallbackResolver('p1', offers, all('alive'))!;
    const chosen = offers.find((o) => o.addr === first)!.peer;
    expect(chooseFallbackResolver('p1', offers, (id) => (id === 'p1' ? 'alive' : 'suspect'), first)).toBe(first);
    expect(chooseFallbackResolver('p1', offers, (id) => (id === 'p1' ? 'alive' : 'dead'), first)).toBe(first);
    expect(chooseFallbackResolver('p1', offers, (id) => (id === 'p1' ? 'alive' : id === chosen ? 'left' : 'dead'), first)).toBeUndefined();
    expect(chooseFallbackResolver('p1', offers.filter((o) => o.peer !== chosen), (id) => (id === 'p1' ? 'alive' : 'dead'), first)).toBeUndefined();
  });

  test('an offer record is read only when well formed', () => {
    expect(parseResolverOffer('{"v":1,"addr":"10.32.0.9"}')).toBe('10.32.0.9');
    for (const bad of ['', 'null', '{"v":2,"addr":"10.32.0.9"}', '{"v":1,"addr":"example.com"}', '{"v":1}', '[1]', '{"v":1,"addr":"10.32.0.9\\nnameserver 1.2.3.4"}']) {
      expect(parseResolverOffer(bad), bad).toBeUndefined();
    }
  });

  test('resolv.conf lists the own peer first, the other second, with a short timeout', () => {
    const text = resolvConf('169.254.53.1', 'weft.local', 'shop', '10.32.64.1');
    expect(text).toMatch(/\nsearch shop\.weft\.local weft\.local\nnameserver 169\.254\.53\.1\nnameserver 10\.32\.64\.1\noptions ndots:1 timeout:1 attempts:2\n$/);
    expect(resolvConf('169.254.53.1', 'weft.local')).toMatch(/\nnameserver 169\.254\.53\.1\noptions ndots:1\n$/);
  });

  test("other peers' DNS addresses are routed to them; our own and those of hosts without a data plane are not", () => {
    const host = (k: string): DataplaneRecord => ({ v: 1, mode: 'encrypted', endpoint: '192.0.2.1', wgPublicKey: k.repeat(43) + '=' });
    const hosts = new Map([['me', host('A')], ['b', host('B')]]);
    const resolvers = [{ peer: 'me', addr: '10.32.0.1' }, { peer: 'b', addr: '10.32.64.1' }, { peer: 'stranger', addr: '10.32.128.1' }];
    expect(remoteRoutes('me', [], hosts, resolvers)).toEqual([{ addr: '10.32.64.1', peer: 'b' }]);
  });
});
