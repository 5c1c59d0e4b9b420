// The mesh's DNS as a peer runs it: DnsService fed by a MeshView over an in-memory registry
// shared by "peers" (memory-mesh.ts), queried over real UDP and TCP sockets on loopback with
// dig and the dns2 client, and through the API methods the CLI calls.

import { TCPClient, UDPClient } from 'dns2';
import { describe, expect, test } from 'vitest';
import { UserError } from '../../mesh/api/request.ts';
import { registerDnsMethods } from '../../dns/api.ts';
import { MethodTable } from '../../mesh/api/table.ts';
import { DnsService, type DnsServiceOptions } from '../../dns/service.ts';
import { formatDnsStatus, formatList, formatLookup } from '../../cli/dns.ts';
import { addressesOf, decode, dig, makeQuery, QTYPE, stopAfterTest, tcpExchange, udpExchange } from './helpers.ts';
import { MemoryRegistry, type MemoryMeshView } from './memory-mesh.ts';

const HOST = '127.0.53.40';
const HOST_B = '127.0.53.41';

async function start(view: MemoryMeshView, o: Partial<DnsServiceOptions> = {}, host = HOST) {
  const service = stopAfterTest(await DnsService.start({ view, listen: [{ host, port: 0 }], upstreams: [], ...o }));
  const { port } = service.server.addresses()[0]!;
  const methods = new MethodTable();
  registerDnsMethods(methods, () => service);
  const call = methods.handler(() => 'member');
  const api = (method: string, params: Record<string, unknown> = {}) =>
    call({ id: 1, method, params }, { emit: () => {}, closed: new Promise(() => {}), caller: 'local' }) as Promise<any>;
  return { service, host, port, api };
}

/** Waits for the source's debounce and the server's rebuild (a few event-loop turns). */
async function settle(service: DnsService): Promise<void> {
  service.source.flushNow();
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

const aOf = async (host: string, port: number, name: string) =>
  addressesOf(decode(await udpExchange(host, port, makeQuery(name, QTYPE.A)))).sort();

/** A stack `shop`: web-1..3 on peers A, B, C (weft labels), a Compose db on B. */
function shop(reg: MemoryRegistry) {
  const web = (n: number, owner: string) => reg.container(owner, {
    id: `web${n}`, name: `web-${n}`, addr: `10.32.0.${n + 1}`, labels: { 'weft.stack': 'shop', 'weft.service': 'web' },
    ports: [{ port: 80, proto: 'tcp', name: 'http' }],
  });
  web(1, 'A');
  web(2, 'B');
  web(3, 'C');
  reg.container('B', {
    id: 'db1', name: 'shop_db_1', addr: '10.32.1.1', hostname: 'primary',
    labels: { 'com.docker.compose.project': 'shop', 'com.docker.compose.service': 'db', 'com.docker.compose.container-number': '1' },
    ports: [{ port: 5432, proto: 'tcp' }],
  });
  reg.container('A', { id: 'solo', name: 'solo', addr: '10.32.2.1', aliases: ['legacy-app'] });
}

describe('the mesh DNS answers from the registry over real sockets', () => {
  test('stack, service, container, Compose, hostname and alias names over UDP (dns2) and TCP (dig)', async () => {
    const reg = new MemoryRegistry();
    shop(reg);
    const { host, port } = await start(reg.view('A'));
    const udp = UDPClient({ dns: host, port, timeout: 2000 });
    const tcp = TCPClient({ dns: host, port });
    for (const resolve of [udp, tcp]) {
      expect(addressesOf(await resolve('web.shop.weft.local', 'A')).sort()).toEqual(['10.32.0.2', '10.32.0.3', '10.32.0.4']);
      expect(addressesOf(await resolve('web-2.shop.weft.local', 'A'))).toEqual(['10.32.0.3']);
      expect(addressesOf(await resolve('db-1.shop.weft.local', 'A'))).toEqual(['10.32.1.1']);
      expect(addressesOf(await resolve('db.shop.weft.local', 'A'))).toEqual(['10.32.1.1']);
      expect(addressesOf(await resolve('primary.shop.weft.local', 'A'))).toEqual(['10.32.1.1']);
      expect(addressesOf(await resolve('solo.weft.local', 'A'))).toEqual(['10.32.2.1']);
      expect(addressesOf(await resolve('legacy-app.weft.local', 'A'))).toEqual(['10.32.2.1']);
    }
    expect((await dig(host, port, ['+tcp', 'web-3.shop.weft.local', '+short'])).trim()).toBe('10.32.0.4');
  });

  test('SRV for exposed ports at service and container names; PTR for every address', async () => {
    const reg = new MemoryRegistry();
    shop(reg);
    const { host, port } = await start(reg.view('A'));
    expect((await dig(host, port, ['_http._tcp.web.shop.weft.local', 'SRV', '+short'])).trim().split('\n').sort())
      .toEqual(['0 1 80 web-1.shop.weft.local.', '0 1 80 web-2.shop.weft.local.', '0 1 80 web-3.shop.weft.local.']);
    expect((await dig(host, port, ['_5432._tcp.db.shop.weft.local', 'SRV', '+short'])).trim()).toBe('0 1 5432 db-1.shop.weft.local.');
    const expected: Record<string, string> = {
      '10.32.0.2': 'web-1.shop.weft.local.', '10.32.0.3': 'web-2.shop.weft.local.', '10.32.0.4': 'web-3.shop.weft.local.',
      '10.32.1.1': 'db-1.shop.weft.local.', '10.32.2.1': 'solo.weft.local.',
    };
    for (const [addr, name] of Object.entries(expected)) {
      // Per-container names hold the address alone; a service of one also does, so it may
      // be listed too: the container's own name is always among them.
      expect((await dig(host, port, ['-x', addr, '+short'])).trim().split('\n')).toContain(name);
    }
  });

  test('over many real queries every address of a service comes first about equally often', async () => {
    const reg = new MemoryRegistry();
    shop(reg);
    const { host, port } = await start(reg.view('A')); // Math.random, as in production
    const N = 600;
    const first = new Map<string, number>();
    for (let i = 0; i < N; i++) {
      const got = addressesOf(decode(await udpExchange(host, port, makeQuery('web.shop.weft.local', QTYPE.A, { id: i }))));
      expect(got).toHaveLength(3);
      first.set(got[0]!, (first.get(got[0]!) ?? 0) + 1);
    }
    // Binomial(600, 1/3): sd 11.5; 5 sd either way fails once in ~1.7 million runs.
    expect(first.size).toBe(3);
    for (const n of first.values()) expect(Math.abs(n - N / 3)).toBeLessThan(5 * Math.sqrt(N * (1 / 3) * (2 / 3)));
  });

  test('stopped, unhealthy and starting containers are not answered; answered again once running and healthy', async () => {
    const reg = new MemoryRegistry();
    shop(reg);
    const { service, host, port } = await start(reg.view('A'));
    const web2 = { id: 'web2', name: 'web-2', addr: '10.32.0.3', labels: { 'weft.stack': 'shop', 'weft.service': 'web' } };
    for (const change of [{ state: 'stopped' as const }, { health: 'unhealthy' as const }, { health: 'starting' as const }]) {
      reg.container('B', { ...web2, ...change });
      await settle(service);
      expect(await aOf(host, port, 'web.shop.weft.local')).toEqual(['10.32.0.2', '10.32.0.4']);
      expect(decode(await udpExchange(host, port, makeQuery('web-2.shop.weft.local', QTYPE.A))).header.rcode).toBe(3);
      reg.container('B', { ...web2, health: 'healthy' });
      await settle(service);
      expect(await aOf(host, port, 'web.shop.weft.local')).toEqual(['10.32.0.2', '10.32.0.3', '10.32.0.4']);
    }
    reg.removeContainer('B', 'web2');
    await settle(service);
    expect(await aOf(host, port, 'web.shop.weft.local')).toEqual(['10.32.0.2', '10.32.0.4']);
  });

  test("a dead peer's containers leave the answers, a suspect's stay, and they come back when it is alive", async () => {
    const reg = new MemoryRegistry();
    shop(reg);
    const view = reg.view('A');
    const { service, host, port } = await start(view);
    view.setLiveness('C', 'suspect');
    await settle(service);
    expect(await aOf(host, port, 'web.shop.weft.local')).toEqual(['10.32.0.2', '10.32.0.3', '10.32.0.4']);
    view.setLiveness('C', 'dead');
    await settle(service);
    expect(await aOf(host, port, 'web.shop.weft.local')).toEqual(['10.32.0.2', '10.32.0.3']);
    expect(decode(await udpExchange(host, port, makeQuery('web-3.shop.weft.local', QTYPE.A))).header.rcode).toBe(3);
    expect(decode(await udpExchange(host, port, makeQuery('4.0.32.10.in-addr.arpa', QTYPE.PTR))).header.rcode).toBe(3);
    view.setLiveness('C', 'alive');
    await settle(service);
    expect(await aOf(host, port, 'web.shop.weft.local')).toEqual(['10.32.0.2', '10.32.0.3', '10.32.0.4']);
    view.setLiveness('B', 'left');
    await settle(service);
    expect(await aOf(host, port, 'web.shop.weft.local')).toEqual(['10.32.0.2', '10.32.0.4']);
  });

  test('a dynamic link (weft.links) answers its target service over UDP, A and SRV, and follows it', async () => {
    const reg = new MemoryRegistry();
    shop(reg);
    // Unhealthy: a linker declares whatever its health (its check may need its backend).
    reg.container('C', { id: 'client1', name: 'client-1', addr: '10.32.9.1', health: 'unhealthy', labels: { 'weft.stack': 'shop', 'weft.links': 'backend=web,store=db' } });
    const { service, host, port } = await start(reg.view('A'));
    expect(await aOf(host, port, 'backend.shop.weft.local')).toEqual(['10.32.0.2', '10.32.0.3', '10.32.0.4']);
    expect(await aOf(host, port, 'store.shop.weft.local')).toEqual(['10.32.1.1']);
    expect((await dig(host, port, ['_http._tcp.backend.shop.weft.local', 'SRV', '+short'])).trim().split('\n').sort())
      .toEqual(['0 1 80 web-1.shop.weft.local.', '0 1 80 web-2.shop.weft.local.', '0 1 80 web-3.shop.weft.local.']);
    reg.container('A', { id: 'web4', name: 'web-4', addr: '10.32.0.5', labels: { 'weft.stack': 'shop', 'weft.service': 'web' } });
    await settle(service);
    expect(await aOf(host, port, 'backend.shop.weft.local')).toEqual(['10.32.0.2', '10.32.0.3', '10.32.0.4', '10.32.0.5']);
    reg.removeContainer('C', 'client1');
    await settle(service);
    expect(decode(await udpExchange(host, port, makeQuery('backend.shop.weft.local', QTYPE.A))).header.rcode).toBe(3);
  });

  test('a service of 200 containers on 4 peers: truncated over UDP, whole over TCP, dig falls back by itself', async () => {
    const reg = new MemoryRegistry();
    for (let i = 1; i <= 200; i++) {
      reg.container('ABCD'[i % 4]!, { id: `big${i}`, name: `big-${i}`, addr: `10.32.${10 + Math.floor(i / 250)}.${i}`, labels: { 'weft.stack': 'shop', 'weft.service': 'big' } });
    }
    const { host, port } = await start(reg.view('A'));
    const udp = decode(await udpExchange(host, port, makeQuery('big.shop.weft.local', QTYPE.A)));
    expect(udp.header.tc).toBe(1);
    const [tcp] = await tcpExchange(host, port, [makeQuery('big.shop.weft.local', QTYPE.A)]);
    expect(new Set(addressesOf(decode(tcp!))).size).toBe(200);
    const out = (await dig(host, port, ['big.shop.weft.local', '+short'])).trim().split('\n');
    expect(new Set(out).size).toBe(200);
  });

  test('an address added later (the bridge, once the data plane is up) answers too', async () => {
    const reg = new MemoryRegistry();
    shop(reg);
    const { service } = await start(reg.view('A'));
    const added = await service.addListener({ host: HOST_B, port: 0 });
    expect(await aOf(added.host, added.port, 'web-1.shop.weft.local')).toEqual(['10.32.0.2']);
    expect(service.status().listeners).toContain(`udp ${HOST_B}:${added.port}`);
  });

  test('with UDP worker threads: changes reach the workers, and an added address is served by new workers', async () => {
    const reg = new MemoryRegistry();
    shop(reg);
    const view = reg.view('A');
    const { service, host, port } = await start(view, { workers: 1 });
    view.setLiveness('C', 'dead');
    await settle(service);
    await expect.poll(() => aOf(host, port, 'web.shop.weft.local')).toEqual(['10.32.0.2', '10.32.0.3']);
    const added = await service.addListener({ host: HOST_B, port: 0 });
    expect(await aOf(added.host, added.port, 'web.shop.weft.local')).toEqual(['10.32.0.2', '10.32.0.3']);
    expect(await aOf(host, port, 'web-1.shop.weft.local')).toEqual(['10.32.0.2']);
    expect(service.status().workers).toBe(1);
  });
});

describe('extra records and the API the CLI uses', () => {
  test('`dns add` through one peer answers on every peer; `dns remove` through another removes it everywhere', async () => {
    const reg = new MemoryRegistry();
    const a = await start(reg.view('A'));
    const b = await start(reg.view('B'), {}, HOST_B);
    expect(await a.api('dns.add', { name: 'db.example.com', ip: '192.168.7.7' })).toEqual({ name: 'db.example.com', ip: '192.168.7.7', existed: false });
    await a.api('dns.add', { name: 'db.example.com', ip: '192.168.7.8' });
    await a.api('dns.add', { name: 'legacy', ip: '192.168.7.9' }); // a single label is in the mesh domain
    expect(await aOf(a.host, a.port, 'db.example.com')).toEqual(['192.168.7.7', '192.168.7.8']);
    await settle(b.service);
    expect(await aOf(b.host, b.port, 'db.example.com')).toEqual(['192.168.7.7', '192.168.7.8']);
    expect(await aOf(b.host, b.port, 'legacy.weft.local')).toEqual(['192.168.7.9']);

    expect(await b.api('dns.remove', { name: 'db.example.com', ip: '192.168.7.7' })).toEqual({ name: 'db.example.com', removed: ['192.168.7.7'] });
    await settle(a.service);
    expect(await aOf(a.host, a.port, 'db.example.com')).toEqual(['192.168.7.8']);
    expect(await aOf(b.host, b.port, 'db.example.com')).toEqual(['192.168.7.8']);
    // A adds the removed address again: its new vote comes after B's removal.
    await a.api('dns.add', { name: 'db.example.com', ip: '192.168.7.7' });
    await settle(b.service);
    expect(await aOf(b.host, b.port, 'db.example.com')).toEqual(['192.168.7.7', '192.168.7.8']);
    // Without an address: every extra address of the name.
    expect((await b.api('dns.remove', { name: 'db.example.com' })).removed).toEqual(['192.168.7.7', '192.168.7.8']);
    await settle(a.service);
    expect(decode(await udpExchange(a.host, a.port, makeQuery('db.example.com', QTYPE.A))).answers).toEqual([]);
  });

  test('bad input and nothing to remove are one sentence for the user', async () => {
    const reg = new MemoryRegistry();
    shop(reg);
    const { api } = await start(reg.view('A'));
    const refused = async (method: string, params: Record<string, unknown>) => {
      const err = await api(method, params).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(UserError);
      return (err as Error).message;
    };
    expect(await refused('dns.add', { name: 'db', ip: '10.0.0.300' })).toBe('"10.0.0.300" is not an IPv4 address (the mesh\'s DNS answers IPv4 only)');
    expect(await refused('dns.add', { name: 'bad name!', ip: '10.0.0.3' })).toMatch(/^"bad name!" is not a valid DNS name/);
    expect(await refused('dns.remove', { name: 'nothing' })).toBe('no extra record named nothing.weft.local');
    expect(await refused('dns.remove', { name: 'web.shop.weft.local' })).toMatch(/is a container's name, not an extra record/);
    expect(await refused('dns.lookup', { name: 'web', type: 'MX2' })).toMatch(/^--type MX2 is not one of A, PTR, SRV/);
    expect(await refused('dns.add', { name: 'db' })).toBe('dns.add: missing parameter "ip"');
    expect(await refused('dns.add', { name: 'db', ip: '10.0.0.3', ttl: 5 })).toBe('dns.add: unknown parameter "ttl"');
    expect(await refused('dns.lookup', { name: 'x'.repeat(300) })).toBe('dns.lookup: parameter "name" is too long (300 characters, at most 253)');
  });

  test('`dns lookup` answers through the same path as the wire, parsed; ls and status have all the CLI prints', async () => {
    const reg = new MemoryRegistry();
    shop(reg);
    const { api } = await start(reg.view('A'), { ttl: 3 });
    const a = await api('dns.lookup', { name: 'web.shop.weft.local', type: 'A' });
    expect(a).toMatchObject({ name: 'web.shop.weft.local', type: 'A', rcode: 'NOERROR', authoritative: true, truncated: false });
    expect(a.records.map((r: any) => r.data).sort()).toEqual(['10.32.0.2', '10.32.0.3', '10.32.0.4']);
    expect(a.records[0]).toMatchObject({ section: 'answer', type: 'A', ttl: 3 });
    const srv = await api('dns.lookup', { name: 'web-1.shop.weft.local', type: 'SRV' });
    expect(srv.records.filter((r: any) => r.section === 'answer').map((r: any) => r.data)).toEqual(['0 1 80 web-1.shop.weft.local.']);
    const ptr = await api('dns.lookup', { name: '10.32.2.1', type: 'PTR' });
    expect(ptr.name).toBe('1.2.32.10.in-addr.arpa');
    expect(ptr.records.map((r: any) => r.data).sort()).toEqual(['legacy-app.weft.local.', 'solo.weft.local.']); // an alias holds it alone too
    const nx = await api('dns.lookup', { name: 'nothing', type: 'A' });
    expect(nx).toMatchObject({ name: 'nothing.weft.local', rcode: 'NXDOMAIN' });
    expect(formatLookup(nx)).toBe('nothing.weft.local: no such name');
    expect(formatLookup(a).split('\n')).toHaveLength(3);

    await api('dns.add', { name: 'web.shop.weft.local', ip: '192.168.0.1' });
    const ls = await api('dns.ls');
    expect(ls.find((e: any) => e.name === 'web.shop.weft.local')).toEqual({
      name: 'web.shop.weft.local', addrs: ['10.32.0.2', '10.32.0.3', '10.32.0.4', '192.168.0.1'],
      srv: ['80/tcp web-1.shop.weft.local', '80/tcp web-2.shop.weft.local', '80/tcp web-3.shop.weft.local'], extras: ['192.168.0.1'],
    });
    expect(formatList(ls)).toMatch(/web\.shop\.weft\.local\s+10\.32\.0\.2,10\.32\.0\.3,10\.32\.0\.4,192\.168\.0\.1 \(extra\)/);
    const status = await api('dns.status');
    expect(status).toMatchObject({ domain: 'weft.local', ttl: 3, upstreams: [], containers: { records: 5, answered: 5, invalid: 0 }, extras: 1 });
    expect(formatDnsStatus(status)).toMatch(/^domain:\s+weft\.local\nlistening:\s+udp 127\.0\.53\.40:\d+, tcp 127\.0\.53\.40:\d+\nupstreams:\s+none/);
  });

  test('stop unsubscribes from the view', async () => {
    const reg = new MemoryRegistry();
    const view = reg.view('A');
    const service = await DnsService.start({ view, listen: [{ host: HOST, port: 0 }], upstreams: [] });
    expect(view.listeners).toBe(2);
    await service.stop();
    expect(view.listeners).toBe(0);
  });
});
