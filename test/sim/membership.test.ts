// Deterministic simulations of membership and failure detection: peers on a lossy, delaying,
// partitionable network with a simulated clock; invariants are checked after every 100 ms step.
// A failing seed is printed in the test name and replays exactly.

import { afterAll, describe, expect, test } from 'vitest';
import { MAX_ADDRS, MAX_INCARNATION, MAX_RECORDS, MAX_SIG_LENGTH, type MemberRecord, parseMembershipMessage, type MembershipMessage } from '../../mesh/membership/wire.ts';
import { HEARTBEAT_INTERVAL_MS, Membership, PROBE_TIMEOUT_MS, SUSPECT_AFTER_MS, VOUCH_WINDOW_MS } from '../../mesh/membership/membership.ts';
import { type Member } from '../../mesh/membership/member.ts';
import { suspicionBounds } from '../../mesh/membership/suspicion.ts';
import { median, percentile, World, type SeenEvent } from './membership-world.ts';
import { fakeSigner, signedAs } from './membership-signer.ts';
import { Rng, seeds } from './rng.ts';

/** The invariants every step must keep, whatever the scenario. */
function checkTables(w: World, truthfulInc: Set<string>): void {
  // Honest gossip is never refused: every record carries its subject's valid claim.
  if (w.rejected.length > 0) throw new Error(`${w.rejected[0]!.observer} refused a record: ${w.rejected[0]!.reason}`);
  for (const a of w.up()) {
    const m = w.m(a);
    for (const r of m.members()) {
      if (r.id === a) throw new Error(`${a} holds a record of itself`);
      // Only a member raises its own incarnation, so nobody can hold a higher one than it has
      // (unless it restarted without its persisted incarnation: then it must learn and refute).
      if (truthfulInc.has(r.id) && r.inc > w.m(r.id).self().inc) {
        throw new Error(`${a} holds ${r.id} at inc ${r.inc} > its own ${w.m(r.id).self().inc}`);
      }
    }
  }
}

/** Collects verdicts no peer may reach about a healthy peer. */
function watchFalseVerdicts(w: World, healthy: (id: string) => boolean): SeenEvent[] {
  const bad: SeenEvent[] = [];
  w.onEvent = (e) => {
    if ((e.type === 'dead' || e.type === 'left' || e.type === 'forgotten') && healthy(e.member.id)) bad.push(e);
  };
  return bad;
}

function sameTables(w: World): boolean {
  const view = (id: string) => {
    const self = w.m(id).self();
    return JSON.stringify(
      [...w.m(id).members(), self].map((m) => [m.id, m.inc, m.state]).sort((x, y) => (String(x[0]) < String(y[0]) ? -1 : 1)),
    );
  };
  const up = w.up();
  return up.every((id) => view(id) === view(up[0]!));
}

function converge(w: World, maxMs = 10_000): number {
  const all = new Set(w.ids);
  return w.runUntil(() => w.allAlive(), maxMs, () => checkTables(w, all));
}

describe('a healthy mesh', () => {
  const suspicions: number[] = [];
  const convergence: number[] = [];
  const perPeerMsgsPerSec: number[] = [];

  test.each(seeds(100))(
    'seed %i: ten peers converge, and with 1 message in 20 lost and 1–50 ms delays none is ever declared dead in 60 s',
    (seed) => {
      const w = new World({ seed, n: 10, loss: 0.05, minDelayMs: 1, maxDelayMs: 50 });
      const bad = watchFalseVerdicts(w, () => true);
      const all = new Set(w.ids);
      convergence.push(converge(w));
      const sent = w.messages;
      w.run(60_000, () => {
        checkTables(w, all);
        expect(bad).toEqual([]);
      });
      expect(w.allAlive()).toBe(true);
      w.run(2_000);
      expect(sameTables(w)).toBe(true);
      // Honest gossip is never refused: every record carries its subject's valid claim.
      expect(w.rejected).toEqual([]);
      suspicions.push(w.events.filter((e) => e.type === 'suspect').length);
      perPeerMsgsPerSec.push((w.messages - sent) / 60 / w.ids.length);
    },
  );

  afterAll(() => {
    console.log(
      `healthy mesh, 100 seeds x 60 s: convergence median ${median(convergence)} ms, max ${Math.max(...convergence)} ms; ` +
        `suspicions (later refuted) total ${suspicions.reduce((a, b) => a + b, 0)}; ` +
        `messages per peer per second ${median(perPeerMsgsPerSec).toFixed(1)}`,
    );
  });
});

// Peers started faster than the host can admit their connections: on 2 cores, 30 peers
// started 0.5 s apart took over a minute to connect the mesh (each dial a CPace and Noise
// handshake waiting for a CPU, many timing out at 3 s). A member is then known, by gossip,
// long before each peer reaches it, and silence over a connection not yet made is no evidence:
// counting it made that start flap (4,500 suspect lines) until the last connection was made.
describe('a loaded start: dials that take seconds', () => {
  const suspicions: number[] = [];
  const convergence: number[] = [];
  test.each(seeds(20))('seed %i: 20 peers started together, each dial taking 2 s: nobody is suspected, all see all alive', (seed) => {
    const w = new World({ seed, n: 20, loss: 0.01, dialDelayMs: 2_000 });
    const bad = watchFalseVerdicts(w, () => true);
    const all = new Set(w.ids);
    convergence.push(converge(w, 30_000));
    w.run(10_000, () => checkTables(w, all));
    expect(bad).toEqual([]);
    const s = w.events.filter((e) => e.type === 'suspect').length;
    suspicions.push(s);
    expect(s).toBe(0);
  });
  afterAll(() => {
    console.log(`loaded start, 20 peers, 2 s dials, 20 seeds: all alive everywhere after median ${median(convergence)} ms, max ${Math.max(...convergence)} ms; suspicions total ${suspicions.reduce((a, b) => a + b, 0)}`);
  });
});

describe('failure detection', () => {
  const detection: Record<string, { all: number[]; each: number[] }> = {
    'cut off (silent)': { all: [], each: [] },
    'killed -9 (connections reset)': { all: [], each: [] },
  };

  function crashScenario(seed: number, kind: keyof typeof detection): void {
    const w = new World({ seed, n: 10, loss: 0.05 });
    converge(w);
    w.run(1_000 + w.rng.int(3_000));
    // A crash lands anywhere between two ticks and two heartbeats.
    w.nudge(w.rng.int(20) * 10);
    const victim = w.rng.pick(w.ids);
    const bad = watchFalseVerdicts(w, (id) => id !== victim);
    const deadAt = new Map<string, number>();
    const prev = w.onEvent;
    w.onEvent = (e) => {
      prev(e);
      if (e.type === 'dead' && e.member.id === victim && !deadAt.has(e.observer)) deadAt.set(e.observer, w.now);
    };
    const crashedAt = w.now;
    w.crash(victim, kind === 'killed -9 (connections reset)');
    const healthy = new Set(w.ids.filter((id) => id !== victim));
    w.runUntil(() => deadAt.size === healthy.size, 5_000, () => {
      checkTables(w, new Set(w.ids));
      expect(bad).toEqual([]);
    });
    const times = [...deadAt.values()].map((t) => t - crashedAt);
    detection[kind]!.all.push(Math.max(...times));
    detection[kind]!.each.push(...times);
    // The verdict sticks and nobody else follows it into the grave.
    w.run(3_000, () => expect(bad).toEqual([]));
    for (const id of healthy) expect(w.view(id, victim)?.state).toBe('dead');
    expect(w.allAlive([...healthy])).toBe(true);
  }

  test.each(seeds(40))('seed %i: a peer whose host is cut off is declared dead by every other peer', (seed) => {
    crashScenario(seed, 'cut off (silent)');
  });

  test.each(seeds(40))('seed %i: a peer killed with -9 is declared dead by every other peer', (seed) => {
    crashScenario(seed, 'killed -9 (connections reset)');
  });

  test('detection takes under 2 s median (simulated time, 10 peers, 5% loss)', () => {
    for (const [kind, d] of Object.entries(detection)) {
      console.log(
        `detection, ${kind}, ${d.all.length} seeds: until ALL peers marked it dead: median ${median(d.all)} ms, ` +
          `p90 ${percentile(d.all, 90)} ms, max ${Math.max(...d.all)} ms; per observer: median ${median(d.each)} ms, ` +
          `min ${Math.min(...d.each)} ms, max ${Math.max(...d.each)} ms`,
      );
    }
    // Both figures printed before either is checked.
    for (const d of Object.values(detection)) {
      expect(d.all.length).toBe(40);
      expect(median(d.all)).toBeLessThan(2_000);
    }
  });
});

describe('partitions', () => {
  test.each(seeds(20))(
    'seed %i: a peer cut off from the rest and the rest declare each other dead, and all are alive again after the cut heals',
    (seed) => {
      const w = new World({ seed, n: 6, loss: 0.05 });
      converge(w);
      w.run(w.rng.int(2_000));
      const lone = w.rng.pick(w.ids);
      const rest = w.ids.filter((id) => id !== lone);
      // Inside the majority nobody may be declared dead at any time.
      const bad = watchFalseVerdicts(w, (id) => id !== lone);
      const all = new Set(w.ids);
      w.partition([[lone], rest]);
      w.runUntil(
        () => rest.every((r) => w.view(r, lone)?.state === 'dead' && w.view(lone, r)?.state === 'dead'),
        15_000,
        () => {
          checkTables(w, all);
          // The lone peer may well declare everyone dead; the majority must not turn on itself.
          expect(bad.filter((e) => e.observer !== lone)).toEqual([]);
        },
      );
      w.run(3_000 + w.rng.int(5_000));
      const healedAt = w.events.length;
      w.heal();
      w.runUntil(() => w.allAlive(), 10_000, () => {
        checkTables(w, all);
        // Nor after the cut heals, when the lone peer's verdicts about them reach them.
        expect(bad.filter((e) => e.observer !== lone)).toEqual([]);
      });
      const after = w.events.slice(healedAt);
      for (const r of rest) {
        expect(after.some((e) => e.observer === r && e.type === 'rejoined' && e.member.id === lone)).toBe(true);
        expect(after.some((e) => e.observer === lone && e.type === 'rejoined' && e.member.id === r)).toBe(true);
      }
      for (const r of rest) expect(w.view(r, lone)!.inc).toBe(w.m(lone).self().inc);
      w.run(3_000);
      expect(w.allAlive()).toBe(true);
      expect(sameTables(w)).toBe(true);
    },
  );

  // The stale view of a healed peer (before the fix, bench/detect measured 17 false deaths per
  // 5 heals at 5 peers and 83 at 10; this simulation 10 per heal at 5 peers, 58 at 10): cut off
  // long enough to bury everyone, it comes back with a table saying each of the others is dead
  // at the incarnation it still has. Those verdicts reach peers that hear the accused every
  // 200 ms; they must not believe them.
  describe('a peer cut off long enough to declare all others dead, then healed', () => {
    const stats: Record<string, { heals: number; suspects: number; falseDeaths: number; back: number[]; settled: number[] }> = {};

    function healScenario(seed: number, n: number, loss: number, carry = false): void {
      const w = new World({ seed, n, loss });
      converge(w);
      w.run(w.rng.int(2_000));
      const lone = w.rng.pick(w.ids);
      const rest = w.ids.filter((id) => id !== lone);
      const s = (stats[`${n} peers, ${loss * 100}% loss${carry ? ', old messages delivered on healing' : ''}`] ??= { heals: 0, suspects: 0, falseDeaths: 0, back: [], settled: [] });
      const majorityDead: SeenEvent[] = [];
      w.onEvent = (e) => {
        if (e.observer === lone || e.member.id === lone) return;
        if (e.type === 'suspect') s.suspects++;
        if (e.type === 'dead' || e.type === 'left' || e.type === 'forgotten') {
          majorityDead.push(e);
          s.falseDeaths++;
        }
      };
      const all = new Set(w.ids);
      const check = () => {
        checkTables(w, all);
        expect(majorityDead, 'a majority peer marked another majority peer dead').toEqual([]);
      };
      w.partition([[lone], rest], { carry });
      w.runUntil(() => rest.every((r) => w.view(lone, r)?.state === 'dead' && w.view(r, lone)?.state === 'dead'), 15_000, check);
      // Let the verdicts go stale, so the lone peer's table is old news when it comes back, and
      // heal anywhere between two ticks.
      w.run(3_000 + w.rng.int(3_000), check);
      w.nudge(w.rng.int(10) * 10);
      w.heal();
      s.heals++;
      const healedAt = w.now;
      w.runUntil(() => rest.every((r) => w.view(r, lone)?.state === 'alive'), 3_000, check);
      s.back.push(w.now - healedAt);
      w.runUntil(() => w.allAlive(), 5_000, check);
      s.settled.push(w.now - healedAt);
      w.run(3_000, check);
      // A live peer may be suspected at any moment at 15% loss (about one probe in 500 loses
      // every path); it refutes within a round trip or two.
      w.runUntil(() => w.allAlive(), 1_000, check);
      expect(sameTables(w)).toBe(true);
    }

    test.each(seeds(60))('seed %i: 5 peers: no majority peer ever marks another dead, and the healed one is alive everywhere within 3 s', (seed) => {
      healScenario(seed, 5, 0.05);
    });

    test.each(seeds(60))('seed %i: 10 peers: no majority peer ever marks another dead, and the healed one is alive everywhere within 3 s', (seed) => {
      healScenario(seed, 10, 0.05);
    });

    // Its connections outlived the cut and deliver what it sent meanwhile (TCP retransmits),
    // some of it after its refutation has reached us by another path; and 15% loss, so that
    // some peer has not heard some other for over VOUCH_WINDOW_MS when the old news arrives.
    test.each(seeds(40))(
      'seed %i: 10 peers, 15%% loss, old messages delivered on healing: no majority peer ever marks another dead',
      (seed) => {
        healScenario(seed, 10, 0.15, true);
      },
    );

    // Every healthy peer learned it was buried and refuted; that is no sign that it answers
    // slowly, so its timeouts must not stretch (Lifeguard) for the next real failure.
    const detections: { first: number[]; afterHeal: number[] } = { first: [], afterHeal: [] };
    test.each(seeds(20))('seed %i: 5 peers: a cut 3 s after such a heal is detected as fast as the one before it', (seed) => {
      const w = new World({ seed, n: 5, loss: 0.05 });
      converge(w);
      const lone = w.rng.pick(w.ids);
      const rest = w.ids.filter((id) => id !== lone);
      const cut = (): number => {
        w.nudge(w.rng.int(20) * 10);
        const start = w.now;
        w.partition([[lone], rest]);
        w.runUntil(() => rest.every((r) => w.view(r, lone)?.state === 'dead'), 5_000);
        return w.now - start;
      };
      detections.first.push(cut());
      // The cut-off peer probes one member per period and, hearing no helper either, stretches
      // its own timeouts (it is the likely culprit): burying all four takes it a while.
      w.runUntil(() => rest.every((r) => w.view(lone, r)?.state === 'dead'), 15_000);
      w.run(3_000);
      w.heal();
      w.runUntil(() => w.allAlive(), 5_000);
      w.run(3_000);
      detections.afterHeal.push(cut());
    });

    afterAll(() => {
      if (detections.first.length > 0) {
        const [first, after] = [median(detections.first), median(detections.afterHeal)];
        console.log(`detection of a cut, ${detections.first.length} seeds: median ${first} ms before a heal, ${after} ms 3 s after one`);
        // Within half a probe period: when the cut-off peer is next probed sets the start of
        // detection to a period's resolution, so 20 seeds' medians differ by that much; a
        // stretched timeout (Lifeguard's penalty, at least doubling) would differ by seconds.
        expect(after).toBeLessThanOrEqual(first + HEARTBEAT_INTERVAL_MS / 2);
      }
      for (const [what, s] of Object.entries(stats)) {
        console.log(
          `heal of a peer that buried everyone, ${what}, ${s.heals} heals: majority peers marked another dead ${s.falseDeaths} times, ` +
            `suspected another ${s.suspects} times; healed peer alive everywhere after median ${median(s.back)} ms, max ${Math.max(...s.back)} ms; ` +
            `every table all alive after median ${median(s.settled)} ms, max ${Math.max(...s.settled)} ms`,
        );
      }
    });
  });

  test.each(seeds(10))('seed %i: two halves split and heal, and everyone is alive again on both sides', (seed) => {
    const w = new World({ seed, n: 8, loss: 0.05 });
    converge(w);
    const a = w.ids.slice(0, 4);
    const b = w.ids.slice(4);
    const bad = watchFalseVerdicts(w, () => true);
    w.partition([a, b]);
    w.run(6_000, () => {
      // Within each half, nobody is declared dead.
      expect(bad.filter((e) => a.includes(e.observer) === a.includes(e.member.id))).toEqual([]);
    });
    for (const x of a) for (const y of b) expect(w.view(x, y)?.state).toBe('dead');
    w.heal();
    // Nor once it heals and each half's verdicts about the other reach it.
    const withinHalves = () => expect(bad.filter((e) => a.includes(e.observer) === a.includes(e.member.id))).toEqual([]);
    w.runUntil(() => w.allAlive(), 10_000, withinHalves);
    w.run(3_000, withinHalves);
    expect(sameTables(w)).toBe(true);
  });
});

describe('restarts', () => {
  function restartScenario(seed: number, persisted: boolean, downMs: number): void {
    const w = new World({ seed, n: 8, loss: 0.05 });
    converge(w);
    w.run(w.rng.int(2_000));
    const victim = w.rng.pick(w.ids.slice(1));
    const others = w.ids.filter((id) => id !== victim);
    const oldInc = Math.max(w.m(victim).self().inc, ...others.map((o) => w.view(o, victim)!.inc));
    const state = { inc: w.m(victim).self().inc, members: w.m(victim).members() };
    w.crash(victim);
    if (downMs > 0) w.run(downMs);
    const bad = watchFalseVerdicts(w, (id) => id !== victim);
    w.restart(victim, persisted ? state : undefined);
    // A fresh core starts at incarnation 0, below what the others hold, until it learns.
    const truthful = new Set(persisted ? w.ids : others);
    w.runUntil(
      () => w.allAlive() && others.every((o) => w.view(o, victim)!.inc > oldInc),
      10_000,
      () => {
        checkTables(w, truthful);
        expect(bad).toEqual([]);
      },
    );
    expect(w.m(victim).self().inc).toBeGreaterThan(oldInc);
    w.run(3_000);
    expect(w.allAlive()).toBe(true);
    expect(sameTables(w)).toBe(true);
  }

  test.each(seeds(20))('seed %i: a peer restarted with its persisted state is alive everywhere with a higher incarnation', (seed) => {
    restartScenario(seed, true, 4_000);
  });

  test.each(seeds(20))('seed %i: a peer restarted without state learns its old incarnation from others and refutes it', (seed) => {
    restartScenario(seed, false, 4_000);
  });

  test.each(seeds(10))('seed %i: a peer restarted without state before anyone noticed it was gone still comes back higher', (seed) => {
    restartScenario(seed, false, 300);
  });
});

describe('local health: a stalled event loop', () => {
  // What is guaranteed, for a peer whose event loop is frozen for S ms (it neither ticks nor
  // reads, then gets the whole backlog at once):
  //  1. it never suspects nor declares anyone dead because of its own stall, for any S: the
  //     stalled time does not count as anyone's silence;
  //  2. nobody declares it dead if S < its last unanswered ping's timeout + the helpers' wait
  //     + the minimum suspicion timeout - one-way delay (300 + 200 + 800 - 50 = 1250 ms for
  //     the 8 peers here); others may suspect it, and it refutes;
  //  3. for longer stalls others may declare it dead, and it is alive everywhere again within
  //     a second of waking (it refutes at once on noticing its own stall).
  const GUARANTEED_STALL_MS = PROBE_TIMEOUT_MS * (1 + 2 / 3) + suspicionBounds(8).minMs - 50;
  const declaredDead: Record<number, number> = {};
  let suspectedBy = 0;

  function stallScenario(seed: number, stallMs: number, backlogFirst: boolean): void {
    const w = new World({ seed, n: 8, loss: 0.05 });
    converge(w);
    w.run(w.rng.int(2_000));
    w.nudge(w.rng.int(20) * 10);
    const frozen = w.rng.pick(w.ids);
    const accusedByFrozen: SeenEvent[] = [];
    let frozenDeclaredDead = 0;
    w.onEvent = (e) => {
      if (e.observer === frozen && (e.type === 'suspect' || e.type === 'dead')) accusedByFrozen.push(e);
      if (e.member.id === frozen && e.type === 'dead') frozenDeclaredDead++;
      if (e.member.id !== frozen && e.type === 'dead') accusedByFrozen.push(e);
    };
    const since = w.events.length;
    w.stall(frozen, stallMs, backlogFirst);
    w.run(stallMs);
    const wokeAt = w.now;
    w.runUntil(() => w.allAlive(), 1_000);
    const back = w.now - wokeAt;
    w.run(3_000);
    expect(accusedByFrozen).toEqual([]);
    // Whoever suspected or buried it reported it back: 'alive' after suspect, 'rejoined' after dead.
    for (const o of w.ids.filter((id) => id !== frozen)) {
      const seen = w.events.slice(since).filter((e) => e.observer === o && e.member.id === frozen).map((e) => e.type);
      const allowed = [[], ['suspect', 'alive'], ['suspect', 'dead', 'rejoined'], ['dead', 'rejoined']].map((x) => x.join());
      expect(allowed, `${o} saw ${seen.join()}`).toContain(seen.join());
      if (seen.includes('suspect')) suspectedBy++;
    }
    if (stallMs <= GUARANTEED_STALL_MS) expect(frozenDeclaredDead).toBe(0);
    declaredDead[stallMs] = (declaredDead[stallMs] ?? 0) + (frozenDeclaredDead > 0 ? 1 : 0);
    expect(back).toBeLessThanOrEqual(1_000);
    expect(w.allAlive()).toBe(true);
  }

  test.each(seeds(20))('seed %i: a peer frozen for 1.2 s accuses nobody and is declared dead by nobody', (seed) => {
    stallScenario(seed, 1_200, seed % 2 === 0);
  });

  test.each(seeds(20))('seed %i: a peer frozen for 1.5 s accuses nobody and is alive everywhere within 1 s of waking', (seed) => {
    stallScenario(seed, 1_500, seed % 2 === 0);
  });

  test.each(seeds(10))('seed %i: a peer frozen for 5 s accuses nobody and is alive everywhere within 1 s of waking', (seed) => {
    stallScenario(seed, 5_000, seed % 2 === 0);
  });

  afterAll(() => {
    console.log(
      `stalls (guaranteed tolerance ${GUARANTEED_STALL_MS} ms): seeds where others declared the frozen peer dead: ` +
        Object.entries(declaredDead).map(([ms, n]) => `${ms} ms: ${n}`).join(', ') +
        `; observers that suspected it and then saw it alive again: ${suspectedBy}`,
    );
    // The suspicion-and-refutation path was exercised, not just avoided.
    expect(suspectedBy).toBeGreaterThan(0);
  });
});

describe('what peers are told', () => {
  test.each(seeds(10))('seed %i: starting from one seed address, every peer reports every other as joined, once', (seed) => {
    const w = new World({ seed, n: 8, loss: 0.05 });
    converge(w);
    w.run(3_000);
    for (const o of w.ids) {
      const seen = w.events.filter((e) => e.observer === o);
      expect(seen.every((e) => e.type === 'joined')).toBe(true);
      expect(seen.map((e) => e.member.id).sort()).toEqual(w.ids.filter((id) => id !== o).sort());
    }
  });

  test.each(seeds(10))('seed %i: a late peer that knows one member learns all of them (peers of peers), and all learn it', (seed) => {
    const w = new World({ seed, n: 8, loss: 0.05 });
    const late = 'n7';
    w.crash(late);
    w.runUntil(() => w.allAlive(), 10_000);
    w.run(w.rng.int(3_000));
    const since = w.events.length;
    w.restart(late);
    w.runUntil(() => w.allAlive(), 5_000);
    for (const o of w.ids.filter((id) => id !== late)) {
      expect(w.events.filter((e) => e.observer === o && e.member.id === late).map((e) => e.type)).toEqual(['joined']);
      expect(w.view(late, o)!.addrs).toEqual(w.node(o).info.addrs);
    }
    expect(w.events.slice(since).filter((e) => e.observer === late && e.type === 'joined')).toHaveLength(7);
  });

  test.each(seeds(10))('seed %i: a peer that changes its addresses and tags is seen updated everywhere', (seed) => {
    const w = new World({ seed, n: 6, loss: 0.05 });
    converge(w);
    const mover = w.rng.pick(w.ids);
    const before = w.m(mover).self().inc;
    const since = w.events.length;
    w.apply(mover, w.m(mover).updateSelf({ addrs: ['/ip4/10.9.9.9/tcp/6783'], tags: ['db', 'ssd'] }, w.now));
    const others = w.ids.filter((id) => id !== mover);
    w.runUntil(() => others.every((o) => w.view(o, mover)!.addrs[0] === '/ip4/10.9.9.9/tcp/6783'), 3_000);
    w.run(2_000);
    for (const o of others) {
      const seen = w.events.slice(since).filter((e) => e.observer === o && e.member.id === mover);
      expect(seen.map((e) => e.type)).toEqual(['updated']);
      expect(seen[0]!.member.tags).toEqual(['db', 'ssd']);
      expect(w.view(o, mover)!.inc).toBeGreaterThan(before);
    }
  });

  test.each(seeds(10))('seed %i: a connection reset between two healthy peers is only a hint: nobody is even suspected', (seed) => {
    const w = new World({ seed, n: 6, loss: 0.05 });
    converge(w);
    const since = w.events.length;
    for (let i = 0; i < 20; i++) {
      const [a, b] = w.rng.shuffle([...w.ids]) as [string, string];
      w.resetLinks(a, b);
      w.run(300 + w.rng.int(1_000));
    }
    w.run(3_000);
    expect(w.events.slice(since)).toEqual([]);
  });

  test.each(seeds(10))('seed %i: a healthy peer whose every connection resets at once is never declared dead', (seed) => {
    const w = new World({ seed, n: 6, loss: 0.05 });
    converge(w);
    const victim = w.rng.pick(w.ids);
    const bad = watchFalseVerdicts(w, () => true);
    w.resetLinks(victim);
    w.run(5_000, () => expect(bad).toEqual([]));
    expect(w.allAlive()).toBe(true);
  });
});

describe('leaving and forgetting', () => {
  test.each(seeds(20))('seed %i: a peer that leaves is seen as left by everyone, never as dead', (seed) => {
    const w = new World({ seed, n: 6, loss: 0.05 });
    converge(w);
    w.run(w.rng.int(2_000));
    const leaver = w.rng.pick(w.ids);
    const others = w.ids.filter((id) => id !== leaver);
    const bad: SeenEvent[] = [];
    w.onEvent = (e) => {
      if (e.type === 'dead' || e.type === 'forgotten') bad.push(e);
    };
    w.apply(leaver, w.m(leaver).leave(w.now));
    // Half the time the process lingers after saying goodbye, half it exits as soon as the
    // goodbye is on the wire (a crash drops what is still in flight from the crashed host).
    w.nudge(seed % 2 ? 500 : 60);
    w.crash(leaver);
    w.run(6_000, () => expect(bad).toEqual([]));
    for (const o of others) {
      expect(w.view(o, leaver)?.state).toBe('left');
      expect(w.events.filter((e) => e.observer === o && e.member.id === leaver && e.type === 'left')).toHaveLength(1);
    }
    expect(w.allAlive(others)).toBe(true);
    expect(w.rejected).toEqual([]);
    // The shell stops dialing it.
    for (const o of others) expect(w.m(o).wanted().map((m) => m.id)).not.toContain(leaver);
  });

  test.each(seeds(10))('seed %i: a dead peer is reaped by everyone after the reap time, and stays gone', (seed) => {
    // A day in production; 20 s here.
    const w = new World({ seed, n: 6, loss: 0.05, opts: { reapAfterMs: 20_000 } });
    converge(w);
    const victim = w.rng.pick(w.ids);
    w.crash(victim);
    const others = w.ids.filter((id) => id !== victim);
    w.runUntil(() => others.every((o) => w.view(o, victim)?.state === 'dead'), 5_000);
    w.run(18_000);
    expect(others.every((o) => w.view(o, victim)?.state === 'dead')).toBe(true);
    w.run(4_000);
    for (const o of others) {
      expect(w.view(o, victim)).toBeUndefined();
      // Suspected first, or (the death reaching it by gossip before its own suspicion) not.
      const seen = w.events.filter((e) => e.observer === o && e.member.id === victim).map((e) => e.type);
      expect([['joined', 'suspect', 'dead', 'forgotten'], ['joined', 'dead', 'forgotten']]).toContainEqual(seen);
    }
    w.run(10_000);
    for (const o of others) expect(w.view(o, victim)).toBeUndefined();
  });

  test.each(seeds(10))(
    'seed %i: a forgotten dead peer is removed everywhere, stale gossip does not bring it back, and a new life does',
    (seed) => {
      const w = new World({ seed, n: 6, loss: 0.02 });
      converge(w);
      const victim = 'n5';
      const straggler = 'n4';
      // A member list from before the crash, to be replayed later as stale gossip.
      const stale: MembershipMessage = {
        t: 'members',
        records: [w.m('n2').self(), ...w.m('n2').members()].map(toRecord),
        forgotten: [],
      };
      const state = { inc: w.m(victim).self().inc, members: w.m(victim).members() };
      w.crash(victim);
      w.runUntil(() => w.up().every((id) => w.view(id, victim)?.state === 'dead'), 5_000);
      // The straggler is cut off while the operator forgets: it keeps the dead record.
      w.partition([[straggler], w.ids.filter((id) => id !== straggler)]);
      w.apply('n1', w.m('n1').forget(victim, w.now));
      w.run(2_000);
      for (const id of w.up().filter((id) => id !== straggler)) expect(w.view(id, victim)).toBeUndefined();
      expect(w.view(straggler, victim)?.state).toBe('dead');
      // Stale gossip from a member and the straggler's return must not resurrect it.
      for (const id of w.up()) if (id !== 'n2') w.apply(id, w.m(id).receive('n2', stale, w.now));
      w.heal();
      w.run(5_000, () => {
        for (const id of w.up().filter((id) => id !== straggler)) expect(w.view(id, victim)).toBeUndefined();
      });
      // The straggler learned the forget from the others.
      expect(w.view(straggler, victim)).toBeUndefined();
      expect(w.m('n1').wanted().map((m) => m.id)).not.toContain(victim);
      // A new life of the forgotten peer is welcome.
      w.restart(victim, state);
      w.runUntil(() => w.allAlive(), 10_000);
      for (const id of w.up()) if (id !== victim) expect(w.view(id, victim)!.inc).toBeGreaterThan(state.inc);
      // Tombstones at the incarnation everyone held, stale but signed gossip: nothing refused.
      expect(w.rejected).toEqual([]);
    },
  );
});

describe('merging gossip', () => {
  test.each(seeds(50))('seed %i: records merged in any order, any number of times, give the same table', (seed) => {
    const rng = new Rng(seed);
    const states = ['alive', 'suspect', 'dead', 'left'] as const;
    const records: MemberRecord[] = [];
    for (let i = 0; i < 30; i++) {
      const id = `x${rng.int(5)}`;
      const inc = rng.int(4);
      // A member's info belongs to one incarnation, as only the member itself changes either.
      records.push(signedAs({ id, name: `${id}-${inc}`, addrs: [`/ip4/10.1.0.${inc}/tcp/6783`], tags: [], role: 'worker', inc, state: rng.pick(states) }));
    }
    const table = (order: MemberRecord[]) => {
      const m = new Membership({ id: 'me', name: 'me', addrs: [], tags: [], role: 'worker' }, 0, fakeSigner('me'));
      // News, from a peer none of the records is about: what a peer heard from a member itself
      // is weighed against accusations of it, and a full table's accusations only prompt it to
      // ask (the next test); this is the merge of gossip alone.
      for (const r of order) m.receive('relay', { t: 'update', records: [r], forgotten: [] }, 0);
      return JSON.stringify(m.members().map((x) => [x.id, x.inc, x.state, x.name]));
    };
    const expected = table(records);
    expect(table(rng.shuffle([...records]))).toBe(expected);
    expect(table(rng.shuffle([...records, ...records]))).toBe(expected);
  });

  test('an accusation is weighed against what the peer observed of the accused itself, and the accused hears of it either way', () => {
    const rec = (id: string) => signedAs({ id, name: id, addrs: [], tags: [], role: 'worker', inc: 1, state: 'alive' });
    const x = rec('x');
    // [message, accusation, ms since we last heard x directly (null: never), what we then
    //  hold, whether we ask a helper about x at once]
    const cases: ['members' | 'update', 'suspect' | 'dead', number | null, string, boolean][] = [
      // Heard within the vouch window: not even a suspicion, however it came.
      ['update', 'dead', 0, 'alive', false],
      ['update', 'dead', VOUCH_WINDOW_MS - 10, 'alive', false],
      ['update', 'suspect', VOUCH_WINDOW_MS - 10, 'alive', false],
      ['members', 'dead', VOUCH_WINDOW_MS - 10, 'alive', false],
      ['members', 'suspect', VOUCH_WINDOW_MS - 10, 'alive', false],
      // Beyond it, news is believed: that is how a detection spreads.
      ['update', 'dead', VOUCH_WINDOW_MS, 'dead', false],
      ['update', 'suspect', VOUCH_WINDOW_MS, 'suspect', false],
      ['update', 'dead', null, 'dead', false],
      // A full table's verdict may be as old as its sender's view: we ask a helper about x now,
      // and suspect it only if the helper does not hear it either.
      ['members', 'dead', VOUCH_WINDOW_MS, 'alive', true],
      ['members', 'suspect', VOUCH_WINDOW_MS, 'alive', true],
      ['members', 'dead', SUSPECT_AFTER_MS + 1_000, 'alive', true],
      ['members', 'dead', null, 'alive', true],
    ];
    for (const [t, accusation, quiet, held, asks] of cases) {
      // No stall detection: this core is called only when something happens, not every tick.
      const m = new Membership({ id: 'me', name: 'me', addrs: [], tags: [], role: 'worker' }, 0, { ...fakeSigner('me'), stallThresholdMs: Infinity });
      // As the shell does: a peer's messages come over a connection announced first.
      for (const id of ['x', 'h', 'y']) m.connected(id, 0);
      m.receive('y', { t: 'update', records: [x, rec('h')], forgotten: [] }, 0);
      if (quiet !== null) m.receive('x', { t: 'hb', inc: 1, sum: 0 }, 1_000);
      const at = 1_000 + (quiet ?? 0);
      // A helper we hear.
      m.receive('h', { t: 'hb', inc: 1, sum: 0 }, at);
      const out = m.receive('y', { t, records: [{ ...x, state: accusation }], forgotten: [] }, at);
      const what = `${accusation} in ${t}, x last heard ${quiet ?? 'never'}`;
      expect(m.get('x')!.state, what).toBe(held);
      // Only x can settle it for the accuser, by refuting: it is told at the accused incarnation.
      const told = out.send.some(
        ({ to, msg }) => to === 'x' && (msg.t === 'update' || msg.t === 'members') && msg.records.some((r) => r.id === 'x' && r.inc === 1 && r.state !== 'alive'),
      );
      expect(told, `${what}: x told`).toBe(true);
      const asked = out.send.some(({ to, msg }) => to === 'h' && msg.t === 'probe-req' && msg.target === 'x');
      expect(asked, `${what}: h asked`).toBe(asks);
    }
    // News from a peer we hold dead is as old as the cut that separated us: it only makes us ask.
    {
      const m = new Membership({ id: 'me', name: 'me', addrs: [], tags: [], role: 'worker' }, 0, { ...fakeSigner('me'), stallThresholdMs: Infinity });
      for (const id of ['x', 'h', 'y', 'z']) m.connected(id, 0);
      m.receive('z', { t: 'update', records: [x, rec('h'), { ...rec('y'), state: 'dead' }], forgotten: [] }, 0);
      m.receive('x', { t: 'hb', inc: 1, sum: 0 }, 1_000);
      m.receive('h', { t: 'hb', inc: 1, sum: 0 }, 1_000 + VOUCH_WINDOW_MS);
      const out = m.receive('y', { t: 'update', records: [{ ...x, state: 'dead' }], forgotten: [] }, 1_000 + VOUCH_WINDOW_MS);
      expect(m.get('x')!.state).toBe('alive');
      expect(out.send.some(({ to, msg }) => to === 'h' && msg.t === 'probe-req' && msg.target === 'x')).toBe(true);
    }
    // A member we did not know, learned from a full table, is taken as the table has it: there
    // is nothing of our own to weigh (a new peer learning of the dead).
    const m = new Membership({ id: 'me', name: 'me', addrs: [], tags: [], role: 'worker' }, 0, fakeSigner('me'));
    m.receive('y', { t: 'members', records: [{ ...x, state: 'dead' }], forgotten: [] }, 0);
    expect(m.get('x')!.state).toBe('dead');
  });

  test('the precedence rules as SWIM states them', () => {
    const cases: [string, number, string, number, boolean][] = [
      // held state, held inc, incoming state, incoming inc, adopted?
      ['alive', 1, 'alive', 2, true],
      ['alive', 1, 'alive', 1, false],
      ['suspect', 1, 'alive', 1, false],
      ['suspect', 1, 'alive', 2, true],
      ['alive', 1, 'suspect', 1, true],
      ['alive', 2, 'suspect', 1, false],
      ['suspect', 1, 'suspect', 1, false],
      ['suspect', 1, 'suspect', 2, true],
      ['suspect', 1, 'dead', 1, true],
      ['dead', 1, 'suspect', 1, false],
      ['dead', 1, 'alive', 1, false],
      ['dead', 1, 'alive', 2, true],
      ['dead', 1, 'left', 1, true],
      ['left', 1, 'dead', 1, false],
      ['left', 1, 'dead', 2, true],
      ['left', 1, 'alive', 2, true],
    ];
    for (const [hs, hi, is, ii, adopted] of cases) {
      const m = new Membership({ id: 'me', name: 'me', addrs: [], tags: [], role: 'worker' }, 0, fakeSigner('me'));
      const rec = (state: string, inc: number) =>
        signedAs({ id: 'x', name: 'x', addrs: [], tags: [], role: 'worker', inc, state: state as MemberRecord['state'] });
      m.receive('y', { t: 'update', records: [rec(hs, hi)], forgotten: [] }, 0);
      m.receive('y', { t: 'update', records: [rec(is, ii)], forgotten: [] }, 0);
      const held = m.get('x')!;
      expect([held.state, held.inc], `${hs}(${hi}) then ${is}(${ii})`).toEqual(adopted ? [is, ii] : [hs, hi]);
    }
  });

  test('the same seed replays the same run', () => {
    const run = () => {
      const w = new World({ seed: 42, n: 6, loss: 0.05 });
      converge(w);
      w.crash('n3');
      w.run(4_000);
      w.partition([['n0', 'n1'], ['n2', 'n4', 'n5']]);
      w.run(4_000);
      w.heal();
      w.run(4_000);
      return JSON.stringify(w.events);
    };
    expect(run()).toBe(run());
  });
});

describe('hostile and malformed messages', () => {
  function randomJson(rng: Rng, depth = 0): unknown {
    const k = rng.int(depth > 3 ? 6 : 9);
    switch (k) {
      case 0: return null;
      case 1: return rng.chance(0.5);
      case 2: return rng.pick([0, -1, 1.5, 2 ** 53, -0, 1e308, MAX_INCARNATION + 1, 0xffffffff + 1, 7]);
      case 3: return rng.pick(['', 'hb', 'you', 'members', 'update', 'probe-req', 'probe-ack', 'alive', 'x'.repeat(300), '__proto__']);
      case 4: return rng.int(1000);
      case 5: return 'n' + rng.int(10);
      case 6: return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        const keys = ['t', 'inc', 'sum', 'state', 'records', 'forgotten', 'target', 'heardAgoMs', 'linked', 'id', 'name', 'addrs', 'tags', 'role', 'sig'];
        for (let i = rng.int(7); i > 0; i--) o[rng.pick(keys)] = randomJson(rng, depth + 1);
        return o;
      }
    }
  }

  /** A message that passes the decoder. `genuine`: records their subjects really signed, which
   *  a hostile member may replay under any state (only some of which verify). */
  function validMessage(rng: Rng, genuine: MemberRecord[] = []): MembershipMessage {
    const rec = (): MemberRecord => {
      const state = rng.pick(['alive', 'suspect', 'dead', 'left'] as const);
      if (genuine.length > 0 && rng.chance(0.5)) return { ...rng.pick(genuine), state };
      return {
        id: `n${rng.int(8)}`,
        name: 'h',
        addrs: ['/ip4/10.0.0.1/tcp/6783'],
        tags: rng.chance(0.5) ? ['db'] : [],
        role: rng.chance(0.5) ? 'manager' : 'worker',
        inc: rng.int(30),
        state,
        sig: rng.pick(['AAAA', 'x'.repeat(88), `${rng.int(2 ** 32).toString(16)}`]),
      };
    };
    switch (rng.int(8)) {
      case 0: return { t: 'hb', inc: rng.int(30), sum: rng.int(2 ** 32) };
      case 5: {
        // A ping or ack, sometimes carrying piggybacked records and tombstones.
        const hb: MembershipMessage = { t: 'hb', inc: rng.int(30), sum: rng.int(2 ** 32), ...(rng.chance(0.5) ? { ack: true as const } : {}) };
        if (rng.chance(0.5)) hb.records = Array.from({ length: rng.int(5) }, rec);
        if (rng.chance(0.2)) hb.forgotten = [{ id: `n${rng.int(8)}`, inc: rng.int(30) }];
        return hb;
      }
      case 6: return { t: 'suspect', target: `n${rng.int(8)}`, inc: rng.int(30) };
      case 1: return { t: 'you', inc: rng.int(30), state: rng.pick(['alive', 'suspect', 'dead', 'left', 'forgotten', 'unknown'] as const) };
      case 2: return { t: rng.chance(0.5) ? 'members' : 'update', records: Array.from({ length: rng.int(5) }, rec), forgotten: rng.chance(0.2) ? [{ id: `n${rng.int(8)}`, inc: rng.int(30) }] : [] };
      case 3: return { t: 'probe-req', target: `n${rng.int(8)}` };
      case 4: return { t: 'probe-ack', target: `n${rng.int(8)}`, heardAgoMs: rng.chance(0.2) ? null : rng.int(5000), linked: rng.chance(0.5), ...(rng.chance(0.2) ? { abstain: true } : {}) };
      default: return { t: 'hb', inc: 0, sum: 0 };
    }
  }

  /** Breaks one field of a valid message in one of the ways a broken or hostile peer might.
   *  `huge`: sometimes by making it enormous (costly to build, so only where asked). */
  function mutate(rng: Rng, msg: MembershipMessage, huge = false): unknown {
    const copy = JSON.parse(JSON.stringify(msg)) as Record<string, unknown>;
    const keys = Object.keys(copy);
    const key = rng.pick(keys);
    const record = Array.isArray(copy.records) && copy.records.length ? (copy.records[0] as Record<string, unknown>) : null;
    switch (rng.int(8)) {
      case 0: delete copy[key]; break;
      case 1: copy[key] = randomJson(rng); break;
      case 2: copy[key] = 'x'.repeat(huge ? 100_000 : 300); break;
      case 3: copy[key] = Array.from({ length: huge ? 100_000 : MAX_RECORDS + 1 }, () => 1); break;
      case 4: if (record) record[rng.pick(Object.keys(record))] = randomJson(rng); else copy[key] = -1; break;
      case 5: if (record) record.addrs = Array.from({ length: MAX_ADDRS + 1 }, () => 'a'); else copy[key] = NaN; break;
      case 6: copy.records = Array.from({ length: MAX_RECORDS + 1 }, () => record ?? {}); break;
      default: copy[key] = Infinity; break;
    }
    return copy;
  }

  test('parseMembershipMessage rejects garbage with a reason and never throws (20,000 random values)', () => {
    const rng = new Rng(1);
    let rejected = 0;
    for (let i = 0; i < 20_000; i++) {
      const u = i % 2 ? randomJson(rng) : mutate(rng, validMessage(rng), i % 500 === 0);
      // parseMembershipMessage must not throw: a throw fails the test right here.
      const r = parseMembershipMessage(u);
      if (typeof r === 'string') {
        rejected++;
        if (r.length === 0) throw new Error(`empty reason for ${JSON.stringify(u).slice(0, 100)}`);
      } else {
        // Whatever passes is a message the core accepts, and re-encodes to itself.
        expect(parseMembershipMessage(JSON.parse(JSON.stringify(r)))).toEqual(r);
      }
    }
    expect(rejected).toBeGreaterThan(15_000);
  });

  test('oversized lists, strings and numbers are refused', () => {
    const rec = { id: 'a', name: 'a', addrs: [], tags: [], role: 'worker', inc: 0, state: 'alive', sig: 'AAAA' };
    const { sig: _, ...unsigned } = rec;
    const cases: unknown[] = [
      { t: 'update', records: [{ ...rec, sig: 'A'.repeat(MAX_SIG_LENGTH + 1) }], forgotten: [] },
      { t: 'update', records: [{ ...rec, sig: '' }], forgotten: [] },
      { t: 'update', records: [{ ...rec, sig: 7 }], forgotten: [] },
      { t: 'update', records: [unsigned], forgotten: [] },
      { t: 'members', records: Array.from({ length: MAX_RECORDS + 1 }, () => rec), forgotten: [] },
      { t: 'update', records: [{ ...rec, id: 'x'.repeat(129) }], forgotten: [] },
      { t: 'update', records: [{ ...rec, addrs: Array.from({ length: MAX_ADDRS + 1 }, () => 'a') }], forgotten: [] },
      { t: 'update', records: [{ ...rec, inc: MAX_INCARNATION + 1 }], forgotten: [] },
      { t: 'update', records: [{ ...rec, inc: 1.5 }], forgotten: [] },
      { t: 'update', records: [{ ...rec, state: 'zombie' }], forgotten: [] },
      { t: 'hb', inc: 0, sum: -1 },
      { t: 'probe-ack', target: 'a', heardAgoMs: 1e12, linked: true },
      { t: 'probe-ack', target: 'a', heardAgoMs: 5, linked: 'yes' },
      { t: 'probe-ack', target: 'a', heardAgoMs: null, linked: false, abstain: false },
      { t: 'probe-ack', target: 'a', heardAgoMs: null, linked: false, abstain: 1 },
      { t: 'hb', inc: '0', sum: 0 },
      JSON.parse('{"__proto__": {"t": "hb"}, "inc": 0, "sum": 0}'),
      Object.create({ t: 'hb', inc: 0, sum: 0 }),
      [],
      'hb',
      null,
    ];
    for (const c of cases) expect(typeof parseMembershipMessage(c), JSON.stringify(c)?.slice(0, 80)).toBe('string');
    // Unknown extra fields are dropped, not carried into the core.
    expect(parseMembershipMessage({ t: 'hb', inc: 1, sum: 2, evil: 'x' })).toEqual({ t: 'hb', inc: 1, sum: 2 });
  });

  test.each(seeds(10))('seed %i: a member flooding random valid messages cannot crash peers, and the mesh recovers when it stops', (seed) => {
    const rng = new Rng(seed);
    const w = new World({ seed, n: 8, loss: 0.05 });
    converge(w);
    const hostile = 'n7';
    const all = new Set(w.ids.filter((id) => id !== hostile));
    // What it knows: every member's real signed record, its own included, to replay.
    const genuine = [w.m(hostile).self(), ...w.m(hostile).members()].map(toRecord);
    w.crash(hostile);
    for (let i = 0; i < 3_000; i++) {
      const to = rng.pick(w.ids.filter((id) => id !== hostile));
      const raw = i % 3 ? validMessage(rng, genuine) : mutate(rng, validMessage(rng, genuine));
      const msg = parseMembershipMessage(JSON.parse(JSON.stringify(raw)));
      if (typeof msg !== 'string') w.apply(to, w.m(to).receive(hostile, msg, w.now));
      if (i % 30 === 0) w.step();
    }
    // Lies about honest peers (dead, left, forgotten at incarnations they hold) are refuted.
    w.runUntil(() => w.allAlive([...all]), 10_000, () => {
      for (const a of all) expect(w.m(a).members().some((m) => m.id === a)).toBe(false);
    });
    w.run(3_000);
    expect(w.allAlive([...all])).toBe(true);
  });
});

function toRecord(m: Member): MemberRecord {
  if (m.sig === null) throw new Error(`${m.id} is held unsigned`);
  return { id: m.id, name: m.name, addrs: m.addrs, tags: m.tags, role: m.role, inc: m.inc, state: m.state, sig: m.sig };
}
