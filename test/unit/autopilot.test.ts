// The autopilot, the leader's choice of managers: one membership change per round, towards
// `target` voters, an odd number of them, learners promoted once caught up, dead voters
// replaced after the grace period, the operator's promote and demote obeyed, and never a
// change that leaves the live voters without a majority.

import { describe, expect, test } from 'vitest';
import { CATCH_UP_SLACK, DEFAULT_GRACE_MS, decide, type AutopilotInput, type Candidate, type Decision } from '../../scheduler/manager/autopilot.ts';
import { applyChange } from '../../scheduler/raft/membership.ts';
import type { Membership } from '../../scheduler/raft/types.ts';
import { Rng } from '../sim/rng.ts';

const NOW = 10_000_000;
const LAST = 1000;

type PeerOpts = Partial<Omit<Candidate, 'id'>>;
const peer = (id: string, o: PeerOpts = {}): Candidate => ({ id, role: 'auto', alive: true, ...o });
/** Dead for `ms` (by default well past the grace period). */
const dead = (ms = DEFAULT_GRACE_MS + 1): PeerOpts => ({ alive: false, downSince: NOW - ms });

function input(conf: Membership, peers: Candidate[], o: Partial<AutopilotInput> = {}): AutopilotInput {
  return { self: 'a', conf, peers, target: 3, graceMs: DEFAULT_GRACE_MS, now: NOW, lastIndex: LAST, match: () => LAST, ...o };
}

const conf = (voters: string[], learners: string[] = []): Membership => ({ voters, learners });

/** A decision as a short string, for tables and traces. */
function show(d: Decision): string {
  if (!d) return 'nothing';
  if ('transfer' in d) return 'transfer';
  return `${d.change.type} ${d.change.id}`;
}

/** Runs the autopilot as the leader would: decide, make the change, decide again, up to
 *  `max` rounds or until it wants nothing. A transfer hands leadership to the first other live
 *  voter. Every change must be valid for the membership it is made on. */
function converge(start: AutopilotInput, max = 20): { trace: string[]; conf: Membership; self: string } {
  let i = start;
  const trace: string[] = [];
  for (let round = 0; round < max; round++) {
    const d = decide(i);
    trace.push(show(d));
    if (!d) break;
    if ('transfer' in d) {
      const alive = new Map(i.peers.map((p) => [p.id, p.alive]));
      const next = i.conf.voters.find((v) => v !== i.self && alive.get(v));
      if (!next) break;
      i = { ...i, self: next };
      continue;
    }
    const after = applyChange(i.conf, d.change);
    if (typeof after === 'string') throw new Error(`the autopilot proposed an invalid change (${show(d)}): ${after}`);
    i = { ...i, conf: after };
  }
  if (trace.at(-1) !== 'nothing' && trace.at(-1) !== 'transfer') throw new Error(`did not settle in ${max} rounds: ${trace.join(', ')}`);
  return { trace, conf: i.conf, self: i.self };
}

describe('growing to the target', () => {
  test('bootstrap: one manager grows to three, each new one a learner first, promoted once caught up', () => {
    const r = converge(input(conf(['a']), [peer('a'), peer('b'), peer('c')]));
    expect(r.trace).toEqual(['add-learner b', 'promote b', 'add-learner c', 'promote c', 'nothing']);
    expect(r.conf).toEqual(conf(['a', 'b', 'c']));
  });

  test('the reasons are sentences a log reader understands', () => {
    expect(decide(input(conf(['a']), [peer('a'), peer('b'), peer('c')]))).toEqual({ change: { type: 'add-learner', id: 'b' }, why: '1 of 3 managers' });
    expect(decide(input(conf(['a'], ['b']), [peer('a'), peer('b'), peer('c')]))).toEqual({ change: { type: 'promote', id: 'b' }, why: 'b has caught up' });
  });

  const growth: [string, number, number, string[]][] = [
    ['a mesh of 1 keeps 1', 1, 3, ['a']],
    ['a mesh of 2 keeps 1 (an odd number)', 2, 3, ['a']],
    ['a mesh of 3 keeps 3', 3, 3, ['a', 'b', 'c']],
    ['a mesh of 4 keeps 3 (an odd number)', 4, 5, ['a', 'b', 'c']],
    ['a mesh of 5 with target 5 keeps 5', 5, 5, ['a', 'b', 'c', 'd', 'e']],
    ['a mesh of 6 with target 5 keeps 5', 6, 5, ['a', 'b', 'c', 'd', 'e']],
    ['a mesh of 9 with target 3 keeps 3', 9, 3, ['a', 'b', 'c']],
    ['target 1 keeps only the leader', 5, 1, ['a']],
    ['a mesh of 8 with target 7 keeps 7', 8, 7, ['a', 'b', 'c', 'd', 'e', 'f', 'g']],
  ];
  test.each(growth)('%s', (_what, size, target, voters) => {
    const peers = 'abcdefghi'.slice(0, size).split('').map((id) => peer(id));
    const r = converge(input(conf(['a']), peers, { target }));
    expect(r.conf).toEqual(conf(voters));
    expect(r.conf.voters.length % 2).toBe(1);
  });

  test('the leader counts itself even when it is not in the peer list', () => {
    const r = converge(input(conf(['a']), [peer('b'), peer('c')]));
    expect(r.conf).toEqual(conf(['a', 'b', 'c']));
  });

  test('a learner not caught up is not promoted, and nobody else is added meanwhile', () => {
    const peers = [peer('a'), peer('b'), peer('c')];
    const behind = { match: (id: string) => (id === 'b' ? LAST - CATCH_UP_SLACK - 1 : LAST) };
    expect(decide(input(conf(['a'], ['b']), peers, behind))).toBeUndefined();
    const justEnough = { match: (id: string) => (id === 'b' ? LAST - CATCH_UP_SLACK : LAST) };
    expect(show(decide(input(conf(['a'], ['b']), peers, justEnough)))).toBe('promote b');
  });

  test('a peer launched as a worker is never chosen, however few managers there are', () => {
    const peers = [peer('a'), peer('b', { role: 'worker' }), peer('c', { role: 'worker' }), peer('d', { role: 'worker' })];
    expect(converge(input(conf(['a']), peers)).conf).toEqual(conf(['a']));
    const more = [...peers, peer('e'), peer('f')];
    const r = converge(input(conf(['a']), more));
    expect(r.conf).toEqual(conf(['a', 'e', 'f']));
  });

  test('peers launched as managers are preferred, then the lowest id, so every leader picks alike', () => {
    const peers = [peer('a'), peer('b'), peer('c'), peer('z', { role: 'manager' }), peer('y', { role: 'manager' })];
    expect(converge(input(conf(['a']), peers)).trace).toEqual(['add-learner y', 'promote y', 'add-learner z', 'promote z', 'nothing']);
    // The order of the peer list does not matter.
    expect(converge(input(conf(['a']), [...peers].reverse())).conf).toEqual(conf(['a', 'y', 'z']));
  });

  test('a dead peer is not added', () => {
    const r = converge(input(conf(['a']), [peer('a'), peer('b', dead(10)), peer('c'), peer('d')]));
    expect(r.conf).toEqual(conf(['a', 'c', 'd']));
  });
});

describe('replacing dead managers', () => {
  const three = conf(['a', 'b', 'c']);

  test('a voter dead within the grace period is left alone, even with a replacement at hand', () => {
    const peers = [peer('a'), peer('b'), peer('c', dead(DEFAULT_GRACE_MS - 1)), peer('d')];
    expect(decide(input(three, peers))).toBeUndefined();
  });

  test('a voter dead with no downSince yet is within its grace', () => {
    expect(decide(input(three, [peer('a'), peer('b'), peer('c', { alive: false }), peer('d')]))).toBeUndefined();
  });

  test('beyond the grace period: the replacement is added, promoted, and only then the dead voter removed', () => {
    const peers = [peer('a'), peer('b'), peer('c', dead(DEFAULT_GRACE_MS)), peer('d')];
    const r = converge(input(three, peers));
    expect(r.trace).toEqual(['add-learner d', 'promote d', 'remove c', 'nothing']);
    expect(r.conf).toEqual(conf(['a', 'b', 'd']));
  });

  test('with no replacement, the dead voter is removed (two live voters are better than two of three)', () => {
    const r = converge(input(three, [peer('a'), peer('b'), peer('c', dead())]));
    expect(r.trace).toEqual(['remove c', 'nothing']);
    expect(r.conf).toEqual(conf(['a', 'b']));
  });

  test('a voter the mesh no longer knows at all is gone at once', () => {
    expect(show(decide(input(three, [peer('a'), peer('b')])))).toBe('remove c');
  });

  test('two voters of five dead: both replaced, one change at a time, never losing the live majority', () => {
    const five = conf(['a', 'b', 'c', 'd', 'e']);
    const peers = [peer('a'), peer('b'), peer('c'), peer('d', dead()), peer('e', dead()), peer('f'), peer('g')];
    const r = converge(input(five, peers, { target: 5 }));
    expect(r.conf.voters.sort()).toEqual(['a', 'b', 'c', 'f', 'g']);
    expect(r.trace.filter((t) => t.startsWith('remove')).sort()).toEqual(['remove d', 'remove e']);
  });

  test('a dead voter is not removed when the rest would have no live majority', () => {
    // a, b, c, d: c dead past grace, d dead within it. Removing c leaves a, b, d: 2 of 3 live, fine.
    // But with b also dead within grace, a alone of a, b, d is no majority: keep c.
    const four = conf(['a', 'b', 'c', 'd']);
    expect(decide(input(four, [peer('a'), peer('b', dead(5)), peer('c', dead()), peer('d', dead(5))]))).toBeUndefined();
  });

  test('a learner dead past the grace period is removed; one within it is kept while it is needed', () => {
    const peers = [peer('a'), peer('b'), peer('c'), peer('d', dead())];
    expect(decide(input(conf(['a', 'b', 'c'], ['d']), peers))).toEqual({ change: { type: 'remove', id: 'd' }, why: 'learner d has been down longer than the grace period' });
    // Needed (two voters of three): kept, and not promoted while down.
    const needed = [peer('a'), peer('b'), peer('d', dead(1000)), peer('e', dead(1000))];
    expect(decide(input(conf(['a', 'b'], ['d']), needed))).toBeUndefined();
    // Not needed (three voters up): removed, down or not.
    const within = [peer('a'), peer('b'), peer('c'), peer('d', dead(1000))];
    expect(decide(input(conf(['a', 'b', 'c'], ['d']), within))).toEqual({ change: { type: 'remove', id: 'd' }, why: 'learner d is not needed: 3 of 3 managers are up' });
  });

  test('the leader itself is never taken for gone, whatever the peer list says', () => {
    expect(decide(input(three, [peer('a', dead()), peer('b'), peer('c')]))).toBeUndefined();
  });

  // BUG (reported): a learner that died (within the grace period) after it was added is still
  // promoted when it had caught up before it died. a alone of voters {a, b} is no majority: the
  // promotion itself cannot commit, and the cluster is stuck until b returns.
  test('a dead learner is not promoted: a and a dead b would be two voters with one alive', () => {
    const peers = [peer('a'), peer('b', dead(1000)), peer('c'), peer('d')];
    const d = decide(input(conf(['a'], ['b']), peers));
    expect(show(d)).not.toBe('promote b');
  });
});

describe("the operator's promote and demote", () => {
  const three = conf(['a', 'b', 'c']);
  const peers = (o: Record<string, PeerOpts>) => ['a', 'b', 'c', 'd', 'e'].map((id) => peer(id, o[id]));

  test('demoting a follower removes it', () => {
    expect(decide(input(three, peers({ b: { override: 'worker' } })))).toEqual({ change: { type: 'remove', id: 'b' }, why: 'b is to be a worker' });
    const r = converge(input(three, peers({ b: { override: 'worker' } })));
    expect(r.conf.voters).not.toContain('b');
    expect(r.conf.learners).not.toContain('b');
    expect(r.conf.voters).toHaveLength(3);
  });

  test('demoting the leader hands leadership over first', () => {
    expect(decide(input(three, peers({ a: { override: 'worker' } })))).toEqual({ transfer: true, why: 'this manager is to be a worker' });
    // The new leader then removes the old one and brings in a replacement.
    const r = converge(input(three, peers({ a: { override: 'worker' } })));
    expect(r.trace[0]).toBe('transfer');
    expect(r.self).toBe('b');
    expect(r.conf.voters.sort()).toEqual(['b', 'c', 'd']);
  });

  test('the only voter cannot be demoted away', () => {
    expect(decide(input(conf(['a']), [peer('a', { override: 'worker' })]))).toBeUndefined();
  });

  test('a demoted voter is not removed when that would leave the live voters without a majority', () => {
    // c is down (within grace): a and b are the live majority; removing b leaves a of {a, c}.
    expect(decide(input(three, [peer('a'), peer('b', { override: 'worker' }), peer('c', dead(5))]))).toBeUndefined();
  });

  // BUG (reported): the leader hands over before checking that its removal could then be made.
  // With a and b demoted and c down (within grace), a hands leadership to b, b cannot remove a
  // (b of {b, c} is no majority) and hands it back to a: leadership flaps every round.
  test('two demoted managers with the third down do not hand leadership back and forth', () => {
    const world = [peer('a', { override: 'worker' }), peer('b', { override: 'worker' }), peer('c', dead(5))];
    const asA = decide(input(three, world, { self: 'a' }));
    const asB = decide(input(three, world, { self: 'b' }));
    expect([show(asA), show(asB)]).not.toEqual(['transfer', 'transfer']);
  });

  test('a voter launched as a worker is removed like a demoted one', () => {
    expect(show(decide(input(three, peers({ c: { role: 'worker' } }))))).toBe('remove c');
  });

  test('a learner that is to be a worker is removed', () => {
    expect(decide(input(conf(['a'], ['b']), [peer('a'), peer('b', { override: 'worker' }), peer('c')]))).toEqual({ change: { type: 'remove', id: 'b' }, why: 'b is to be a worker' });
  });

  test('a demote overrides a launch as manager; a promote overrides a launch as worker', () => {
    const r = converge(input(conf(['a']), [peer('a'), peer('b', { role: 'manager', override: 'worker' }), peer('c', { role: 'worker', override: 'manager' }), peer('d')]));
    expect(r.conf.voters.sort()).toEqual(['a', 'c', 'd']);
  });

  test('promoting a peer beyond the target adds it as a learner, then makes it a voter', () => {
    const r = converge(input(three, peers({ d: { override: 'manager' } })));
    expect(r.trace).toEqual(['add-learner d', 'promote d', 'nothing']);
    expect(r.conf).toEqual(conf(['a', 'b', 'c', 'd']));
    expect(decide(input(three, peers({ d: { override: 'manager' } })))?.why).toBe('d was promoted');
  });

  test('a promoted peer is preferred over others when managers are missing', () => {
    const r = converge(input(conf(['a']), [peer('a'), peer('b'), peer('c'), peer('z', { override: 'manager' })]));
    expect(r.trace.slice(0, 2)).toEqual(['add-learner z', 'promote z']);
  });

  test('a promoted learner still waits until it has caught up', () => {
    expect(decide(input(conf(['a', 'b', 'c'], ['d']), peers({ d: { override: 'manager' } }), { match: (id) => (id === 'd' ? 0 : LAST) }))).toBeUndefined();
  });

  // BUG (reported): a learner that is no longer needed (the voter it was to replace came back
  // before it was promoted) stays a learner for ever, and while it does the autopilot adds
  // nobody: an operator's promote of another peer is never carried out.
  test("a learner left waiting does not block an operator's promote", () => {
    const waiting = conf(['a', 'b', 'c'], ['d']);
    const r = converge(input(waiting, [peer('a'), peer('b'), peer('c'), peer('d'), peer('e', { override: 'manager' })]));
    expect(r.conf.voters).toContain('e');
  });
});

describe('never a change that loses the live majority (property)', () => {
  const IDS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];

  function hasLiveMajority(m: Membership, alive: (id: string) => boolean): boolean {
    return m.voters.filter(alive).length > m.voters.length / 2;
  }

  function randomWorld(rng: Rng): { i: AutopilotInput; matches: Map<string, number> } {
    const ids = rng.shuffle([...IDS]).slice(0, 2 + rng.int(IDS.length - 1));
    const self = ids[0] as string;
    const others = ids.slice(1);
    const voters = [self, ...others.filter(() => rng.chance(0.4))].slice(0, 1 + rng.int(6));
    const learners = others.filter((id) => !voters.includes(id) && rng.chance(0.3));
    const peers: Candidate[] = [];
    for (const id of ids) {
      if (id !== self && rng.chance(0.05)) continue; // unknown to the mesh
      const p: Candidate = { id, role: rng.pick(['auto', 'auto', 'manager', 'worker'] as const), alive: id === self || rng.chance(0.7) };
      if (rng.chance(0.15)) p.override = rng.pick(['manager', 'worker'] as const);
      if (!p.alive && rng.chance(0.9)) p.downSince = NOW - rng.pick([1, 1000, DEFAULT_GRACE_MS - 1, DEFAULT_GRACE_MS, DEFAULT_GRACE_MS * 3]);
      peers.push(p);
    }
    const matches = new Map(ids.map((id) => [id, rng.chance(0.7) ? LAST - rng.int(CATCH_UP_SLACK) : rng.int(LAST)]));
    return {
      i: { self, conf: { voters, learners }, peers, target: rng.pick([1, 3, 5]), graceMs: DEFAULT_GRACE_MS, now: NOW, lastIndex: LAST, match: (id) => matches.get(id) ?? 0 },
      matches,
    };
  }

  interface Violation { seed: number; round: number; decision: string; before: Membership; after: Membership }

  /** Runs the autopilot on random worlds, with peers dying, returning and catching up between
   *  rounds; returns the changes that took a live majority away. */
  function explore(seeds: number, rounds: number): { violations: Violation[]; changes: Map<string, number> } {
    const violations: Violation[] = [];
    const changes = new Map<string, number>();
    for (let seed = 1; seed <= seeds; seed++) {
      const rng = new Rng(seed);
      const world = randomWorld(rng);
      let i = world.i;
      const matches = world.matches;
      for (let round = 0; round < rounds; round++) {
        const d = decide(i);
        if (!d) {
          // Let the world move: someone dies or comes back, a learner catches up, time passes.
          const p = rng.pick(i.peers);
          if (p.id !== i.self) {
            const peers = i.peers.map((x) => (x === p ? (x.alive ? { ...x, alive: false, downSince: i.now } : { ...x, alive: true, downSince: undefined }) : x));
            i = { ...i, peers };
          }
          for (const l of i.conf.learners) if (rng.chance(0.5)) matches.set(l, LAST);
          i = { ...i, now: i.now + rng.pick([1000, DEFAULT_GRACE_MS]) };
          continue;
        }
        if ('transfer' in d) {
          changes.set('transfer', (changes.get('transfer') ?? 0) + 1);
          const next = i.conf.voters.find((v) => v !== i.self && i.peers.find((p) => p.id === v)?.alive);
          if (!next) break;
          i = { ...i, self: next };
          continue;
        }
        const after = applyChange(i.conf, d.change);
        expect(typeof after, `seed ${seed}: ${show(d)} on ${JSON.stringify(i.conf)}`).not.toBe('string');
        changes.set(d.change.type, (changes.get(d.change.type) ?? 0) + 1);
        const byId = new Map(i.peers.map((p) => [p.id, p]));
        const alive = (id: string) => id === i.self || byId.get(id)?.alive === true;
        // Never adds a worker or a dead peer.
        if (d.change.type === 'add-learner') {
          const p = byId.get(d.change.id);
          expect(p?.alive, `seed ${seed}: added dead ${d.change.id}`).toBe(true);
          expect(p?.override ?? (p?.role === 'worker' ? 'worker' : 'ok'), `seed ${seed}: added worker ${d.change.id}`).not.toBe('worker');
        }
        if (hasLiveMajority(i.conf, alive) && !hasLiveMajority(after as Membership, alive)) {
          violations.push({ seed, round, decision: show(d), before: i.conf, after: after as Membership });
        }
        i = { ...i, conf: after as Membership };
      }
    }
    return { violations, changes };
  }

  const { violations, changes } = explore(2000, 40);

  test('the exploration made every kind of change', () => {
    for (const k of ['add-learner', 'promote', 'remove', 'transfer']) expect(changes.get(k) ?? 0, k).toBeGreaterThan(20);
  });

  test('no removal leaves the live voters without a majority they had', () => {
    expect(violations.filter((v) => v.decision.startsWith('remove'))).toEqual([]);
  });

  // BUG (reported): promotions of dead learners do (see "a dead learner is not promoted").
  test('no promotion leaves the live voters without a majority they had', () => {
    expect(violations.filter((v) => v.decision.startsWith('promote'))).toEqual([]);
  });

  test('every change the autopilot proposes is one Raft accepts, and it settles', () => {
    for (let seed = 5000; seed < 5300; seed++) {
      const { i } = randomWorld(new Rng(seed));
      // Settles within a bounded number of rounds with nothing changing in the world.
      expect(() => converge(i, 30)).not.toThrow();
    }
  });
});
