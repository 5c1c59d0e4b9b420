// End-to-end: the control plane on five hosts, three launched as managers and two as workers.
// Clients write and read through every peer, all the time, while the leader is killed with -9
// five times in a row, then cut off into a minority, and while a manager's data dir is put
// back to an older copy. Afterwards every acknowledged write is on every manager exactly once,
// the history of reads and writes is linearizable, and no term had two leaders. Then the
// operator's commands: transfer, demote and promote, backup and restore, watch.
import { describe, expect, test } from 'vitest';
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { useHarness } from '../harness/vitest.ts';
import { waitFor, type Host } from '../harness/harness.ts';
import { checkKvHistory } from '../linearizability.ts';
import { ManagerClients } from './manager-clients.ts';
import { ApiClient } from '../../mesh/api/client.ts';
import { stateWatch } from '../../scheduler/manager/api-contract.ts';
import type { StateChange } from '../../scheduler/manager/desired-state.ts';

const PASSWORD = 'e2e-managers-password-5d1e';
/** No DNS (not what these tests are about); metrics stay on, each host on its own loopback. */
const MESH_ONLY = ['--dns-listen', 'off'];

interface ManagerJson { role: string; leader: string | null; term: number; commit: number; applied: number }
interface StatusJson { id: string; name: string; manager?: ManagerJson }
interface ManagerRow { id: string; name: string; voter: boolean; leader: boolean; match: number }

const status = (h: Host) => h.weftJson<StatusJson>(['status', '--json']);
const managers = (h: Host) => h.weftJson<ManagerRow[]>(['manager', 'ls', '--json']);

function logOf(h: Host): string {
  let text = '';
  for (const f of ['peer.log', 'peer.out', 'peer.err']) {
    try { text += readFileSync(join(h.dir, f), 'utf8'); } catch { /* absent */ }
  }
  return text;
}

/** term -> leaders named in "leader elected" lines of every host's log. */
function leadersByTerm(hosts: readonly Host[]): Map<number, Set<string>> {
  const out = new Map<number, Set<string>>();
  for (const h of hosts) {
    for (const m of logOf(h).matchAll(/msg="leader elected" term=(\d+) leader=(\S+)/g)) {
      const term = Number(m[1]);
      if (!out.has(term)) out.set(term, new Set());
      out.get(term)!.add(m[2] as string);
    }
  }
  return out;
}

describe('three managers and two workers', () => {
  const mesh = useHarness({ hosts: 5, name: 'e2e-managers' });
  const hosts = () => mesh().hosts as [Host, Host, Host, Host, Host];
  const managerHosts = () => hosts().slice(0, 3);
  const ids = new Map<string, Host>();

  async function leaderHost(exclude?: Host): Promise<Host> {
    return waitFor(async () => {
      for (const h of managerHosts()) {
        if (h === exclude || !h.peer?.running) continue;
        const s = await status(h).catch(() => undefined);
        if (s?.manager?.role === 'leader') return h;
      }
      return undefined;
    }, { what: 'a leader among the managers', timeoutMs: 30_000 });
  }

  /** Every running manager follows one leader, and has applied what it committed. */
  async function settled(): Promise<void> {
    const all = () => Promise.all(managerHosts().map((h) => status(h).catch(() => undefined)));
    const ss = await waitFor(async () => {
      const ss = await all();
      const leaders = new Set(ss.map((s) => s?.manager?.leader));
      return leaders.size === 1 && !leaders.has(null) && !leaders.has(undefined) && ss.every((s) => s?.manager?.role === 'leader' || s?.manager?.role === 'follower') ? ss : undefined;
    }, { what: 'the managers to agree on a leader', timeoutMs: 60_000 });
    // Writes go on meanwhile: caught up means past what was committed when they agreed.
    const target = Math.max(...ss.map((s) => s?.manager?.commit ?? 0));
    await waitFor(async () => (await all()).every((s) => (s?.manager?.applied ?? 0) >= target) || undefined, { what: `every manager to apply index ${target}`, timeoutMs: 60_000 });
  }

  test('the first peer founds the cluster; the autopilot makes the three manager-role peers voters and leaves the workers out', async () => {
    const [h1, h2, h3, h4, h5] = hosts();
    await h1.startPeer({ password: PASSWORD, args: ['--role', 'manager', ...MESH_ONLY] });
    for (const h of [h2, h3]) await h.startPeer({ password: PASSWORD, peers: [h1.address], args: ['--role', 'manager', ...MESH_ONLY] });
    for (const h of [h4, h5]) await h.startPeer({ password: PASSWORD, peers: [h1.address], args: ['--role', 'worker', ...MESH_ONLY] });
    for (const h of hosts()) ids.set((await waitFor(() => status(h).catch(() => undefined), { what: `${h.name}'s API` })).id, h);
    const rows = await waitFor(async () => {
      const r = await managers(h5).catch(() => undefined);
      return r && r.filter((m) => m.voter).length === 3 ? r : undefined;
    }, { what: 'three voting managers, asked through a worker', timeoutMs: 60_000 });
    expect(rows.map((r) => r.name).sort()).toEqual(['h1', 'h2', 'h3']);
    expect(rows.filter((r) => r.leader)).toHaveLength(1);
    const w = await status(h4);
    expect(w.manager).toMatchObject({ role: 'none' });
    // A write through a worker returns after commit, and every manager has it.
    expect((await h4.weft(['config', 'set', 'greeting', 'hello'])).code).toBe(0);
    for (const h of managerHosts()) expect((await h.weftJson<{ value: string; version: number }>(['config', 'get', 'greeting', '--consistent', '--json']))).toMatchObject({ value: 'hello', version: 1 });
    // The leader's /metrics: its term, that it leads, and the latency of what it applied.
    const leaderHost = hosts().find((h) => h.name === rows.find((r) => r.leader)?.name) as Host;
    const scrape = await leaderHost.exec(['busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:6782/metrics']);
    expect(scrape.code, scrape.stderr).toBe(0);
    expect(scrape.stdout).toMatch(/^weft_raft_is_leader 1$/m);
    expect(scrape.stdout).toMatch(/^weft_raft_term [1-9]/m);
    expect(scrape.stdout).toMatch(/^weft_raft_apply_seconds_count [1-9]/m);
    expect(scrape.stdout).toMatch(/^weft_raft_leader_changes_total [1-9]/m);
    const bad = await h4.weft(['config', 'set', 'bad name!', 'x']);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/name must be/);
  });

  test('writes through every peer survive five kill -9s of the leader, a leader cut into a minority, and a manager put back to an old data dir', async () => {
    const clients = new ManagerClients(hosts());
    clients.start();
    try {
      // Five crashes of whoever leads, each restarted once a new leader took writes.
      for (let round = 0; round < 5; round++) {
        const leader = await leaderHost();
        const before = clients.ackedCount;
        await leader.kill();
        await waitFor(() => clients.ackedCount > before + 5 || undefined, { what: `writes to go on after killing ${leader.name}`, timeoutMs: 30_000 });
        await leader.restart();
        await settled();
      }
      // The leader cut off with nobody: the other two elect, writes go on; healed, it follows.
      const cutOff = await leaderHost();
      const others = managerHosts().filter((h) => h !== cutOff);
      await mesh().partition([cutOff], [...others, hosts()[3], hosts()[4]]);
      const next = await leaderHost(cutOff);
      expect(next).not.toBe(cutOff);
      const during = clients.ackedCount;
      await waitFor(() => clients.ackedCount > during + 5 || undefined, { what: 'writes to go on in the majority', timeoutMs: 30_000 });
      await mesh().healPartition();
      await settled();
      // A follower's data dir copied, more writes, then the copy put back.
      const follower = managerHosts().find((h) => h !== next) as Host;
      const backup = join(follower.dir, 'data-backup');
      await follower.stop();
      cpSync(follower.dataDir, backup, { recursive: true });
      await follower.restart();
      await settled();
      const mark = clients.ackedCount;
      await waitFor(() => clients.ackedCount > mark + 10 || undefined, { what: 'writes while the follower is current', timeoutMs: 30_000 });
      await follower.stop();
      rmSync(follower.dataDir, { recursive: true, force: true });
      cpSync(backup, follower.dataDir, { recursive: true });
      await follower.restart();
      await settled();
      const after = clients.ackedCount;
      await waitFor(() => clients.ackedCount > after + 5 || undefined, { what: 'writes after the restore', timeoutMs: 30_000 });
    } finally {
      await clients.stop();
    }
    process.stderr.write(`managers e2e: ${clients.record.acked.size} acknowledged unique writes, ${clients.record.history.length} register operations, ${clients.record.failed} failed or timed out\n`);
    const { history, acked } = clients.record;
    await settled();
    expect(acked.size).toBeGreaterThan(50);
    // Every acknowledged write on every manager, exactly once.
    for (const h of managerHosts()) {
      const items = (await h.weftJson<{ name: string; value: string; version: number }[]>(['config', 'ls', 'ack-', '--json']));
      const byName = new Map(items.map((i) => [i.name, i]));
      const missing = [...acked].filter(([n, v]) => byName.get(n)?.value !== v);
      expect(missing, `${h.name} lacks acknowledged writes`).toEqual([]);
      const twice = items.filter((i) => i.version !== 1);
      expect(twice, `${h.name} applied writes more than once`).toEqual([]);
    }
    const check = checkKvHistory(history);
    expect(check.ok, `not linearizable at ${check.key}: ${JSON.stringify(check.operations)}`).toBe(true);
    const twoLeaders = [...leadersByTerm(hosts())].filter(([, ls]) => ls.size > 1);
    expect(twoLeaders, 'two leaders in one term').toEqual([]);
  }, 400_000);

  test('transfer, demote and promote', async () => {
    await settled();
    const leader = await leaderHost();
    const target = managerHosts().find((h) => h !== leader) as Host;
    const r = await leader.weft(['manager', 'transfer', target.name]);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(async () => (await status(target)).manager?.role === 'leader', { what: `${target.name} to lead` });
    // Demoting the leader: it hands over first, then leaves the voters.
    expect((await hosts()[3].weft(['manager', 'demote', target.name])).code).toBe(0);
    await waitFor(async () => {
      const rows = await managers(hosts()[4]).catch(() => undefined);
      return rows && rows.length === 2 && !rows.some((m) => m.name === target.name) ? rows : undefined;
    }, { what: `${target.name} demoted`, timeoutMs: 30_000 });
    expect((await status(target)).manager?.role).toBe('none');
    // Writes still commit with two voters; the demoted peer serves them as any peer does.
    expect((await target.weft(['config', 'set', 'after-demote', 'x'])).code).toBe(0);
    expect((await hosts()[3].weft(['manager', 'promote', target.name])).code).toBe(0);
    await waitFor(async () => {
      const rows = await managers(hosts()[4]).catch(() => undefined);
      return rows && rows.filter((m) => m.voter).length === 3 ? rows : undefined;
    }, { what: `${target.name} promoted again`, timeoutMs: 30_000 });
  });

  test('backup, restore and watch', async () => {
    const [h1, , , h4] = hosts();
    const file = join(h4.dir, 'state.json');
    expect((await h4.weft(['config', 'set', 'colour', 'blue'])).code).toBe(0);
    const b = await h4.weft(['state', 'backup', file]);
    expect(b.code, b.stderr).toBe(0);
    expect((await h4.weft(['config', 'set', 'colour', 'red'])).code).toBe(0);
    expect((await h4.weft(['config', 'set', 'later', 'x'])).code).toBe(0);
    const refused = await h1.weft(['state', 'restore', file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/would replace all of desired state.*--yes/);
    expect((await h1.weftJson<{ value: string }>(['config', 'get', 'colour', '--json'])).value).toBe('red');
    const r = await h1.weft(['state', 'restore', file, '--yes']);
    expect(r.code, r.stderr).toBe(0);
    for (const h of managerHosts()) {
      const c = await h.weftJson<{ value: string; version: number }>(['config', 'get', 'colour', '--consistent', '--json']);
      expect(c.value).toBe('blue');
      expect(c.version).toBeGreaterThan(2);
      expect((await h.weft(['config', 'get', 'later', '--consistent'])).code).toBe(1);
    }
    // A watch on a manager: what exists first, then each change as it is applied.
    const c = await ApiClient.local(h1.dataDir);
    const seen: StateChange[] = [];
    const watching = c.call(stateWatch, { kind: 'config' }, (e) => seen.push(e)).catch(() => null);
    try {
      await waitFor(() => seen.some((e) => e.name === 'colour') || undefined, { what: 'the watch to list colour' });
      expect((await h4.weft(['config', 'set', 'watched', 'yes'])).code).toBe(0);
      expect((await h4.weft(['config', 'rm', 'watched'])).code).toBe(0);
      await waitFor(() => seen.some((e) => e.name === 'watched' && e.object === null) || undefined, { what: 'the watch to see the write and the removal' });
      const w = seen.filter((e) => e.name === 'watched');
      expect(w.map((e) => e.object?.spec ?? null)).toEqual(['yes', null]);
      expect(w[1]!.index).toBeGreaterThan(w[0]!.index);
    } finally {
      await c.close();
      await watching;
    }
    // A worker holds no desired state: it says where to watch.
    const refusedWatch = await h4.weft(['state', 'watch']);
    expect(refusedWatch.code).toBe(1);
    expect(refusedWatch.stderr).toMatch(/not a manager/);
  });

  test('no two leaders were ever logged for one term', () => {
    const twoLeaders = [...leadersByTerm(hosts())].filter(([, ls]) => ls.size > 1);
    expect(twoLeaders).toEqual([]);
  });
});

describe('four auto peers: a manager lost for good is replaced; after quorum is lost for good, one survivor forces a new cluster', () => {
  const mesh = useHarness({ hosts: 4, name: 'e2e-autopilot' });
  const hosts = () => mesh().hosts as [Host, Host, Host, Host];
  /** A short grace so the test need not wait two minutes. */
  const ARGS = ['--manager-grace', '3', ...MESH_ONLY];
  const voters = async (h: Host) => (await managers(h)).filter((m) => m.voter).map((m) => m.name).sort();

  test('a voter down past the grace period is replaced by the fourth peer, the replacement first', async () => {
    const [h1, h2, h3, h4] = hosts();
    await h1.startPeer({ password: PASSWORD, args: ARGS });
    for (const h of [h2, h3]) await h.startPeer({ password: PASSWORD, peers: [h1.address], args: ARGS });
    await waitFor(async () => (await voters(h1).catch((): string[] => [])).length === 3 || undefined, { what: 'three voters', timeoutMs: 60_000 });
    await h4.startPeer({ password: PASSWORD, peers: [h1.address], args: ARGS });
    // Once its API is up and it has heard who leads, a new peer's writes go through.
    await waitFor(async () => (await h4.weft(['config', 'set', 'before', '1'])).code === 0 || undefined, { what: 'a write through h4', timeoutMs: 30_000 });
    // The fourth stays out while three are up: an odd number of voters.
    await new Promise((r) => setTimeout(r, 3000));
    expect(await voters(h4)).toEqual(['h1', 'h2', 'h3']);
    const victim = (await status(h2)).manager?.role === 'leader' ? h3 : h2;
    await victim.kill();
    const replaced = await waitFor(async () => {
      const v = await voters(h4).catch((): string[] => []);
      return v.length === 3 && v.includes('h4') && !v.includes(victim.name) ? v : undefined;
    }, { what: `${victim.name} replaced by h4`, timeoutMs: 60_000 });
    expect(replaced).toContain('h1');
    expect((await h4.weftJson<{ value: string }>(['config', 'get', 'before', '--json'])).value).toBe('1');
    const events = await h1.weft(['events']);
    expect(events.stdout).toMatch(/manager-added\s+h4/);
    expect(events.stdout).toMatch(new RegExp(`manager-removed\\s+${victim.name}`));
  }, 180_000);

  test('with two of three voters gone for good, force-new-cluster on the survivor keeps its state; the others re-join after a reset', async () => {
    const [, , , h4] = hosts();
    const alive = (await managers(h4)).filter((m) => m.voter).map((m) => hosts().find((h) => h.name === m.name) as Host);
    expect(alive).toHaveLength(3);
    expect((await h4.weft(['config', 'set', 'kept', 'yes'])).code).toBe(0);
    const [survivor, ...lost] = alive as [Host, Host, Host];
    for (const h of lost) await h.kill();
    // No quorum: a write cannot commit.
    const stuck = await survivor.weft(['config', 'set', 'stuck', 'x']);
    expect(stuck.code).toBe(1);
    const refused = await survivor.weft(['manager', 'force-new-cluster']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/only manager of a new control-plane cluster.*--yes/);
    const forced = await survivor.weft(['manager', 'force-new-cluster', '--yes']);
    expect(forced.code, forced.stderr).toBe(0);
    await waitFor(async () => (await status(survivor)).manager?.role === 'leader' || undefined, { what: `${survivor.name} to lead the new cluster` });
    expect((await survivor.weftJson<{ value: string }>(['config', 'get', 'kept', '--consistent', '--json'])).value).toBe('yes');
    expect((await survivor.weft(['config', 'set', 'after', 'forced'])).code).toBe(0);
    // The old managers come back, one at a time (two together would be a majority of the old
    // cluster and carry on in it: forcing is for managers that are gone for good), with the
    // old cluster's state: refused by the new one until reset, then added afresh.
    for (const h of lost) {
      await h.restart();
      await waitFor(() => /refused Raft messages of another control-plane cluster/.test(logOf(survivor)) || undefined, { what: 'the old cluster refused', timeoutMs: 30_000 });
      const r = await waitFor(async () => {
        const x = await h.weft(['manager', 'reset', '--yes']);
        return x.code === 0 ? x : undefined;
      }, { what: `${h.name} reset`, timeoutMs: 30_000 });
      expect(r.stdout).toMatch(/dropped control-plane state/);
    }
    await waitFor(async () => {
      const v = await voters(survivor).catch((): string[] => []);
      return v.length === 3 ? v : undefined;
    }, { what: 'three voters again', timeoutMs: 60_000 });
    for (const h of alive) expect((await h.weftJson<{ value: string }>(['config', 'get', 'after', '--consistent', '--json'])).value).toBe('forced');
  }, 180_000);
});
