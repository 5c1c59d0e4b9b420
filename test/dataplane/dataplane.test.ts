// The data plane on a real kernel: three member hosts (h1..h3) and an outsider (h4) as harness
// namespaces on one switch, a Dataplane per member run from this process, "containers" as
// bare namespaces, views handed to every data plane as gossip would. Once per mode.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { waitFor, type Host } from '../harness/harness.ts';
import { useHarness } from '../harness/vitest.ts';
import { mustRun, run } from '../harness/run.ts';
import { Dataplane } from '../../mesh/network/dataplane/dataplane.ts';
import { daemonPids, WG_SOCKET_DIR } from '../../mesh/network/dataplane/wireguard.ts';
import { wgIfName } from '../../mesh/network/dataplane/names.ts';
import type { Mode } from '../../mesh/network/dataplane/plan.ts';
import { logger } from '../../mesh/log.ts';
import { containerNs, echoesReceived, makeNamespace, nsPath, nsRun, ping, RANGE, suffixOf, TestMesh, type Container } from './fixture.ts';

/** Containers per member host in the reachability matrix. */
const PER_HOST = 2;
/** A marker no packet on the underlay carries unless the overlay payload is visible there. */
const MAGIC = 'weft-plaintext-marker-5d1c';

function addrOf(hostN: number, k: number): string {
  return `10.32.${hostN}.${10 + k}`;
}

async function pingAll(containers: readonly Container[]): Promise<string[]> {
  let pending: [Container, Container][] = containers.flatMap((a) => containers.filter((b) => b !== a).map((b) => [a, b] as [Container, Container]));
  // A tunnel's first handshake may be lost under load; WireGuard retries it every 5 s. A pair
  // still failing after a few of those retries is a failure.
  const deadline = Date.now() + FIRST_CONTACT_MS;
  for (let round = 0; round < 10 && pending.length > 0; round++) {
    const still: [Container, Container][] = [];
    for (const [a, b] of pending) if (!(await ping(a.ns, b.addr)) && !(await ping(a.ns, b.addr, 2))) still.push([a, b]);
    pending = still;
    if (Date.now() > deadline) break;
  }
  return pending.map(([a, b]) => `${a.addr}@${a.host.name} → ${b.addr}@${b.host.name}`);
}

/** How long every pair gets to reach each other: a few of WireGuard's 5 s handshake retries. */
const FIRST_CONTACT_MS = 30_000;

/** ICMP echo requests that reach `target` of three pings from `from`. */
async function echoesFrom(from: Host, target: Container): Promise<number> {
  const before = await echoesReceived(target.ns);
  for (let i = 0; i < 3; i++) await ping(from.ns, target.addr);
  return (await echoesReceived(target.ns)) - before;
}

/** Packets matched by the counting rule with `comment` in namespace `ns` (iptables-save -c). */
async function counted(ns: string, comment: string): Promise<number> {
  const r = await nsRun(ns, ['iptables-save', '-c', '-t', 'filter']);
  const line = r.stdout.split('\n').find((l) => l.includes(`--comment ${comment}`));
  const m = line === undefined ? null : /^\[(\d+):\d+\]/.exec(line);
  if (m === null) throw new Error(`no counting rule ${comment} in ${ns}`);
  return Number(m[1]);
}

describe.each<Mode>(['encrypted', 'fast'])('data plane in %s mode, 3 member hosts and an outsider', (mode) => {
  const harness = useHarness({ hosts: 4, name: `dataplane.${mode}` });
  let tm: TestMesh;

  beforeAll(async () => {
    tm = new TestMesh(harness(), mode);
    const members = harness().hosts.slice(0, 3);
    for (const h of members) await tm.start(h);
    // Concurrent attaches on one host: the data plane serializes them.
    await Promise.all(members.flatMap((h) => Array.from({ length: PER_HOST }, (_, k) => tm.attach(h, k, addrOf(h.n, k)))));
    await tm.syncAll();
  });

  afterAll(async () => {
    await tm?.cleanup();
  });

  test('every container reaches every other container, on its host and across hosts', async () => {
    expect(tm.containers).toHaveLength(3 * PER_HOST);
    for (const c of tm.containers) expect(c.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect(await pingAll(tm.containers)).toEqual([]);
  });

  test('the record says how to reach the host in its mode; a sync with nothing new changes nothing', async () => {
    const [h1] = harness().hosts;
    const rec = tm.plane(h1!).record();
    expect(rec.endpoint).toBe(h1!.ip);
    if (mode === 'encrypted') expect(rec.wgPublicKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    else expect(rec.vxlanMac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect(tm.plane(h1!).mtu).toBe(mode === 'encrypted' ? 1420 : 1450);
    const before = (await nsRun(h1!.ns, ['ip', '-j', 'route', 'show'])).stdout;
    await tm.syncAll();
    expect((await nsRun(h1!.ns, ['ip', '-j', 'route', 'show'])).stdout).toBe(before);
  });

  test('a container moved to another host keeps its address and is reachable there at once', async () => {
    const [h1, h2, h3] = harness().hosts as [never, never, never];
    const moving = tm.containers.find((c) => c.host === h1 && c.addr === addrOf(1, 1))!;
    const watcher = tm.containers.find((c) => c.host === h2)!;
    await tm.detach(moving);
    const moved = await tm.attach(h3, 5, moving.addr);
    await tm.syncAll();
    // One echo, straight after the sync: no convergence time allowed.
    expect(await ping(watcher.ns, moved.addr, 2)).toBe(true);
    expect(await ping(tm.containers.find((c) => c.host === h1)!.ns, moved.addr, 2)).toBe(true);
    expect(await pingAll(tm.containers)).toEqual([]);
  });

  test('a host outside the mesh that routes the overlay to a member cannot reach its containers', async () => {
    const h1 = harness().hosts[0] as Host;
    const outsider = harness().hosts[3] as Host;
    const target = tm.containers.find((c) => c.host === h1)!;
    await mustRun(['ip', '-n', outsider.ns, 'route', 'replace', RANGE, 'via', h1.ip]);
    try {
      expect(await echoesFrom(outsider, target)).toBe(0);
      // Control: without the data plane's FORWARD rules the same echoes do arrive, so the zero
      // above is the firewall's doing, not a routing accident.
      await withoutJump(h1, 'FORWARD', 'WEFT', async () => expect(await echoesFrom(outsider, target)).toBeGreaterThan(0));
    } finally {
      await run(['ip', '-n', outsider.ns, 'route', 'del', RANGE]);
    }
  });

  test.runIf(mode === 'fast')('an outsider sending VXLAN to a member is dropped unless its underlay address is a peer', async () => {
    const h1 = harness().hosts[0] as Host;
    const outsider = harness().hosts[3] as Host;
    const target = tm.containers.find((c) => c.host === h1)!;
    const vxMac = tm.plane(h1).record().vxlanMac!;
    // The outsider forges what a member would send: VXLAN to h1's port, to h1's device MAC.
    await mustRun(['ip', '-n', outsider.ns, '-batch', '-'], {
      input: [
        `link add vxout type vxlan id 6784 dstport 6784 local ${outsider.ip} nolearning`,
        'link set vxout up',
        'addr add 10.32.99.99/32 dev vxout',
        `route add ${RANGE} dev vxout src 10.32.99.99`,
        `neigh add ${target.addr} lladdr ${vxMac} dev vxout nud permanent`,
        '',
      ].join('\n'),
    });
    try {
      await mustRun(['ip', 'netns', 'exec', outsider.ns, 'bridge', 'fdb', 'add', vxMac, 'dev', 'vxout', 'dst', h1.ip, 'self', 'permanent']);
      expect(await echoesFrom(outsider, target)).toBe(0);
      // Control: with the VXLAN port open to anyone, the forged packets do get through.
      await withoutJump(h1, 'INPUT', 'WEFT-IN', async () => expect(await echoesFrom(outsider, target)).toBeGreaterThan(0));
    } finally {
      await run(['ip', '-n', outsider.ns, 'link', 'del', 'vxout']);
    }
  });

  test(`container payload on the underlay is ${mode === 'encrypted' ? 'not readable (WireGuard)' : 'plain VXLAN (readable)'}`, async () => {
    const [h1, h2] = harness().hosts;
    const from = tm.containers.find((c) => c.host === h1)!;
    const to = tm.containers.find((c) => c.host === h2)!;
    // Counting rules (no target): what leaves on the underlay, and what left the bridge.
    const rules: [string, string[]][] = [
      ['OUTPUT', ['-o', 'eth0', '-m', 'string', '--string', MAGIC, '--algo', 'bm', '-m', 'comment', '--comment', 'underlay-marker']],
      ['FORWARD', ['-i', 'weft', '-m', 'string', '--string', MAGIC, '--algo', 'bm', '-m', 'comment', '--comment', 'overlay-marker']],
    ];
    for (const [chain, spec] of rules) await mustRun(['ip', 'netns', 'exec', h1!.ns, 'iptables', '-w', '-I', chain, '1', ...spec]);
    try {
      for (let i = 0; i < 3; i++) await nsRun(from.ns, ['bash', '-c', `echo ${MAGIC} > /dev/udp/${to.addr}/7777`]);
      expect(await counted(h1!.ns, 'overlay-marker')).toBe(3);
      expect(await counted(h1!.ns, 'underlay-marker')).toBe(mode === 'encrypted' ? 0 : 3);
    } finally {
      for (const [chain, spec] of rules) await run(['ip', 'netns', 'exec', h1!.ns, 'iptables', '-w', '-D', chain, ...spec]);
    }
  });

  test('a restarted peer adopts the data plane without interrupting running traffic', async () => {
    const [h1, h2] = harness().hosts;
    const from = tm.containers.find((c) => c.host === h2)!;
    const to = tm.containers.find((c) => c.host === h1)!;
    const dev = wgIfName(suffixOf(harness(), h1!));
    const daemonsBefore = daemonPids(dev);
    // 40 echoes 0.1 s apart while both ends' data planes restart and resync.
    const pinger = nsRun(from.ns, ['busybox', 'ping', '-c', '40', '-i', '0.1', '-W', '1', to.addr], 30_000);
    await new Promise((r) => setTimeout(r, 500));
    await tm.start(h1!);
    await tm.start(h2!);
    await tm.syncAll();
    const out = (await pinger).stdout;
    const m = /(\d+) packets transmitted, (\d+) (packets )?received/.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![1]) - Number(m![2]), out).toBeLessThanOrEqual(1);
    if (mode === 'encrypted') expect(daemonPids(dev)).toEqual(daemonsBefore);
  });

  test.runIf(mode === 'encrypted')('a restart after wireguard-go died starts a new one and restores the peers', async () => {
    const [h1, h2] = harness().hosts;
    const dev = wgIfName(suffixOf(harness(), h1!));
    for (const pid of daemonPids(dev)) process.kill(pid, 'SIGKILL');
    await waitFor(async () => (await nsRun(h1!.ns, ['ip', 'link', 'show', dev])).code !== 0, { what: `${dev} to go with its daemon`, timeoutMs: 5_000 });
    await tm.start(h1!);
    await tm.syncAll();
    expect(daemonPids(dev)).toHaveLength(1);
    const from = tm.containers.find((c) => c.host === h2)!;
    const to = tm.containers.find((c) => c.host === h1)!;
    expect(await ping(from.ns, to.addr, 2)).toBe(true);
  });

  test('a container that believes the whole range is on-link (Docker: pool prefix) works by proxy ARP', async () => {
    const [h1, , h3] = harness().hosts;
    const dp = tm.plane(h3!);
    const addr = '10.32.3.77';
    const { hostIf, containerIf, mac } = await dp.prepareVeth(addr);
    const ns = containerNs(harness(), h3!, 7);
    await makeNamespace(ns);
    // What Docker does with the prepared end: move, rename, address with the pool's prefix.
    await mustRun(['ip', '-n', h3!.ns, 'link', 'set', containerIf, 'netns', nsPath(ns)]);
    await mustRun(['ip', '-n', ns, '-batch', '-'], { input: `link set ${containerIf} name ethwe\naddr add ${addr}/12 dev ethwe\nlink set ethwe up\n` });
    const c = { ns, addr, host: h3!, mac };
    tm.containers.push(c);
    await tm.syncAll();
    const peer = tm.containers.find((x) => x.host === h1)!;
    expect(await ping(ns, peer.addr, 2)).toBe(true);
    expect(await ping(peer.ns, addr, 2)).toBe(true);
    await dp.removeVeth(hostIf);
    tm.containers.splice(tm.containers.indexOf(c), 1);
    expect((await nsRun(ns, ['ip', 'link', 'show', 'ethwe'])).code).not.toBe(0);
  });

  test('expose gives the host an overlay address that containers on other hosts can reach, hide takes it away', async () => {
    const [h1, h2] = harness().hosts;
    const dp = tm.plane(h1!);
    await dp.expose('10.32.1.250');
    await tm.syncAll();
    const remote = tm.containers.find((c) => c.host === h2)!;
    expect(await ping(remote.ns, '10.32.1.250', 2)).toBe(true);
    // The host's own traffic into the overlay carries the exposed address, so replies find it.
    expect(await ping(h1!.ns, remote.addr, 2)).toBe(true);
    await dp.hide();
    await tm.syncAll();
    expect(dp.record().exposed).toBeUndefined();
    expect(await ping(remote.ns, '10.32.1.250')).toBe(false);
    expect(await pingAll(tm.containers)).toEqual([]);
  });

  test('reset removes every link, route, chain and daemon the data plane made', async () => {
    const members = harness().hosts.slice(0, 3);
    for (const h of members) await tm.plane(h).reset();
    for (const h of members) {
      const links = JSON.parse((await nsRun(h.ns, ['ip', '-j', 'link', 'show'])).stdout) as { ifname: string }[];
      expect(links.map((l) => l.ifname).sort()).toEqual(['eth0', 'lo']);
      const routes = (await nsRun(h.ns, ['ip', 'route', 'show'])).stdout;
      expect(routes).not.toMatch(/10\.32\.|unreachable|169\.254/);
      const rules = (await nsRun(h.ns, ['iptables', '-w', '-S'])).stdout;
      expect(rules).not.toMatch(/WEFT/);
      const dev = wgIfName(suffixOf(harness(), h));
      expect(daemonPids(dev)).toEqual([]);
      expect(fs.existsSync(`${WG_SOCKET_DIR}/${dev}.sock`)).toBe(false);
      expect(fs.existsSync(`${h.dataDir}/wireguard.key`)).toBe(mode === 'encrypted');
    }
    for (const c of tm.containers) expect((await nsRun(c.ns, ['ip', 'link', 'show', 'ethwe'])).code).not.toBe(0);
    await expect(tm.plane(members[0]!).sync(tm.view())).rejects.toThrow(/stopped/);
    // A reset host starts from scratch again.
    const again = await Dataplane.start({ mode, range: RANGE, underlay: members[0]!.ip, dataDir: members[0]!.dataDir, suffix: suffixOf(harness(), members[0]!), log: logger('dataplane.again'), netns: nsPath(members[0]!.ns) });
    await again.reset();
  });
});

// First contact in encrypted mode (mesh/network/dataplane/handshake.ts). Each host initiates a
// WireGuard handshake the moment it adds the other; when both do so at once the initiations
// cross and both are answered but neither completes, and WireGuard by itself then waits 5 s
// before it tries again (packets sent meanwhile cannot start a handshake). Losing both first
// initiations on the way in leaves the hosts in the same state, deterministically.
describe('encrypted first contact, 2 hosts that add each other at once', () => {
  const harness = useHarness({ hosts: 2, name: 'dataplane.first-contact' });
  let tm: TestMesh;

  beforeAll(async () => {
    tm = new TestMesh(harness(), 'encrypted');
    for (const h of harness().hosts) await tm.start(h);
    for (const h of harness().hosts) await tm.attach(h, 0, addrOf(h.n, 0));
  });

  afterAll(async () => {
    await tm?.cleanup();
  });

  test('hosts whose first handshake was lost reach each other without waiting for WireGuard\'s 5 s retry', async () => {
    const hosts = harness().hosts;
    const dropHandshakes = (op: '-I' | '-D') => Promise.all(hosts.map((h) => mustRun(['ip', 'netns', 'exec', h.ns, 'iptables', '-w', op, 'INPUT', '-p', 'udp', '--dport', '6783', '-j', 'DROP'])));
    await dropHandshakes('-I');
    try {
      await tm.syncAll();
    } finally {
      await dropHandshakes('-D');
    }
    // pingAll gives each pair about 3 s (an echo with 1 s, then one with 2 s to answer).
    expect(await pingAll(tm.containers)).toEqual([]);
  });
});

/** Runs `fn` with the data plane's jump from `chain` to `target` removed on `h`: the control
 *  that shows a zero elsewhere is the firewall's doing. The jump is put back whatever happens. */
async function withoutJump(h: Host, chain: string, target: string, fn: () => Promise<void>): Promise<void> {
  await mustRun(['ip', 'netns', 'exec', h.ns, 'iptables', '-w', '-D', chain, '-j', target]);
  try {
    await fn();
  } finally {
    await mustRun(['ip', 'netns', 'exec', h.ns, 'iptables', '-w', '-I', chain, '1', '-j', target]);
  }
}
