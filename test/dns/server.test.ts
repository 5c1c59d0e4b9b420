// The server over real sockets on loopback: what a container's resolver (dns2's client, dig)
// gets over UDP and TCP for a stack's names, large services, malformed queries, record
// changes, and the errors an operator sees.

import net from 'node:net';
import { UDPClient, TCPClient } from 'dns2';
import { describe, expect, test } from 'vitest';
import { buildRecordSet, type ContainerRecord, MemoryRecordSource } from '../../dns/records.ts';
import { DnsServer } from '../../dns/server.ts';
import { Rng } from '../sim/rng.ts';
import { addressesOf, decode, dig, makeQuery, QTYPE, startServer, stopAfterTest, tcpExchange, udpExchange } from './helpers.ts';

const HOST = '127.0.53.20';

const service = (name: string, n: number, subnet = 0): ContainerRecord[] =>
  Array.from({ length: n }, (_, i) => ({
    name: `${name}-${i + 1}`, stack: 'shop', service: name,
    addrs: [`10.32.${subnet + Math.floor((i + 1) / 250)}.${((i + 1) % 250) + 1}`],
    ports: [{ port: 80, proto: 'tcp' as const, name: 'http' }],
  }));

const shopSource = () => new MemoryRecordSource(buildRecordSet({
  containers: [...service('web', 3), ...service('big', 200, 10), { name: 'db-1', stack: 'shop', service: 'db', addrs: ['10.32.5.1'] }],
  extras: [{ name: 'legacy', addr: '192.168.7.7' }],
}).set);

describe('a stack resolved over real sockets', () => {
  test('the dns2 client gets service and container names over UDP and TCP', async () => {
    const { host, port } = await startServer({ host: HOST, source: shopSource() });
    const udp = UDPClient({ dns: host, port, timeout: 2000 });
    const tcp = TCPClient({ dns: host, port });
    for (const resolve of [udp, tcp]) {
      expect(addressesOf(await resolve('web.shop.weft.local', 'A')).sort()).toEqual(['10.32.0.2', '10.32.0.3', '10.32.0.4']);
      expect(addressesOf(await resolve('web-2.shop.weft.local', 'A'))).toEqual(['10.32.0.3']);
      expect(addressesOf(await resolve('DB.Shop.Weft.Local', 'A'))).toEqual(['10.32.5.1']);
      expect(addressesOf(await resolve('legacy.weft.local', 'A'))).toEqual(['192.168.7.7']);
      const srv = await resolve('_http._tcp.web.shop.weft.local', 'SRV');
      expect(srv.answers.map((a) => `${a.port} ${a.target}`).sort()).toEqual(['80 web-1.shop.weft.local', '80 web-2.shop.weft.local', '80 web-3.shop.weft.local']);
      const ptr = await resolve('3.0.32.10.in-addr.arpa', 'PTR');
      expect(ptr.answers.map((a) => a.domain)).toEqual(['web-2.shop.weft.local']);
    }
  });

  test('dig: A, PTR, SRV, AAAA without data, NXDOMAIN with the SOA, flags', async () => {
    const { host, port } = await startServer({ host: HOST, source: shopSource(), ttl: 2 });
    expect((await dig(host, port, ['web-1.shop.weft.local', '+short'])).trim()).toBe('10.32.0.2');
    expect((await dig(host, port, ['-x', '10.32.0.2', '+short'])).trim()).toBe('web-1.shop.weft.local.');
    expect((await dig(host, port, ['_http._tcp.web.shop.weft.local', 'SRV', '+short'])).trim().split('\n').sort())
      .toEqual(['0 1 80 web-1.shop.weft.local.', '0 1 80 web-2.shop.weft.local.', '0 1 80 web-3.shop.weft.local.']);
    const aaaa = await dig(host, port, ['web.shop.weft.local', 'AAAA']);
    expect(aaaa).toMatch(/status: NOERROR/);
    expect(aaaa).toMatch(/flags: qr aa rd ra;/);
    expect(aaaa).toMatch(/ANSWER: 0, AUTHORITY: 1/);
    expect(aaaa).toMatch(/weft\.local\.\s+2\s+IN\s+SOA\s+ns\.weft\.local\. hostmaster\.weft\.local\. \d+ 3600 600 86400 2/);
    const nx = await dig(host, port, ['nothing.shop.weft.local']);
    expect(nx).toMatch(/status: NXDOMAIN/);
    expect(nx).toMatch(/IN\s+SOA\s+ns\.weft\.local\./);
    expect(await dig(host, port, ['web.shop.weft.local', '+noedns'])).not.toMatch(/OPT PSEUDOSECTION/);
    expect(await dig(host, port, ['web.shop.weft.local', '+bufsize=4096'])).toMatch(/EDNS: version: 0, flags:; udp: 1232/);
  });

  test('over many real queries every address of a service comes first about equally often', async () => {
    const rng = new Rng(7);
    const { host, port } = await startServer({ host: HOST, source: shopSource(), random: () => rng.next() });
    const first = new Map<string, number>();
    const N = 450;
    for (let i = 0; i < N; i++) {
      const got = addressesOf(decode(await udpExchange(host, port, makeQuery('web.shop.weft.local', QTYPE.A, { id: i }))));
      expect(got).toHaveLength(3);
      first.set(got[0]!, (first.get(got[0]!) ?? 0) + 1);
    }
    expect([...first.keys()].sort()).toEqual(['10.32.0.2', '10.32.0.3', '10.32.0.4']);
    for (const n of first.values()) expect(Math.abs(n - N / 3)).toBeLessThan(N / 3 * 0.25);
  });

  test('a service of 200 containers: truncated over UDP, whole over TCP, and dig falls back by itself', async () => {
    const { host, port } = await startServer({ host: HOST, source: shopSource() });
    const udp = decode(await udpExchange(host, port, makeQuery('big.shop.weft.local', QTYPE.A)));
    expect(udp.header.tc).toBe(1);
    expect(addressesOf(udp).length).toBe(29); // as many as fit 512 octets
    const ednsUdp = decode(await udpExchange(host, port, makeQuery('big.shop.weft.local', QTYPE.A, { edns: 4096 })));
    expect(ednsUdp.header.tc).toBe(1);
    const [tcp] = await tcpExchange(host, port, [makeQuery('big.shop.weft.local', QTYPE.A)]);
    expect(new Set(addressesOf(decode(tcp!))).size).toBe(200);
    const out = await dig(host, port, ['big.shop.weft.local']);
    expect(out).toMatch(/Truncated, retrying in TCP mode/);
    expect(out).toMatch(/ANSWER: 200,/);
    // dns2's client retries over TCP too.
    expect(addressesOf(await UDPClient({ dns: host, port, timeout: 2000 })('big.shop.weft.local', 'A'))).toHaveLength(200);
  });

  test('several queries pipelined on one TCP connection are all answered', async () => {
    const { host, port } = await startServer({ host: HOST, source: shopSource() });
    const names = ['web.shop.weft.local', 'web-1.shop.weft.local', 'nope.weft.local', 'db.shop.weft.local'];
    const got = await tcpExchange(host, port, names.map((n, i) => makeQuery(n, QTYPE.A, { id: 100 + i })));
    const byId = new Map(got.map((b) => [decode(b).header.id, decode(b)]));
    expect(addressesOf(byId.get(101)!)).toEqual(['10.32.0.2']);
    expect(byId.get(102)!.header.rcode).toBe(3);
    expect(addressesOf(byId.get(103)!)).toEqual(['10.32.5.1']);
  });

  test('FORMERR for malformed and multi-question queries, NOTIMP for other opcodes, silence for non-queries', async () => {
    const { server, host, port } = await startServer({ host: HOST, source: shopSource() });
    const two = makeQuery('web.shop.weft.local', QTYPE.A, { id: 5 });
    two.writeUInt16BE(2, 4);
    const cut = makeQuery('web.shop.weft.local', QTYPE.A, { id: 6 }).subarray(0, 20);
    for (const [msg, rcode, id] of [[two, 1, 5], [cut, 1, 6], [makeQuery('web.shop.weft.local', QTYPE.A, { id: 7, opcode: 2 }), 4, 7]] as const) {
      const r = await udpExchange(host, port, msg);
      expect(r.length).toBe(12);
      expect(r.readUInt16BE(0)).toBe(id);
      expect(r[3]! & 0xf).toBe(rcode);
      expect(r[2]! & 0x80).toBe(0x80);
    }
    const notify = await dig(host, port, ['+opcode=notify', 'web.shop.weft.local']);
    expect(notify).toMatch(/status: NOTIMP/);
    const response = makeQuery('web.shop.weft.local', QTYPE.A);
    response[2]! |= 0x80;
    await expect(udpExchange(host, port, response, 300)).rejects.toThrow(/no UDP answer/);
    await expect(udpExchange(host, port, Buffer.from([1, 2, 3]), 300)).rejects.toThrow(/no UDP answer/);
    const [tcpFormerr] = await tcpExchange(host, port, [two]);
    expect(tcpFormerr![3]! & 0xf).toBe(1);
    const s = server.stats();
    expect(s.responses.FORMERR).toBe(3);
    expect(s.responses.NOTIMP).toBe(2);
    expect(s.dropped).toBe(2);
  });

  test('answers follow the record source at once, without a restart', async () => {
    const source = new MemoryRecordSource(buildRecordSet({ containers: service('web', 2) }).set);
    const { server, host, port } = await startServer({ host: HOST, source });
    expect(addressesOf(decode(await udpExchange(host, port, makeQuery('web.shop.weft.local', QTYPE.A)))).sort()).toEqual(['10.32.0.2', '10.32.0.3']);
    source.set(buildRecordSet({ containers: [...service('web', 1), { name: 'web-9', stack: 'shop', service: 'web', addrs: ['10.32.3.9'] }] }).set);
    source.set(buildRecordSet({ containers: [...service('web', 1), { name: 'web-9', stack: 'shop', service: 'web', addrs: ['10.32.3.9'] }] }).set);
    await new Promise((r) => setImmediate(r));
    expect(addressesOf(decode(await udpExchange(host, port, makeQuery('web.shop.weft.local', QTYPE.A)))).sort()).toEqual(['10.32.0.2', '10.32.3.9']);
    expect(decode(await udpExchange(host, port, makeQuery('web-2.shop.weft.local', QTYPE.A))).header.rcode).toBe(3);
    expect(server.stats().zoneBuilds).toBe(2); // the burst of two changes was one rebuild
    // A source that says which names changed: only those are looked at.
    let prev = source.current();
    for (const addr of ['10.32.4.1', '10.32.4.2']) {
      const next = buildRecordSet({ containers: [{ name: 'web-1', stack: 'shop', service: 'web', addrs: [addr] }, { name: 'web-9', stack: 'shop', service: 'web', addrs: ['10.32.3.9'] }] }, undefined, prev).set;
      source.set(next, ['web-1.shop.weft.local', 'web.shop.weft.local']);
      prev = next;
    }
    await new Promise((r) => setImmediate(r));
    expect(addressesOf(decode(await udpExchange(host, port, makeQuery('web-1.shop.weft.local', QTYPE.A))))).toEqual(['10.32.4.2']);
    expect(addressesOf(decode(await udpExchange(host, port, makeQuery('web.shop.weft.local', QTYPE.A)))).sort()).toEqual(['10.32.3.9', '10.32.4.2']);
    expect(decode(await udpExchange(host, port, makeQuery('2.4.32.10.in-addr.arpa', QTYPE.PTR))).answers.map((a) => a.domain)).toEqual(['web-1.shop.weft.local']);
    expect(decode(await udpExchange(host, port, makeQuery('1.4.32.10.in-addr.arpa', QTYPE.PTR))).header.rcode).toBe(3);
  });

  test('with no upstreams, names outside the mesh are REFUSED', async () => {
    const { host, port } = await startServer({ host: HOST, source: shopSource() });
    expect(await dig(host, port, ['example.com'])).toMatch(/status: REFUSED/);
  });

  test('in process, for `weft dns lookup`', async () => {
    const { server } = await startServer({ host: HOST, source: shopSource() });
    expect(addressesOf(decode(await server.resolve('web-3.shop.weft.local', QTYPE.A)))).toEqual(['10.32.0.4']);
    expect(new Set(addressesOf(decode(await server.resolve('big.shop.weft.local', QTYPE.A)))).size).toBe(200);
    expect(server.status()).toMatchObject({ domain: 'weft.local', ttl: 1, upstreams: [], workers: 0 });
  });
});

describe('starting and stopping', () => {
  test('an address in use is one sentence naming it, and nothing stays open', async () => {
    const { host, port } = await startServer({ host: HOST, source: shopSource() });
    await expect(DnsServer.start({ listen: [{ host, port }], source: shopSource(), upstreams: [] }))
      .rejects.toThrow(`the DNS address ${host}:${port} is in use over UDP (another DNS server such as dnsmasq or systemd-resolved may hold it; stop it or choose another with --dns-listen)`);
    // Only TCP taken: also refused, and the UDP socket it had bound is released.
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.53.21', () => r()));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      await expect(DnsServer.start({ listen: [{ host: '127.0.53.21', port: taken }], source: shopSource(), upstreams: [] })).rejects.toThrow(/is in use over TCP/);
      const again = await DnsServer.start({ listen: [{ host: '127.0.53.22', port: taken }], source: shopSource(), upstreams: [] });
      await again.stop();
    } finally {
      blocker.close();
    }
  });

  test('an address not on this host', async () => {
    await expect(DnsServer.start({ listen: [{ host: '192.0.2.1', port: 0 }], source: shopSource(), upstreams: [] })).rejects.toThrow(/192\.0\.2\.1 is not an address of this host/);
  });

  test('stop releases the port for the next server', async () => {
    const first = await DnsServer.start({ listen: [{ host: HOST, port: 0 }], source: shopSource(), upstreams: [] });
    const { port } = first.addresses()[0]!;
    await first.stop();
    const second = stopAfterTest(await DnsServer.start({ listen: [{ host: HOST, port }], source: shopSource(), upstreams: [] }));
    expect(second.addresses()[0]!.port).toBe(port);
  });

  test('UDP worker threads answer the same names, follow changes, and count into the stats', async () => {
    const source = shopSource();
    const { server, host, port } = await startServer({ host: HOST, source, workers: 2 });
    for (let i = 0; i < 20; i++) {
      expect(addressesOf(decode(await udpExchange(host, port, makeQuery('web-1.shop.weft.local', QTYPE.A, { id: i }))))).toEqual(['10.32.0.2']);
    }
    expect(decode(await udpExchange(host, port, makeQuery('example.com', QTYPE.A))).header.rcode).toBe(5); // answered by the main thread
    source.set(buildRecordSet({ containers: [{ name: 'web-1', stack: 'shop', service: 'web', addrs: ['10.32.9.9'] }] }).set);
    let moved: string[] = [];
    for (let i = 0; i < 50 && moved[0] !== '10.32.9.9'; i++) {
      await new Promise((r) => setTimeout(r, 20));
      moved = addressesOf(decode(await udpExchange(host, port, makeQuery('web-1.shop.weft.local', QTYPE.A))));
    }
    expect(moved).toEqual(['10.32.9.9']);
    const s = server.stats();
    expect(s.queries.udp).toBeGreaterThanOrEqual(22);
    expect(s.responses.REFUSED).toBe(1);
    expect(server.status().workers).toBe(2);
  });

  test('a UDP worker thread that dies is replaced', async () => {
    const { server, host, port } = await startServer({ host: HOST, source: shopSource(), workers: 1 });
    const workers = (server as unknown as { workers: { workers: { terminate(): Promise<number> }[] } }).workers.workers;
    await workers[0]!.terminate();
    let answered: string[] = [];
    for (let i = 0; i < 40 && answered.length === 0; i++) {
      answered = await udpExchange(host, port, makeQuery('web-1.shop.weft.local', QTYPE.A, { id: i }), 200).then((b) => addressesOf(decode(b)), () => []);
    }
    expect(answered).toEqual(['10.32.0.2']);
  });
});
