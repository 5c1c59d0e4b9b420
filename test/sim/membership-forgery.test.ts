// A member that holds the mesh secret but lies: deterministic simulations of what it can and
// cannot make the others believe about a third member. Every record carries its subject's
// signed claim (mesh/membership/claim.ts); the hostile member signs with its own key only.

import { afterAll, describe, expect, test } from 'vitest';
import { MAX_INCARNATION, type MemberRecord, type MembershipMessage } from '../../mesh/membership/wire.ts';
import { claimBytes, claimKind } from '../../mesh/membership/claim.ts';
import { type Member } from '../../mesh/membership/member.ts';
import { fakeSigner } from './membership-signer.ts';
import { World, type SeenEvent } from './membership-world.ts';
import { seeds } from './rng.ts';

const HOSTILE = 'n5';

function toRecord(m: Member): MemberRecord {
  if (m.sig === null) throw new Error(`${m.id} is held unsigned`);
  return { id: m.id, name: m.name, addrs: m.addrs, tags: m.tags, role: m.role, inc: m.inc, state: m.state, sig: m.sig };
}

/** A record as the hostile member can make it: signed, but with its own key. */
function signedByHostile(r: Omit<MemberRecord, 'sig'>): MemberRecord {
  return { ...r, sig: fakeSigner(HOSTILE).sign(claimBytes(r, r.inc, claimKind(r.state))) };
}

function update(...records: MemberRecord[]): MembershipMessage {
  return { t: 'update', records, forgotten: [] };
}

/** A converged mesh of six, with n5 hostile, and the victim it lies about. `real`: the victim's
 *  record as the hostile member holds it (a genuine signed claim, at its current incarnation). */
function setup(seed: number) {
  const w = new World({ seed, n: 6, loss: 0.05 });
  w.runUntil(() => w.allAlive(), 10_000);
  w.run(w.rng.int(2_000));
  const victim = w.rng.pick(w.ids.filter((id) => id !== HOSTILE));
  const others = w.ids.filter((id) => id !== victim);
  const real = toRecord(w.view(HOSTILE, victim)!);
  expect(real.inc).toBe(w.m(victim).self().inc);
  const events: SeenEvent[] = [];
  w.onEvent = (e) => {
    if (e.member.id === victim) events.push(e);
  };
  return { w, victim, others, real, events };
}

/** Every peer holds the victim alive, with its own info, at the incarnation it signed last. */
function expectIntact(w: World, victim: string, inc: number): void {
  const info = w.node(victim).info;
  expect(w.m(victim).self().inc).toBe(inc);
  for (const o of w.ids.filter((id) => id !== victim)) {
    const held = w.view(o, victim)!;
    expect([held.state, held.inc, held.addrs, held.name], `${o}'s view of ${victim}`).toEqual(['alive', inc, info.addrs, info.name]);
  }
}

describe('a member cannot speak for another', () => {
  /** Per forged accusation: how many honest observers believed it for a moment. */
  const beliefs: number[] = [];
  afterAll(() => {
    const total = beliefs.reduce((a, b) => a + b, 0);
    console.log(`forged accusations of a healthy member: ${beliefs.length}, believed for a moment by ${total} of ${beliefs.length * 4} honest observers`);
    // Mostly by fewer than half: the liar's word alone cannot move peers that heard the victim
    // within the vouch window. (With a probe every 500 ms, an observer of a 6-peer mesh has
    // heard a given member that recently about half the time; it was under one in four with
    // 200 ms. A belief lasts until the victim's refutation, and one accuser's suspicion waits
    // out the maximum timeout, so it never buries anyone: see the tests below.)
    if (beliefs.length > 0) expect(total).toBeLessThan(beliefs.length * 2);
  });

  test.each(seeds(10))('seed %i: an alive record for another member with other addresses is refused everywhere, and its addresses stay its own', (seed) => {
    const { w, victim, others, real, events } = setup(seed);
    const elsewhere = ['/ip4/6.6.6.6/tcp/6783'];
    // A "new incarnation" with the hostile member's own signature: news to everyone, so checked.
    w.forge(HOSTILE, update(signedByHostile({ ...real, addrs: elsewhere, inc: real.inc + 1, state: 'alive' })));
    expect(w.rejected.map((r) => r.observer).sort()).toEqual(w.ids.filter((id) => id !== HOSTILE).sort());
    expect(w.rejected.filter((r) => r.from !== HOSTILE || !/not signed by (that member|this peer)/.test(r.reason))).toEqual([]);
    // The genuine signature on other addresses at the same incarnation, in a full table: the
    // others already hold that incarnation; the victim itself checks before it refutes.
    w.rejected.length = 0;
    w.forge(HOSTILE, { t: 'members', records: [{ ...real, addrs: elsewhere }], forgotten: [] });
    expect(w.rejected.map((r) => r.observer)).toEqual([victim]);
    w.run(3_000);
    expectIntact(w, victim, real.inc);
    expect(events).toEqual([]);
    expect(w.allAlive()).toBe(true);
    for (const o of others) expect(w.m(o).wanted().flatMap((m) => m.addrs)).not.toContain(elsewhere[0]);
  });

  test.each(seeds(10))('seed %i: a death sentence above the incarnation a member signed is refused, so it never has to climb there', (seed) => {
    const { w, victim, real, events } = setup(seed);
    w.forge(HOSTILE, update({ ...real, inc: MAX_INCARNATION, state: 'dead' }));
    w.forge(HOSTILE, update(signedByHostile({ ...real, inc: real.inc + 1, state: 'suspect' })));
    w.forge(HOSTILE, { t: 'update', records: [], forgotten: [{ id: victim, inc: MAX_INCARNATION }] });
    // Unsigned word to the victim itself: "I hold you dead far above your incarnation".
    w.forge(HOSTILE, { t: 'you', inc: MAX_INCARNATION, state: 'dead' }, [victim]);
    const receivers = w.ids.filter((id) => id !== HOSTILE).length;
    expect(w.rejected).toHaveLength(3 * receivers);
    // Each says it was above what the member signed (this peer's own incarnation, for the victim).
    expect(w.rejected.filter((r) => !/highest incarnation it signed|its incarnation is|above its own/.test(r.reason))).toEqual([]);
    w.run(3_000);
    // Nothing was believed, so there was nothing to refute: the incarnation did not move.
    expectIntact(w, victim, real.inc);
    expect(events).toEqual([]);
  });

  test.each(seeds(20))(
    'seed %i: an accusation at the incarnation a member signed reaches it and it refutes; peers that hear it meanwhile do not believe it',
    (seed) => {
      const { w, victim, others, real, events } = setup(seed);
      const state = seed % 2 ? 'dead' : 'suspect';
      // Half the time not even to the victim: it hears of it from the peers that refused it.
      const honest = others.filter((id) => id !== HOSTILE);
      w.forge(HOSTILE, update({ ...real, state }), seed % 4 < 2 ? honest : [...honest, victim]);
      w.runUntil(() => w.allAlive(), 3_000);
      w.run(2_000);
      expect(w.rejected).toEqual([]);
      expect(w.allAlive()).toBe(true);
      // One step up, signed by the victim, and held everywhere: the liar holds it too.
      expect(w.m(victim).self().inc).toBe(real.inc + 1);
      for (const o of others) expect(w.view(o, victim)!.inc).toBe(real.inc + 1);
      // A peer that heard the victim within the vouch window believes nothing; one that had
      // missed its last heartbeats may believe the news, and sees the refutation.
      let believed = 0;
      for (const o of honest) {
        const seen = events.filter((e) => e.observer === o).map((e) => e.type);
        const news = state === 'dead' ? ['dead', 'rejoined'] : ['suspect', 'alive'];
        expect([[], news].map(String), `${o} saw ${seen.join()}`).toContain(String(seen));
        if (seen.length > 0) believed++;
      }
      beliefs.push(believed);
    },
  );

  test.each(seeds(10))('seed %i: forget is bounded the same way: at the held incarnation the member comes back, above it nothing happens', (seed) => {
    const { w, victim, others, real, events } = setup(seed);
    w.forge(HOSTILE, { t: 'update', records: [], forgotten: [{ id: victim, inc: real.inc + 1 }] });
    expect(w.rejected).toHaveLength(w.ids.length - 1);
    expect(events).toEqual([]);
    w.rejected.length = 0;
    w.forge(HOSTILE, { t: 'update', records: [], forgotten: [{ id: victim, inc: real.inc }] });
    expect(w.rejected).toEqual([]);
    for (const o of others.filter((id) => id !== HOSTILE)) expect(w.view(o, victim)).toBeUndefined();
    w.runUntil(() => w.allAlive(), 3_000);
    for (const o of others) expect(w.view(o, victim)!.inc).toBe(real.inc + 1);
  });

  test.each(seeds(10))('seed %i: only a member itself can say it left', (seed) => {
    const { w, victim, others, real, events } = setup(seed);
    // Its genuine claim of being alive, relabelled; then the same signed by the hostile member.
    w.forge(HOSTILE, update({ ...real, state: 'left' }));
    w.forge(HOSTILE, update(signedByHostile({ ...real, inc: real.inc + 1, state: 'left' })));
    expect(w.rejected).toHaveLength(2 * (w.ids.length - 1));
    expect(w.rejected.filter((r) => !/only a member itself can leave/.test(r.reason))).toEqual([]);
    w.run(3_000);
    expectIntact(w, victim, real.inc);
    expect(events).toEqual([]);
    for (const o of others) expect(w.m(o).wanted().map((m) => m.id)).toContain(victim);
    // Its own goodbye, by contrast, is believed everywhere.
    w.apply(victim, w.m(victim).leave(w.now));
    w.run(2_000);
    for (const o of others) expect(w.view(o, victim)!.state).toBe('left');
  });

  test.each(seeds(10))('seed %i: a replayed older claim of a member is ignored by precedence everywhere', (seed) => {
    const { w, victim, others, real } = setup(seed);
    const moved = ['/ip4/10.9.9.9/tcp/6783'];
    w.apply(victim, w.m(victim).updateSelf({ addrs: moved }, w.now));
    w.runUntil(() => others.every((o) => w.view(o, victim)!.addrs[0] === moved[0]), 3_000);
    w.run(1_000);
    // Above the replayed life (a peer started without state may also step over its own record
    // once, when it first hears it: see Membership.applySelf).
    const inc = w.m(victim).self().inc;
    expect(inc).toBeGreaterThan(real.inc);
    const since = w.events.length;
    // Genuinely signed, but of the life before the move: as alive, as suspect, as a full table.
    w.forge(HOSTILE, update(real));
    w.forge(HOSTILE, update({ ...real, state: 'suspect' }));
    w.forge(HOSTILE, { t: 'members', records: [real], forgotten: [] });
    w.run(3_000);
    expect(w.rejected).toEqual([]);
    expect(w.events.slice(since).filter((e) => e.member.id === victim)).toEqual([]);
    expect(w.m(victim).self().inc).toBe(inc);
    for (const o of others) expect([w.view(o, victim)!.addrs, w.view(o, victim)!.inc]).toEqual([moved, inc]);
  });
});

describe('claims across restarts', () => {
  test.each(seeds(10))('seed %i: a forgotten peer restarted without its state is shown its own signed record and comes back above it', (seed) => {
    const w = new World({ seed, n: 6, loss: 0.05 });
    w.runUntil(() => w.allAlive(), 10_000);
    const victim = 'n4';
    const others = w.ids.filter((id) => id !== victim);
    // Lives it had and forgot on disk: it must step over them on word signed by itself.
    for (let i = 0; i < 3; i++) {
      w.apply(victim, w.m(victim).updateSelf({ tags: [`t${i}`] }, w.now));
      w.run(500);
    }
    const oldInc = w.m(victim).self().inc;
    w.crash(victim);
    w.runUntil(() => others.every((o) => w.view(o, victim)?.state === 'dead'), 5_000);
    w.apply('n1', w.m('n1').forget(victim, w.now));
    w.runUntil(() => others.every((o) => w.view(o, victim) === undefined), 3_000);
    w.restart(victim);
    w.runUntil(() => w.allAlive(), 10_000);
    expect(w.m(victim).self().inc).toBeGreaterThan(oldInc);
    for (const o of others) expect(w.view(o, victim)!.inc).toBe(w.m(victim).self().inc);
    // The graves' unsigned word above its new incarnation was noted and ignored, nothing else.
    // (The shell keeps its incarnation on disk with its identity, so there such a tombstone
    // is never honest; only a simulation restarts a peer blank under its old identity.)
    expect(w.rejected.filter((r) => !(r.observer === victim && /^tombstone for this peer/.test(r.reason)))).toEqual([]);
  });

  test.each(seeds(10))('seed %i: a peer restarted with its persisted members keeps their claims and gossips them unrefused', (seed) => {
    const w = new World({ seed, n: 6, loss: 0.05 });
    // Until every peer holds every other's claim: a seed address is held unsigned until its
    // subject's record arrives (on connect, or asked for on its first ping), which 5% loss
    // can delay past the moment all are alive.
    const signed = () => w.up().every((id) => w.m(id).members().every((m) => typeof m.sig === 'string'));
    w.runUntil(() => w.allAlive() && signed(), 10_000);
    const victim = w.rng.pick(w.ids.slice(1));
    const members = w.m(victim).members();
    expect(members.every((m) => typeof m.sig === 'string')).toBe(true);
    // One persisted claim is damaged (a disk from another version): that member is kept for
    // dialing, unsigned and not gossiped, until its claim arrives again.
    const damaged = members.find((m) => m.id !== w.ids[0])!;
    const restored = members.map((m) => (m === damaged ? { ...m, sig: 'garbage' } : m));
    const state = { inc: w.m(victim).self().inc, members: restored };
    w.crash(victim);
    w.restart(victim, state);
    for (const m of members) {
      expect(w.view(victim, m.id)!.sig).toBe(m === damaged ? null : m.sig);
    }
    w.runUntil(() => w.allAlive(), 5_000);
    w.run(2_000);
    expect(w.rejected).toEqual([]);
    expect(w.view(victim, damaged.id)!.sig).not.toBeNull();
    for (const o of w.ids.filter((id) => id !== victim)) expect(w.view(o, victim)!.inc).toBe(w.m(victim).self().inc);
  });
});
