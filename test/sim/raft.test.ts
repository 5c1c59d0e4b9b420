// The Raft core (scheduler/raft/) in the deterministic world of raft-world.ts: its safety
// properties after every step of thousands of seeded runs under loss, duplication, reordering,
// partitions (a leader cut off into a minority, one-way cuts), crashes that lose the unsynced
// tail, skewed clocks, and membership changes one server at a time (learners added, promoted,
// members removed, the leader among them); then that a healed cluster elects a leader and commits, and that the
// history of clients of a key-value store on top is linearizable. Servers compact their logs
// at random points, so servers that lag, restart or join are caught up by snapshots sent in
// chunks, and some crash mid-transfer. And the behaviours pre-vote, check-quorum, leadership
// transfer and snapshot transfer exist for, one scenario each.

import { describe, expect, test } from 'vitest';
import { checkKvHistory } from '../linearizability.ts';
import { RaftWorld } from './raft-world.ts';
import { seeds } from './rng.ts';

/** Seeds per cluster size: 2 x 1,000 runs of every suite run. */
const SEEDS = Number(process.env.RAFT_SEEDS ?? 1000);
const CHAOS_STEPS = 600;
/** After healing: an election takes at most 2 election timeouts of the slowest clock (3 steps
 *  a tick x 20 ticks) plus delivery; the commit of a new command waits for the backlog before
 *  it, which at one entry per append and four in flight goes at ~0.35 entries a step
 *  (measured: a backlog of ~150 took 430 steps). */
const HEAL_STEPS = 1000;
/** How often the settling client proposes again while nothing it proposed is applied. */
const RETRY_STEPS = 20;
/** A learner added late may lack a few hundred entries; at one entry per append and four in
 *  flight it takes ~0.35 entries a step (measured), so this allows ~400. */
const CATCH_UP_STEPS = 1200;

function chaos(seed: number, servers: number): RaftWorld {
  return new RaftWorld(seed, {
    servers, loss: 0.1, duplicate: 0.05, maxDelay: 4, slowDiskRate: 0.2, partitionRate: 0.03, crashRate: 0.004, leaderCrashRate: 0.03, restartRate: 0.1, proposeRate: 0.3, skew: true, clients: 3, keys: 3, spares: 2, confRate: 0.1,
    compactRate: 0.02, snapCrashRate: 0.02,
  });
}

/** Runs the healed world until the voters have applied a command proposed after the heal (a
 *  proposal to a leader that is then deposed is lost, as in any Raft: clients retry, and so
 *  does this, every RETRY_STEPS), and then until the learners have too (they catch up at the
 *  pace of the run's batching bounds, which may be one entry per append), or a budget ends. */
function settle(w: RaftWorld): { leaders: string[]; committed: boolean; caughtUp: boolean } {
  w.heal();
  const proposed = new Set<string>();
  const hasOne = (id: string) => w.appliedBy(id).some((e) => e.data !== null && proposed.has(e.data));
  let committed = false;
  for (let i = 0; i < HEAL_STEPS && !committed; i++) {
    w.step();
    if (i % RETRY_STEPS === 0 && w.leaders().length === 1) {
      const data = w.propose();
      if (data !== undefined) proposed.add(data);
    }
    committed = w.membership().voters.every(hasOne);
  }
  for (let i = 0; i < CATCH_UP_STEPS && committed; i++) {
    const { voters, learners } = w.membership();
    if ([...voters, ...learners].every(hasOne)) return { leaders: w.leaders(), committed, caughtUp: true };
    w.step();
  }
  return { leaders: w.leaders(), committed, caughtUp: false };
}

describe.each([3, 5])('Raft, %i servers', (servers) => {
  test.each(seeds(SEEDS))('seed %i: safe under chaos, live once healed', (seed) => {
    const w = chaos(seed, servers);
    w.run(CHAOS_STEPS);
    const end = settle(w);
    expect(end.committed, `seed ${seed}: a healed cluster commits (leaders ${end.leaders.join(',') || 'none'})`).toBe(true);
    expect(end.caughtUp, `seed ${seed}: every member, learners too, applies it`).toBe(true);
    const lin = checkKvHistory(w.history);
    expect(lin.ok, `seed ${seed}: the clients' history is linearizable (first bad key ${lin.key})`).toBe(true);
  });
});

describe('Raft scenarios', () => {
  test('a quiet cluster elects one leader and replicates in order', () => {
    const w = new RaftWorld(1, { servers: 5, proposeRate: 0, maxEntriesPerAppend: 256, maxInflight: 64 });
    w.run(60);
    expect(w.leaders()).toHaveLength(1);
    for (let i = 0; i < 20; i++) w.propose();
    w.run(20);
    const logs = w.servers.map((s) => w.appliedBy(s.id).map((e) => e.data).filter((d) => d !== null));
    expect(logs[0]).toHaveLength(20);
    for (const l of logs) expect(l).toEqual(logs[0]);
  });

  test('a leader cut off into a minority steps down within an election timeout (check-quorum), and the majority elects another', () => {
    const w = new RaftWorld(2, { servers: 5, proposeRate: 0, maxEntriesPerAppend: 256, maxInflight: 64 });
    w.run(60);
    const [old] = w.leaders();
    w.isolate(old!);
    w.run(25);
    const leaders = w.leaders();
    expect(leaders).not.toContain(old);
    expect(leaders).toHaveLength(1);
  });

  test('a server cut off for long does not raise its term (pre-vote) and does not depose the leader when it returns', () => {
    const w = new RaftWorld(3, { servers: 3, proposeRate: 0, maxEntriesPerAppend: 256, maxInflight: 64 });
    w.run(60);
    const [leader] = w.leaders();
    const follower = w.servers.find((s) => s.id !== leader)!.id;
    const termBefore = w.term(follower);
    w.isolate(follower);
    w.run(300);
    expect(w.term(follower)).toBe(termBefore);
    w.reconnect();
    w.run(60);
    expect(w.leaders()).toEqual([leader]);
    expect(w.term(leader!)).toBe(termBefore);
  });

  test('leadership transfer hands over to a caught-up follower at once', () => {
    const w = new RaftWorld(4, { servers: 3, proposeRate: 0, maxEntriesPerAppend: 256, maxInflight: 64 });
    w.run(60);
    const [leader] = w.leaders();
    const to = w.servers.find((s) => s.id !== leader)!.id;
    w.transfer(leader!, to);
    w.run(10);
    expect(w.leaders()).toEqual([to]);
  });

  test('a leader cut off, whose slow clock keeps it leading after the others elected another, serves no read by ReadIndex', () => {
    const w = new RaftWorld(5, { servers: 5, proposeRate: 0, maxEntriesPerAppend: 256, maxInflight: 64 });
    w.run(60);
    const [old] = w.leaders();
    w.ask('writer', old!, 'put', 'k');
    w.run(10);
    // Twenty steps a tick: its check-quorum comes after ~200 steps, the others elect in tens.
    w.setTickEvery(old!, 20);
    w.isolate(old!);
    // The others elect a leader and commit a new value while the old one still thinks it leads.
    let fresh: string | undefined;
    for (let i = 0; i < 150 && fresh === undefined; i++) {
      w.step();
      const now = w.leaders().find((l) => l !== old);
      if (now && w.leaders().includes(old!)) {
        w.ask('writer', now, 'put', 'k');
        fresh = now;
      }
    }
    expect(fresh, 'a second leader while the old one still leads').toBeDefined();
    w.run(10);
    expect(w.leaders()).toContain(old);
    const read = w.ask('reader', old!, 'read-index', 'k');
    expect(read).toBeDefined();
    w.run(60);
    expect(read!.returned, 'the cut-off leader cannot confirm its leadership, so the read is never served').toBeUndefined();
    expect(checkKvHistory(w.history).ok).toBe(true);
  });

  test('a follower down while the leader compacts past its log is caught up by a snapshot in many chunks, even across a crash mid-transfer, and then by entries', () => {
    // 16 characters a chunk: the store of 40 keys below serializes to ~700, some 45 chunks.
    const w = new RaftWorld(6, { servers: 3, proposeRate: 0, restartRate: 0, maxEntriesPerAppend: 256, maxInflight: 64, snapshotChunkChars: 16 });
    w.run(60);
    const [leader] = w.leaders();
    const [follower, other] = w.servers.map((s) => s.id).filter((id) => id !== leader) as [string, string];
    const held = w.appliedBy(follower).length;
    w.down(follower);
    for (let i = 0; i < 40; i++) {
      w.ask(`writer${i}`, leader!, 'put', `key${i}`);
      w.run(1);
    }
    w.run(20);
    expect(w.compact(leader!)).toBe(true);
    expect(w.compact(other)).toBe(true);
    const snapAt = w.snapshotIndex(leader!);
    expect(snapAt, 'compacted past all it held').toBeGreaterThanOrEqual(held + 40);

    w.up(follower);
    const chunksBefore = w.stats.chunks;
    for (let i = 0; i < 200 && w.stats.chunks < chunksBefore + 10; i++) w.step();
    expect(w.snapshotIndex(follower), 'ten chunks in, the snapshot is not complete yet').toBeLessThan(snapAt);
    w.down(follower); // what it assembled is lost
    w.run(5);
    w.up(follower);
    w.run(300);
    expect(w.snapshotIndex(follower), 'it installed the leader\'s snapshot').toBe(snapAt);
    expect(w.stats.chunks - chunksBefore, 'in many chunks, sent again after the crash').toBeGreaterThan(45 + 10);
    expect(w.appliedBy(follower).map((e) => e.data)).toEqual(w.appliedBy(leader!).map((e) => e.data));

    // Then entries, not another snapshot: the leader holds everything after its snapshot.
    const data = [w.propose(), w.propose(), w.propose()];
    w.run(20);
    expect(w.snapshotIndex(follower)).toBe(snapAt);
    expect(w.appliedBy(follower).slice(-3).map((e) => e.data)).toEqual(data);
    expect(checkKvHistory(w.history).ok).toBe(true);
  });
});
