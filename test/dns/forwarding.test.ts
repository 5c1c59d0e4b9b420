// Names outside the mesh go to upstream resolvers: a fake one on loopback that counts what it
// is asked and can fail on request, and dnsmasq. Mesh names never leave the peer.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { buildRecordSet, MemoryRecordSource } from '../../dns/records.ts';
import { DnsServer } from '../../dns/server.ts';
import { FakeUpstream } from './fake-upstream.ts';
import { addressesOf, decode, dig, makeQuery, QTYPE, startServer, stopAfterTest, tcpExchange, udpExchange } from './helpers.ts';

const HOST = '127.0.53.30';
const source = () => new MemoryRecordSource(buildRecordSet({ containers: [{ name: 'web-1', stack: 'shop', service: 'web', addrs: ['10.32.0.1'] }] }).set);

async function upstream(host: string, records: Record<string, { addrs: number[][]; ttl: number }> = {}): Promise<FakeUpstream> {
  const u = stopAfterTest(await FakeUpstream.start(host));
  for (const [name, r] of Object.entries(records)) u.records.set(name, r);
  return u;
}

describe('forwarding', () => {
  test('a name outside the mesh is asked upstream once, then served from the cache with its TTL counting down', async () => {
    const up = await upstream('127.0.53.31', { 'api.example.com': { addrs: [[93, 184, 216, 34]], ttl: 60 } });
    let now = 1_000_000;
    const { server, host, port } = await startServer({ host: HOST, source: source(), upstreams: [{ host: up.host, port: up.port }], now: () => now });
    const first = decode(await udpExchange(host, port, makeQuery('api.example.com', QTYPE.A, { edns: 1232 })));
    expect(first.header).toMatchObject({ rcode: 0, aa: 0, ra: 1 });
    expect(first.answers.map((a) => [a.address, a.ttl])).toEqual([['93.184.216.34', 60]]);
    now += 20_500;
    const second = decode(await udpExchange(host, port, makeQuery('API.example.COM', QTYPE.A)));
    expect(second.answers.map((a) => [a.address, a.ttl])).toEqual([['93.184.216.34', 40]]);
    expect(second.questions[0]!.name).toBe('API.example.COM');
    expect(up.asked).toEqual(['api.example.com/1']);
    now += 40_000; // expired
    await udpExchange(host, port, makeQuery('api.example.com', QTYPE.A));
    expect(up.asked).toHaveLength(2);
    expect(server.stats()).toMatchObject({ forwarded: 2, cacheHits: 1 });
  });

  test('NXDOMAIN from upstream is cached for the SOA minimum', async () => {
    const up = await upstream('127.0.53.31');
    up.negativeTtl = 5;
    let now = 0;
    const { host, port } = await startServer({ host: HOST, source: source(), upstreams: [{ host: up.host, port: up.port }], now: () => now });
    expect(decode(await udpExchange(host, port, makeQuery('gone.example.com', QTYPE.A))).header.rcode).toBe(3);
    now += 4_000;
    expect(decode(await udpExchange(host, port, makeQuery('gone.example.com', QTYPE.A))).header.rcode).toBe(3);
    expect(up.asked).toHaveLength(1);
    now += 2_000;
    await udpExchange(host, port, makeQuery('gone.example.com', QTYPE.A));
    expect(up.asked).toHaveLength(2);
  });

  test('mesh names, and reverse names in the container range, are never forwarded', async () => {
    const up = await upstream('127.0.53.31');
    const { host, port } = await startServer({ host: HOST, source: source(), upstreams: [{ host: up.host, port: up.port }] });
    for (const [name, type] of [['web.shop.weft.local', QTYPE.A], ['missing.weft.local', QTYPE.A], ['web.shop.weft.local', QTYPE.AAAA],
      ['a.b.c.weft.local', QTYPE.MX], ['9.9.33.10.in-addr.arpa', QTYPE.PTR], ['WEFT.LOCAL', QTYPE.TXT]] as const) {
      const r = decode(await udpExchange(host, port, makeQuery(name, type)));
      expect(r.header.aa, name).toBe(1);
    }
    expect(up.asked).toEqual([]);
    // Someone else's reverse range does go upstream.
    await udpExchange(host, port, makeQuery('1.1.168.192.in-addr.arpa', QTYPE.PTR));
    expect(up.asked).toEqual(['1.1.168.192.in-addr.arpa/12']);
  });

  test('SERVFAIL, before the client gives up, when no upstream answers', async () => {
    const silent = await upstream('127.0.53.32');
    silent.mode = 'silent';
    const dead = await upstream('127.0.53.33');
    await dead.stop(); // nothing listens there any more
    const { server, host, port } = await startServer({
      host: HOST, source: source(), upstreams: [{ host: dead.host, port: dead.port }, { host: silent.host, port: silent.port }],
      upstreamAttemptMs: 300, upstreamDeadlineMs: 800,
    });
    // The client's own 3 s wait bounds it: the server answers within its 0.8 s deadline.
    const r = decode(await udpExchange(host, port, makeQuery('api.example.com', QTYPE.A), 3000));
    expect(r.header.rcode).toBe(2);
    expect(silent.asked).toEqual(['api.example.com/1']);
    expect(server.stats().upstreamFailures).toBe(1);
    // A failure is not cached: the next question is asked again.
    await udpExchange(host, port, makeQuery('api.example.com', QTYPE.A), 3000);
    expect(silent.asked).toHaveLength(2);
  });

  test('an upstream the host cannot even send to (no route, a broadcast address) is a SERVFAIL, not a crash', async () => {
    // Node reports a failed connect of a UDP socket to the connect callback; this once made the
    // forwarder send on an unconnected socket, which threw out of the event loop and ended the
    // peer (found from a container in a namespace whose resolv.conf upstream had no route).
    const { server, host, port } = await startServer({
      host: HOST, source: source(), upstreams: [{ host: '255.255.255.255', port: 53 }], upstreamAttemptMs: 300, upstreamDeadlineMs: 800,
    });
    const r = decode(await udpExchange(host, port, makeQuery('api.example.com', QTYPE.A), 3000));
    expect(r.header.rcode).toBe(2);
    expect(server.stats().upstreamFailures).toBe(1);
    // Still serving.
    expect(decode(await udpExchange(host, port, makeQuery('web.shop.weft.local', QTYPE.A))).header.rcode).toBe(0);
  });

  test('an upstream answering SERVFAIL is passed over for the next one, which is then asked first', async () => {
    const bad = await upstream('127.0.53.32');
    bad.mode = 'servfail';
    const good = await upstream('127.0.53.31', { 'a.example.com': { addrs: [[1, 2, 3, 4]], ttl: 0 } });
    const { host, port } = await startServer({ host: HOST, source: source(), upstreams: [{ host: bad.host, port: bad.port }, { host: good.host, port: good.port }] });
    expect(addressesOf(decode(await udpExchange(host, port, makeQuery('a.example.com', QTYPE.A))))).toEqual(['1.2.3.4']);
    expect(addressesOf(decode(await udpExchange(host, port, makeQuery('a.example.com', QTYPE.A))))).toEqual(['1.2.3.4']); // TTL 0: not cached
    expect(bad.asked).toHaveLength(1);
    expect(good.asked).toHaveLength(2);
  });

  test('a truncated upstream answer is fetched again over TCP; a client gets TC over UDP and all over TCP', async () => {
    const addrs = Array.from({ length: 60 }, (_, i) => [172, 16, 0, i + 1]);
    const up = await upstream('127.0.53.31', { 'many.example.com': { addrs, ttl: 300 } });
    up.mode = 'truncate-udp';
    const { host, port } = await startServer({ host: HOST, source: source(), upstreams: [{ host: up.host, port: up.port }] });
    const udp = decode(await udpExchange(host, port, makeQuery('many.example.com', QTYPE.A)));
    expect(udp.header.tc).toBe(1);
    const [tcp] = await tcpExchange(host, port, [makeQuery('many.example.com', QTYPE.A)]);
    expect(addressesOf(decode(tcp!))).toHaveLength(60);
    expect(up.asked).toEqual(['many.example.com/1', 'many.example.com/1']); // UDP, then TCP; the client's TCP retry hit the cache
    const out = await dig(host, port, ['many.example.com', '+noedns']);
    expect(out).toMatch(/ANSWER: 60,/);
  });

  test('clients asking the same thing at once share one upstream question', async () => {
    const up = await upstream('127.0.53.31', { 'busy.example.com': { addrs: [[9, 9, 9, 9]], ttl: 0 } });
    up.delayMs = 100;
    const { host, port } = await startServer({ host: HOST, source: source(), upstreams: [{ host: up.host, port: up.port }] });
    const all = await Promise.all(Array.from({ length: 10 }, (_, i) => udpExchange(host, port, makeQuery('busy.example.com', QTYPE.A, { id: i }))));
    expect(all.map((b) => decode(b).header.id).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(all.every((b) => addressesOf(decode(b))[0] === '9.9.9.9')).toBe(true);
    expect(up.asked).toHaveLength(1);
  });

  test('forwarding from UDP worker threads goes through the one cache', async () => {
    const up = await upstream('127.0.53.31', { 'w.example.com': { addrs: [[5, 5, 5, 5]], ttl: 60 } });
    const { host, port } = await startServer({ host: HOST, source: source(), upstreams: [{ host: up.host, port: up.port }], workers: 2 });
    for (let i = 0; i < 8; i++) expect(addressesOf(decode(await udpExchange(host, port, makeQuery('w.example.com', QTYPE.A, { id: i }))))).toEqual(['5.5.5.5']);
    expect(up.asked).toHaveLength(1);
  });

  test('the host resolvers come from resolv.conf, and never our own address', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-dns-'));
    try {
      const conf = path.join(dir, 'resolv.conf');
      fs.writeFileSync(conf, 'search example.com\nnameserver 127.0.53.31\nnameserver 127.0.53.30\n');
      const s = stopAfterTest(await DnsServer.start({ listen: [{ host: HOST, port: 53 }], source: source(), resolvConf: conf }).catch(() => undefined)
        ?? await DnsServer.start({ listen: [{ host: HOST, port: 0 }], source: source(), resolvConf: conf }));
      const onPort53 = s.addresses()[0]!.port === 53;
      expect(s.status().upstreams).toEqual(onPort53 ? ['127.0.53.31:53'] : ['127.0.53.31:53', '127.0.53.30:53']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('dnsmasq as the upstream', () => {
  test('names it serves resolve through weft, with its TTL', async () => {
    const dmPort = 20_000 + Math.floor(Math.random() * 40_000);
    const dm = spawn('dnsmasq', ['--keep-in-foreground', '--no-resolv', '--no-hosts', '--listen-address=127.0.53.35', '--bind-interfaces',
      `--port=${dmPort}`, '--pid-file=', '--user=root', '--log-facility=/dev/null', '--local-ttl=120',
      '--address=/upstream.test/198.51.100.7', '--host-record=db.upstream.test,198.51.100.8'], { stdio: 'ignore' });
    stopAfterTest({ stop: async () => void dm.kill('SIGKILL') });
    const { host, port } = await startServer({ host: HOST, source: source(), upstreams: [{ host: '127.0.53.35', port: dmPort }] });
    let out = '';
    for (let i = 0; i < 50 && !/198\.51\.100\.8/.test(out); i++) {
      await new Promise((r) => setTimeout(r, 100));
      out = await dig(host, port, ['db.upstream.test', '+noall', '+answer']).catch(() => '');
    }
    expect(out).toMatch(/db\.upstream\.test\.\s+120\s+IN\s+A\s+198\.51\.100\.8/);
    expect((await dig(host, port, ['x.upstream.test', '+short'])).trim()).toBe('198.51.100.7');
    expect((await dig(host, port, ['web-1.shop.weft.local', '+short'])).trim()).toBe('10.32.0.1');
  });
});
