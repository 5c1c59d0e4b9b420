// The small decoders and helpers every peer runs on input from the network or the user.
import { describe, expect, test } from 'vitest';
import { encodeFrame, FrameDecoder, FrameError } from '../../mesh/framing.ts';
import { decodeJoinToken, encodeJoinToken } from '../../mesh/admission/join-token.ts';
import { parseHostPort } from '../../mesh/address.ts';
import { BACKOFF_BASE_MS, BACKOFF_MAX_MS, backoffDelay } from '../../mesh/transport/backoff.ts';
import { LogOnce, REPEAT_WINDOW_MS } from '../../mesh/log-once.ts';
import { EventLog } from '../../mesh/events.ts';
import { Rng, seeds } from '../sim/rng.ts';

describe('length-prefixed JSON frames', () => {
  test('frames split at any byte boundary decode to the same messages', () => {
    const msgs = [{ t: 'hb', inc: 3 }, { big: 'x'.repeat(70_000) }, [1, 2, 3], 'text', null];
    const wire = Buffer.concat(msgs.map((m) => encodeFrame(m)));
    for (const step of [1, 3, 7, 64, 4096, wire.length]) {
      const d = new FrameDecoder(1 << 20);
      const out: unknown[] = [];
      for (let i = 0; i < wire.length; i += step) out.push(...d.push(wire.subarray(i, i + step)));
      expect(out).toEqual(msgs);
    }
  });

  test('a frame announcing more than the limit is refused before it is buffered', () => {
    const d = new FrameDecoder(1024);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(1025);
    expect(() => d.push(head)).toThrow(FrameError);
  });

  test.each(seeds(200))('fuzz %i: random and mutated bytes give frames or a FrameError, nothing else', (seed) => {
    const rng = new Rng(seed);
    const d = new FrameDecoder(4096);
    const good = encodeFrame({ t: 'push', entries: [{ k: 'a', v: rng.int(1000) }] });
    for (let i = 0; i < 20; i++) {
      const bytes = rng.chance(0.5) ? Buffer.from(good) : Buffer.from(Array.from({ length: rng.int(64) }, () => rng.int(256)));
      if (bytes.length) bytes[rng.int(bytes.length)] = rng.int(256);
      try {
        d.push(bytes);
      } catch (err) {
        expect(err).toBeInstanceOf(FrameError);
        return; // a decoder that failed is discarded with its stream
      }
    }
  });
});

describe('join tokens', () => {
  test('carry the mesh key and bootstrap peers, and nothing that reads as the password', () => {
    const key = new Uint8Array(32).map((_, i) => i);
    const token = encodeJoinToken({ key, peers: ['10.0.0.1:6783', '10.0.0.2:6783'] });
    expect(token.startsWith('weft1.')).toBe(true);
    const back = decodeJoinToken(token);
    expect([...back.key]).toEqual([...key]);
    expect(back.peers).toEqual(['10.0.0.1:6783', '10.0.0.2:6783']);
  });

  test.each(['', 'weft1.', 'weft1.!!!!', 'weft2.e30', 'weft1.' + Buffer.from('{"k":"AAAA","p":[]}').toString('base64url'),
    'weft1.' + Buffer.from('{"k":1,"p":"x"}').toString('base64url'), 'x'.repeat(10_000)])('a damaged token %#: one clear error', (t) => {
    expect(() => decodeJoinToken(t)).toThrow(/^the join token is not valid/);
  });
});

describe('addresses given by the user', () => {
  test('IP with or without port', () => {
    expect(parseHostPort('10.1.2.3')).toEqual({ host: '10.1.2.3', port: 6783 });
    expect(parseHostPort(' 10.1.2.3:7000 ')).toEqual({ host: '10.1.2.3', port: 7000 });
  });

  test.each(['host.example', '10.1.2.3:', '10.1.2.3:99999', '10.1.2', ':6783', '10.1.2.3:1:2'])('%s is refused with an example of the form', (t) => {
    expect(() => parseHostPort(t)).toThrow(/is not an address of the form IPv4\[:PORT\]/);
  });
});

describe('redial backoff', () => {
  test('grows exponentially to a cap, with ±50 % jitter', () => {
    expect(backoffDelay(0, 0.5)).toBe(BACKOFF_BASE_MS);
    expect(backoffDelay(1, 0.5)).toBe(2 * BACKOFF_BASE_MS);
    expect(backoffDelay(50, 0.5)).toBe(BACKOFF_MAX_MS);
    expect(backoffDelay(3, 0)).toBe(0.5 * 8 * BACKOFF_BASE_MS);
    expect(backoffDelay(3, 0.999999)).toBeCloseTo(1.5 * 8 * BACKOFF_BASE_MS, -1);
  });
});

describe('repeated conditions are logged once per window', () => {
  test('then again with the count of what was suppressed', () => {
    const once = new LogOnce();
    expect(once.shouldLog('k', 0)).toBe(0);
    expect(once.shouldLog('k', 10)).toBeUndefined();
    expect(once.shouldLog('k', 20)).toBeUndefined();
    expect(once.shouldLog('other', 20)).toBe(0);
    expect(once.shouldLog('k', REPEAT_WINDOW_MS + 1)).toBe(2);
  });
});

describe('the event log', () => {
  test('keeps a bounded history in order and feeds followers', () => {
    const log = new EventLog();
    const followed: number[] = [];
    log.subscribe((e) => followed.push(e.seq));
    for (let i = 0; i < 1500; i++) log.add({ type: 'joined' });
    const kept = log.list();
    expect(kept.length).toBe(1000);
    expect(kept[0]?.seq).toBe(501);
    expect(kept.at(-1)?.seq).toBe(1500);
    expect(followed.length).toBe(1500);
  });
});
