// Hostile input over real sockets: thousands of random and mutated datagrams, garbage and
// stalled TCP streams. The server must neither crash nor stall, and must still answer a good
// question afterwards. Seeded: a failing seed is a reproducible case.

import dgram from 'node:dgram';
import net from 'node:net';
import { describe, expect, test } from 'vitest';
import { buildRecordSet, MemoryRecordSource } from '../../dns/records.ts';
import { frame } from '../../dns/tcp-frames.ts';
import { FakeUpstream } from './fake-upstream.ts';
import { Rng } from '../sim/rng.ts';
import { addressesOf, decode, makeQuery, QTYPE, startServer, stopAfterTest, tcpExchange, udpExchange } from './helpers.ts';

const HOST = '127.0.53.40';
const NAMES = ['web.shop.weft.local', 'web-1.shop.weft.local', '_http._tcp.web.shop.weft.local', '2.0.32.10.in-addr.arpa', 'nope.weft.local', 'ext.example.com'];

const source = () => new MemoryRecordSource(buildRecordSet({
  containers: Array.from({ length: 40 }, (_, i) => ({ name: `web-${i + 1}`, stack: 'shop', service: 'web', addrs: [`10.32.0.${i + 1}`], ports: [{ port: 80, proto: 'tcp' as const, name: 'http' }] })),
}).set);

function hostile(rng: Rng): Buffer {
  switch (rng.int(5)) {
    case 0: // pure noise
      return Buffer.from(Array.from({ length: rng.int(600) }, () => rng.int(256)));
    case 1: { // a good query with a few octets changed
      const q = makeQuery(rng.pick(NAMES), rng.pick([1, 12, 28, 33, 255, 252, 41]), rng.chance(0.5) ? { edns: rng.int(65536), id: rng.int(65536) } : { id: rng.int(65536) });
      for (let i = 1 + rng.int(4); i > 0; i--) q[rng.int(q.length)] = rng.int(256);
      return q;
    }
    case 2: { // cut short or padded
      const q = makeQuery(rng.pick(NAMES), QTYPE.A, { edns: 1232 });
      return rng.chance(0.5) ? q.subarray(0, rng.int(q.length)) : Buffer.concat([q, Buffer.alloc(rng.int(100), rng.int(256))]);
    }
    case 3: { // header lies: counts, flags, opcodes
      const q = makeQuery(rng.pick(NAMES), QTYPE.A);
      q.writeUInt16BE(rng.int(65536), 2 * (1 + rng.int(5)));
      return q;
    }
    default: { // compression loops and pointers where none belong
      const q = makeQuery('a.weft.local', QTYPE.A);
      const at = 12 + rng.int(q.length - 12);
      q.writeUInt16BE(0xc000 | (rng.chance(0.5) ? 12 : rng.int(q.length)), Math.min(at, q.length - 2));
      return q;
    }
  }
}

describe('hostile packets', () => {
  test('thousands of random and mutated datagrams: no crash, no stall, good queries still answered', async () => {
    const up = stopAfterTest(await FakeUpstream.start('127.0.53.41'));
    up.records.set('ext.example.com', { addrs: [[1, 1, 1, 1]], ttl: 60 });
    const { server, host, port } = await startServer({ host: HOST, source: source(), upstreams: [{ host: up.host, port: up.port }], upstreamAttemptMs: 200, upstreamDeadlineMs: 400 });
    const sock = dgram.createSocket('udp4');
    let replies = 0;
    sock.on('message', () => replies++);
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    try {
      let sent = 0;
      for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
        const rng = new Rng(seed);
        for (let i = 0; i < 500; i++) {
          await new Promise<void>((r) => sock.send(hostile(rng), port, host, () => r()));
          sent++;
          if (i % 100 === 99) {
            // Between bursts the server must still answer at once.
            const ok = decode(await udpExchange(host, port, makeQuery('web-1.shop.weft.local', QTYPE.A, { id: i })));
            expect(addressesOf(ok), `seed ${seed}`).toEqual(['10.32.0.1']);
          }
        }
      }
      await new Promise((r) => setTimeout(r, 500)); // forwarded ones come back or fail
      const s = server.stats();
      expect(s.queries.udp).toBeGreaterThanOrEqual(sent);
      expect(replies).toBeGreaterThan(0);
      const total = Object.values(s.responses).reduce((a, b) => a + b, 0);
      expect(total + s.dropped).toBeGreaterThanOrEqual(sent * 0.99); // every datagram answered or deliberately dropped
    } finally {
      sock.close();
    }
    const [tcp] = await tcpExchange(host, port, [makeQuery('web.shop.weft.local', QTYPE.A)]);
    expect(addressesOf(decode(tcp!))).toHaveLength(40);
  });

  test('garbage and stalled TCP streams do not stall other clients', async () => {
    const { host, port } = await startServer({ host: HOST, source: source() });
    const rng = new Rng(99);
    const conns: net.Socket[] = [];
    try {
      for (let i = 0; i < 30; i++) {
        const c = net.connect({ host, port });
        c.on('error', () => {});
        conns.push(c);
        await new Promise<void>((r) => c.once('connect', () => r()));
        const kind = i % 3;
        if (kind === 0) c.write(Buffer.from([0xff])); // half a length prefix, then nothing
        else if (kind === 1) c.write(Buffer.concat([Buffer.from([0x40, 0x00]), Buffer.alloc(100, 1)])); // a frame never finished
        else c.write(Buffer.concat(Array.from({ length: 20 }, () => frame(hostile(rng))))); // whole frames of junk
      }
      const got = await tcpExchange(host, port, [makeQuery('web-2.shop.weft.local', QTYPE.A), makeQuery('web-3.shop.weft.local', QTYPE.A)]);
      expect(got.map((b) => addressesOf(decode(b))[0]).sort()).toEqual(['10.32.0.2', '10.32.0.3']);
      expect(addressesOf(decode(await udpExchange(host, port, makeQuery('web-4.shop.weft.local', QTYPE.A))))).toEqual(['10.32.0.4']);
    } finally {
      for (const c of conns) c.destroy();
    }
  });
});
