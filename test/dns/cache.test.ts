// The cache of upstream answers, with the clock in the test's hand: TTLs honoured and counted
// down, negative answers kept for their SOA minimum, memory bounded.

import { describe, expect, test } from 'vitest';
import { AnswerCache, MAX_CACHE_TTL_S, questionKey, replyFromUpstream, toUpstreamAnswer } from '../../dns/cache.ts';
import { parseQuery, scanResponse, type Query } from '../../dns/packet.ts';
import { decode, makeQuery, QTYPE } from './helpers.ts';

/** An upstream response to `query` with the given records appended (counts as given). */
function response(query: Buffer, rcode: number, counts: [number, number, number], ...records: Buffer[]): Buffer {
  const m = Buffer.concat([query.subarray(0, query.length - (query.readUInt16BE(10) ? 11 : 0)), ...records]);
  m.writeUInt16BE(0x8180 | rcode, 2);
  m.writeUInt16BE(counts[0], 6);
  m.writeUInt16BE(counts[1], 8);
  m.writeUInt16BE(counts[2], 10);
  return m;
}
const aRecord = (ttl: number, ip: number[]) => Buffer.from([0xc0, 12, 0, 1, 0, 1, ttl >>> 24, (ttl >>> 16) & 255, (ttl >>> 8) & 255, ttl & 255, 0, 4, ...ip]);
const soaRecord = (ttl: number, minimum: number) => {
  const rdata = Buffer.concat([Buffer.from([0xc0, 12, 0xc0, 12]), Buffer.alloc(20)]);
  rdata.writeUInt32BE(minimum, 20);
  const head = Buffer.from([0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, rdata.length]);
  head.writeUInt32BE(ttl, 6);
  return Buffer.concat([head, rdata]);
};
const opt = () => Buffer.from([0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);

function scanned(msg: Buffer) {
  const s = scanResponse(msg);
  if (typeof s === 'string') throw new Error(s);
  return s;
}
function query(name: string, qtype: number = QTYPE.A, edns?: number): { q: Query; msg: Buffer } {
  const msg = makeQuery(name, qtype, edns ? { edns, id: 999 } : { id: 999 });
  const q = parseQuery(msg);
  if ('reject' in q) throw new Error(q.reason);
  return { q, msg };
}

describe('upstream answers', () => {
  test('a positive answer lives for its smallest TTL, and replies count the TTLs down', () => {
    const up = response(makeQuery('example.com', QTYPE.A), 0, [2, 0, 1], aRecord(300, [1, 1, 1, 1]), aRecord(60, [2, 2, 2, 2]), opt());
    const a = toUpstreamAnswer(up, scanned(up), 10_000);
    expect(a.lifetime).toBe(60);
    expect(a.ar).toBe(0); // the upstream's OPT is not passed on
    const { q, msg } = query('EXAMPLE.com', QTYPE.A, 1232);
    const r = decode(replyFromUpstream(a, q, msg, 512, 1232, 10_000 + 25_400).bytes);
    expect(r.header).toMatchObject({ id: 999, qr: 1, aa: 0, ra: 1, rcode: 0 });
    expect(r.questions[0]!.name).toBe('EXAMPLE.com');
    expect(r.answers.map((x) => [x.address, x.ttl])).toEqual([['1.1.1.1', 275], ['2.2.2.2', 35]]);
    expect(r.additionals.filter((x) => x.type === QTYPE.OPT)).toHaveLength(1); // ours, for an EDNS client
  });

  test('NXDOMAIN and NODATA live for min(SOA TTL, SOA minimum); without an SOA not at all', () => {
    const nx = response(makeQuery('nope.example.com', QTYPE.A), 3, [0, 1, 0], soaRecord(900, 30));
    expect(toUpstreamAnswer(nx, scanned(nx), 0).lifetime).toBe(30);
    const nodata = response(makeQuery('example.com', QTYPE.AAAA), 0, [0, 1, 0], soaRecord(20, 3600));
    expect(toUpstreamAnswer(nodata, scanned(nodata), 0).lifetime).toBe(20);
    const bare = response(makeQuery('example.com', QTYPE.AAAA), 0, [0, 0, 0]);
    expect(toUpstreamAnswer(bare, scanned(bare), 0).lifetime).toBe(0);
  });

  test('huge TTLs are capped, TTL 0 and truncated answers are not kept', () => {
    const long = response(makeQuery('example.com', QTYPE.A), 0, [1, 0, 0], aRecord(2 ** 31, [1, 1, 1, 1]));
    expect(toUpstreamAnswer(long, scanned(long), 0).lifetime).toBe(MAX_CACHE_TTL_S);
    const zero = response(makeQuery('example.com', QTYPE.A), 0, [1, 0, 0], aRecord(0, [1, 1, 1, 1]));
    expect(toUpstreamAnswer(zero, scanned(zero), 0).lifetime).toBe(0);
    const tc = response(makeQuery('example.com', QTYPE.A), 0, [1, 0, 0], aRecord(60, [1, 1, 1, 1]));
    tc[2]! |= 0x02;
    expect(toUpstreamAnswer(tc, scanned(tc), 0).lifetime).toBe(0);
  });

  test('a reply that does not fit the client is the question alone with TC', () => {
    const records = Array.from({ length: 40 }, (_, i) => aRecord(60, [10, 0, 0, i]));
    const up = response(makeQuery('many.example.com', QTYPE.A), 0, [40, 0, 0], ...records);
    const a = toUpstreamAnswer(up, scanned(up), 0);
    const { q, msg } = query('many.example.com');
    const small = replyFromUpstream(a, q, msg, 512, 1232, 0);
    expect(small.truncated).toBe(true);
    expect(decode(small.bytes).answers).toEqual([]);
    expect(decode(replyFromUpstream(a, q, msg, 65535, 1232, 0).bytes).answers).toHaveLength(40);
  });
});

describe('cache', () => {
  const answer = (name: string, ttl: number, now: number) => {
    const up = response(makeQuery(name, QTYPE.A), 0, [1, 0, 0], aRecord(ttl, [1, 2, 3, 4]));
    return toUpstreamAnswer(up, scanned(up), now);
  };

  test('an entry is served until its lifetime ends', () => {
    const c = new AnswerCache();
    c.set('k', answer('a.example', 10, 1000));
    expect(c.get('k', 1000)).toBeDefined();
    expect(c.get('k', 10_999)).toBeDefined();
    expect(c.get('k', 11_000)).toBeUndefined();
    expect(c.size).toBe(0);
  });

  test('the least recently used entries go first when full, by count and by bytes', () => {
    const c = new AnswerCache(3);
    for (const k of ['a', 'b', 'c']) c.set(k, answer(`${k}.example`, 60, 0));
    c.get('a', 1);
    c.set('d', answer('d.example', 60, 0));
    expect(['a', 'b', 'c', 'd'].filter((k) => c.get(k, 2))).toEqual(['a', 'c', 'd']);
    const bySize = new AnswerCache(1000, 100);
    for (let i = 0; i < 20; i++) bySize.set(`k${i}`, answer(`k${i}.example`, 60, 0));
    expect(bySize.byteSize).toBeLessThanOrEqual(100);
    expect(bySize.get('k19', 1)).toBeDefined();
    expect(bySize.get('k0', 1)).toBeUndefined();
  });

  test('questions differing in type or class are different entries; case is not', () => {
    const a = query('Example.COM', QTYPE.A).q;
    const b = query('example.com', QTYPE.A).q;
    const c = query('example.com', QTYPE.AAAA).q;
    expect(questionKey(a.key, a.qtype, a.qclass)).toBe(questionKey(b.key, b.qtype, b.qclass));
    expect(questionKey(c.key, c.qtype, c.qclass)).not.toBe(questionKey(b.key, b.qtype, b.qclass));
  });
});
