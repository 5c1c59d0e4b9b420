// Raft's wire decoder, fuzzed: every message a core sends survives a round trip, random
// mutations of them are either still valid or refused with a reason (never thrown), and no
// message the decoder lets through makes a core throw, whatever its state.

import { describe, expect, test } from 'vitest';
import { Raft } from '../../scheduler/raft/raft.ts';
import type { RaftMessage } from '../../scheduler/raft/types.ts';
import { MAX_ENTRIES_PER_MESSAGE, parseRaftMessage } from '../../scheduler/raft/wire.ts';
import { RaftWorld } from '../sim/raft-world.ts';
import { Rng } from '../sim/rng.ts';

/** Messages of a real run: every kind the core sends, in real states. */
function realMessages(): RaftMessage[] {
  const w = new RaftWorld(7, { servers: 3, loss: 0.05, partitionRate: 0.02, crashRate: 0.005, leaderCrashRate: 0.03, proposeRate: 0.5, clients: 2 });
  const seen: RaftMessage[] = [];
  const world = w as unknown as { send: (m: RaftMessage) => void };
  const send = world.send.bind(w);
  world.send = (m) => { seen.push(m); send(m); };
  w.run(300);
  return seen;
}

function mutate(rng: Rng, m: RaftMessage): unknown {
  const c = JSON.parse(JSON.stringify(m)) as Record<string, unknown>;
  const keys = Object.keys(c);
  const values: unknown[] = [null, -1, 1.5, 2 ** 60, 'x', '', 'y'.repeat(300), [], {}, true, undefined, 0, 'app', 'vote'];
  for (let i = 0; i < 1 + rng.int(3); i++) {
    const k = rng.chance(0.8) ? rng.pick(keys) : rng.pick(['extra', '__proto__', 'entries']);
    if (k === 'entries' && Array.isArray(c.entries) && c.entries.length > 0 && rng.chance(0.5)) {
      const e = rng.pick(c.entries as Record<string, unknown>[]);
      e[rng.pick(['index', 'term', 'data'])] = rng.pick(values);
    } else {
      c[k] = rng.pick(values);
    }
  }
  return c;
}

describe('Raft wire', () => {
  const messages = realMessages();

  test('every message a core sends decodes to itself', () => {
    const kinds = new Set(messages.map((m) => m.type));
    expect([...kinds].sort()).toEqual(['app', 'app-resp', 'heartbeat', 'heartbeat-resp', 'vote', 'vote-resp']);
    for (const m of messages) expect(parseRaftMessage(JSON.parse(JSON.stringify(m)))).toEqual(m);
  });

  test('refuses gaps, falling or future terms, oversized batches and non-objects with a reason', () => {
    const app = { type: 'app', from: 'a', to: 'b', term: 3, prevIndex: 5, prevTerm: 2, commit: 5 };
    expect(parseRaftMessage({ ...app, entries: [{ index: 7, term: 3, data: 'x' }] })).toMatch(/without gaps/);
    expect(parseRaftMessage({ ...app, entries: [{ index: 6, term: 1, data: 'x' }] })).toMatch(/must not decrease/);
    expect(parseRaftMessage({ ...app, entries: [{ index: 6, term: 4, data: 'x' }] })).toMatch(/exceed/);
    const many = Array.from({ length: MAX_ENTRIES_PER_MESSAGE + 1 }, (_, i) => ({ index: 6 + i, term: 3, data: null }));
    expect(parseRaftMessage({ ...app, entries: many })).toMatch(/more than/);
    for (const junk of [null, 'app', 42, [], { type: 'app' }]) expect(typeof parseRaftMessage(junk)).toBe('string');
  });

  test('fuzz: mutated messages decode or are refused, and what decodes never makes a core throw', () => {
    const rng = new Rng(99);
    const cores = ['a', 'b', 'c'].map((id) => new Raft({ id, voters: ['a', 'b', 'c'], random: () => rng.next() }));
    // Give the cores some state: a leader with a log.
    for (let i = 0; i < 30; i++) cores[0]!.tick();
    let valid = 0;
    for (let i = 0; i < 20_000; i++) {
      const m = rng.pick(messages);
      const candidate = rng.chance(0.2) ? JSON.parse(JSON.stringify(m)) : mutate(rng, m);
      const parsed = parseRaftMessage(candidate);
      if (typeof parsed === 'string') continue;
      valid++;
      const core = rng.pick(cores);
      const addressed = { ...parsed, to: core.id, from: rng.pick(['a', 'b', 'c'].filter((x) => x !== core.id)) } as RaftMessage;
      expect(() => core.step(addressed)).not.toThrow();
      if (rng.chance(0.1)) expect(() => core.tick()).not.toThrow();
    }
    expect(valid).toBeGreaterThan(2000);
  });
});
