// Dynamic links (Tutum's): a container's `weft.links` label makes aliases answer what their
// targets answer, following them. Every case is checked through both paths, the build from
// scratch (registryInputs + buildRecordSet) and the incremental RegistryIndex, which must agree.
// The randomized equivalence over histories with links is in registry-source.test.ts.

import { describe, expect, test } from 'vitest';
import type { ContainerEndpoint } from '../../mesh/endpoint.ts';
import { CONTAINER_PREFIX } from '../../mesh/keyspace.ts';
import type { PeerLiveness } from '../../mesh/mesh-view.ts';
import type { Entry } from '../../mesh/replication/wire.ts';
import { extraKey } from '../../dns/extra-votes.ts';
import { MAX_LINKS, buildRecordSet, linkNames, type DnsName } from '../../dns/records.ts';
import { LINKS_LABEL } from '../../mesh/naming.ts';
import { RegistryIndex } from '../../dns/registry-index.ts';
import { registryInputs } from '../../dns/registry-inputs.ts';

type Ep = Partial<ContainerEndpoint> & { id: string; name: string; addr: string };

/** A registry held both ways: entries for the build from scratch, and an index fed alike. */
class World {
  readonly live = new Map<string, PeerLiveness>();
  readonly liveness = (id: string) => this.live.get(id) ?? 'alive';
  readonly index = new RegistryIndex('weft.local', this.liveness);
  private readonly containers = new Map<string, Entry>();
  private readonly extras = new Map<string, Entry>();

  put(owner: string, o: Ep): void {
    const ep: ContainerEndpoint = { v: 1, mac: '02:42:0a:20:00:02', peer: owner, host: owner, state: 'running', health: 'none', labels: {}, since: 1, ...o };
    const e: Entry = { owner, key: CONTAINER_PREFIX + o.id, version: 1, value: JSON.stringify(ep), sig: '' };
    this.containers.set(`${owner}\n${e.key}`, e);
    this.index.setContainer(owner, e.key, e.value);
  }

  remove(owner: string, id: string): void {
    this.containers.delete(`${owner}\n${CONTAINER_PREFIX}${id}`);
    this.index.setContainer(owner, CONTAINER_PREFIX + id, null);
  }

  extra(owner: string, name: string, ip: string): void {
    const e: Entry = { owner, key: extraKey(name, ip), version: 1, value: JSON.stringify({ v: 1, at: 1, present: true }), sig: '' };
    this.extras.set(`${owner}\n${e.key}`, e);
    this.index.setExtra(owner, e.key, e.value);
  }

  peer(owner: string, state: PeerLiveness): void {
    this.live.set(owner, state);
    this.index.ownerChanged(owner);
  }

  /** Applies the changes; both paths must give the same names. Returns the names, their
   *  data, what the index reported changed, and what was skipped. */
  settle() {
    const changed = this.index.flush();
    const built = buildRecordSet(registryInputs([...this.containers.values()], [...this.extras.values()], this.liveness).inputs);
    expect(normal(this.index.names)).toEqual(normal(built.set.names));
    expect(this.index.counts().skipped).toBe(built.skipped.length);
    return { names: normal(built.set.names), changed, skipped: built.skipped };
  }
}

/** name → "sorted addresses | sorted SRV". */
function normal(names: ReadonlyMap<string, DnsName>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [n, d] of names) out[n] = [...d.addrs].sort().join(',') + ' | ' + (d.srv ?? []).map((s) => `${s.port}/${s.proto}/${s.service ?? ''}/${s.target}`).sort().join(',');
  return out;
}

const web = (w: World, n: number, owner = 'A', addr = `10.32.0.${n + 1}`) => w.put(owner, {
  id: `web${n}`, name: `web-${n}.shop`, addr, labels: { 'weft.stack': 'shop', 'weft.service': 'web', 'weft.index': String(n) },
  ports: [{ port: 80, proto: 'tcp', name: 'http' }],
});
const mysql = (w: World) => w.put('B', { id: 'mysql1', name: 'mysql-1.data', addr: '10.32.5.1', labels: { 'weft.stack': 'data', 'weft.service': 'mysql', 'weft.index': '1' } });
const client = (w: World, links: string, o: Partial<Ep> = {}, owner = 'C') => w.put(owner, {
  id: 'client1', name: 'client-1.shop', addr: '10.32.9.1', labels: { 'weft.stack': 'shop', 'weft.service': 'client', 'weft.index': '1', [LINKS_LABEL]: links }, ...o,
});

describe('dynamic links: aliases answer what their targets answer', () => {
  test('the example: backend=web,db=mysql.data in stack shop, A and SRV, following scale, redeploy and moves', () => {
    const w = new World();
    for (const n of [1, 2, 3]) web(w, n);
    mysql(w);
    client(w, 'backend=web,db=mysql.data');
    let r = w.settle();
    expect(r.names['backend.shop.weft.local']).toBe(r.names['web.shop.weft.local']);
    expect(r.names['backend.shop.weft.local']).toBe('10.32.0.2,10.32.0.3,10.32.0.4 | 80/tcp/http/web-1.shop.weft.local,80/tcp/http/web-2.shop.weft.local,80/tcp/http/web-3.shop.weft.local');
    expect(r.names['db.shop.weft.local']).toBe('10.32.5.1 | ');
    // Scale up: the alias follows at once, and is reported changed.
    web(w, 4);
    r = w.settle();
    expect(r.changed).toContain('backend.shop.weft.local');
    expect(r.names['backend.shop.weft.local']).toBe(r.names['web.shop.weft.local']);
    expect(r.names['backend.shop.weft.local']!.split(' | ')[0]).toBe('10.32.0.2,10.32.0.3,10.32.0.4,10.32.0.5');
    // Redeploy web-2 at a new address, move web-3 to another peer, scale down web-4.
    web(w, 2, 'A', '10.32.0.20');
    w.remove('A', 'web3');
    web(w, 3, 'B', '10.32.0.30');
    w.remove('A', 'web4');
    r = w.settle();
    expect(r.names['backend.shop.weft.local']!.split(' | ')[0]).toBe('10.32.0.2,10.32.0.20,10.32.0.30');
    expect(r.names['backend.shop.weft.local']).toBe(r.names['web.shop.weft.local']);
    // A change elsewhere does not touch the alias.
    mysql(w);
    w.put('B', { id: 'other', name: 'other', addr: '10.32.7.7' });
    expect(w.settle().changed).not.toContain('backend.shop.weft.local');
  });

  test('a linker outside a stack puts its aliases at ALIAS.DOMAIN; SERVICE.STACK reaches into a stack', () => {
    const w = new World();
    web(w, 1);
    w.put('A', { id: 'solo', name: 'solo', addr: '10.32.3.1' });
    w.put('C', { id: 'tool', name: 'tool', addr: '10.32.9.9', labels: { [LINKS_LABEL]: 'api=web.shop,peer=solo' } });
    const r = w.settle();
    expect(r.names['api.weft.local']).toBe(r.names['web.shop.weft.local']);
    expect(r.names['peer.weft.local']).toBe('10.32.3.1 | ');
  });

  test('a real name always wins: web=web is a no-op, and an alias at a container or extra name adds nothing', () => {
    const w = new World();
    web(w, 1);
    w.put('B', { id: 'db1', name: 'db-1.shop', addr: '10.32.1.1', labels: { 'weft.stack': 'shop', 'weft.service': 'db', 'weft.index': '1' } });
    w.extra('A', 'cache.shop.weft.local', '192.168.0.9');
    client(w, 'web=web,db=web,cache=web');
    let r = w.settle();
    expect(r.names['web.shop.weft.local']!.split(' | ')[0]).toBe('10.32.0.2');
    expect(r.names['db.shop.weft.local']).toBe('10.32.1.1 | ');
    expect(r.names['cache.shop.weft.local']).toBe('192.168.0.9 | ');
    // The real db goes: the alias takes its name; it comes back: the real one wins again.
    w.remove('B', 'db1');
    r = w.settle();
    expect(r.changed).toContain('db.shop.weft.local');
    expect(r.names['db.shop.weft.local']).toBe(r.names['web.shop.weft.local']);
    w.put('B', { id: 'db1', name: 'db-1.shop', addr: '10.32.1.1', labels: { 'weft.stack': 'shop', 'weft.service': 'db', 'weft.index': '1' } });
    expect(w.settle().names['db.shop.weft.local']).toBe('10.32.1.1 | ');
  });

  test('one alias declared with several targets (one linker or several) answers the union', () => {
    const w = new World();
    web(w, 1);
    w.put('B', { id: 'db1', name: 'db-1.shop', addr: '10.32.1.1', labels: { 'weft.stack': 'shop', 'weft.service': 'db', 'weft.index': '1' } });
    client(w, 'store=web');
    w.put('B', { id: 'c2', name: 'c2', addr: '10.32.9.2', labels: { 'weft.stack': 'shop', [LINKS_LABEL]: 'store=db' } });
    let r = w.settle();
    expect(r.names['store.shop.weft.local']).toBe('10.32.0.2,10.32.1.1 | 80/tcp/http/web-1.shop.weft.local');
    // The same from a single label, and the same data (as a set) from the index and a rebuild.
    w.remove('B', 'c2');
    client(w, 'store=db, store=web,store=web');
    r = w.settle();
    expect(r.names['store.shop.weft.local']).toBe('10.32.0.2,10.32.1.1 | 80/tcp/http/web-1.shop.weft.local');
    // Deterministic: targets in sorted order, whatever the order declared.
    const built = buildRecordSet({ containers: [{ name: 'a', stack: 's', service: 'x', addrs: ['10.0.0.1'] }, { name: 'b', stack: 's', service: 'y', addrs: ['10.0.0.2'] }], linkers: [{ name: 'l', stack: 's', links: 'z=y,z=x' }] });
    expect(built.set.names.get('z.s.weft.local')!.addrs).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  test('an alias whose targets have no data is no name (NXDOMAIN); it returns with them; aliases never chain', () => {
    const w = new World();
    web(w, 1);
    client(w, 'backend=web,next=backend,ghost=nothing');
    let r = w.settle();
    expect(r.names['backend.shop.weft.local']).toBeDefined();
    expect(r.names['next.shop.weft.local']).toBeUndefined(); // backend is only an alias
    expect(r.names['ghost.shop.weft.local']).toBeUndefined();
    w.put('A', { id: 'web1', name: 'web-1.shop', addr: '10.32.0.2', state: 'stopped', labels: { 'weft.stack': 'shop', 'weft.service': 'web', 'weft.index': '1' } });
    r = w.settle();
    expect(r.changed).toContain('backend.shop.weft.local');
    expect(r.names['backend.shop.weft.local']).toBeUndefined();
    web(w, 1);
    expect(w.settle().names['backend.shop.weft.local']).toBeDefined();
  });

  test('the linker stopped, removed or on a dead peer: the alias goes; unhealthy, starting or on a suspect peer: it stays', () => {
    const w = new World();
    web(w, 1);
    client(w, 'backend=web');
    expect(w.settle().names['backend.shop.weft.local']).toBeDefined();
    for (const health of ['starting', 'unhealthy'] as const) {
      client(w, 'backend=web', { health });
      const r = w.settle();
      expect(r.names['backend.shop.weft.local']).toBeDefined();
      expect(r.names['client-1.shop.weft.local']).toBeUndefined(); // not answered itself
    }
    client(w, 'backend=web', { state: 'stopped' });
    expect(w.settle().names['backend.shop.weft.local']).toBeUndefined();
    client(w, 'backend=web');
    w.settle();
    w.remove('C', 'client1');
    expect(w.settle().names['backend.shop.weft.local']).toBeUndefined();
    client(w, 'backend=web');
    w.peer('C', 'suspect');
    expect(w.settle().names['backend.shop.weft.local']).toBeDefined();
    for (const state of ['dead', 'left'] as const) {
      w.peer('C', state);
      const r = w.settle();
      expect(r.changed).toContain('backend.shop.weft.local');
      expect(r.names['backend.shop.weft.local']).toBeUndefined();
      w.peer('C', 'alive');
      expect(w.settle().names['backend.shop.weft.local']).toBeDefined();
    }
    // The label changed on a running linker: old aliases go, new ones come.
    client(w, 'front=web');
    const r = w.settle();
    expect(r.names['backend.shop.weft.local']).toBeUndefined();
    expect(r.names['front.shop.weft.local']).toBeDefined();
  });

  test('bounded: at most MAX_LINKS entries, aliases one label, targets one or two; malformed entries are skipped and reported, the rest stand', () => {
    const skipped: { input: string; reason: string }[] = [];
    const links = linkNames({ name: 'c', stack: 'shop', links: ' A = Web ,bad,=web,a.b=web,x=a.b.c,y=we b,z=web..x,ok=db.other,,' }, 'weft.local', skipped);
    expect(links).toEqual([{ alias: 'a.shop.weft.local', target: 'web.shop.weft.local' }, { alias: 'ok.shop.weft.local', target: 'db.other.weft.local' }]);
    expect(skipped.map((s) => s.input)).toEqual(['bad', '=web', 'a.b=web', 'x=a.b.c', 'y=we b', 'z=web..x'].map((e) => `${LINKS_LABEL} of c: "${e}"`));
    const tooMany = Array.from({ length: MAX_LINKS + 8 }, (_, i) => `a${i}=web`).join(',');
    const s2: { input: string; reason: string }[] = [];
    expect(linkNames({ name: 'c', links: tooMany }, 'weft.local', s2)).toHaveLength(MAX_LINKS);
    expect(s2).toEqual([{ input: `${LINKS_LABEL} of c`, reason: `more than ${MAX_LINKS} links: the last 8 left out` }]);

    // Through the registry: the good entries answer, the skipped are counted like names DNS
    // cannot carry (`weft status dns`).
    const w = new World();
    web(w, 1);
    client(w, `bad,backend=web,${'x'.repeat(64)}=web`);
    const r = w.settle();
    expect(r.names['backend.shop.weft.local']).toBeDefined();
    expect(r.skipped).toHaveLength(2);
    expect(w.index.counts().skipped).toBe(2);
    client(w, 'backend=web');
    w.settle();
    expect(w.index.counts().skipped).toBe(0);
  });
});
