// The wire decoders every query from a container goes through, with hostile input: a bad
// message gets a reason (and FORMERR or silence), never an exception, never unbounded work.

import { describe, expect, test, vi } from 'vitest';
import { answerFromZone } from '../../dns/answer.ts';
import { keyIsUnder, nameKey, normalizeName, qualify } from '../../dns/names.ts';
import { parseQuery, scanResponse, type Query, type Rejection } from '../../dns/packet.ts';
import { buildRecordSet } from '../../dns/records.ts';
import { FrameReader, frame } from '../../dns/tcp-frames.ts';
import { parseResolvConf, parseUpstream } from '../../dns/upstream-config.ts';
import { buildZone } from '../../dns/zone-builder.ts';
import { Rng, seeds } from '../sim/rng.ts';
import { makeQuery, QTYPE } from './helpers.ts';

const rejected = (r: Query | Rejection): Rejection => {
  if (!('reject' in r)) throw new Error('expected a rejection');
  return r;
};
const accepted = (r: Query | Rejection): Query => {
  if ('reject' in r) throw new Error(`rejected: ${r.reason}`);
  return r;
};

describe('query decoder', () => {
  test('a plain query and one with EDNS decode to the same question', () => {
    const q = accepted(parseQuery(makeQuery('Web.Shop.weft.local', QTYPE.A, { id: 77 })));
    expect(q).toMatchObject({ id: 77, qtype: 1, qclass: 1, edns: undefined, key: nameKey('web.shop.weft.local') });
    const e = accepted(parseQuery(makeQuery('web.shop.weft.local', QTYPE.SRV, { edns: 4096 })));
    expect(e.edns).toEqual({ udpSize: 4096, version: 0, dnssecOk: false });
    expect(e.key).toBe(q.key);
  });

  const base = makeQuery('web.weft.local', QTYPE.A);
  const edit = (f: (b: Buffer) => Buffer | void): Buffer => {
    const b = Buffer.from(base);
    return f(b) ?? b;
  };
  test.each<[string, Buffer, 'drop' | 'formerr' | 'notimp', RegExp]>([
    ['shorter than a header', Buffer.alloc(11), 'drop', /shorter than the 12-octet header/],
    ['a response', edit((b) => void (b[2]! |= 0x80)), 'drop', /response/],
    ['opcode NOTIFY', edit((b) => void (b[2] = (4 << 3) | 1)), 'notimp', /opcode 4/],
    ['opcode UPDATE', edit((b) => void (b[2] = 5 << 3)), 'notimp', /opcode 5/],
    ['no question', edit((b) => void b.writeUInt16BE(0, 4)), 'formerr', /0 questions/],
    ['two questions', edit((b) => void b.writeUInt16BE(2, 4)), 'formerr', /2 questions/],
    ['a name running off the end', base.subarray(0, 18), 'formerr', /runs past the end/],
    ['no type and class', base.subarray(0, base.length - 2), 'formerr', /cut short/],
    ['a pointer in the question', edit((b) => void b.writeUInt16BE(0xc00c, 12)), 'formerr', /compression pointer/],
    ['an extended label type', edit((b) => void (b[12] = 0x41)), 'formerr', /label type/],
    ['more records than the message can hold', edit((b) => void b.writeUInt16BE(500, 10)), 'formerr', /cannot hold/],
    ['an OPT in the answer section', Buffer.concat([edit((b) => void b.writeUInt16BE(1, 6)), Buffer.from([0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0])]), 'formerr', /outside the additional/],
    ['two OPT records', Buffer.concat([edit((b) => void b.writeUInt16BE(2, 10)), Buffer.from([0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0])]), 'formerr', /more than one OPT/],
    ['an OPT not owned by the root', Buffer.concat([edit((b) => void b.writeUInt16BE(1, 10)), Buffer.from([1, 120, 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0])]), 'formerr', /not the root/],
    ['a record cut short', Buffer.concat([edit((b) => void b.writeUInt16BE(1, 10)), Buffer.from([0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 9, 1])]), 'formerr', /cut short/],
  ])('%s', (_what, msg, action, reason) => {
    const r = rejected(parseQuery(msg));
    expect(r.reject).toBe(action);
    expect(r.reason).toMatch(reason);
  });

  test('a name longer than 255 octets is refused', () => {
    const long = Array.from({ length: 5 }, () => 'x'.repeat(60)).join('.');
    expect(rejected(parseQuery(makeQuery(long, QTYPE.A))).reason).toMatch(/longer than 255/);
    const justFits = [...Array.from({ length: 3 }, () => 'x'.repeat(63)), 'x'.repeat(61)].join('.'); // 255 on the wire
    expect(accepted(parseQuery(makeQuery(justFits, QTYPE.A))).key.length).toBe(255);
  });

  test('records in the answer and authority sections are stepped over, bytes after the last ignored', () => {
    const extra = Buffer.concat([
      base,
      Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 1, 2, 3, 4]), // an answer record, pointer owner
      Buffer.from([0, 0, 41, 2, 0, 0, 0, 0x80, 0, 0, 0]), // OPT with DO
      Buffer.from([9, 9, 9]),
    ]);
    extra.writeUInt16BE(1, 6);
    extra.writeUInt16BE(1, 10);
    expect(accepted(parseQuery(extra)).edns).toEqual({ udpSize: 512, version: 0, dnssecOk: true });
  });

  test.each(seeds(40))('fuzz %i: random and mutated queries give a query or a reason, within bounds', (seed) => {
    const rng = new Rng(seed);
    const zone = buildZone(buildRecordSet({ containers: [{ name: 'web-1', stack: 'shop', service: 'web', addrs: ['10.32.0.1'], ports: [{ port: 80, proto: 'tcp' }] }] }).set);
    const names = ['web.shop.weft.local', 'web-1.shop.weft.local', '_80._tcp.web.shop.weft.local', '1.0.32.10.in-addr.arpa', 'example.com', 'a.b'];
    for (let i = 0; i < 500; i++) {
      let msg: Buffer;
      const kind = rng.int(4);
      if (kind === 0) {
        msg = Buffer.from(Array.from({ length: rng.int(80) }, () => rng.int(256)));
      } else {
        msg = makeQuery(rng.pick(names), rng.pick([1, 12, 28, 33, 255, 41, 252, rng.int(65536)]), rng.chance(0.5) ? { edns: rng.int(65536) } : {});
        const flips = 1 + rng.int(kind === 3 ? 12 : 3);
        for (let f = 0; f < flips; f++) msg[rng.int(msg.length)] = rng.int(256);
        if (rng.chance(0.2)) msg = msg.subarray(0, rng.int(msg.length + 1));
        if (rng.chance(0.1)) msg = Buffer.concat([msg, Buffer.from(Array.from({ length: rng.int(40) }, () => rng.int(256)))]);
      }
      const r = parseQuery(msg);
      if ('reject' in r) {
        expect(['drop', 'formerr', 'notimp']).toContain(r.reject);
        expect(r.reason.length).toBeGreaterThan(0);
        continue;
      }
      expect(r.questionEnd).toBeLessThanOrEqual(msg.length);
      expect(r.key.length).toBeLessThanOrEqual(255);
      // Whatever decodes must also be answerable without throwing, within the size limit.
      const a = answerFromZone(zone, r, msg, 512, 1232, () => rng.next());
      if (a) expect(a.bytes.length).toBeLessThanOrEqual(512);
    }
  });
});

describe('upstream response scanner', () => {
  test.each(seeds(20))('fuzz %i: random and mutated responses give records or a reason', (seed) => {
    const rng = new Rng(seed);
    const good = Buffer.concat([
      makeQuery('example.com', QTYPE.A),
      Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34]),
    ]);
    good[2]! |= 0x80;
    good.writeUInt16BE(1, 6);
    const clean = scanResponse(good);
    if (typeof clean === 'string') throw new Error(clean);
    expect(clean.records).toHaveLength(1);
    expect(clean.records[0]).toMatchObject({ type: 1, ttl: 60 });
    for (let i = 0; i < 300; i++) {
      const m = Buffer.from(good);
      for (let f = 0; f < 1 + rng.int(4); f++) m[rng.int(m.length)] = rng.int(256);
      const s = scanResponse(rng.chance(0.2) ? m.subarray(0, rng.int(m.length)) : m);
      if (typeof s === 'string') continue;
      for (const r of s.records) expect(r.end).toBeLessThanOrEqual(m.length);
    }
  });
});

describe('TCP framing', () => {
  test('messages split at any boundary come out whole and in order', () => {
    const msgs = [makeQuery('a.weft.local', 1), Buffer.alloc(0), makeQuery('b.weft.local', 33, { edns: 1232 }), Buffer.alloc(3000, 7)];
    const wire = Buffer.concat(msgs.map(frame));
    for (const step of [1, 2, 3, 7, 100, wire.length]) {
      const r = new FrameReader();
      const out: Buffer[] = [];
      for (let i = 0; i < wire.length; i += step) out.push(...r.push(wire.subarray(i, i + step)));
      expect(out.map((b) => b.toString('hex'))).toEqual(msgs.map((b) => b.toString('hex')));
      expect(r.pending).toBe(0);
    }
  });

  test('a 64 KiB message sent one octet at a time is joined once, not once per octet', () => {
    const r = new FrameReader();
    const msg = frame(Buffer.alloc(65_535, 1));
    const concat = vi.spyOn(Buffer, 'concat');
    try {
      let out: Buffer[] = [];
      for (let i = 0; i < msg.length; i++) out = r.push(msg.subarray(i, i + 1));
      expect(out).toHaveLength(1);
      expect(out[0]!.equals(msg.subarray(2))).toBe(true);
      expect(concat.mock.calls.length).toBeLessThanOrEqual(2); // the length prefix, then the message
    } finally {
      concat.mockRestore();
    }
  });
});

describe('names and addresses', () => {
  test('names are normalized and checked', () => {
    expect(normalizeName('Web.Shop.WEFT.local.')).toBe('web.shop.weft.local');
    expect(() => normalizeName('a..b')).toThrow(/not a valid DNS name/);
    expect(() => normalizeName('has space.weft.local')).toThrow(/not a valid DNS name/);
    expect(qualify('db', 'weft.local')).toBe('db.weft.local');
    expect(qualify('db.weft.local', 'weft.local')).toBe('db.weft.local');
    expect(qualify('db.example.com', 'weft.local')).toBe('db.example.com');
    expect(qualify('db.', 'weft.local')).toBe('db');
    expect(keyIsUnder(nameKey('a.weft.local'), nameKey('weft.local'))).toBe(true);
    expect(keyIsUnder(nameKey('aweft.local'), nameKey('weft.local'))).toBe(false);
    // A binary label that happens to end in "\x04weft" is not a label boundary.
    const tricky = '\x06a\x04weft' + nameKey('local').slice(0);
    expect(keyIsUnder(tricky, nameKey('weft.local'))).toBe(false);
  });

  test('upstreams from the command line and resolv.conf', () => {
    expect(parseUpstream('10.0.0.2')).toEqual({ host: '10.0.0.2', port: 53 });
    expect(parseUpstream('10.0.0.2:5353')).toEqual({ host: '10.0.0.2', port: 5353 });
    expect(parseUpstream('[fd00::2]:53')).toEqual({ host: 'fd00::2', port: 53 });
    expect(parseUpstream('fd00::2')).toEqual({ host: 'fd00::2', port: 53 });
    expect(() => parseUpstream('dns.google')).toThrow(/not an upstream resolver address/);
    expect(() => parseUpstream('10.0.0.2:99999')).toThrow(/not an upstream resolver address/);
    expect(parseResolvConf('# comment\nsearch x\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n'))
      .toEqual([{ host: '10.0.0.1', port: 53 }, { host: 'fe80::1%eth0', port: 53 }, { host: '10.0.0.3', port: 53 }]);
  });
});
