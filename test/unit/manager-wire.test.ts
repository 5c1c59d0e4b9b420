// The managers' channel decoder, against a hostile member: every message a manager or a peer
// sends decodes to itself; anything else (wrong types, huge strings, nested junk, prototype
// keys, missing fields) is refused with a reason and never throws, and what it lets through
// has exactly the shape the node relies on.

import { describe, expect, test } from 'vitest';
import { validateCommand } from '../../scheduler/manager/desired-state.ts';
import { parseManagerMessage, type ManagerMessage } from '../../scheduler/manager/wire.ts';
import { parseRaftMessage } from '../../scheduler/raft/wire.ts';
import type { RaftMessage } from '../../scheduler/raft/types.ts';
import { Rng } from '../sim/rng.ts';

const PEER = '12D3KooWHk7ZaP3xVgYw6XzB8vGz4oQwT9Ku1Rr3JmN5sPdE2cFa';
const OTHER = '12D3KooWQfGkT8vB2nX7aL4mZrP9sYwC3dJe6KuH1gVbN5tRoEqM';
const id64 = 'r'.repeat(64);

const raftMessages: RaftMessage[] = [
  { type: 'vote', from: PEER, to: OTHER, term: 3, pre: true, lastIndex: 10, lastTerm: 2 },
  { type: 'vote', from: PEER, to: OTHER, term: 4, pre: false, lastIndex: 10, lastTerm: 2, transfer: true },
  { type: 'vote-resp', from: OTHER, to: PEER, term: 3, pre: true, granted: false },
  {
    type: 'app', from: PEER, to: OTHER, term: 5, prevIndex: 9, prevTerm: 4, commit: 9,
    entries: [
      { index: 10, term: 4, data: '{"op":"put","kind":"config","name":"a","spec":"x","req":"q"}' },
      { index: 11, term: 5, data: null },
      { index: 12, term: 5, data: null, conf: { voters: [PEER, OTHER], learners: ['c'] } },
    ],
  },
  { type: 'app', from: PEER, to: OTHER, term: 5, prevIndex: 0, prevTerm: 0, commit: 0, entries: [] },
  { type: 'app-resp', from: OTHER, to: PEER, term: 5, index: 12, reject: false, hint: 0 },
  { type: 'heartbeat', from: PEER, to: OTHER, term: 5, commit: 12 },
  { type: 'heartbeat', from: PEER, to: OTHER, term: 5, commit: 12, ctx: 'read-1' },
  { type: 'heartbeat-resp', from: OTHER, to: PEER, term: 5 },
  { type: 'heartbeat-resp', from: OTHER, to: PEER, term: 5, ctx: 'read-1' },
  { type: 'timeout-now', from: PEER, to: OTHER, term: 5 },
  { type: 'snap', from: PEER, to: OTHER, term: 5, index: 100, snapTerm: 4, membership: { voters: [PEER], learners: [] }, offset: 0, total: 5, chunk: 'abcde' },
  { type: 'snap', from: PEER, to: OTHER, term: 5, index: 100, snapTerm: 4, membership: { voters: [PEER], learners: [OTHER] }, prior: { voters: [PEER, OTHER], learners: [] }, offset: 2, total: 5, chunk: 'cde' },
  { type: 'snap-resp', from: OTHER, to: PEER, term: 5, index: 100, offset: 3, reject: true },
];

const validMessages: ManagerMessage[] = [
  ...raftMessages.map((m): ManagerMessage => ({ k: 'raft', m })),
  { k: 'req', id: 'p1:1', op: 'propose', cmd: { op: 'put', kind: 'config', name: 'site', spec: 'x', req: 'p1:1' } },
  { k: 'req', id: 'p1:2', op: 'propose', cmd: { op: 'put', kind: 'node-role', name: PEER, spec: 'manager', expect: 0, req: 'p1:2' } },
  { k: 'req', id: 'p1:3', op: 'propose', cmd: { op: 'delete', kind: 'config', name: 'site', expect: 3, req: 'p1:3' } },
  { k: 'req', id: 'p1:4', op: 'propose', cmd: { op: 'restore', data: JSON.stringify({ applied: 1, objects: [], recent: [] }), req: 'p1:4' } },
  { k: 'req', id: 'p1:5', op: 'read-index' },
  { k: 'req', id: 'p1:6', op: 'managers' },
  { k: 'req', id: 'p1:7', op: 'transfer' },
  { k: 'req', id: 'p1:8', op: 'transfer', to: OTHER },
  { k: 'req', id: 'p1:9', op: 'change', change: 'promote', peer: OTHER },
  { k: 'req', id: id64, op: 'change', change: 'demote', peer: OTHER },
  { k: 'res', id: 'p1:1', ok: true, value: { ok: true, object: { kind: 'config', name: 'site', version: 1, spec: 'x', index: 4 } } },
  { k: 'res', id: 'p1:5', ok: true, value: 42 },
  { k: 'res', id: 'p1:6', ok: true, value: [{ id: PEER, voter: true, leader: true, match: 9, lastContactMs: 0 }] },
  { k: 'res', id: 'p1:7', ok: false, error: 'not the leader' },
];

/** Independent of the decoder: whether `m` has exactly the shape the node relies on. */
function wellFormed(m: ManagerMessage): string | undefined {
  const keys = Object.keys(m).sort().join(',');
  const isId = (x: unknown) => typeof x === 'string' && x.length >= 1 && x.length <= 64;
  const isPeer = (x: unknown) => typeof x === 'string' && /^[A-Za-z0-9]{1,128}$/.test(x);
  switch (m.k) {
    case 'raft': {
      if (keys !== 'k,m') return `raft keys ${keys}`;
      const again = parseRaftMessage(JSON.parse(JSON.stringify(m.m)));
      if (typeof again === 'string') return `raft: ${again}`;
      return JSON.stringify(again) === JSON.stringify(m.m) ? undefined : 'raft message does not decode to itself';
    }
    case 'req':
      if (!isId(m.id)) return 'req id';
      switch (m.op) {
        case 'propose': return keys === 'cmd,id,k,op' ? validateCommand(m.cmd) : `propose keys ${keys}`;
        case 'read-index': case 'managers': return keys === 'id,k,op' ? undefined : `${m.op} keys ${keys}`;
        case 'transfer':
          if (m.to === undefined) return keys === 'id,k,op' ? undefined : `transfer keys ${keys}`;
          return keys === 'id,k,op,to' && isPeer(m.to) ? undefined : 'transfer to';
        case 'change': return keys === 'change,id,k,op,peer' && (m.change === 'promote' || m.change === 'demote') && isPeer(m.peer) ? undefined : 'change';
        default: return 'req op';
      }
    case 'res':
      if (!isId(m.id)) return 'res id';
      if (m.ok === true) return keys === 'id,k,ok,value' ? undefined : `res keys ${keys}`;
      if (m.ok === false) return keys === 'error,id,k,ok' && typeof m.error === 'string' && m.error.length <= 1000 ? undefined : 'res error';
      return 'res ok';
    default:
      return 'k';
  }
}

describe('valid messages', () => {
  test.each(validMessages.map((m) => [`${m.k}${'op' in m ? ` ${m.op}` : ''}${m.k === 'raft' ? ` ${m.m.type}` : ''}`, m] as const))('%s decodes to itself', (_what, m) => {
    const parsed = parseManagerMessage(JSON.parse(JSON.stringify(m)));
    expect(parsed).toEqual(m);
    expect(wellFormed(parsed as ManagerMessage)).toBeUndefined();
  });

  test('every raft message type and every request op is covered', () => {
    expect(new Set(raftMessages.map((m) => m.type)).size).toBe(9);
    const ops = new Set(validMessages.flatMap((m) => (m.k === 'req' ? [m.op] : [])));
    expect([...ops].sort()).toEqual(['change', 'managers', 'propose', 'read-index', 'transfer']);
  });

  test('fields a message does not have are left out of what it decodes to', () => {
    expect(parseManagerMessage({ k: 'req', id: 'x', op: 'managers', extra: 'junk', cmd: { evil: true } })).toEqual({ k: 'req', id: 'x', op: 'managers' });
    expect(parseManagerMessage({ k: 'req', id: 'x', op: 'transfer', to: undefined })).toEqual({ k: 'req', id: 'x', op: 'transfer' });
    expect(parseManagerMessage({ k: 'res', id: 'x', ok: false, error: 'no', value: 1 })).toEqual({ k: 'res', id: 'x', ok: false, error: 'no' });
  });

  test('an error answer is cut to 1000 characters', () => {
    const r = parseManagerMessage({ k: 'res', id: 'x', ok: false, error: 'e'.repeat(1_000_000) });
    expect(r).toEqual({ k: 'res', id: 'x', ok: false, error: 'e'.repeat(1000) });
  });
});

describe('refusals, each with a reason', () => {
  const refused: [string, unknown, RegExp][] = [
    ['not an object', 'hello', /^not an object$/],
    ['null', null, /^not an object$/],
    ['an array', [{ k: 'raft' }], /^not an object$/],
    ['no kind', { id: 'x' }, /^unknown message kind$/],
    ['an unknown kind', { k: 'gossip', id: 'x' }, /^unknown message kind$/],
    ['a raft message that is not one', { k: 'raft', m: { type: 'vote', from: PEER } }, /^raft: from and to must be server ids$/],
    ['a raft message missing', { k: 'raft' }, /^raft: not an object$/],
    ['a request id of 65 characters', { k: 'req', id: 'r'.repeat(65), op: 'managers' }, /^req needs an id$/],
    ['an empty request id', { k: 'req', id: '', op: 'managers' }, /^req needs an id$/],
    ['a request id that is a number', { k: 'req', id: 7, op: 'managers' }, /^req needs an id$/],
    ['an answer id of 65 characters', { k: 'res', id: 'r'.repeat(65), ok: true, value: 1 }, /^res needs an id$/],
    ['an unknown op', { k: 'req', id: 'x', op: 'shutdown' }, /^unknown request$/],
    ['no op', { k: 'req', id: 'x' }, /^unknown request$/],
    ['a propose with no command', { k: 'req', id: 'x', op: 'propose' }, /^propose: a command must be an object$/],
    ['a propose with an unknown kind', { k: 'req', id: 'x', op: 'propose', cmd: { op: 'put', kind: 'secret', name: 'a', spec: 'x', req: 'q' } }, /^propose: kind must be one of config, node-role, service, task, stack, nodecluster, node, timeline, provider, drain$/],
    ['a propose with a bad spec', { k: 'req', id: 'x', op: 'propose', cmd: { op: 'put', kind: 'node-role', name: 'a', spec: 'king', req: 'q' } }, /^propose: a node role must be manager or worker$/],
    ['a propose with an extra field', { k: 'req', id: 'x', op: 'propose', cmd: { op: 'delete', kind: 'config', name: 'a', req: 'q', force: true } }, /^propose: unknown field "force"$/],
    ['a propose with a __proto__ field', { k: 'req', id: 'x', op: 'propose', cmd: JSON.parse('{"op":"put","kind":"config","name":"a","spec":"x","req":"q","__proto__":{"admin":true}}') }, /^propose: unknown field "__proto__"$/],
    ['a propose of a restore that is not a snapshot', { k: 'req', id: 'x', op: 'propose', cmd: { op: 'restore', data: '{"applied":"x"}', req: 'q' } }, /^propose: not a desired-state snapshot/],
    ['a transfer to a non-id', { k: 'req', id: 'x', op: 'transfer', to: '../etc' }, /^transfer: to must be a peer id$/],
    ['a transfer to an id too long', { k: 'req', id: 'x', op: 'transfer', to: 'a'.repeat(129) }, /^transfer: to must be a peer id$/],
    ['a transfer to null', { k: 'req', id: 'x', op: 'transfer', to: null }, /^transfer: to must be a peer id$/],
    ['a change that is neither promote nor demote', { k: 'req', id: 'x', op: 'change', change: 'remove', peer: OTHER }, /^change needs promote or demote and a peer id$/],
    ['a change of no peer', { k: 'req', id: 'x', op: 'change', change: 'promote' }, /^change needs promote or demote and a peer id$/],
    ['a change of an empty peer', { k: 'req', id: 'x', op: 'change', change: 'promote', peer: '' }, /^change needs promote or demote and a peer id$/],
    ['an answer with no ok', { k: 'res', id: 'x', value: 1 }, /^res needs ok and a value or an error$/],
    ['a failure with no error', { k: 'res', id: 'x', ok: false }, /^res needs ok and a value or an error$/],
    ['a failure whose error is not a string', { k: 'res', id: 'x', ok: false, error: { message: 'x' } }, /^res needs ok and a value or an error$/],
    ['an ok that is a string', { k: 'res', id: 'x', ok: 'true', value: 1 }, /^res needs ok and a value or an error$/],
  ];
  test.each(refused)('%s', (_what, msg, reason) => {
    expect(parseManagerMessage(msg)).toMatch(reason);
  });

  test('a request id of exactly 64 characters is accepted and one of 65 refused, for requests and answers', () => {
    expect(parseManagerMessage({ k: 'req', id: id64, op: 'read-index' })).toEqual({ k: 'req', id: id64, op: 'read-index' });
    expect(parseManagerMessage({ k: 'req', id: `${id64}x`, op: 'read-index' })).toBe('req needs an id');
    expect(parseManagerMessage({ k: 'res', id: id64, ok: true, value: null })).toEqual({ k: 'res', id: id64, ok: true, value: null });
    expect(parseManagerMessage({ k: 'res', id: `${id64}x`, ok: true, value: null })).toBe('res needs an id');
  });

  test('a propose carrying any invalid command is refused with the command\'s own reason', () => {
    const base = { op: 'put', kind: 'config', name: 'a', spec: 'x', req: 'q' };
    const bad: unknown[] = [
      { ...base, op: 'upsert' }, { ...base, name: '' }, { ...base, name: '-a' }, { ...base, name: 'a'.repeat(254) }, { ...base, req: '' },
      { ...base, req: 'q'.repeat(201) }, { ...base, expect: -1 }, { ...base, expect: 0.5 }, { ...base, spec: 1 }, { ...base, spec: 'x'.repeat(64 * 1024 + 1) },
      { op: 'delete', kind: 'config', name: 'a', req: 'q', spec: 'x' }, { op: 'restore', req: 'q' }, { op: 'restore', data: 'x', req: 'q', extra: 1 },
      [base], 'put', 3, null,
    ];
    for (const cmd of bad) {
      const r = parseManagerMessage({ k: 'req', id: 'x', op: 'propose', cmd });
      expect(r).toBe(`propose: ${validateCommand(cmd) as string}`);
    }
  });
});

describe('fuzz: hostile objects never throw and decode to a well-formed message or a reason', () => {
  const HUGE = 'h'.repeat(2 * 1024 * 1024);
  const KEYS = ['k', 'm', 'id', 'op', 'cmd', 'to', 'change', 'peer', 'ok', 'value', 'error', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'type', 'from', 'term', 'entries', 'length'];
  const STRINGS = ['', 'raft', 'req', 'res', 'propose', 'read-index', 'managers', 'transfer', 'change', 'promote', 'demote', 'put', 'delete', 'restore', 'config', 'node-role', PEER, '__proto__', 'a'.repeat(64), 'a'.repeat(65), 'a'.repeat(129), HUGE, '\u0000', '\ud800', '😀', 'null', 'true', '{}'];
  const NUMBERS = [0, -1, 1, 1.5, 2 ** 53, -0, NaN, Infinity, -Infinity, 65, 1e308];

  function junk(rng: Rng, depth: number): unknown {
    switch (rng.int(depth > 6 ? 4 : 7)) {
      case 0: return rng.pick(STRINGS);
      case 1: return rng.pick(NUMBERS);
      case 2: return rng.pick([null, undefined, true, false]);
      case 3: return rng.pick([{}, [], Object.create(null)]);
      case 4: return Array.from({ length: rng.int(5) }, () => junk(rng, depth + 1));
      case 5: {
        // A nested chain, to see that nothing recurses into it unbounded.
        let deep: unknown = junk(rng, 7);
        for (let i = 0; i < rng.pick([10, 1000, 20_000]); i++) deep = rng.chance(0.5) ? [deep] : { m: deep, cmd: deep };
        return deep;
      }
      default: return junkObject(rng, depth + 1);
    }
  }

  function junkObject(rng: Rng, depth: number): Record<string, unknown> {
    // JSON.parse makes __proto__ an own key, as the channel's decoder would.
    const o: Record<string, unknown> = rng.chance(0.2) ? Object.create(null) as Record<string, unknown> : JSON.parse('{}') as Record<string, unknown>;
    for (let i = 0; i < rng.int(6); i++) Object.defineProperty(o, rng.pick(KEYS), { value: junk(rng, depth), enumerable: true, configurable: true, writable: true });
    return o;
  }

  /** A valid message with one to three fields replaced, removed or added. */
  function mutated(rng: Rng): unknown {
    const base = JSON.parse(JSON.stringify(rng.pick(validMessages))) as Record<string, unknown>;
    for (let i = 0; i < 1 + rng.int(3); i++) {
      const isPlain = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
      const target = rng.chance(0.4) && isPlain(base.m) ? base.m : rng.chance(0.3) && isPlain(base.cmd) ? base.cmd : base;
      const keys = Object.keys(target);
      const key = rng.chance(0.7) && keys.length > 0 ? rng.pick(keys) : rng.pick(KEYS);
      if (rng.chance(0.2)) delete target[key];
      else Object.defineProperty(target, key, { value: junk(rng, 5), enumerable: true, configurable: true, writable: true });
    }
    return base;
  }

  test.each([1, 2, 3, 4, 5, 6])('seed %i: 1,000 hostile objects', (seed) => {
    const rng = new Rng(seed);
    let accepted = 0;
    const reasons = new Set<string>();
    for (let n = 0; n < 1000; n++) {
      const input = rng.chance(0.5) ? mutated(rng) : rng.chance(0.3) ? junk(rng, 0) : junkObject(rng, 0);
      let r: ManagerMessage | string;
      try {
        r = parseManagerMessage(input);
      } catch (err) {
        throw new Error(`seed ${seed} #${n}: threw ${String(err)}`);
      }
      if (typeof r === 'string') {
        expect(r.length).toBeLessThan(200);
        reasons.add(r.replace(/:.*/, ''));
        continue;
      }
      accepted++;
      const why = wellFormed(r);
      if (why !== undefined) throw new Error(`seed ${seed} #${n}: accepted a malformed message (${why})`);
    }
    // Both outcomes were exercised.
    expect(accepted).toBeGreaterThan(20);
    expect(reasons.size).toBeGreaterThan(8);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'k')).toBe(false);
  });
});
