// The `local` provider's nodes, for real: harness host h1 plays the machine of a host peer (its
// namespace is the host peer's; a weft peer runs there), and LocalNodes runs inside it through
// local-nodes-cli.ts, a new instance per call, as after a host peer restart. Two nodes are made,
// each a namespace with its own dockerd (a busybox image loaded) and a peer that joins h1's
// mesh with a join token. One is then killed -9 (peer and dockerd, leaving its containerd,
// shim, container and wireguard-go orphaned), and both are destroyed; nothing may be left:
// namespace, process, cgroup, mount, veth, socket, directory, and the bridge with the last.
// h2 only builds the image tarball and plays another host peer of the same machine.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Harness, waitFor, type Host } from '../harness/harness.ts';
import { BUSYBOX_IMAGE } from '../harness/dockerd.ts';
import { logger } from '../../mesh/log.ts';
import type { PeerView } from '../../mesh/api/contract.ts';
import type { LocalNode, LocalNodeRequest } from '../../provisioner/local/local-nodes.ts';
import { checkLocalNodeSupport } from '../../provisioner/local/preflight.ts';
import { cgroupNodeNames, cgroupPids, nodeCgroupDir } from '../../provisioner/local/cgroup.ts';
import { teardownNode } from '../../provisioner/local/cleanup.ts';
import { shimSockets } from '../../provisioner/local/dockerd.ts';
import { mountsBelow } from '../../provisioner/local/mounts.ts';
import { BRIDGE, hostIfName, netnsName, nodeOfNetns, NETNS_DIR, pluginName } from '../../provisioner/local/names.ts';
import { NODE_RECORD_VERSION, NodeDir } from '../../provisioner/local/node-dir.ts';
import { tunnelDevices } from '../../provisioner/local/network.ts';
import { processStart } from '../../provisioner/local/processes.ts';
import { DEFAULT_NODE_SUBNET, nodeSubnet } from '../../provisioner/local/subnet.ts';

const CLI = fileURLToPath(new URL('./local-nodes-cli.ts', import.meta.url));
const PASSWORD = 'local-nodes-test-password-3c9e';
/** Test node names carry the test process's pid, so a later run can tell a crashed run's
 *  leftovers (owner dead) from another run's live nodes. */
const PREFIX = `lnt${process.pid}-`;
const A = `${PREFIX}a`;
const B = `${PREFIX}b`;
const GATEWAY = nodeSubnet(DEFAULT_NODE_SUBNET).gateway;
const log = logger('local-nodes-test');

type Outcome<T> = { ok: true; result: T } | { ok: false; error: string };

/** Runs local-nodes-cli.ts in the host's namespace: LocalNodes as that host's peer runs it. */
async function cli<T>(host: Host, cmd: Record<string, unknown>, timeoutMs = 120_000): Promise<{ out: T; stderr: string }> {
  const r = await host.exec([process.execPath, '--disable-warning=ExperimentalWarning', CLI, JSON.stringify(cmd)], { timeoutMs });
  const line = r.stdout.trim().split('\n').pop();
  if (r.code !== 0 || !line) throw new Error(`local-nodes-cli ${String(cmd.op)} ${r.timedOut ? 'timed out' : `exited ${r.code}`}: ${r.stderr.slice(-3000)}`);
  return { out: JSON.parse(line) as T, stderr: r.stderr };
}

function ok<T>(o: Outcome<T>): T {
  if (!o.ok) throw new Error(o.error);
  return o.result;
}

/** Everything of node `name` still on the machine, in words (empty: nothing). */
async function leftovers(host: Host, dir: string, name: string, sockets: readonly string[]): Promise<string[]> {
  const left: string[] = [];
  const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]);
  if (netns.includes(netnsName(name))) left.push(`namespace ${netnsName(name)}`);
  if (fs.existsSync(nodeCgroupDir(name))) left.push(`cgroup ${nodeCgroupDir(name)}`);
  if (cgroupNodeNames().includes(name)) left.push('a cgroup v1 directory');
  for (const d of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      // A zombie is dead already, waiting for its parent's wait(): the orphans here are init's,
      // which reaps them within a few seconds. Only live processes count.
      if (fs.readFileSync(`/proc/${d}/cgroup`, 'utf8').includes(`/weft-nodes/${name}/`) && processStart(Number(d)) !== undefined) {
        left.push(`process ${d} (${fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim()})`);
      }
    } catch {
      // exited
    }
  }
  const nodeDir = path.join(dir, name);
  for (const m of mountsBelow(nodeDir)) left.push(`mount ${m}`);
  if (fs.existsSync(nodeDir)) left.push(`directory ${nodeDir}`);
  if ((await host.exec(['ip', 'link', 'show', 'dev', hostIfName(name)])).code === 0) left.push(`veth ${hostIfName(name)}`);
  for (const s of sockets) if (fs.existsSync(s)) left.push(`socket ${s}`);
  return left;
}

/** Removes what a crashed earlier run of this test left: nodes named for a pid that is gone. */
async function sweepStaleTestNodes(): Promise<void> {
  const names = new Set<string>(cgroupNodeNames());
  for (const ns of fs.existsSync(NETNS_DIR) ? fs.readdirSync(NETNS_DIR) : []) {
    const n = nodeOfNetns(ns);
    if (n !== undefined) names.add(n);
  }
  for (const name of names) {
    const m = /^lnt(\d+)-/.exec(name);
    if (!m || processStart(Number(m[1])) !== undefined) continue;
    await teardownNode(name, new NodeDir('/nonexistent-local-nodes', name), log).catch((e: unknown) => console.warn(`sweeping ${name}: ${(e as Error).message}`));
  }
}

describe('local nodes: namespaces with a dockerd and a peer each, on one machine', () => {
  let mesh: Harness | undefined;
  let dir = '';
  let token = '';
  let image = '';
  const h1 = () => (mesh as Harness).hosts[0] as Host;
  const h2 = () => (mesh as Harness).hosts[1] as Host;
  const request = (name: string): LocalNodeRequest => ({
    name, joinToken: token, peers: [h1().address], tags: ['local', `node=${name}`], dnsUpstream: [GATEWAY],
    loadImages: [image], peerArgs: ['--role', 'worker'],
  });
  const processes = (name: string) => JSON.parse(fs.readFileSync(path.join(dir, name, 'processes.json'), 'utf8')) as Record<'dockerd' | 'peer', { pid: number; start: number }>;
  const docker = (name: string, args: string[]) =>
    execFileSync('docker', args, { encoding: 'utf8', timeout: 60_000, env: { ...process.env, DOCKER_HOST: `unix://${path.join(dir, name, 'docker', 'docker.sock')}`, DOCKER_CONFIG: path.join(dir, name, 'docker', 'cli') } });

  beforeAll(async () => {
    await sweepStaleTestNodes();
    mesh = await Harness.create({ hosts: 2, name: 'local-nodes' });
    dir = path.join(h1().dataDir, 'local-nodes');
    // The image: busybox imported into h2's dockerd, saved as `docker load` takes it.
    const d = await h2().startDockerd();
    await d.importBusybox();
    image = path.join(mesh.tmpDir, 'busybox.tar');
    await d.mustDocker(['save', '-o', image, BUSYBOX_IMAGE], { timeoutMs: 60_000 });
    await d.stop();
    await h1().startPeer({ password: PASSWORD });
    await waitFor(async () => (await h1().weftJson<{ name: string }>(['status', '--json'])).name === 'h1', { timeoutMs: 30_000, what: 'the host peer to answer' });
    const t = await h1().weft(['token', 'create']);
    if (t.code !== 0) throw new Error(`weft token create: ${t.stderr}`);
    token = t.stdout.trim();
  }, 120_000);

  afterAll(async () => {
    if (mesh === undefined) return;
    try {
      // Through LocalNodes in h1's namespace first (the bridge is there), then by name from
      // here for anything that still remains; the harness removes its own namespaces last.
      await cli(h1(), { op: 'destroy', dir, names: [A, B, `${PREFIX}p`, `${PREFIX}d`] }).catch((e: unknown) => console.error((e as Error).message));
      for (const name of [A, B, `${PREFIX}p`, `${PREFIX}d`]) {
        if (fs.existsSync(path.join(NETNS_DIR, netnsName(name))) || fs.existsSync(nodeCgroupDir(name))) {
          await teardownNode(name, new NodeDir(dir, name), log).catch((e: unknown) => console.error((e as Error).message));
        }
      }
    } finally {
      await mesh.cleanup();
    }
  }, 120_000);

  test('two nodes made at once get their own addresses, answer with their own dockerd, and join the mesh with the token', async () => {
    const { out, stderr } = await cli<Outcome<LocalNode>[]>(h1(), { op: 'create', dir, requests: [request(A), request(B)] });
    const [a, b] = out.map(ok);
    expect(a).toMatchObject({ name: A, state: 'running' });
    expect(b).toMatchObject({ name: B, state: 'running' });
    expect(new Set([a?.address, b?.address]).size).toBe(2);
    for (const n of [a, b]) expect(n?.address).toMatch(/^172\.30\.83\.\d+$/);
    expect(stderr).not.toContain(token);

    // Each node's own dockerd, with the image loaded before its peer started.
    for (const name of [A, B]) expect(docker(name, ['images', '--format', '{{.Repository}}:{{.Tag}}'])).toContain(BUSYBOX_IMAGE);

    // The token reaches the peer as a 0600 file, never on its command line.
    const peerPid = processes(A).peer.pid;
    expect(fs.readFileSync(`/proc/${peerPid}/cmdline`, 'utf8')).not.toContain(token);
    expect(fs.statSync(path.join(dir, A, 'join-token')).mode & 0o777).toBe(0o600);

    // Both peers join h1's mesh: h1 sees them alive, at their node addresses.
    await waitFor(async () => {
      const peers = await h1().weftJson<PeerView[]>(['peers', '--json']);
      return [a, b].every((n) => peers.some((p) => p.name === n?.name && p.state === 'alive' && p.address.startsWith(`${n?.address}:`)));
    }, { timeoutMs: 60_000, what: 'h1 to see both node peers alive' });

    // A container on each, so destroy has containers, shims and mounts to take away.
    for (const name of [A, B]) docker(name, ['run', '-d', '--network', 'none', '--name', 'probe', BUSYBOX_IMAGE, 'sleep', '600']);
  }, 120_000);

  test('create is idempotent by name; what cannot be done is refused in one line, and a failed create leaves nothing', async () => {
    const before = ok((await cli<Outcome<LocalNode[]>>(h1(), { op: 'list', dir })).out);
    const again = ok((await cli<Outcome<LocalNode>[]>(h1(), { op: 'create', dir, requests: [request(A)] })).out[0] as Outcome<LocalNode>);
    expect(again).toEqual(before.find((n) => n.name === A));

    // h2 plays another host peer of this machine: node names are machine-wide.
    const dir2 = path.join(h2().dataDir, 'local-nodes');
    const taken = (await cli<Outcome<LocalNode>[]>(h2(), { op: 'create', dir: dir2, requests: [request(A)] })).out[0];
    expect(taken).toEqual({ ok: false, error: expect.stringMatching(/^local node name ".+" is already used on this machine by another host's node \(network namespace weftn-.+ exists\): choose another name$/) });

    // A subnet with room for one node, which a recorded node holds.
    const small = '192.168.250.0/30';
    const holder = new NodeDir(dir2, `${PREFIX}holder`);
    holder.make();
    holder.writeRecord({ version: NODE_RECORD_VERSION, name: holder.name, address: '192.168.250.2', createdAt: Date.now(), complete: true, creator: { pid: process.pid, start: processStart(process.pid) ?? 0 } });
    const full = (await cli<Outcome<LocalNode>[]>(h2(), { op: 'create', dir: dir2, subnet: small, requests: [request(`${PREFIX}c`)] })).out[0];
    expect(full).toEqual({ ok: false, error: `no free address for local node "${PREFIX}c": all 1 addresses of ${small} are taken (destroy a node, or give the local provider a larger subnet)` });
    ok((await cli<Outcome<null>[]>(h2(), { op: 'destroy', dir: dir2, subnet: small, names: [holder.name] })).out[0] as Outcome<null>);
    expect(fs.existsSync(holder.dir)).toBe(false);

    // An image that is not there: the node was half made (namespace, dockerd) and is removed.
    const broken = { ...request(`${PREFIX}d`), loadImages: [path.join(mesh!.tmpDir, 'missing.tar')] };
    const failed = (await cli<Outcome<LocalNode>[]>(h1(), { op: 'create', dir, requests: [broken] })).out[0];
    expect(failed).toEqual({ ok: false, error: `cannot create local node ${PREFIX}d: image tarball ${broken.loadImages[0]} does not exist` });
    expect(await leftovers(h1(), dir, `${PREFIX}d`, [])).toEqual([]);
    expect(ok((await cli<Outcome<LocalNode[]>>(h1(), { op: 'list', dir })).out).map((n) => n.name)).toEqual([A, B]);

    // Not root, and a tool missing: said before anything is made. (Not root is asked of the
    // check itself: a process run as nobody could not read a checkout in a private directory.)
    expect(() => checkLocalNodeSupport(65534)).toThrow(/^local nodes need root \(a network namespace, a bridge, a cgroup and a dockerd per node\): run the weft peer as root$/);
    const noTools = execFileSync(process.execPath, ['--disable-warning=ExperimentalWarning', CLI, JSON.stringify({ op: 'create', dir: path.join(mesh!.tmpDir, 'no-tools'), requests: [request(`${PREFIX}e`)] })],
      { encoding: 'utf8', env: { ...process.env, PATH: '/nonexistent' } });
    expect(JSON.parse(noTools)).toEqual([{ ok: false, error: 'local nodes need `ip` on PATH: install iproute2' }]);
  }, 60_000);

  test('a node whose peer and dockerd are killed -9 lists as stopped, and a new LocalNodes lists the same nodes', async () => {
    const before = ok((await cli<Outcome<LocalNode[]>>(h1(), { op: 'list', dir })).out);
    expect(before.map((n) => [n.name, n.state])).toEqual([[A, 'running'], [B, 'running']]);
    const p = processes(A);
    for (const r of [p.peer, p.dockerd]) process.kill(r.pid, 'SIGKILL');
    await waitFor(() => [p.peer, p.dockerd].every((r) => processStart(r.pid) !== r.start), { timeoutMs: 10_000, what: 'the killed processes to be gone' });
    // What a kill -9 orphans: containerd, the shim, the container, wireguard-go.
    expect(cgroupPids(nodeCgroupDir(A)).length).toBeGreaterThan(0);

    const after = ok((await cli<Outcome<LocalNode[]>>(h1(), { op: 'list', dir })).out);
    expect(after).toEqual(before.map((n) => (n.name === A ? { ...n, state: 'stopped' } : n)));
  }, 60_000);

  test('destroy leaves nothing behind, also after a kill -9, and the bridge goes with the last node', async () => {
    const sockets = async (name: string) => [
      ...shimSockets(new NodeDir(dir, name)),
      `/run/docker/plugins/${pluginName(name)}.sock`,
      ...(await tunnelDevices(name)).map((dev) => `/var/run/wireguard/${dev}.sock`),
    ];
    const socketsA = await sockets(A);
    const socketsB = await sockets(B);
    // The shim socket names are derived, not listed: check the derivation against the live ones.
    expect(socketsB.filter((s) => fs.existsSync(s)).length).toBeGreaterThan(0);

    const destroyA = await cli<Outcome<null>[]>(h1(), { op: 'destroy', dir, names: [A] });
    ok(destroyA.out[0] as Outcome<null>);
    expect(destroyA.stderr).not.toMatch(/level=(warn|error)/);
    expect(await leftovers(h1(), dir, A, socketsA)).toEqual([]);
    expect((await h1().exec(['ip', 'link', 'show', 'dev', BRIDGE])).code).toBe(0); // B still uses it
    expect(ok((await cli<Outcome<LocalNode[]>>(h1(), { op: 'list', dir })).out).map((n) => n.name)).toEqual([B]);

    const destroyB = await cli<Outcome<null>[]>(h1(), { op: 'destroy', dir, names: [B] });
    ok(destroyB.out[0] as Outcome<null>);
    expect(destroyB.stderr).not.toMatch(/level=(warn|error)/);
    expect(await leftovers(h1(), dir, B, socketsB)).toEqual([]);
    expect((await h1().exec(['ip', 'link', 'show', 'dev', BRIDGE])).code).not.toBe(0);
    expect(ok((await cli<Outcome<LocalNode[]>>(h1(), { op: 'list', dir })).out)).toEqual([]);

    // Destroying what is gone succeeds.
    expect((await cli<Outcome<null>[]>(h1(), { op: 'destroy', dir, names: [A, B] })).out).toEqual([{ ok: true, result: null }, { ok: true, result: null }]);
  }, 90_000);
  test('a node whose host peer died while creating it lists as pending, then stopped, and is made afresh by the next create', async () => {
    const P = `${PREFIX}p`;
    // The image is a FIFO nobody writes: the create waits in `docker load`, after the node's
    // namespace and dockerd were made, until its process is killed.
    const fifo = path.join(mesh!.tmpDir, 'never.tar');
    execFileSync('mkfifo', [fifo]);
    const creator = await h1().spawn('create-interrupted', [process.execPath, '--disable-warning=ExperimentalWarning', CLI,
      JSON.stringify({ op: 'create', dir, requests: [{ ...request(P), loadImages: [fifo] }] })]);
    const stateOfP = async () => ok((await cli<Outcome<LocalNode[]>>(h1(), { op: 'list', dir })).out).find((n) => n.name === P)?.state;
    await waitFor(() => fs.existsSync(path.join(dir, P, 'processes.json')), { timeoutMs: 30_000, what: 'the interrupted create to start dockerd' });
    expect(await stateOfP()).toBe('pending');
    await creator.kill();
    // Its `docker load` is orphaned on the FIFO: an end of file sends it away.
    try {
      fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    } catch {
      // no reader left: it is gone already
    }
    expect(await stateOfP()).toBe('stopped');

    const remade = ok((await cli<Outcome<LocalNode>[]>(h1(), { op: 'create', dir, requests: [request(P)] })).out[0] as Outcome<LocalNode>);
    expect(remade).toMatchObject({ name: P, state: 'running' });
    ok((await cli<Outcome<null>[]>(h1(), { op: 'destroy', dir, names: [P] })).out[0] as Outcome<null>);
    expect(await leftovers(h1(), dir, P, [])).toEqual([]);
    expect((await h1().exec(['ip', 'link', 'show', 'dev', BRIDGE])).code).not.toBe(0);
  }, 90_000);
});
