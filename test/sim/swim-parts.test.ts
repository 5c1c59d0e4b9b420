// The parts of SWIM-style failure detection and dissemination, each on its own and then
// together in a small world: the probe order, Lifeguard's suspicion timeout, and changes
// piggybacked on probe traffic with a bounded retransmit count. Deterministic (seeded).
import { describe, expect, test } from 'vitest';
import { mulberry32 } from '../../mesh/seeded-random.ts';
import { ProbeSchedule } from '../../mesh/membership/schedule.ts';
import { SUSPICION_CONFIRMATIONS, suspicionBounds, suspicionTimeout } from '../../mesh/membership/suspicion.ts';
import { Broadcasts, retransmitLimit } from '../../mesh/membership/broadcasts.ts';
import { seeds } from './rng.ts';

const ids = (n: number, prefix = 'm') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('probe schedule (shuffled round-robin)', () => {
  test.each(seeds(10))('seed %i: a member present for a whole cycle is probed exactly once in it, in a new order each cycle', (seed) => {
    const s = new ProbeSchedule(mulberry32(seed));
    const members = ids(50);
    for (const id of members) s.add(id);
    const cycles: string[][] = [];
    for (let c = 0; c < 4; c++) cycles.push(Array.from({ length: 50 }, () => s.pick() as string));
    // The first cycle is in insertion-shuffled order; from the first reshuffle on, each cycle
    // is a permutation of the members.
    for (const cycle of cycles.slice(1)) expect([...cycle].sort()).toEqual([...members].sort());
    expect(cycles[1]).not.toEqual(cycles[2]);
  });

  test.each(seeds(20))('seed %i: a newcomer is probed within two cycles; a removed member never again', (seed) => {
    const rnd = mulberry32(seed);
    const s = new ProbeSchedule(rnd);
    for (const id of ids(30)) s.add(id);
    for (let i = 0; i < Math.floor(rnd() * 60); i++) s.pick();
    s.add('new');
    s.remove('m3');
    s.remove('m4');
    const picks = Array.from({ length: 2 * 30 }, () => s.pick());
    expect(picks).toContain('new');
    expect(picks).not.toContain('m3');
    expect(picks).not.toContain('m4');
    expect(s.size).toBe(29);
  });

  test('empty, and emptied: nothing to probe', () => {
    const s = new ProbeSchedule(mulberry32(1));
    expect(s.pick()).toBeUndefined();
    s.add('a');
    expect(s.pick()).toBe('a');
    expect(s.pick()).toBe('a');
    s.remove('a');
    expect(s.pick()).toBeUndefined();
  });
});

describe('suspicion timeout (Lifeguard)', () => {
  test('the maximum scales with log N, the minimum does not; falls with confirmations to the minimum, never below it', () => {
    expect(suspicionBounds(3)).toEqual({ minMs: 800, maxMs: 2400 });
    expect(suspicionBounds(10)).toEqual({ minMs: 800, maxMs: 2400 });
    expect(suspicionBounds(100)).toEqual({ minMs: 800, maxMs: 4800 });
    expect(suspicionBounds(1000)).toEqual({ minMs: 800, maxMs: 7200 });
    const b = suspicionBounds(100);
    const t = Array.from({ length: SUSPICION_CONFIRMATIONS + 3 }, (_, c) => suspicionTimeout(b, c));
    expect(t[0]).toBe(b.maxMs);
    for (let c = 1; c < t.length; c++) expect(t[c]).toBeLessThanOrEqual(t[c - 1] as number);
    expect(t[SUSPICION_CONFIRMATIONS]).toBe(b.minMs);
    expect(Math.min(...t)).toBe(b.minMs);
  });
});

describe('broadcast queue', () => {
  test('one entry per subject (newer replaces older), least-sent and newest first, gone after the retransmit limit, within the byte bound', () => {
    const q = new Broadcasts<string>();
    q.enqueue('a', 'a@1', 10);
    q.enqueue('b', 'b@1', 10);
    q.enqueue('a', 'a@2', 10);
    expect(q.size).toBe(2);
    expect(q.take(1000, 10)).toEqual(['a@2', 'b@1']);
    q.enqueue('c', 'c@1', 10);
    // c has been sent least: it goes first; only 15 bytes of room: c alone.
    expect(q.take(15, 10)).toEqual(['c@1']);
    const limit = retransmitLimit(10);
    expect(limit).toBe(8);
    let sends = 0;
    for (let i = 0; i < 100 && q.size > 0; i++) sends += q.take(1000, 10).length;
    // Every entry went out exactly `limit` times in all.
    expect(sends + 2 + 1).toBe(3 * limit);
  });
});

describe('a change piggybacked on probe traffic reaches every peer in O(log N) periods at a constant cost per peer', () => {
  /** Each period every peer probes the next member of its schedule and piggybacks queued
   *  changes on the ping; the target piggybacks on its ack. 1% of messages are lost. One
   *  change starts at one peer; counted: periods until every peer holds it, and messages per
   *  peer per period. */
  function spread(n: number, seed: number): { periods: number; perPeerPerPeriod: number } {
    const rnd = mulberry32(seed);
    const peers = ids(n, 'p');
    const queue = new Map(peers.map((p) => [p, new Broadcasts<string>()]));
    const schedule = new Map(peers.map((p) => {
      const s = new ProbeSchedule(mulberry32(seed * 7919 + p.length + Number(p.slice(1))));
      for (const o of peers) if (o !== p) s.add(o);
      return [p, s];
    }));
    const knows = new Set<string>([peers[0] as string]);
    queue.get(peers[0] as string)?.enqueue('x', 'x', 100);
    let messages = 0;
    const deliver = (to: string, items: string[]) => {
      messages++;
      if (rnd() < 0.01) return;
      if (items.length > 0 && !knows.has(to)) {
        knows.add(to);
        queue.get(to)?.enqueue('x', 'x', 100);
      }
    };
    let period = 0;
    for (; period < 200 && knows.size < n; period++) {
      for (const p of peers) {
        const target = schedule.get(p)?.pick();
        if (target === undefined) continue;
        deliver(target, queue.get(p)?.take(1400, n) ?? []);
        deliver(p, queue.get(target)?.take(1400, n) ?? []);
      }
    }
    return { periods: period, perPeerPerPeriod: messages / n / Math.max(1, period) };
  }

  test('10, 100 and 1,000 peers', () => {
    const rows = [10, 100, 1000].map((n) => {
      const runs = seeds(n === 1000 ? 5 : 20).map((s) => spread(n, s));
      const periods = runs.map((r) => r.periods).sort((a, b) => a - b);
      return { n, p50: periods[Math.floor(periods.length / 2)] as number, max: periods.at(-1) as number, cost: runs[0]?.perPeerPerPeriod ?? 0 };
    });
    console.log(['', ' peers | periods to reach all (p50, max) | messages per peer per period', ...rows.map((r) => `${String(r.n).padStart(6)} | ${String(r.p50).padStart(14)}, ${String(r.max).padStart(3)} | ${r.cost.toFixed(2)}`)].join('\n'));
    for (const r of rows) {
      expect(r.max).toBeLessThan(200);
      // A ping and an ack per probe, whatever N.
      expect(r.cost).toBeCloseTo(2, 5);
    }
    const [r10, r100, r1000] = rows as [typeof rows[0], typeof rows[0], typeof rows[0]];
    // Logarithmic: each 10x in peers adds a roughly constant number of periods.
    expect(r1000.p50 - r100.p50).toBeLessThan(r100.p50 - r10.p50 + 4);
    expect(r1000.p50).toBeLessThan(4 * r10.p50 + 4);
  });
});
