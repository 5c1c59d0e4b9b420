// What the mesh's DNS answers from the registry: which container records, under which names,
// and how extra records added and removed through different peers settle. The pure part,
// and the incremental index checked against a build from scratch over random histories.

import { describe, expect, test } from 'vitest';
import type { ContainerEndpoint } from '../../mesh/endpoint.ts';
import { CONTAINER_PREFIX, DNS_EXTRA_PREFIX } from '../../mesh/keyspace.ts';
import type { PeerLiveness } from '../../mesh/mesh-view.ts';
import type { Entry } from '../../mesh/replication/wire.ts';
import { buildRecordSet, type DnsName, type DnsRecordSet } from '../../dns/records.ts';
import { type ExtraVote, decidingVote, extraKey, nextVoteAt, parseExtraKey } from '../../dns/extra-votes.ts';
import { RegistryIndex } from '../../dns/registry-index.ts';
import { registryInputs } from '../../dns/registry-inputs.ts';
import { Rng, seeds } from '../sim/rng.ts';

const ep = (owner: string, o: Partial<ContainerEndpoint> & { id: string; name: string; addr: string }): ContainerEndpoint => ({
  v: 1, mac: '02:42:0a:20:00:02', peer: owner, host: owner, state: 'running', health: 'none', labels: {}, since: 1, ...o,
});
const entry = (owner: string, e: ContainerEndpoint): Entry => ({ owner, key: CONTAINER_PREFIX + e.id, version: 1, value: JSON.stringify(e), sig: '' });
const vote = (owner: string, name: string, ip: string, at: number, present: boolean): Entry =>
  ({ owner, key: extraKey(name, ip), version: 1, value: JSON.stringify({ v: 1, at, present } satisfies ExtraVote), sig: '' });
const alive = () => 'alive' as const;

/** Names and sorted data: what the zone makes of a set (order does not matter to answers). */
function normal(set: DnsRecordSet | Map<string, DnsName>): Record<string, string> {
  const names = set instanceof Map ? set : set.names;
  const out: Record<string, string> = {};
  for (const [n, d] of names) {
    out[n] = [...d.addrs].sort().join(',') + ' | ' + (d.srv ?? []).map((s) => `${s.port}/${s.proto}/${s.service ?? ''}/${s.target}`).sort().join(',');
  }
  return out;
}

describe('which containers are answered', () => {
  const inputs = (entries: Entry[], liveness: (id: string) => PeerLiveness | undefined = alive) =>
    buildRecordSet(registryInputs(entries, [], liveness).inputs).set;

  test('running containers with no health check or a passing one are answered; stopped, unhealthy and starting ones are not', () => {
    const set = inputs([
      entry('A', ep('A', { id: 'c1', name: 'up', addr: '10.32.0.1' })),
      entry('A', ep('A', { id: 'c2', name: 'healthy', addr: '10.32.0.2', health: 'healthy' })),
      entry('A', ep('A', { id: 'c3', name: 'stopped', addr: '10.32.0.3', state: 'stopped' })),
      entry('A', ep('A', { id: 'c4', name: 'sick', addr: '10.32.0.4', health: 'unhealthy' })),
      entry('A', ep('A', { id: 'c5', name: 'starting', addr: '10.32.0.5', health: 'starting' })),
    ]);
    expect(Object.keys(normal(set)).sort()).toEqual(['healthy.weft.local', 'up.weft.local']);
  });

  test("containers of a dead or departed peer are not answered; a suspect peer's still are", () => {
    const liveness = (id: string): PeerLiveness | undefined => ({ A: 'dead', B: 'left', C: 'suspect' } as Record<string, PeerLiveness>)[id];
    const set = inputs([
      entry('A', ep('A', { id: 'a', name: 'on-dead', addr: '10.32.0.1' })),
      entry('B', ep('B', { id: 'b', name: 'on-left', addr: '10.32.0.2' })),
      entry('C', ep('C', { id: 'c', name: 'on-suspect', addr: '10.32.0.3' })),
      entry('D', ep('D', { id: 'd', name: 'on-unknown', addr: '10.32.0.4' })),
    ], liveness);
    expect(Object.keys(normal(set)).sort()).toEqual(['on-suspect.weft.local', 'on-unknown.weft.local']);
  });

  test('weft and Compose labels place containers in stacks and services, with hostnames, aliases and ports', () => {
    const set = inputs([
      entry('A', ep('A', { id: '1', name: 'shop_web_1', addr: '10.32.0.1', labels: { 'com.docker.compose.project': 'shop', 'com.docker.compose.service': 'web', 'com.docker.compose.container-number': '1' }, ports: [{ port: 80, proto: 'tcp', name: 'http' }] })),
      entry('B', ep('B', { id: '2', name: 'db-1', addr: '10.32.0.2', labels: { 'weft.stack': 'shop', 'weft.service': 'db' }, hostname: 'primary', aliases: ['pg'] })),
    ]);
    expect(normal(set)).toEqual({
      'web-1.shop.weft.local': '10.32.0.1 | 80/tcp/http/web-1.shop.weft.local',
      'web.shop.weft.local': '10.32.0.1 | 80/tcp/http/web-1.shop.weft.local',
      'db-1.shop.weft.local': '10.32.0.2 | ',
      'primary.shop.weft.local': '10.32.0.2 | ',
      'pg.shop.weft.local': '10.32.0.2 | ',
      'db.shop.weft.local': '10.32.0.2 | ',
    });
  });

  test("a moved container's old record does not double its address: the running, newest one is answered", () => {
    const set = inputs([
      entry('A', ep('A', { id: 'x', name: 'old-name', addr: '10.32.0.9', since: 100 })),
      entry('B', ep('B', { id: 'x', name: 'new-name', addr: '10.32.0.9', since: 200 })),
    ]);
    expect(Object.keys(normal(set))).toEqual(['new-name.weft.local']);
  });

  test('a record signed by another peer than the one it names, or malformed, is left out with a reason', () => {
    const forged = entry('B', ep('A', { id: 'f', name: 'forged', addr: '10.32.0.1' }));
    const broken: Entry = { owner: 'A', key: CONTAINER_PREFIX + 'z', version: 1, value: '{"v":1', sig: '' };
    const r = registryInputs([forged, broken], [], alive);
    expect(r.inputs.containers).toEqual([]);
    expect(r.invalid.map((i) => i.reason)).toEqual(['names peer A but is signed by B', 'not JSON']);
  });
});

describe('extra records added and removed through any peer', () => {
  test('the newest vote for a name and address decides, across owners', () => {
    const extras = (entries: Entry[]) => registryInputs([], entries, alive).inputs.extras;
    expect(extras([vote('A', 'db.example.com', '192.168.1.5', 10, true)])).toEqual([{ name: 'db.example.com', addr: '192.168.1.5' }]);
    // B removed it after seeing A's add: B's vote is newer, whatever the order they arrive in.
    expect(extras([vote('A', 'db.example.com', '192.168.1.5', 10, true), vote('B', 'db.example.com', '192.168.1.5', 11, false)])).toEqual([]);
    expect(extras([vote('B', 'db.example.com', '192.168.1.5', 11, false), vote('A', 'db.example.com', '192.168.1.5', 10, true)])).toEqual([]);
    // A adds it again later.
    expect(extras([vote('A', 'db.example.com', '192.168.1.5', 12, true), vote('B', 'db.example.com', '192.168.1.5', 11, false)])).toHaveLength(1);
    // Equal times: the higher owner id decides, the same on every peer.
    expect(decidingVote([['A', { v: 1, at: 5, present: true }], ['B', { v: 1, at: 5, present: false }]])![0]).toBe('B');
  });

  test('a new vote is placed after every vote seen for the key, even if our clock is behind', () => {
    expect(nextVoteAt([{ v: 1, at: 5000, present: true }], 1000)).toBe(5001);
    expect(nextVoteAt([{ v: 1, at: 5000, present: true }], 9000)).toBe(9000);
  });

  test('keys carry a normalized name and an IPv4 address; anything else is ignored', () => {
    expect(parseExtraKey(extraKey('db.weft.local', '10.0.0.1'))).toEqual({ name: 'db.weft.local', addr: '10.0.0.1' });
    expect(parseExtraKey(`${DNS_EXTRA_PREFIX}DB.weft.local/10.0.0.1`)).toBeUndefined();
    expect(parseExtraKey(`${DNS_EXTRA_PREFIX}db.weft.local/10.0.0.300`)).toBeUndefined();
    expect(parseExtraKey(`${DNS_EXTRA_PREFIX}/10.0.0.1`)).toBeUndefined();
    expect(parseExtraKey('container/x')).toBeUndefined();
  });
});

describe('the incremental index equals a build from scratch', () => {
  // Small pools, so that histories collide: same address on two owners, names shared by
  // aliases, services growing and shrinking, peers dying and coming back, votes racing.
  // Dynamic links too: linkers in two stacks and none (healthy or not, stopped, moving, on
  // owners that die), targets that appear and go, aliases at real names (containers' and
  // extras'), aliases of aliases, one alias to several targets, malformed and too many.
  const OWNERS = ['A', 'B', 'C'];
  const STATES: PeerLiveness[] = ['alive', 'suspect', 'dead', 'left', 'alive'];
  const LINKS = [
    'b=web', 'b=db', 'c=web.shop', 'c=db.other', 'n1=web', 'web=web', 'd=b', 'x=n3', 'e=n2', ' B = WEB ',
    'g=web.other', 'h=n0', 'bad', '=web', 'f=a.b.c', 'i=n-1.shop',
  ];
  const TOO_MANY = Array.from({ length: 40 }, (_, i) => `l${i % 3}=${i % 2 ? 'web' : 'db'}`).join(',');
  const labelsOf = (rng: Rng, pick: <T>(xs: readonly T[]) => T): Record<string, string> => {
    const r = rng.next();
    const labels: Record<string, string> = r < 0.35
      ? { 'weft.stack': 'shop', 'weft.service': pick(['web', 'db', 'n1']) }
      : r < 0.5 ? { 'weft.stack': 'other', 'weft.service': pick(['web', 'db']) } : {};
    if (rng.next() < 0.4) {
      labels['weft.links'] = rng.next() < 0.05 ? TOO_MANY : Array.from({ length: rng.int(3) + 1 }, () => pick(LINKS)).join(',');
    }
    return labels;
  };

  test.each(seeds(200))('seed %i', (seed) => {
    const rng = new Rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)]!;
    const live = new Map<string, PeerLiveness>();
    const liveness = (id: string) => live.get(id);
    const index = new RegistryIndex('weft.local', liveness);
    const containers = new Map<string, Entry>();
    const extras = new Map<string, Entry>();
    let snapshot = normal(new Map(index.names));
    for (let step = 0; step < 60; step++) {
      const r = rng.next();
      if (r < 0.55) {
        const owner = pick(OWNERS);
        const id = `c${rng.int(8)}`;
        const k = `${owner}\n${CONTAINER_PREFIX}${id}`;
        if (rng.next() < 0.2) {
          containers.delete(k);
          index.setContainer(owner, CONTAINER_PREFIX + id, null);
        } else {
          const e = entry(owner, ep(owner, {
            id, name: `n${rng.int(5)}`, addr: `10.32.0.${rng.int(6) + 1}`,
            state: rng.next() < 0.85 ? 'running' : 'stopped',
            health: pick(['none', 'none', 'healthy', 'unhealthy', 'starting'] as const),
            since: rng.int(4),
            labels: labelsOf(rng, pick),
            ...(rng.next() < 0.3 ? { aliases: [pick(['web', 'x', 'n2'])] } : {}),
            ...(rng.next() < 0.3 ? { ports: [{ port: pick([80, 443]), proto: 'tcp' as const }] } : {}),
          }));
          containers.set(k, e);
          index.setContainer(owner, e.key, e.value);
        }
      } else if (r < 0.8) {
        const owner = pick(OWNERS);
        const e = vote(owner, pick(['db.example.com', 'n1.weft.local', 'x.weft.local']), `192.168.0.${rng.int(3) + 1}`, rng.int(10), rng.next() < 0.6);
        const k = `${owner}\n${e.key}`;
        if (rng.next() < 0.15) {
          extras.delete(k);
          index.setExtra(owner, e.key, null);
        } else {
          extras.set(k, e);
          index.setExtra(owner, e.key, e.value);
        }
      } else {
        const owner = pick(OWNERS);
        live.set(owner, pick(STATES));
        index.ownerChanged(owner);
      }
      if (rng.next() < 0.5) continue; // several changes per flush, too
      const changed = new Set(index.flush());
      const built = buildRecordSet(registryInputs([...containers.values()], [...extras.values()], liveness).inputs);
      const now = normal(index.names);
      expect(now).toEqual(normal(built.set));
      expect(index.counts().skipped).toBe(built.skipped.length);
      // Every name whose data changed was reported (the server updates only those).
      for (const n of new Set([...Object.keys(now), ...Object.keys(snapshot)])) {
        if (now[n] !== snapshot[n]) expect(changed, `step ${step}: ${n}`).toContain(n);
      }
      snapshot = now;
    }
  });
});
