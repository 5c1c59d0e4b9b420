// What a hostile container can send to its resolver, over real sockets, against a running
// server: a datagram from source port 0 (a raw socket, which Docker's NET_RAW allows), cut
// short and oversized datagrams, TCP frames that lie about their length, pipelines closed
// abruptly and a client that never reads its answers. After each the server must still be
// running and answer a normal question; an exception in any handler would end the test
// process (vitest reports it), as it would end the peer.

import dgram from 'node:dgram';
import net from 'node:net';
import { describe, expect, test } from 'vitest';
import { buildRecordSet, MemoryRecordSource } from '../../dns/records.ts';
import { MAX_TCP_UNSENT_BYTES } from '../../dns/tcp.ts';
import { frame } from '../../dns/tcp-frames.ts';
import { FakeUpstream } from './fake-upstream.ts';
import { addressesOf, decode, makeQuery, QTYPE, startServer, stopAfterTest, tcpExchange, udpExchange } from './helpers.ts';
import { rawUdpUnavailable, sendRawUdp } from './raw-udp.ts';

const HOST = '127.0.53.50';
const UPSTREAM = '127.0.53.51';
/** The raw datagrams' source: any loopback address but the server's. */
const ATTACKER = '127.0.53.52';

/** 200 containers: an answer of about 3.3 KB over TCP for a query of about 35 octets. */
const source = () => new MemoryRecordSource(buildRecordSet({
  containers: [
    { name: 'db-1', stack: 'shop', service: 'db', addrs: ['10.32.5.1'] },
    ...Array.from({ length: 200 }, (_, i) => ({ name: `big-${i + 1}`, stack: 'shop', service: 'big', addrs: [`10.32.${10 + Math.floor(i / 250)}.${(i % 250) + 1}`] })),
  ],
}).set);

/** The server answers an ordinary question over UDP and over TCP. */
async function stillAnswers(host: string, port: number): Promise<void> {
  expect(addressesOf(decode(await udpExchange(host, port, makeQuery('db-1.shop.weft.local', QTYPE.A))))).toEqual(['10.32.5.1']);
  const [tcp] = await tcpExchange(host, port, [makeQuery('db.shop.weft.local', QTYPE.A)]);
  expect(addressesOf(decode(tcp!))).toEqual(['10.32.5.1']);
}

/** Waits (bounded) until `cond` holds; returns whether it did. */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 20) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host, port });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

describe.skipIf(rawUdpUnavailable !== undefined)(`a datagram from source port 0${rawUdpUnavailable ? ` (skipped: ${rawUdpUnavailable})` : ''}`, () => {
  test.each([0, 1])('is dropped and counted, and the server keeps answering (UDP workers: %i)', async (workers) => {
    const { server, host, port } = await startServer({ host: HOST, source: source(), workers });
    await sendRawUdp(ATTACKER, 0, host, port, makeQuery('db-1.shop.weft.local', QTYPE.A));
    expect(await until(() => server.stats().droppedSourcePort0 === 1)).toBe(true);
    expect(server.stats().dropped).toBe(1);
    await stillAnswers(host, port);
    // The same attacker from an ordinary port is answered: it is the port that is refused.
    const reply = dgram.createSocket('udp4');
    const got = new Promise<Buffer>((r) => reply.once('message', r));
    await new Promise<void>((r) => reply.bind(0, ATTACKER, () => r()));
    try {
      await sendRawUdp(ATTACKER, reply.address().port, host, port, makeQuery('db-1.shop.weft.local', QTYPE.A));
      expect(addressesOf(decode(await got))).toEqual(['10.32.5.1']);
    } finally {
      reply.close();
    }
  });

  test('a name forwarded upstream from source port 0 is never asked, and the server keeps answering', async () => {
    const up = stopAfterTest(await FakeUpstream.start(UPSTREAM));
    up.records.set('ext.example.com', { addrs: [[192, 0, 2, 7]], ttl: 60 });
    const { server, host, port } = await startServer({ host: HOST, source: source(), upstreams: [{ host: up.host, port: up.port }] });
    await sendRawUdp(ATTACKER, 0, host, port, makeQuery('ext.example.com', QTYPE.A));
    expect(await until(() => server.stats().droppedSourcePort0 === 1)).toBe(true);
    expect(up.asked).toEqual([]);
    expect(addressesOf(decode(await udpExchange(host, port, makeQuery('ext.example.com', QTYPE.A))))).toEqual(['192.0.2.7']);
    await stillAnswers(host, port);
  });
});

describe('hostile datagrams and TCP streams against a running server', () => {
  test('datagrams cut short at every length, and the largest a datagram can be, are answered or dropped', async () => {
    const { server, host, port } = await startServer({ host: HOST, source: source() });
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    try {
      const q = makeQuery('db-1.shop.weft.local', QTYPE.A, { edns: 1232 });
      for (let len = 0; len < q.length; len++) await new Promise<void>((r) => sock.send(q.subarray(0, len), port, host, () => r()));
      // 65,507 octets is the most an IPv4 datagram carries: a good question padded, and noise.
      const MAX_DATAGRAM = 65_507;
      await new Promise<void>((r) => sock.send(Buffer.concat([q, Buffer.alloc(MAX_DATAGRAM - q.length, 0xab)]), port, host, () => r()));
      await new Promise<void>((r) => sock.send(Buffer.alloc(MAX_DATAGRAM, 0xff), port, host, () => r()));
      const sent = q.length + 2;
      expect(await until(() => server.stats().queries.udp >= sent)).toBe(true);
    } finally {
      sock.close();
    }
    await stillAnswers(host, port);
  });

  test('a TCP frame announcing 65,535 octets that never come holds no one up', async () => {
    const { host, port } = await startServer({ host: HOST, source: source() });
    const c = await connect(host, port);
    c.on('error', () => {});
    try {
      c.write(Buffer.concat([Buffer.from([0xff, 0xff]), makeQuery('db-1.shop.weft.local', QTYPE.A), Buffer.alloc(1000, 7)]));
      await stillAnswers(host, port);
    } finally {
      c.destroy();
    }
    await stillAnswers(host, port);
  });

  test('a TCP frame of length 0 closes that connection only', async () => {
    const { host, port } = await startServer({ host: HOST, source: source() });
    const c = await connect(host, port);
    c.on('error', () => {});
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.write(Buffer.concat([Buffer.from([0, 0]), frame(makeQuery('db-1.shop.weft.local', QTYPE.A))]));
    await closed;
    await stillAnswers(host, port);
  });

  test('hundreds of pipelined questions, some waiting on a slow upstream, then a reset: the server carries on', async () => {
    const up = stopAfterTest(await FakeUpstream.start(UPSTREAM));
    up.delayMs = 300;
    for (let i = 0; i < 20; i++) up.records.set(`n${i}.example.com`, { addrs: [[192, 0, 2, i]], ttl: 60 });
    const { server, host, port } = await startServer({ host: HOST, source: source(), upstreams: [{ host: up.host, port: up.port }] });
    const c = await connect(host, port);
    c.on('error', () => {});
    const queries = Array.from({ length: 500 }, (_, i) => makeQuery(i % 25 === 0 ? `n${(i / 25) % 20}.example.com` : 'big.shop.weft.local', QTYPE.A, { id: i }));
    c.write(Buffer.concat(queries.map(frame)));
    expect(await until(() => up.asked.length > 0)).toBe(true);
    c.resetAndDestroy();
    await new Promise((r) => setTimeout(r, 500)); // the upstream answers arrive for a closed connection
    expect(server.stats().tcpConnections).toBe(1);
    await stillAnswers(host, port);
  });

  test('a TCP client that never reads its large answers makes the server stop reading, not buffer without bound', async () => {
    const { server, host, port } = await startServer({ host: HOST, source: source() });
    const c = await connect(host, port);
    c.on('error', () => {});
    c.pause(); // never reads: the answers pile up in the kernel, then in the server
    try {
      // 20,000 questions of ~35 octets ask for ~66 MB of answers.
      const N = 20_000;
      const batch = Buffer.concat(Array.from({ length: 1000 }, (_, i) => frame(makeQuery('big.shop.weft.local', QTYPE.A, { id: i }))));
      for (let i = 0; i < N / 1000 && !c.destroyed; i++) c.write(batch);
      // Wait until the server has stopped taking questions from this client (bounded).
      let last = -1;
      for (let i = 0; i < 50 && server.stats().queries.tcp !== last; i++) {
        last = server.stats().queries.tcp;
        await new Promise((r) => setTimeout(r, 200));
      }
      const s = server.stats();
      expect(s.queries.tcp).toBeLessThan(N);
      expect(s.tcpUnsentBytes).toBeLessThanOrEqual(MAX_TCP_UNSENT_BYTES + 65_537);
      await stillAnswers(host, port);
    } finally {
      c.destroy();
    }
  });
});
