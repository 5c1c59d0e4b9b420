// Raft's wire decoder, fuzzed: every message a core sends survives a round trip, random
// mutations of them are either still valid or refused with a reason (never thrown), and no
// message the decoder lets through makes a core throw, whatever its state. Snapshot chunks
// from a hostile member are bounded: no chunk or snapshot larger than the limits, no chunk
// outside its snapshot's data.

import { describe, expect, test } from 'vitest';
import { Raft } from '../../scheduler/raft/raft.ts';
import type { RaftMessage } from '../../scheduler/raft/types.ts';
import { MAX_SNAPSHOT_CHARS, MAX_SNAPSHOT_CHUNK_CHARS } from '../../scheduler/raft/snapshot-transfer.ts';
import { MAX_ENTRIES_PER_MESSAGE, parseRaftMessage } from '../../scheduler/raft/wire.ts';
import { RaftWorld } from '../sim/raft-world.ts';
import { Rng } from '../sim/rng.ts';

/** The kinds of message a core sends (timeout-now only on a transfer, not in a chaos run). */
const REAL_KINDS = 8;

/** Messages of a real run: every kind the core sends, in real states. */
function realMessages(): RaftMessage[] {
  const w = new RaftWorld(8, {
    servers: 3, loss: 0.05, partitionRate: 0.02, crashRate: 0.005, leaderCrashRate: 0.03, proposeRate: 0.5, clients: 2, compactRate: 0.05, snapshotChunkChars: 8,
  });
  const seen: RaftMessage[] = [];
  const world = w as unknown as { send: (m: RaftMessage) => void };
  const send = world.send.bind(w);
  world.send = (m) => { seen.push(m); send(m); };
  // Until every kind has been sent (bounded): which step brings the first snapshot depends on
  // the seed's timing.
  const kinds = () => new Set(seen.map((m) => m.type)).size;
  for (let i = 0; i < 30 && (i < 3 || kinds() < REAL_KINDS); i++) w.run(100);
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
    expect([...kinds].sort()).toEqual(['app', 'app-resp', 'heartbeat', 'heartbeat-resp', 'snap', 'snap-resp', 'vote', 'vote-resp']);
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

  test('a hostile member cannot make a follower hold more than the snapshot bounds, nor a chunk outside its snapshot', () => {
    const snap = { type: 'snap', from: 'a', to: 'b', term: 3, index: 10, snapTerm: 2, membership: { voters: ['a', 'b', 'c'], learners: [] }, offset: 0, total: 5, chunk: 'hello' };
    expect(parseRaftMessage(snap)).toEqual(snap);
    expect(parseRaftMessage({ ...snap, total: MAX_SNAPSHOT_CHARS + 1 })).toMatch(/total is above/);
    expect(parseRaftMessage({ ...snap, total: MAX_SNAPSHOT_CHUNK_CHARS + 10, chunk: 'x'.repeat(MAX_SNAPSHOT_CHUNK_CHARS + 1) })).toMatch(/at most/);
    expect(parseRaftMessage({ ...snap, offset: 3 })).toMatch(/runs past its total/);
    expect(parseRaftMessage({ ...snap, offset: 2 ** 40, total: 2 ** 40 })).toMatch(/total is above/);
    expect(parseRaftMessage({ ...snap, chunk: '' })).toMatch(/empty/);
    expect(parseRaftMessage({ ...snap, total: 0, chunk: '' })).toMatchObject({ type: 'snap', total: 0 });
    expect(parseRaftMessage({ ...snap, snapTerm: 4 })).toMatch(/above its term/);
    expect(parseRaftMessage({ ...snap, index: 0 })).toMatch(/above 0/);
    expect(parseRaftMessage({ ...snap, offset: -1 })).toMatch(/offset and total/);
    expect(parseRaftMessage({ ...snap, chunk: 42 })).toMatch(/must be a string/);
    expect(parseRaftMessage({ ...snap, membership: { voters: [], learners: [] } })).toMatch(/1 to/);
    expect(parseRaftMessage({ ...snap, prior: { voters: ['a', 'a'], learners: [] } })).toMatch(/twice/);
    expect(parseRaftMessage({ type: 'snap-resp', from: 'b', to: 'a', term: 3, index: 10, offset: 2 ** 40, reject: false })).toMatch(/offset is above/);
    expect(parseRaftMessage({ type: 'snap-resp', from: 'b', to: 'a', term: 3, index: 10, offset: 5 })).toMatch(/needs/);

    // The victim: a follower sent chunks that skip ahead holds nothing from them and asks for
    // the start; a bogus chunk changes neither its log nor its state.
    const b = new Raft({ id: 'b', voters: ['a', 'b', 'c'], random: () => 0.5 });
    const r = b.step({ ...snap, offset: 2, total: 1000, chunk: 'xyz' } as RaftMessage);
    expect(r.send.map((x) => x.msg)).toEqual([{ type: 'snap-resp', from: 'b', to: 'a', term: 3, index: 10, offset: 0, reject: true }]);
    expect(r.persist).toEqual({ hardState: { term: 3, vote: null, commit: 0 } });
    expect(r.events.some((e) => e.type === 'restore')).toBe(false);
    expect(b.log.lastIndex()).toBe(0);
    expect(b.snapshot()).toBeUndefined();
  });

  test('fuzz: mutated messages decode or are refused, and what decodes never makes a core throw', () => {
    const rng = new Rng(99);
    const cores = ['a', 'b'].map((id) => new Raft({ id, voters: ['a', 'b', 'c'], random: () => rng.next() }));
    // Give the cores some state: a candidate, and a leader (alone a voter) that compacted its
    // log, so that answers from its learners make it send snapshots.
    for (let i = 0; i < 30; i++) cores[0]!.tick();
    const leader = new Raft({ id: 'c', voters: ['c'], learners: ['a', 'b'], random: () => rng.next(), snapshotChunkChars: 4 });
    for (let i = 0; i < 30; i++) leader.tick();
    for (let i = 0; i < 20; i++) leader.propose([`cmd-${i}`]);
    // As its shell would: the entries are on disk, so the leader counts itself and commits.
    leader.appended(leader.log.lastIndex(), leader.term);
    expect(leader.compact(15, 'a state of some length')).not.toBeTypeOf('string');
    cores.push(leader);
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
