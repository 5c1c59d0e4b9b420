// The Docker plugin across restarts of its peer: endpoints are kept in the peer's store, so
// Docker's Leave and DeleteEndpoint of endpoints made before a restart remove their veths, and
// endpoints Docker deleted while the plugin was down are cleaned up when it starts. First
// over the socket with an in-memory backend, then with a real dockerd in a harness host.
import { dockerPluginEndpointPrefix } from '../../mesh/keyspace.ts';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'vitest';
import { DEFAULT_PLUGIN_DIR, DockerPlugin, type PluginBackend } from '../../mesh/network/docker/plugin.ts';
import type { DockerNetworks } from '../../mesh/network/docker/plugin-census.ts';
import { parseEndpoint, staleEndpoints, STALE_GRACE_MS, type PluginEndpoint } from '../../mesh/network/docker/plugin-endpoints.ts';
import { PLUGIN_CONTENT_TYPE } from '../../mesh/network/docker/plugin-wire.ts';
import { Store } from '../../mesh/store.ts';
import { waitFor } from '../harness/harness.ts';
import { describeFailure, run } from '../harness/run.ts';
import { useHarness } from '../harness/vitest.ts';
import { call, fakeBackend, GATEWAY, memoryLog, MTU, RANGE } from './plugin-fixtures.ts';

const NET_ID = 'a'.repeat(64);
const POOL = `weft-${RANGE}`;
const NAME = 'weft-restart';

/** A dockerd stand-in for the census: one network of the driver, these endpoints on it. */
function dockerWith(endpointIds: string[] | Error): DockerNetworks {
  const d = {
    listNetworks: async () => {
      if (endpointIds instanceof Error) throw endpointIds;
      return [{ Id: NET_ID, Driver: NAME }];
    },
    getNetwork: () => ({
      inspect: async () => ({ Containers: Object.fromEntries((endpointIds as string[]).map((id, i) => [`c${i}`, { EndpointID: id }])) }),
    }),
  };
  return d as unknown as DockerNetworks;
}

describe('the plugin keeps its endpoints across restarts (no dockerd)', () => {
  let dir: string;
  let store: Store;
  let plugin: DockerPlugin | undefined;
  let fake: ReturnType<typeof fakeBackend>;
  let log: ReturnType<typeof memoryLog>;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-plugin-restart-'));
    store = await Store.open(path.join(dir, 'db'));
    fake = fakeBackend();
    log = memoryLog();
  });
  afterEach(async () => {
    await plugin?.close();
    plugin = undefined;
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function start(opts: { docker?: DockerNetworks; store?: Store } = {}): Promise<string> {
    await plugin?.close();
    plugin = await DockerPlugin.start({ name: NAME, dir, backend: fake.backend, log, store: opts.store ?? store, docker: opts.docker });
    await plugin.reconciled;
    return plugin.socketPath;
  }

  /** An endpoint as dockerd makes one: an address, CreateEndpoint, and Join unless `joined` is false. */
  async function endpoint(sock: string, id: string, joined = true): Promise<string> {
    const addr = String((await call(sock, 'IpamDriver.RequestAddress', { PoolID: POOL })).body.Address).split('/')[0] as string;
    expect((await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: id, Interface: { Address: `${addr}/32` } })).body.Err).toBeUndefined();
    if (joined) expect((await call(sock, 'NetworkDriver.Join', { NetworkID: NET_ID, EndpointID: id, SandboxKey: `/var/run/docker/netns/${id.slice(0, 4)}` })).body.Err).toBeUndefined();
    return addr;
  }

  test('an endpoint made before a restart is left and deleted after it: veth removed, address released', async () => {
    const id = 'e'.repeat(64);
    let sock = await start();
    const addr = await endpoint(sock, id);
    expect(fake.state.veths.size).toBe(1);
    sock = await start();
    // The backend hears of the joined endpoint again (the peer forgot it with the restart).
    expect(fake.state.joins.map((j) => j.endpointId)).toEqual([id, id]);
    expect((await call(sock, 'NetworkDriver.EndpointOperInfo', { NetworkID: NET_ID, EndpointID: id })).body).toMatchObject({ Value: { addr } });
    expect((await call(sock, 'NetworkDriver.Leave', { NetworkID: NET_ID, EndpointID: id })).body).toEqual({});
    expect(fake.state.lefts).toEqual([id]);
    expect((await call(sock, 'NetworkDriver.DeleteEndpoint', { NetworkID: NET_ID, EndpointID: id })).body).toEqual({});
    expect(fake.state.veths.size).toBe(0);
    expect((await call(sock, 'IpamDriver.ReleaseAddress', { PoolID: POOL, Address: addr })).body).toEqual({});
    expect(fake.state.released).toHaveLength(1);
    expect(await store.scan(dockerPluginEndpointPrefix(NAME))).toEqual([]);
  });

  test('at start, endpoints Docker deleted while the plugin was down lose their veth and address; the rest stay', async () => {
    const [kept, gone, fresh] = ['1'.repeat(64), '2'.repeat(64), '3'.repeat(64)];
    let sock = await start();
    const keptAddr = await endpoint(sock, kept);
    const goneAddr = await endpoint(sock, gone);
    await endpoint(sock, fresh, false); // created a moment ago, not joined yet: spared
    const goneHandle = [...fake.state.allocated].find(([, a]) => a === goneAddr)?.[0];
    sock = await start({ docker: dockerWith([kept]) });
    expect([...fake.state.veths].sort()).toEqual([`vh${keptAddr.split('.')[3]}`, 'vh3'].sort());
    expect(fake.state.released).toEqual([goneHandle]);
    expect(fake.state.lefts).toEqual([gone]);
    expect((await store.scan(dockerPluginEndpointPrefix(NAME))).map((e) => e.key.slice(-64)).sort()).toEqual([kept, fresh]);
    expect((await call(sock, 'NetworkDriver.EndpointOperInfo', { NetworkID: NET_ID, EndpointID: gone })).body.Err).toContain('knows no endpoint');
    expect((await call(sock, 'NetworkDriver.EndpointOperInfo', { NetworkID: NET_ID, EndpointID: kept })).body).toMatchObject({ Value: { addr: keptAddr } });
    expect(log.lines.some((l) => l.includes('removed a docker endpoint Docker deleted while the plugin was down'))).toBe(true);
  });

  test('when dockerd cannot be asked, every stored endpoint is kept for Docker to delete', async () => {
    const id = '4'.repeat(64);
    let sock = await start();
    await endpoint(sock, id);
    sock = await start({ docker: dockerWith(new Error('connect ENOENT /var/run/docker.sock')) });
    expect(fake.state.veths.size).toBe(1);
    expect(fake.state.released).toEqual([]);
    expect(log.lines.some((l) => l.startsWith('warn cannot ask dockerd which endpoints it still has'))).toBe(true);
    expect((await call(sock, 'NetworkDriver.DeleteEndpoint', { NetworkID: NET_ID, EndpointID: id })).body).toEqual({});
    expect(fake.state.veths.size).toBe(0);
  });

  test('CreateEndpoint is not answered before the endpoint is stored; if it cannot be, the veth goes', async () => {
    const broken = Object.create(store) as Store;
    broken.put = async () => {
      throw new Error('IO error: disk full');
    };
    const sock = await start({ store: broken });
    const addr = String((await call(sock, 'IpamDriver.RequestAddress', { PoolID: POOL })).body.Address);
    const r = await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: '5'.repeat(64), Interface: { Address: addr } });
    expect(r.body.Err).toBe('cannot record endpoint 555555555555 in the peer\'s store: IO error: disk full');
    expect(fake.state.veths.size).toBe(0);
  });

  test('an unusable stored record is dropped with its reason, and the others load', async () => {
    const good: PluginEndpoint = { networkId: NET_ID, addr: '10.99.0.7', mac: '02:00:0a:63:00:07', hostIf: 'vh7', containerIf: 'vc7', created: 1 };
    await store.put(dockerPluginEndpointPrefix(NAME) + '6'.repeat(64), { v: 1, ...good });
    await store.put(dockerPluginEndpointPrefix(NAME) + '7'.repeat(64), { v: 1, ...good, hostIf: 'eth0; reboot' });
    await store.put(dockerPluginEndpointPrefix(NAME) + '8'.repeat(64), { v: 9, ...good });
    const sock = await start();
    expect((await call(sock, 'NetworkDriver.EndpointOperInfo', { EndpointID: '6'.repeat(64) })).body).toMatchObject({ Value: { hostIf: 'vh7' } });
    expect(log.lines.filter((l) => l.startsWith('warn dropped an unusable stored docker endpoint')).map((l) => /"reason":"([^"]+)"/.exec(l)?.[1])).toEqual(['bad hostIf', 'version 9 is not 1']);
    expect((await store.scan(dockerPluginEndpointPrefix(NAME))).length).toBe(1);
  });

  test('which stored endpoints are stale: unknown to Docker, unless created moments ago and not joined', () => {
    const ep = (created: number, sandboxKey?: string): PluginEndpoint => ({ ...(parseEndpoint({ v: 1, networkId: NET_ID, addr: '10.99.0.1', mac: '02:00:00:00:00:01', hostIf: 'vh1', containerIf: 'vc1', created }) as PluginEndpoint), ...(sandboxKey ? { sandboxKey } : {}) });
    const now = 10 * STALE_GRACE_MS;
    const loaded = new Map([
      ['known', ep(0, '/sb')],
      ['joined-unknown', ep(now, '/sb')],
      ['old-unjoined', ep(now - STALE_GRACE_MS)],
      ['new-unjoined', ep(now - 1)],
    ]);
    expect(staleEndpoints(loaded, new Set(['known']), now)).toEqual(['joined-unknown', 'old-unjoined']);
  });
});

describe('a real dockerd and a restarted plugin (one harness host)', () => {
  const mesh = useHarness({ hosts: 1, name: 'docker-plugin-restart' });
  let plugin: DockerPlugin | undefined;
  let standIn: http.Server | undefined;
  let dir: string;
  let store: Store;
  afterAll(async () => {
    await plugin?.close();
    standIn?.close();
    await store?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const allocated = new Map<string, string>(); // handle -> addr
  const released: string[] = [];
  const IMAGE = 'weft-test/busybox:latest';

  async function nsRun(ns: string, argv: string[]): Promise<string> {
    const full = ['nsenter', `--net=/var/run/netns/${ns}`, ...argv];
    const r = await run(full);
    if (r.code !== 0) throw new Error(describeFailure(full, r));
    return r.stdout;
  }

  test('Leave and DeleteEndpoint after a restart remove the veth and release the address; so does a start after Docker deleted one while the plugin was down', async () => {
    const h = mesh().hosts[0]!;
    const ns = h.ns;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-plugin-restart-e2e-'));
    store = await Store.open(path.join(dir, 'db'));
    await nsRun(ns, ['ip', 'link', 'add', 'weftbr', 'mtu', String(MTU), 'type', 'bridge']);
    await nsRun(ns, ['ip', 'addr', 'add', `${GATEWAY}/32`, 'dev', 'weftbr']);
    await nsRun(ns, ['ip', 'link', 'set', 'weftbr', 'up']);
    await nsRun(ns, ['ip', 'route', 'add', RANGE, 'dev', 'weftbr']);
    let next = 1;
    const hostIf = (addr: string): string => `wfh${addr.split('.')[3]}`;
    const backend: PluginBackend = {
      range: RANGE,
      gateway: GATEWAY,
      mtu: MTU,
      allocate: async (handle) => {
        const addr = `10.99.0.${next++}`;
        allocated.set(handle, addr);
        return addr;
      },
      release: async (handle) => {
        released.push(handle);
      },
      handleOf: (addr) => [...allocated].find(([hd, a]) => a === addr && !released.includes(hd))?.[0],
      prepareVeth: async (addr) => {
        const n = addr.split('.')[3];
        await nsRun(ns, ['ip', 'link', 'add', `wfh${n}`, 'mtu', String(MTU), 'type', 'veth', 'peer', 'name', `wfc${n}`, 'mtu', String(MTU)]);
        await nsRun(ns, ['ip', 'link', 'set', `wfh${n}`, 'master', 'weftbr', 'up']);
        const mac = (JSON.parse(await nsRun(ns, ['ip', '-j', 'link', 'show', `wfc${n}`])) as { address: string }[])[0]!.address;
        return { hostIf: `wfh${n}`, containerIf: `wfc${n}`, mac };
      },
      removeVeth: async (name) => {
        const r = await run(['nsenter', `--net=/var/run/netns/${ns}`, 'ip', 'link', 'del', name]);
        if (r.code !== 0 && !/Cannot find device/.test(r.stderr)) throw new Error(r.stderr.trim());
      },
      joined: async () => undefined,
      left: async () => undefined,
    };
    const name = `weft-rs-${mesh().id}`;
    const d = await h.startDockerd();
    await d.importBusybox();
    const docker = new Docker({ socketPath: d.socket });
    const start = async (): Promise<void> => {
      plugin = await DockerPlugin.start({ name, log: memoryLog(), backend, store, docker });
      await plugin.reconciled;
    };
    const sh = (args: string[]) => d.mustDocker(args, { timeoutMs: 60_000 });
    const addrOf = async (c: string) => sh(['inspect', '-f', '{{.NetworkSettings.Networks.weftnet.IPAddress}}', c]);
    const links = async () => nsRun(ns, ['ip', '-o', 'link', 'show']);
    const released_ = (addr: string) => released.includes([...allocated].find(([, a]) => a === addr)?.[0] ?? '');

    await start();
    await sh(['network', 'create', '-d', name, '--ipam-driver', name, 'weftnet']);
    await sh(['run', '-d', '--name', 'c1', '--network', 'weftnet', IMAGE, 'sleep', '600']);
    await sh(['run', '-d', '--name', 'c2', '--network', 'weftnet', IMAGE, 'sleep', '600']);
    const [a1, a2] = [await addrOf('c1'), await addrOf('c2')];
    expect(await links()).toContain(hostIf(a1));
    expect(await links()).toContain(hostIf(a2));

    // The peer restarts; Docker then disconnects one container and removes the other.
    await plugin?.close();
    await start();
    await sh(['network', 'disconnect', 'weftnet', 'c1']);
    await waitFor(() => released_(a1), { what: `c1's address ${a1} to be released` });
    expect(await links()).not.toContain(hostIf(a1));
    await sh(['rm', '-f', 'c2']);
    await waitFor(() => released_(a2), { what: `c2's address ${a2} to be released` });
    expect(await links()).not.toContain(hostIf(a2));
    expect(await store.scan(dockerPluginEndpointPrefix(name))).toEqual([]);

    // While the peer is down Docker removes a container: every call it makes fails (a stand-in
    // answers each with an error, as dockerd sees a plugin that is not there, minus its 15 s
    // of retries), so Docker forgets the endpoint and never releases the address.
    await sh(['run', '-d', '--name', 'c3', '--network', 'weftnet', IMAGE, 'sleep', '600']);
    const a3 = await addrOf('c3');
    await plugin?.close();
    plugin = undefined;
    const calls: string[] = [];
    standIn = http.createServer((req, res) => {
      calls.push(req.url ?? '');
      req.resume();
      const body = JSON.stringify({ Err: 'the weft peer is restarting', Error: 'the weft peer is restarting' });
      res.writeHead(200, { 'Content-Type': PLUGIN_CONTENT_TYPE }).end(body);
    });
    await new Promise<void>((r) => standIn!.listen(path.join(DEFAULT_PLUGIN_DIR, `${name}.sock`), r));
    await sh(['rm', '-f', 'c3']);
    expect(calls).toContain('/NetworkDriver.DeleteEndpoint');
    await new Promise<void>((r) => standIn!.close(() => r()));
    standIn = undefined;
    expect(await links()).toContain(hostIf(a3));
    expect(released_(a3)).toBe(false);
    await start();
    expect(await links()).not.toContain(hostIf(a3));
    expect(released_(a3)).toBe(true);
    expect(await store.scan(dockerPluginEndpointPrefix(name))).toEqual([]);
    await sh(['network', 'rm', 'weftnet']);
  });
});
