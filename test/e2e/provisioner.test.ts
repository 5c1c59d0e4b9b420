// The provisioner end to end with the `local` provider: two peers (harness hosts), a node
// cluster created through the one that does not lead, so its nodes (network namespaces with a
// dockerd and a peer each) run on that host while the leader on the other drives them over the
// mesh. Scaled 0 -> 3 -> 5 -> 2, a node killed -9 and replaced, then removed: nothing of a
// terminated node is left (namespace, process, mount, directory).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { useHarness } from '../harness/vitest.ts';
import { waitFor, type Host } from '../harness/harness.ts';
import { BUSYBOX_IMAGE } from '../harness/dockerd.ts';

const PASSWORD = 'e2e-provisioner-password-5c2a';

interface NodeRow { name: string; cluster: string | null; provider: string | null; state: string; zone: string | null; attempt?: number; docker?: string; peer?: string }
interface Member { id: string; name: string; state: string }

function netns(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean);
}

/** Mounts under a directory, from this process's view (the peers run in the root mount namespace). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((p) => p.startsWith(dir));
}

describe('the provisioner: a local node cluster', () => {
  const mesh = useHarness({ hosts: 2, name: 'e2e-provisioner' });
  const hosts = () => mesh().hosts as [Host, Host];
  const nodes = (h: Host) => h.weftJson<NodeRow[]>(['node', 'ls', '--json']);
  const clusterNodes = async (h: Host, c: string) => (await nodes(h)).filter((n) => n.cluster === c);
  const members = (h: Host) => h.weftJson<Member[]>(['peers', '--json']);
  const localDir = () => join(hosts()[1].dataDir, 'local-nodes');
  const ours = (name: string) => netns().filter((n) => n.startsWith(`weftn-${name}-`));

  afterAll(async () => {
    // The nodes outlive their host's peer by design: end them whatever the test did.
    const h = hosts()[1];
    for (const c of ['c', 'gpu', 'd']) if (h?.peer?.running) await h.weft(['nodecluster', 'rm', c, '--timeout', '120'], { timeoutMs: 150_000 }).catch(() => undefined);
    // Once the peers are stopped: while they run, the provisioner would make nodes again.
    for (const x of hosts()) if (x?.peer?.running) await x.stop().catch(() => undefined);
    const { LocalNodes, currentWeftCommand } = await import('../../provisioner/local/local-nodes.ts');
    const { logger } = await import('../../mesh/log.ts');
    if (existsSync(localDir())) {
      const runner = new LocalNodes({ dir: localDir(), log: logger('test'), weft: currentWeftCommand() });
      for (const n of await runner.list().catch(() => [])) await runner.destroy(n.name).catch(() => undefined);
    }
  }, 240_000);

  test('created through a peer that does not lead, scaled 0 -> 3 -> 5 -> 2', async () => {
    const [h1, h2] = hosts();
    await h1.startPeer({ password: PASSWORD, args: ['--managers', '1'] });
    await h2.startPeer({ password: PASSWORD, peers: [h1.address], args: ['--role', 'worker'] });
    await waitFor(async () => (await members(h2)).some((m) => m.name === h1.name && m.state === 'alive'), { timeoutMs: 60_000, what: 'both peers' });
    await waitFor(async () => (await h2.weft(['config', 'ls', '--consistent'])).code === 0, { timeoutMs: 60_000, what: 'a leader' });
    // The nodes' bridge lives in h2's namespace: h2 routes for it and h1 knows the way, as a
    // network of hosts would route a host's node subnet (README, the local provider).
    for (const [h, argv] of [[h2, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']], [h1, ['ip', 'route', 'add', '172.30.83.0/24', 'via', h2.ip]]] as const) {
      const r = await h.exec(argv);
      expect(r.code, r.stderr).toBe(0);
    }

    // Nodes forward DNS to the host's side of their bridge, where nothing answers: no query
    // of theirs leaves the test's namespaces.
    const create = await h2.weft(['nodecluster', 'create', 'c', '--provider', 'local', '--nodes', '0', '--option', 'dns-upstream=172.30.83.1:5353', '--tags', 'tier=test']);
    expect(create.code, create.stderr).toBe(0);
    expect((await h1.weftJson<any[]>(['nodecluster', 'ls', '--json']))[0]).toMatchObject({ name: 'c', provider: 'local', state: 'Empty cluster', target: 0 });

    for (const n of [3, 5, 2]) {
      const r = await h2.weft(['nodecluster', 'scale', 'c', String(n), '--timeout', '240'], { timeoutMs: 260_000 });
      expect(r.code, `scale to ${n}: ${r.stderr}`).toBe(0);
      const rows = await clusterNodes(h1, 'c');
      expect(rows.length, JSON.stringify(rows)).toBe(n);
      for (const row of rows) expect(row).toMatchObject({ cluster: 'c', provider: 'local', state: 'Deployed', zone: 'local' });
      let seen = '';
      await waitFor(async () => {
        const alive = (await members(h1)).filter((m) => m.state === 'alive' && m.name.startsWith('c-')).map((m) => m.name).sort();
        seen = JSON.stringify(await members(h1));
        return JSON.stringify(alive) === JSON.stringify(rows.map((r) => r.name).sort());
      }, { timeoutMs: 30_000, what: `exactly the ${n} nodes' peers alive in the mesh` }).catch((e: Error) => {
        throw new Error(`${e.message}; peers: ${seen}; nodes: ${JSON.stringify(rows)}`);
      });
      expect(ours('c').length).toBe(n);
    }
    // Scaled down, the ones that served since the start are kept.
    expect((await clusterNodes(h1, 'c')).map((r) => r.name).sort()).toEqual(['c-1', 'c-2']);
    const peersOfC = (await members(h1)).filter((m) => m.name.startsWith('c-'));
    for (const gone of ['c-3', 'c-4', 'c-5']) expect(peersOfC.find((m) => m.name === gone && m.state === 'alive')).toBeUndefined();
    const inspect = await h1.weftJson<any>(['nodecluster', 'inspect', 'c', '--json']);
    expect(inspect.timeline.length).toBeGreaterThan(0);
    // Every node carries the automatic tags and the user's.
    const tags = await h1.weftJson<any[]>(['peers', '--json']);
    const c1 = tags.find((m) => m.name === 'c-1');
    expect(c1?.tags).toEqual(expect.arrayContaining(['provider=local', 'region=local', 'zone=local', 'cluster=c', 'tier=test']));
  }, 600_000);

  test('a node killed -9 is replaced under its name', async () => {
    const [h1] = hosts();
    const before = (await clusterNodes(h1, 'c')).find((n) => n.name === 'c-1');
    expect(before?.state).toBe('Deployed');
    // Everything in its namespace dies at once, as a machine that loses power.
    const pids = execFileSync('ip', ['netns', 'pids', 'weftn-c-1'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(pids.length).toBeGreaterThan(0);
    execFileSync('kill', ['-9', ...pids]);
    await waitFor(async () => {
      const n = (await clusterNodes(h1, 'c')).find((x) => x.name === 'c-1');
      return n?.state === 'Deployed' && (n.attempt ?? 0) > (before?.attempt ?? 1);
    }, { timeoutMs: 240_000, intervalMs: 1000, what: 'c-1 replaced and deployed again' });
    const events = (await h1.weftJson<any[]>(['events', '--json'])).map((e) => `${e.type} ${e.detail ?? ''}`);
    expect(events.some((e) => e.startsWith('node-unreachable c-1'))).toBe(true);
    expect(ours('c').length).toBe(2);
    // Its old peer, whose machine is gone, is forgotten by the leader: no dead member named c-1
    // stays behind owning address space.
    expect(before?.peer).toBeDefined();
    await waitFor(async () => !(await members(h1)).some((m) => m.id === before?.peer), { timeoutMs: 120_000, what: "c-1's old peer to be forgotten" });
    expect((await members(h1)).filter((m) => m.name === 'c-1').map((m) => m.state)).toEqual(['alive']);
  }, 300_000);

  test('removed: its nodes leave the mesh and nothing of them is left on the host', async () => {
    const [h1, h2] = hosts();
    const r = await h1.weft(['nodecluster', 'rm', 'c', '--timeout', '180'], { timeoutMs: 200_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(await h1.weftJson<any[]>(['nodecluster', 'ls', '--json'])).toEqual([]);
    expect(await clusterNodes(h1, 'c')).toEqual([]);
    expect(ours('c')).toEqual([]);
    expect(mountsUnder(localDir())).toEqual([]);
    expect(existsSync(localDir()) ? readdirSync(localDir()) : []).toEqual([]);
    // No process of a node is left: nothing runs in a node cgroup.
    const cg = '/sys/fs/cgroup/weft-nodes';
    const left = existsSync(cg) ? readdirSync(cg).filter((d) => d.startsWith('c-')) : [];
    expect(left).toEqual([]);
    // Their peers are forgotten, not merely dead.
    await waitFor(async () => !(await members(h2)).some((m) => m.name.startsWith('c-')), { timeoutMs: 60_000, what: "the removed cluster's peers to be forgotten" });
  }, 300_000);

  test('the scheduler grows a cluster for a service no node can run, and shrinks it once the service is gone', async () => {
    const [h1, h2] = hosts();
    // The image its nodes run, as a `docker save` file loaded into each node's dockerd.
    const d = await h2.startDockerd();
    await d.importBusybox();
    const image = join(mesh().tmpDir, 'busybox-image.tar');
    await d.mustDocker(['save', '-o', image, BUSYBOX_IMAGE], { timeoutMs: 60_000 });
    await d.stop();
    const create = await h2.weft(['nodecluster', 'create', 'gpu', '--provider', 'local', '--nodes', '0', '--min', '0', '--max', '1', '--tags', 'gpu=yes',
      '--scale-down-after', '15', '--option', `load-images=${image}`, '--option', 'dns-upstream=172.30.83.1:5353']);
    expect(create.code, create.stderr).toBe(0);
    const svc = await h1.weft(['service', 'create', BUSYBOX_IMAGE, '--name', 'train', '--tag', 'gpu=yes', '--detach', '--', 'sleep', '100000']);
    expect(svc.code, svc.stderr).toBe(0);
    await waitFor(async () => (await h1.weftJson<any[]>(['ps', '--json'])).some((c) => c.name === 'train-1' && c.state === 'running' && c.host === 'gpu-1'),
      { timeoutMs: 240_000, intervalMs: 1000, what: 'train-1 to run on a node the cluster grew for it' });
    const events = (await h1.weftJson<any[]>(['events', '--json'])).map((e) => `${e.type} ${e.detail ?? ''}`);
    expect(events).toContain('nodecluster-scaled gpu: 0 -> 1 nodes: service train has 1 container(s) pending (no node carries tags gpu=yes)');
    const inspect = await h1.weftJson<any>(['nodecluster', 'inspect', 'gpu', '--json']);
    expect(inspect.timeline.map((e: any) => e.text)).toContain('gpu: 0 -> 1 nodes: service train has 1 container(s) pending (no node carries tags gpu=yes)');
    expect(inspect.cluster).toMatchObject({ target: 1, deployed: 1, min: 0, max: 1 });

    expect((await h1.weft(['service', 'rm', 'train'])).code).toBe(0);
    await waitFor(async () => (await h1.weftJson<any[]>(['nodecluster', 'ls', '--json'])).find((c) => c.name === 'gpu')?.target === 0 && ours('gpu').length === 0,
      { timeoutMs: 120_000, intervalMs: 1000, what: 'the idle node to go after the cool-down' });
    const after = (await h1.weftJson<any[]>(['events', '--json'])).map((e) => `${e.type} ${e.detail ?? ''}`);
    expect(after).toContain('nodecluster-scaled gpu: 1 -> 0 nodes: gpu-1 has run nothing for 15 s');
    expect((await h2.weft(['nodecluster', 'rm', 'gpu'])).code).toBe(0);
  }, 420_000);

  test('a drained node runs nothing (its containers start elsewhere under their names and addresses), a shrink removes it, an upgrade replaces the last one, node rm', async () => {
    const [h1, h2] = hosts();
    const image = join(mesh().tmpDir, 'busybox-image.tar');
    const create = await h2.weft(['nodecluster', 'create', 'd', '--provider', 'local', '--nodes', '2', '--tags', 'pool=d',
      '--option', `load-images=${image}`, '--option', 'dns-upstream=172.30.83.1:5353', '--timeout', '240'], { timeoutMs: 260_000 });
    expect(create.code, create.stderr).toBe(0);
    // Joined is not yet ready for containers: both agents say their Docker works.
    await waitFor(async () => (await clusterNodes(h1, 'd')).filter((n) => n.docker === 'ok').length === 2, { timeoutMs: 60_000, what: "both nodes' agents to report" });
    const svc = await h1.weft(['service', 'create', BUSYBOX_IMAGE, '--name', 'job', '--replicas', '2', '--strategy', 'HIGH_AVAILABILITY', '--tag', 'pool=d',
      '--reschedule-after', '5s', '--timeout', '180', '--', 'sleep', '100000'], { timeoutMs: 200_000 });
    expect(svc.code, svc.stderr).toBe(0);
    const ps = async () => (await h1.weftJson<any[]>(['ps', '--json'])).filter((c) => c.service === 'job' && c.state === 'running');
    const before = await ps();
    expect(before.map((c) => c.host).sort()).toEqual(['d-1', 'd-2']);
    const drain = await h1.weft(['node', 'drain', 'd-1', '--timeout', '120'], { timeoutMs: 140_000 });
    expect(drain.code, drain.stderr).toBe(0);
    await waitFor(async () => {
      const now = await ps();
      return now.length === 2 && now.every((c) => c.host === 'd-2') && now.every((c) => before.some((b) => b.name === c.name && b.address === c.address));
    }, { timeoutMs: 180_000, intervalMs: 1000, what: 'both containers on d-2 under their names and addresses' });
    expect((await nodes(h1)).find((n) => n.name === 'd-1')).toMatchObject({ draining: true, containers: 0 });
    const scale = await h2.weft(['nodecluster', 'scale', 'd', '1', '--timeout', '120'], { timeoutMs: 140_000 });
    expect(scale.code, scale.stderr).toBe(0);
    expect((await clusterNodes(h1, 'd')).map((n) => n.name)).toEqual(['d-2']);
    expect((await ps()).length).toBe(2);

    // A rolling upgrade: a new node joins, then the old one is drained and terminated; its two
    // containers move to the new node as in a drain, under their names and addresses.
    const onD2 = await ps();
    const started = Date.now();
    const upgrade = await h2.weft(['nodecluster', 'upgrade', 'd', '--timeout', '240'], { timeoutMs: 260_000 });
    expect(upgrade.code, upgrade.stderr).toBe(0);
    const upgraded = (await clusterNodes(h1, 'd')).map((n) => n.name);
    expect(upgraded.length).toBe(1);
    const fresh = upgraded[0] as string;
    expect(fresh).not.toBe('d-2');
    await waitFor(async () => {
      const now = await ps();
      return now.length === 2 && now.every((c) => c.host === fresh) && now.every((c) => onD2.some((b) => b.name === c.name && b.address === c.address));
    }, { timeoutMs: 120_000, intervalMs: 1000, what: `both containers on ${fresh} under their names and addresses` });
    console.log(`upgrade with two containers: ${Math.round((Date.now() - started) / 1000)} s until both ran on ${fresh}`);
    expect((await h1.weft(['service', 'rm', 'job'])).code).toBe(0);
    const events = (await h1.weftJson<any[]>(['events', '--json'])).map((e) => `${e.type} ${e.detail ?? ''}`);
    expect(events).toContain('node-terminated d-2: replaced by an upgraded node (type local)');
    // The upgraded-away node's peer is forgotten once its machine is gone.
    await waitFor(async () => !(await members(h1)).some((m) => m.name === 'd-2'), { timeoutMs: 60_000, what: 'd-2 forgotten' });
    // node rm: a cluster's node goes and its cluster keeps one fewer; a peer that is up is refused.
    const rm = await h1.weft(['node', 'rm', fresh]);
    expect(rm.code, rm.stderr).toBe(0);
    await waitFor(async () => (await clusterNodes(h1, 'd')).length === 0 && ours('d').length === 0, { timeoutMs: 120_000, what: `${fresh} terminated` });
    expect((await h1.weftJson<any[]>(['nodecluster', 'ls', '--json'])).find((c) => c.name === 'd')).toMatchObject({ target: 0, state: 'Empty cluster' });
    expect((await h1.weft(['node', 'rm', 'h2'])).stderr).toMatch(/h2 is up: stop its peer first/);
    await waitFor(async () => !(await members(h1)).some((m) => m.name === fresh), { timeoutMs: 60_000, what: `${fresh} forgotten` });
    expect((await h2.weft(['nodecluster', 'rm', 'd', '--timeout', '120'], { timeoutMs: 140_000 })).code).toBe(0);
    expect(ours('d')).toEqual([]);
  }, 600_000);
});
