// Desired state, the managers' replicated state machine: versions and compare-and-set, a retried
// request applied once, every invalid command failing alike everywhere without touching the
// state, snapshots that restore to the very same machine, and determinism over random entries.

import { describe, expect, test } from 'vitest';
import {
  DesiredState, MAX_CONFIG_VALUE_BYTES, MAX_NAME_LENGTH, MAX_REQUEST_ID_LENGTH, REMEMBERED_REQUESTS, validateCommand,
  type Command, type Kind,
} from '../../scheduler/manager/desired-state.ts';
import { Rng } from '../sim/rng.ts';

let reqs = 0;
const put = (name: string, spec: unknown, extra: Partial<Command> = {}, kind: Kind = 'config') => JSON.stringify({ op: 'put', kind, name, spec, req: `r${++reqs}`, ...extra });
const del = (name: string, extra: Partial<Command> = {}, kind: Kind = 'config') => JSON.stringify({ op: 'delete', kind, name, req: `r${++reqs}`, ...extra });

/** Applies entries at 1, 2, 3...; returns the results. */
function feed(s: DesiredState, entries: string[], first = s.applied + 1) {
  return entries.map((e, i) => s.apply(first + i, e));
}

describe('versions and compare-and-set', () => {
  test('an object is created at version 1 and each change adds one, recording its Raft index', () => {
    const s = new DesiredState();
    const [a, b, c] = feed(s, [put('site', 'one'), put('site', 'two'), put('site', 'three')]);
    expect(a?.outcome).toEqual({ ok: true, object: { kind: 'config', name: 'site', version: 1, spec: 'one', index: 1 } });
    expect(b?.outcome).toMatchObject({ ok: true, object: { version: 2, spec: 'two', index: 2 } });
    expect(c?.outcome).toMatchObject({ ok: true, object: { version: 3, spec: 'three', index: 3 } });
    expect(c?.changes).toEqual([{ index: 3, kind: 'config', name: 'site', object: { kind: 'config', name: 'site', version: 3, spec: 'three', index: 3 } }]);
    expect(s.get('config', 'site')).toEqual({ kind: 'config', name: 'site', version: 3, spec: 'three', index: 3 });
    expect(s.applied).toBe(3);
  });

  test('a write expecting the current version succeeds; one expecting another fails saying what it found', () => {
    const s = new DesiredState();
    feed(s, [put('site', 'one'), put('site', 'two')]);
    const ok = s.apply(3, put('site', 'three', { expect: 2 }));
    expect(ok.outcome).toMatchObject({ ok: true, object: { version: 3, spec: 'three' } });
    const stale = s.apply(4, put('site', 'four', { expect: 2 }));
    expect(stale.outcome).toEqual({ ok: false, error: 'config "site": expected version 2, found version 3' });
    expect(stale.changes).toEqual([]);
    expect(s.get('config', 'site')).toMatchObject({ version: 3, spec: 'three', index: 3 });
    expect(s.applied).toBe(4);
  });

  test('expect 0 creates only: it succeeds on a missing object and fails on an existing one', () => {
    const s = new DesiredState();
    expect(s.apply(1, put('lock', 'me', { expect: 0 })).outcome).toMatchObject({ ok: true, object: { version: 1 } });
    const again = s.apply(2, put('lock', 'you', { expect: 0 }));
    expect(again.outcome).toEqual({ ok: false, error: 'config "lock": expected version 0, found version 1' });
    expect(s.get('config', 'lock')?.spec).toBe('me');
  });

  test('expecting a version of a missing object fails with "no such object"', () => {
    const s = new DesiredState();
    expect(s.apply(1, put('ghost', 'x', { expect: 1 })).outcome).toEqual({ ok: false, error: 'config "ghost": expected version 1, found no such object' });
    expect(s.get('config', 'ghost')).toBeUndefined();
  });

  test('a delete removes the object (reported as a change to null); a later put starts again at version 1', () => {
    const s = new DesiredState();
    feed(s, [put('site', 'one'), put('site', 'two')]);
    const d = s.apply(3, del('site', { expect: 2 }));
    expect(d.outcome).toEqual({ ok: true, object: null });
    expect(d.changes).toEqual([{ index: 3, kind: 'config', name: 'site', object: null }]);
    expect(s.get('config', 'site')).toBeUndefined();
    expect(s.list('config')).toEqual([]);
    expect(s.apply(4, put('site', 'new')).outcome).toMatchObject({ ok: true, object: { version: 1, index: 4 } });
  });

  test('deleting a missing object, or with a stale expect, fails and changes nothing', () => {
    const s = new DesiredState();
    expect(s.apply(1, del('nothing')).outcome).toEqual({ ok: false, error: 'config "nothing" does not exist' });
    s.apply(2, put('site', 'one'));
    expect(s.apply(3, del('site', { expect: 5 })).outcome).toEqual({ ok: false, error: 'config "site": expected version 5, found version 1' });
    expect(s.get('config', 'site')).toMatchObject({ version: 1 });
  });

  test('kinds are separate namespaces, and list returns one kind by name, filtered by prefix', () => {
    const s = new DesiredState();
    feed(s, [put('b/2', 'x'), put('a/1', 'y'), put('b/1', 'z'), put('b/1', 'manager', {}, 'node-role')]);
    expect(s.list('config').map((o) => o.name)).toEqual(['a/1', 'b/1', 'b/2']);
    expect(s.list('config', 'b/').map((o) => o.name)).toEqual(['b/1', 'b/2']);
    expect(s.list('node-role')).toEqual([{ kind: 'node-role', name: 'b/1', version: 1, spec: 'manager', index: 4 }]);
    expect(s.get('config', 'b/1')).toMatchObject({ version: 1, spec: 'z' });
  });
});

describe('a retried request applies once', () => {
  test('the same request applied twice gives the first outcome and changes nothing', () => {
    const s = new DesiredState();
    const entry = put('site', 'one', { req: 'peer-a:1' });
    const first = s.apply(1, entry);
    const before = s.serialize();
    const second = s.apply(2, entry);
    expect(second.req).toBe('peer-a:1');
    expect(second.outcome).toEqual(first.outcome);
    expect(second.changes).toEqual([]);
    expect(s.get('config', 'site')).toMatchObject({ version: 1, index: 1 });
    expect(s.outcomeOf('peer-a:1')).toEqual(first.outcome);
    // Only `applied` moved.
    expect(JSON.parse(s.serialize())).toEqual({ ...JSON.parse(before), applied: 2 });
  });

  test('a retried compare-and-set that succeeded the first time still reports success (not a conflict with itself)', () => {
    const s = new DesiredState();
    s.apply(1, put('site', 'one'));
    const cas = put('site', 'two', { expect: 1, req: 'peer-b:7' });
    expect(s.apply(2, cas).outcome).toMatchObject({ ok: true, object: { version: 2 } });
    expect(s.apply(3, cas).outcome).toMatchObject({ ok: true, object: { version: 2 } });
    expect(s.get('config', 'site')).toMatchObject({ version: 2, index: 2 });
  });

  test('a failed request is remembered as failed: its retry fails alike even if it would succeed now', () => {
    const s = new DesiredState();
    const d = del('later', { req: 'peer-c:1' });
    const first = s.apply(1, d);
    expect(first.outcome.ok).toBe(false);
    s.apply(2, put('later', 'now here'));
    expect(s.apply(3, d).outcome).toEqual(first.outcome);
    expect(s.get('config', 'later')).toMatchObject({ version: 1 });
  });

  test('a request id is what counts: another command under a remembered id is not applied', () => {
    const s = new DesiredState();
    const first = s.apply(1, put('a', 'x', { req: 'same' }));
    expect(s.apply(2, put('b', 'y', { req: 'same' })).outcome).toEqual(first.outcome);
    expect(s.get('config', 'b')).toBeUndefined();
  });

  test('an invalid command is not remembered: a valid one may use its request id afterwards', () => {
    const s = new DesiredState();
    expect(s.apply(1, put('a', 42, { req: 'x' })).outcome.ok).toBe(false);
    expect(s.outcomeOf('x')).toBeUndefined();
    expect(s.apply(2, put('a', 'ok', { req: 'x' })).outcome).toMatchObject({ ok: true, object: { version: 1 } });
  });

  test(`exactly the ${REMEMBERED_REQUESTS} newest requests are remembered; the oldest beyond that applies again`, () => {
    const s = new DesiredState();
    const first = put('counter', 'v', { req: 'req-0' });
    s.apply(1, first);
    for (let i = 1; i < REMEMBERED_REQUESTS; i++) s.apply(1 + i, put(`o${i}`, 'v', { req: `req-${i}` }));
    // REMEMBERED_REQUESTS requests so far: the first is still remembered, its retry is deduplicated.
    expect(s.outcomeOf('req-0')).toBeDefined();
    expect(s.apply(REMEMBERED_REQUESTS + 1, first).changes).toEqual([]);
    expect(s.get('config', 'counter')?.version).toBe(1);
    // One more request pushes the oldest out.
    s.apply(REMEMBERED_REQUESTS + 2, put('one-more', 'v', { req: `req-${REMEMBERED_REQUESTS}` }));
    expect(s.outcomeOf('req-0')).toBeUndefined();
    expect(s.outcomeOf('req-1')).toBeDefined();
    expect(s.outcomeOf(`req-${REMEMBERED_REQUESTS}`)).toBeDefined();
    // A retry that old is a new request: it applies again.
    const late = s.apply(REMEMBERED_REQUESTS + 3, first);
    expect(late.outcome).toMatchObject({ ok: true, object: { version: 2 } });
    expect(s.get('config', 'counter')?.version).toBe(2);
    // And is remembered again, displacing the then-oldest (req-1).
    expect(s.outcomeOf('req-0')).toBeDefined();
    expect(s.outcomeOf('req-1')).toBeUndefined();
  });

  test('a deduplicated retry does not refresh its place: the window is by first application', () => {
    const s = new DesiredState();
    const first = put('x', 'v', { req: 'old' });
    s.apply(1, first);
    for (let i = 1; i < REMEMBERED_REQUESTS; i++) {
      s.apply(1 + i, put(`o${i}`, 'v', { req: `n-${i}` }));
      if (i === 5) s.apply(1 + i, first); // a retry in the middle
    }
    s.apply(REMEMBERED_REQUESTS + 1, put('last', 'v', { req: 'n-last' }));
    expect(s.outcomeOf('old')).toBeUndefined();
  });
});

/** A node record of cluster c, slot 1, with `extra` over a valid one. */
function nodePut(extra: Record<string, unknown>): string {
  const spec = { cluster: 'c', index: 1, name: 'c-1', attempt: 1, clientToken: '0123456789abcdef-1-1', zone: 'z', state: 'creating', since: 0, timeline: [], ...extra };
  return JSON.stringify({ op: 'put', kind: 'node', name: 'c/1', spec, req: 'q' });
}

function timelinePut(serial: unknown): string {
  return JSON.stringify({ op: 'put', kind: 'timeline', name: 'c', spec: { entries: [], serial }, req: 'q' });
}

describe('invalid commands fail deterministically with one sentence and change nothing', () => {
  const longName = 'a'.repeat(MAX_NAME_LENGTH + 1);
  const cases: [string, string, RegExp][] = [
    ['not JSON', '{"op":"put",', /^the entry is not JSON$/],
    ['JSON null', 'null', /^a command must be an object$/],
    ['a JSON array', '[1,2]', /^a command must be an object$/],
    ['a JSON string', '"put"', /^a command must be an object$/],
    ['a JSON number', '7', /^a command must be an object$/],
    ['no op', JSON.stringify({ kind: 'config', name: 'a', spec: 'x', req: 'q' }), /^op must be put, delete, batch or restore$/],
    ['an unknown op', JSON.stringify({ op: 'patch', kind: 'config', name: 'a', spec: 'x', req: 'q' }), /^op must be put, delete, batch or restore$/],
    ['an unknown kind', JSON.stringify({ op: 'put', kind: 'secret', name: 'a', spec: 'x', req: 'q' }), /^kind must be one of config, node-role, service, task, stack, nodecluster, node, timeline, provider, drain$/],
    ['a kind that is not a string', JSON.stringify({ op: 'put', kind: ['config'], name: 'a', spec: 'x', req: 'q' }), /^kind must be one of/],
    ['an empty name', JSON.stringify({ op: 'put', kind: 'config', name: '', spec: 'x', req: 'q' }), /^name must be 1-253 characters/],
    ['a name too long', JSON.stringify({ op: 'put', kind: 'config', name: longName, spec: 'x', req: 'q' }), /^name must be/],
    ['a name starting with a dot', JSON.stringify({ op: 'put', kind: 'config', name: '.hidden', spec: 'x', req: 'q' }), /^name must be/],
    ['a name with a space', JSON.stringify({ op: 'put', kind: 'config', name: 'a b', spec: 'x', req: 'q' }), /^name must be/],
    ['a name with a newline at its end', JSON.stringify({ op: 'put', kind: 'config', name: 'ab\n', spec: 'x', req: 'q' }), /^name must be/],
    ['a name with NUL', JSON.stringify({ op: 'put', kind: 'config', name: 'a\u0000b', spec: 'x', req: 'q' }), /^name must be/],
    ['a name that is a number', JSON.stringify({ op: 'put', kind: 'config', name: 5, spec: 'x', req: 'q' }), /^name must be/],
    ['no req', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 'x' }), /^req must be a request id$/],
    ['an empty req', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 'x', req: '' }), /^req must be a request id$/],
    ['a req too long', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 'x', req: 'q'.repeat(MAX_REQUEST_ID_LENGTH + 1) }), /^req must be a request id$/],
    ['a req that is a number', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 'x', req: 12 }), /^req must be a request id$/],
    ['a negative expect', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 'x', req: 'q', expect: -1 }), /^expect must be a version \(0: must not exist\)$/],
    ['a fractional expect', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 'x', req: 'q', expect: 1.5 }), /^expect must be a version/],
    ['a string expect', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 'x', req: 'q', expect: '1' }), /^expect must be a version/],
    ['a null expect', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 'x', req: 'q', expect: null }), /^expect must be a version/],
    ['an unsafe expect', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 'x', req: 'q', expect: 2 ** 60 }), /^expect must be a version/],
    ['an unknown field on a put', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 'x', req: 'q', owner: 'me' }), /^unknown field "owner"$/],
    ['a spec on a delete', JSON.stringify({ op: 'delete', kind: 'config', name: 'a', spec: 'x', req: 'q' }), /^unknown field "spec"$/],
    ['a __proto__ key', '{"op":"put","kind":"config","name":"a","spec":"x","req":"q","__proto__":{"polluted":1}}', /^unknown field "__proto__"$/],
    ['a config value that is not a string', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: { v: 1 }, req: 'q' }), /^a config value must be a string$/],
    ['a config put without a spec', JSON.stringify({ op: 'put', kind: 'config', name: 'a', req: 'q' }), /^a config value must be a string$/],
    ['a config value over 64 KiB', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 'x'.repeat(MAX_CONFIG_VALUE_BYTES + 1), req: 'q' }), /^a config value must be at most 65536 bytes$/],
    ['a config value over 64 KiB in UTF-8 but not in characters', JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 'é'.repeat(MAX_CONFIG_VALUE_BYTES / 2 + 1), req: 'q' }), /^a config value must be at most/],
    ['a node role that is neither manager nor worker', JSON.stringify({ op: 'put', kind: 'node-role', name: 'a', spec: 'boss', req: 'q' }), /^a node role must be manager or worker$/],
    // What only the leader's provisioner writes, as a hostile restore or a buggy leader might.
    ['a node record with more former peers than kept', nodePut({ formerPeers: Array.from({ length: 17 }, (_, i) => `p${i}`) }), /^formerPeers: .*<=16/],
    ['a node record whose former peer is not an id', nodePut({ formerPeers: [7] }), /^formerPeers\.0: .*string/],
    ['a node record whose former peer is empty', nodePut({ formerPeers: [''] }), /^formerPeers\.0: .*>=1/],
    ['a node record whose client token has no serial', nodePut({ clientToken: '0123456789abcdef-1-x' }), /^clientToken: must be <uid>-<index>-<serial>/],
    ['a cluster log whose attempt count is 0', timelinePut(0), /^serial: .*>=1/],
    ['a cluster log whose attempt count is fractional', timelinePut(1.5), /^serial: Invalid integer/],
    ['a cluster log whose attempt count is past exact integers', timelinePut(2 ** 60), /^serial: .*<=9007199254740991/],
    ['a cluster log whose attempt count is a string', timelinePut('3'), /^serial: .*number/],
  ];

  test.each(cases)('%s', (_what, entry, message) => {
    const outcomes: unknown[] = [];
    for (let run = 0; run < 2; run++) {
      const s = new DesiredState();
      s.apply(1, put('a', 'existing', { req: 'setup' }));
      const before = s.serialize();
      const r = s.apply(2, entry);
      expect(r.outcome.ok).toBe(false);
      const error = (r.outcome as { error: string }).error;
      expect(error).toMatch(message);
      // One sentence: one line, no trailing period (it is embedded in longer messages).
      expect(error).not.toMatch(/\n/);
      expect(r.changes).toEqual([]);
      expect(s.get('config', 'a')).toMatchObject({ version: 1, spec: 'existing' });
      expect(JSON.parse(s.serialize())).toEqual({ ...JSON.parse(before), applied: 2 });
      outcomes.push(r);
    }
    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test('the boundaries are allowed: a 253-character name, a 200-character req, a 64 KiB value, expect 0', () => {
    const s = new DesiredState();
    const name = 'a'.repeat(MAX_NAME_LENGTH);
    const r = s.apply(1, JSON.stringify({ op: 'put', kind: 'config', name, spec: 'x'.repeat(MAX_CONFIG_VALUE_BYTES), req: 'q'.repeat(MAX_REQUEST_ID_LENGTH), expect: 0 }));
    expect(r.outcome).toMatchObject({ ok: true, object: { version: 1 } });
    expect(validateCommand({ op: 'delete', kind: 'node-role', name: '0._/-Z', req: 'r' })).toBeUndefined();
    expect(validateCommand({ op: 'put', kind: 'node-role', name: 'peer', spec: 'worker', req: 'r' })).toBeUndefined();
  });

  test('validateCommand refuses what is not an object without throwing', () => {
    for (const c of [undefined, null, 0, 'x', [], true, () => 1]) expect(validateCommand(c)).toBe('a command must be an object');
  });

  test('an invalid command reports its request id when it has one, so its proposer learns it failed', () => {
    const s = new DesiredState();
    expect(s.apply(1, JSON.stringify({ op: 'put', kind: 'config', name: 'a', spec: 1, req: 'mine' })).req).toBe('mine');
    expect(s.apply(2, 'null').req).toBeUndefined();
    expect(s.apply(3, 'nonsense').req).toBeUndefined();
  });
});

describe('snapshots', () => {
  function busy(): DesiredState {
    const s = new DesiredState();
    feed(s, [
      put('site', 'one'), put('site', 'two', { expect: 1 }), put('db/url', 'postgres://x'), put('peer1', 'manager', {}, 'node-role'),
      del('db/url'), put('fail', 'x', { expect: 3 }), 'garbage', put('unicode', 'é€😀'),
    ]);
    return s;
  }

  test('serialize then restore gives the identical state', () => {
    const s = busy();
    const r = new DesiredState();
    r.restore(s.serialize());
    expect(r.serialize()).toBe(s.serialize());
    expect(r.applied).toBe(s.applied);
    expect(r.list('config')).toEqual(s.list('config'));
    expect(r.list('node-role')).toEqual(s.list('node-role'));
    expect(r.outcomeOf('r1')).toEqual(s.outcomeOf('r1'));
  });

  test('a restored state gives the same outcomes as the original for the same future entries', () => {
    const s = busy();
    const r = new DesiredState();
    r.restore(s.serialize());
    const rng = new Rng(5);
    const future = Array.from({ length: 200 }, () => randomEntry(rng));
    // Include retries of requests from before the snapshot.
    future.push(put('site', 'x', { req: 'r1' }), put('site', 'y', { req: 'r2', expect: 1 }));
    expect(feed(r, future)).toEqual(feed(s, future));
    expect(r.serialize()).toBe(s.serialize());
  });

  test('restore replaces whatever state there was', () => {
    const s = busy();
    const other = new DesiredState();
    feed(other, [put('stale', 'x'), put('other', 'y')]);
    other.restore(s.serialize());
    expect(other.get('config', 'stale')).toBeUndefined();
    expect(other.outcomeOf('r9999')).toBeUndefined();
    expect(other.serialize()).toBe(s.serialize());
  });

  const garbage: [string, string][] = [
    ['not JSON', '{'],
    ['JSON null', 'null'],
    ['a number', '3'],
    ['no applied', JSON.stringify({ objects: [], recent: [] })],
    ['a fractional applied', JSON.stringify({ applied: 1.5, objects: [], recent: [] })],
    ['objects not a list', JSON.stringify({ applied: 1, objects: {}, recent: [] })],
    ['recent not a list', JSON.stringify({ applied: 1, objects: [], recent: 'x' })],
    ['an object of an unknown kind', JSON.stringify({ applied: 1, objects: [{ kind: 'x', name: 'a', version: 1, spec: 'x', index: 1 }], recent: [] })],
    ['an object with a bad name', JSON.stringify({ applied: 1, objects: [{ kind: 'config', name: ' a', version: 1, spec: 'x', index: 1 }], recent: [] })],
    ['an object with a bad spec', JSON.stringify({ applied: 1, objects: [{ kind: 'config', name: 'a', version: 1, spec: 7, index: 1 }], recent: [] })],
    ['an object at version 0', JSON.stringify({ applied: 1, objects: [{ kind: 'config', name: 'a', version: 0, spec: 'x', index: 1 }], recent: [] })],
    ['an object with no version', JSON.stringify({ applied: 1, objects: [{ kind: 'config', name: 'a', spec: 'x', index: 1 }], recent: [] })],
    ['an object that is null', JSON.stringify({ applied: 1, objects: [null], recent: [] })],
  ];

  test.each(garbage)('restore refuses %s', (_what, data) => {
    const s = new DesiredState();
    expect(() => s.restore(data)).toThrow();
  });

  test('restore refuses garbage with a sentence naming what it is not', () => {
    expect(() => new DesiredState().restore(JSON.stringify({ applied: 'x', objects: [], recent: [] }))).toThrow(/^not a desired-state snapshot: applied, objects and recent are required$/);
    expect(() => new DesiredState().restore(JSON.stringify({ applied: 1, objects: [{ kind: 'config', name: 'a', version: 0, spec: 'x' }], recent: [] }))).toThrow(/not a desired-state snapshot: config "a" has no valid version and index/);
  });

  // BUG (reported): restore clears the state before it has checked the snapshot's objects, so a
  // refused snapshot leaves an empty or half-loaded state behind instead of the one it had.
  test('a refused snapshot leaves the state as it was', () => {
    const s = busy();
    const before = s.serialize();
    const bad = JSON.stringify({ applied: 99, objects: [{ kind: 'config', name: 'ok', version: 1, spec: 'x', index: 1 }, { kind: 'config', name: 'a', version: 0, spec: 'x', index: 2 }], recent: [] });
    expect(() => s.restore(bad)).toThrow();
    expect(s.serialize()).toBe(before);
  });

  // BUG (reported): the remembered outcomes in a snapshot are not checked, so a snapshot whose
  // `recent` holds junk is accepted and later answers a retry with that junk.
  test('restore refuses a snapshot whose remembered outcomes are not outcomes', () => {
    const bad = JSON.stringify({ applied: 1, objects: [], recent: [['q', 'not an outcome']] });
    const s = new DesiredState();
    expect(() => s.restore(bad)).toThrow();
  });

  // BUG (reported): the Raft index of a restored object is not checked (a string, a negative
  // number or nothing is accepted), though `index` is typed a number and reported to watchers.
  test('restore refuses an object whose index is not an index', () => {
    const bad = JSON.stringify({ applied: 1, objects: [{ kind: 'config', name: 'a', version: 1, spec: 'x', index: 'yesterday' }], recent: [] });
    expect(() => new DesiredState().restore(bad)).toThrow();
  });
});

describe('a restore command (weft state restore)', () => {
  const restoreCmd = (data: string, req = `r${++reqs}`) => JSON.stringify({ op: 'restore', data, req });

  test('replaces every object with the backup\'s: missing ones deleted, changed ones a version further, equal ones untouched', () => {
    const backup = new DesiredState();
    feed(backup, [put('same', 'v'), put('changed', 'new'), put('added', 'a'), put('peer9', 'worker', {}, 'node-role')]);
    const s = new DesiredState();
    feed(s, [put('same', 'v'), put('changed', 'old'), put('changed', 'older'), put('gone', 'x')]);
    const r = s.apply(5, restoreCmd(backup.serialize()));
    expect(r.outcome).toEqual({ ok: true, object: null });
    expect(r.changes).toEqual([
      { index: 5, kind: 'config', name: 'gone', object: null },
      { index: 5, kind: 'config', name: 'changed', object: { kind: 'config', name: 'changed', version: 3, spec: 'new', index: 5 } },
      { index: 5, kind: 'config', name: 'added', object: { kind: 'config', name: 'added', version: 1, spec: 'a', index: 5 } },
      { index: 5, kind: 'node-role', name: 'peer9', object: { kind: 'node-role', name: 'peer9', version: 1, spec: 'worker', index: 5 } },
    ]);
    expect(s.get('config', 'same')).toEqual({ kind: 'config', name: 'same', version: 1, spec: 'v', index: 1 });
    expect(s.get('config', 'gone')).toBeUndefined();
    expect(s.all().map((o) => `${o.kind}/${o.name}`)).toEqual(['config/added', 'config/changed', 'config/same', 'node-role/peer9']);
    expect(s.size()).toBe(4);
  });

  test('requests remembered before a restore stay remembered: a write retried across it still applies once', () => {
    const s = new DesiredState();
    const w = put('site', 'one', { req: 'before' });
    s.apply(1, w);
    s.apply(2, restoreCmd(new DesiredState().serialize()));
    expect(s.get('config', 'site')).toBeUndefined();
    expect(s.apply(3, w).changes).toEqual([]);
    expect(s.get('config', 'site')).toBeUndefined();
  });

  test('a retried restore applies once', () => {
    const backup = new DesiredState();
    backup.apply(1, put('a', 'x'));
    const s = new DesiredState();
    const cmd = restoreCmd(backup.serialize(), 'restore-1');
    s.apply(1, cmd);
    s.apply(2, put('a', 'changed since'));
    expect(s.apply(3, cmd).changes).toEqual([]);
    expect(s.get('config', 'a')).toMatchObject({ version: 2, spec: 'changed since' });
  });

  const bad: [string, unknown, RegExp][] = [
    ['no req', { op: 'restore', data: new DesiredState().serialize() }, /^req must be a request id$/],
    ['an unknown field', { op: 'restore', data: new DesiredState().serialize(), req: 'q', kind: 'config' }, /^unknown field "kind"$/],
    ['data that is not a string', { op: 'restore', data: { applied: 0, objects: [], recent: [] }, req: 'q' }, /^a restore needs the backup's data, at most 921600 bytes$/],
    ['data over the size limit', { op: 'restore', data: ' '.repeat(900 * 1024 + 1), req: 'q' }, /^a restore needs the backup's data/],
    ['data that is not a snapshot', { op: 'restore', data: JSON.stringify({ applied: 'x', objects: [], recent: [] }), req: 'q' }, /^not a desired-state snapshot: applied, objects and recent are required$/],
    ['a snapshot with an invalid object', { op: 'restore', data: JSON.stringify({ applied: 1, objects: [{ kind: 'config', name: 'a', version: 1, spec: 5, index: 1 }], recent: [] }), req: 'q' }, /^not a desired-state snapshot: a config value must be a string$/],
  ];

  test.each(bad)('a restore with %s fails with a sentence and changes nothing', (_what, cmd, message) => {
    const s = new DesiredState();
    s.apply(1, put('keep', 'me'));
    const before = s.serialize();
    const r = s.apply(2, JSON.stringify(cmd));
    expect(r.outcome.ok).toBe(false);
    expect((r.outcome as { error: string }).error).toMatch(message);
    expect(r.changes).toEqual([]);
    expect(JSON.parse(s.serialize())).toEqual({ ...JSON.parse(before), applied: 2 });
  });

  // BUG (reported): a restore whose data is not JSON, or is JSON null, fails with the JavaScript
  // engine's own message ("Unexpected token...", "Cannot read properties of null..."): not a
  // sentence for the operator, and its wording depends on the Node version, while the outcome is
  // remembered and so part of the replicated state that must be identical on every manager.
  test.each([['not JSON', '{oops'], ['JSON null', 'null']])('a restore whose data is %s fails with weft\'s own sentence', (_what, data) => {
    const r = new DesiredState().apply(1, JSON.stringify({ op: 'restore', data, req: 'q' }));
    expect(r.outcome).toEqual({ ok: false, error: expect.stringMatching(/^not a desired-state snapshot/) });
  });
});

/** A random entry: mostly valid commands on a few names (so that versions, compare-and-set,
 *  deletes and retries interact), and invalid ones of every sort, including non-JSON. */
function randomEntry(rng: Rng): string {
  const names = ['a', 'b', 'c/d', 'e.f'];
  const req = rng.chance(0.2) ? `dup-${rng.int(20)}` : `q-${rng.int(1_000_000)}`;
  const kind: Kind = rng.chance(0.8) ? 'config' : 'node-role';
  const spec = kind === 'config' ? rng.pick(['', 'x', 'yy', 'é😀', '{"json":1}']) : rng.pick(['manager', 'worker']);
  const expect = rng.chance(0.4) ? { expect: rng.int(4) } : {};
  switch (rng.int(9)) {
    case 8: {
      const backup = new DesiredState();
      if (rng.chance(0.5)) backup.apply(1, JSON.stringify({ op: 'put', kind, name: rng.pick(names), spec, req: 'b' }));
      return JSON.stringify({ op: 'restore', data: rng.chance(0.9) ? backup.serialize() : '{"applied":1}', req });
    }
    case 0: return rng.pick(['', '{', 'nul', '[]', '"x"', '42', 'null', 'true', '{"op":"put"']);
    case 1: {
      const junk: Record<string, unknown> = { op: 'put', kind, name: rng.pick(names), spec, req };
      const field = rng.pick(['op', 'kind', 'name', 'spec', 'req', 'expect', 'extra']);
      junk[field] = rng.pick([null, 1, -1, 1.5, '', ' ', 'x'.repeat(300), [], {}, true, 'delete', 'service']);
      return JSON.stringify(junk);
    }
    case 2: case 3: return JSON.stringify({ op: 'delete', kind, name: rng.pick(names), req, ...expect });
    default: return JSON.stringify({ op: 'put', kind, name: rng.pick(names), spec, req, ...expect });
  }
}

describe('determinism', () => {
  test.each([1, 2, 3, 4, 5, 6, 7, 8])('seed %i: two machines fed the same random entries end identical, with identical outcomes', (seed) => {
    const rng = new Rng(seed);
    const entries = Array.from({ length: 400 }, () => randomEntry(rng));
    const a = new DesiredState();
    const b = new DesiredState();
    const ra = feed(a, entries);
    const rb = feed(b, entries);
    expect(ra).toEqual(rb);
    expect(a.serialize()).toBe(b.serialize());
    // The random mix exercised every path.
    expect(ra.some((r) => r.outcome.ok && r.changes.some((c) => c.object !== null))).toBe(true);
    expect(ra.some((r) => r.outcome.ok && r.changes.some((c) => c.object === null))).toBe(true);
    expect(ra.some((r) => !r.outcome.ok && /expected version/.test(r.outcome.error))).toBe(true);
    expect(ra.some((r) => !r.outcome.ok && r.outcome.error === 'the entry is not JSON')).toBe(true);
    expect(ra.some((r) => r.req?.startsWith('dup-') && r.outcome.ok && r.changes.length === 0)).toBe(true);
  });

  test.each([11, 12, 13])('seed %i: a machine restored from a snapshot taken midway ends identical to one that applied everything', (seed) => {
    const rng = new Rng(seed);
    const entries = Array.from({ length: 400 }, () => randomEntry(rng));
    const whole = new DesiredState();
    feed(whole, entries.slice(0, 150));
    const snap = whole.serialize();
    const rest = feed(whole, entries.slice(150));
    const restored = new DesiredState();
    restored.restore(snap);
    expect(feed(restored, entries.slice(150))).toEqual(rest);
    expect(restored.serialize()).toBe(whole.serialize());
  });

  test('a state machine is a model of a map of versions: random valid commands agree with a simple model', () => {
    const rng = new Rng(77);
    const s = new DesiredState();
    const model = new Map<string, { version: number; spec: unknown }>();
    const seen = new Map<string, unknown>();
    for (let i = 1; i <= 600; i++) {
      const text = randomEntry(rng);
      const r = s.apply(i, text);
      let c: Record<string, unknown> | undefined;
      try { c = JSON.parse(text) as Record<string, unknown>; } catch { /* not JSON */ }
      if (!c || validateCommand(c) !== undefined) {
        expect(r.outcome.ok).toBe(false);
        continue;
      }
      const req = c.req as string;
      if (seen.has(req)) {
        expect(r.outcome).toEqual(seen.get(req));
        continue;
      }
      if (c.op === 'restore') {
        const backup = new DesiredState();
        backup.restore(c.data as string);
        const next = new Map<string, { version: number; spec: unknown }>();
        for (const o of backup.all()) {
          const cur = model.get(`${o.kind}/${o.name}`);
          next.set(`${o.kind}/${o.name}`, cur && JSON.stringify(cur.spec) === JSON.stringify(o.spec) ? cur : { version: (cur?.version ?? 0) + 1, spec: o.spec });
        }
        model.clear();
        for (const [k, v] of next) model.set(k, v);
        expect(r.outcome).toEqual({ ok: true, object: null });
        seen.set(req, r.outcome);
        continue;
      }
      const k = `${c.kind as string}/${c.name as string}`;
      const cur = model.get(k);
      const expectOk = c.expect === undefined || (cur?.version ?? 0) === c.expect;
      if (!expectOk) expect(r.outcome.ok).toBe(false);
      else if (c.op === 'delete') {
        expect(r.outcome.ok).toBe(cur !== undefined);
        model.delete(k);
      } else {
        expect(r.outcome).toMatchObject({ ok: true, object: { version: (cur?.version ?? 0) + 1, spec: c.spec } });
        model.set(k, { version: (cur?.version ?? 0) + 1, spec: c.spec });
      }
      seen.set(req, r.outcome);
    }
    for (const kind of ['config', 'node-role'] as const) {
      expect(s.list(kind).map((o) => [`${kind}/${o.name}`, o.version, o.spec])).toEqual(
        [...model].filter(([k]) => k.startsWith(`${kind}/`)).map(([k, v]) => [k, v.version, v.spec]).sort(([a], [b]) => ((a as string) < (b as string) ? -1 : 1)),
      );
    }
  });
});
