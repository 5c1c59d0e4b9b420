// weft's Docker network + IPAM plugin: the protocol over its socket (no dockerd), then a real
// dockerd in a harness host driving it (network create, run, ping, rm, network rm).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'vitest';
import { DockerPlugin, type PluginBackend } from '../../mesh/network/docker/plugin.ts';
import { MAX_BODY_BYTES, PLUGIN_CONTENT_TYPE } from '../../mesh/network/docker/plugin-wire.ts';
import { call, fakeBackend, GATEWAY, memoryLog, MTU, RANGE, type Answer } from './plugin-fixtures.ts';
import { waitFor } from '../harness/harness.ts';
import { describeFailure, run } from '../harness/run.ts';
import { useHarness } from '../harness/vitest.ts';

const NET_ID = 'n'.repeat(64);
const EP_ID = 'e'.repeat(64);

describe('the plugin protocol over its socket (no dockerd)', () => {
  let dir: string;
  let plugin: DockerPlugin;
  let fake: ReturnType<typeof fakeBackend>;
  let log: ReturnType<typeof memoryLog>;
  let sock: string;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-plugin-'));
    fake = fakeBackend();
    log = memoryLog();
    plugin = await DockerPlugin.start({ name: 'weft-proto', dir, backend: fake.backend, log });
    sock = plugin.socketPath;
  });
  afterEach(async () => {
    await plugin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('activation announces a network driver and an IPAM driver, with Docker\'s content type', async () => {
    const r = await call(sock, 'Plugin.Activate');
    expect(r.status).toBe(200);
    expect(r.contentType).toBe(PLUGIN_CONTENT_TYPE);
    expect(r.body).toEqual({ Implements: ['NetworkDriver', 'IpamDriver'] });
    expect((await call(sock, 'NetworkDriver.GetCapabilities')).body).toEqual({ Scope: 'local', ConnectivityScope: 'global' });
    expect((await call(sock, 'IpamDriver.GetCapabilities')).body).toEqual({ RequiresMACAddress: false, RequiresRequestReplay: false });
    expect((await call(sock, 'IpamDriver.GetDefaultAddressSpaces')).body).toEqual({
      LocalDefaultAddressSpace: 'weft',
      GlobalDefaultAddressSpace: 'weft',
    });
  });

  test('a pool is the range (or 0.0.0.0/0 when none was asked for), with the link-local gateway', async () => {
    const any = await call(sock, 'IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: '', SubPool: '', Options: {}, V6: false });
    expect(any.body).toEqual({ PoolID: `weft-${RANGE}`, Pool: '0.0.0.0/0', Data: { 'com.docker.network.gateway': `${GATEWAY}/32` } });
    const exact = await call(sock, 'IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: RANGE });
    expect(exact.body).toMatchObject({ PoolID: `weft-${RANGE}`, Pool: RANGE });
    const other = await call(sock, 'IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: '10.98.0.0/16' });
    expect(other.body.Err).toContain(`only from its range ${RANGE}`);
    expect(other.body.Error).toBe(other.body.Err); // the IPAM client reads "Error"
    expect((await call(sock, 'IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: RANGE, SubPool: '10.99.1.0/24' })).body.Err).toContain('--ip-range');
    expect((await call(sock, 'IpamDriver.RequestPool', { AddressSpace: 'weft', V6: true })).body.Err).toContain('IPv6');
    expect((await call(sock, 'IpamDriver.ReleasePool', { PoolID: `weft-${RANGE}` })).body).toEqual({});
    expect((await call(sock, 'IpamDriver.ReleasePool', { PoolID: 'bogus' })).body.Err).toContain('not weft');
  });

  test('addresses come from the allocator as /32s and go back under the same handle', async () => {
    const pool = `weft-${RANGE}`;
    const gw = await call(sock, 'IpamDriver.RequestAddress', { PoolID: pool, Options: { RequestAddressType: 'com.docker.network.gateway' } });
    expect(gw.body).toEqual({ Address: `${GATEWAY}/32`, Data: {} });
    expect((await call(sock, 'IpamDriver.RequestAddress', { PoolID: pool, Address: GATEWAY })).body.Address).toBe(`${GATEWAY}/32`);
    const wrongGw = await call(sock, 'IpamDriver.RequestAddress', { PoolID: pool, Address: '10.99.0.1', Options: { RequestAddressType: 'com.docker.network.gateway' } });
    expect(wrongGw.body.Err).toContain(`gateway of a weft network is ${GATEWAY}`);
    expect(fake.state.allocated.size).toBe(0);

    const a = await call(sock, 'IpamDriver.RequestAddress', { PoolID: pool, Address: '', Options: {} });
    expect(a.body).toEqual({ Address: '10.99.0.1/32', Data: {} });
    const [handle] = [...fake.state.allocated.keys()];
    expect(handle).toMatch(/^docker:weft-proto:[0-9a-f]{16}$/);

    const specific = await call(sock, 'IpamDriver.RequestAddress', { PoolID: pool, Address: '10.99.0.77' });
    expect(specific.body.Err).toContain('leave --ip and --aux-address out');
    expect((await call(sock, 'IpamDriver.RequestAddress', { PoolID: 'weft-10.1.0.0/16' })).body.Err).toContain('not weft');

    expect((await call(sock, 'IpamDriver.ReleaseAddress', { PoolID: pool, Address: '10.99.0.1' })).body).toEqual({});
    expect(fake.state.released).toEqual([handle]);
    const again = await call(sock, 'IpamDriver.ReleaseAddress', { PoolID: pool, Address: '10.99.0.1' });
    expect(again.body.Err).toContain('did not hand out 10.99.0.1');
    expect((await call(sock, 'IpamDriver.ReleaseAddress', { PoolID: pool, Address: GATEWAY })).body).toEqual({});
    expect(fake.state.released).toHaveLength(1);
  });

  test('an allocator failure reaches Docker as its sentence, and an address outside the range is refused', async () => {
    fake.state.failAllocate = 'the mesh has no free addresses (ask a peer with space to join)';
    const r = await call(sock, 'IpamDriver.RequestAddress', { PoolID: `weft-${RANGE}` });
    expect(r.status).toBe(200);
    expect(r.body.Err).toBe(fake.state.failAllocate);
    fake.state.failAllocate = undefined;
    fake.backend.allocate = async () => '192.168.1.1';
    const out = await call(sock, 'IpamDriver.RequestAddress', { PoolID: `weft-${RANGE}` });
    expect(out.body.Err).toContain('not in 10.99.0.0/16');
    expect(fake.state.released).toHaveLength(1); // the stray allocation is given back
  });

  test('an address allocated after dockerd stopped waiting is given back', async () => {
    fake.state.allocateDelayMs = 300;
    await new Promise<void>((resolve) => {
      const req = http.request({ socketPath: sock, path: '/IpamDriver.RequestAddress', method: 'POST' });
      req.on('error', () => resolve());
      req.end(JSON.stringify({ PoolID: `weft-${RANGE}` }));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 50);
    });
    await waitFor(() => fake.state.released.length === 1, { timeoutMs: 5000, intervalMs: 20, what: 'the abandoned address to be released' });
    expect(fake.state.released[0]).toBe([...fake.state.allocated.keys()][0]);
  });

  test('a network must take its addresses from weft\'s IPAM', async () => {
    const ok = await call(sock, 'NetworkDriver.CreateNetwork', {
      NetworkID: NET_ID,
      Options: { 'com.docker.network.generic': {} },
      IPv4Data: [{ AddressSpace: 'weft', Pool: '0.0.0.0/0', Gateway: `${GATEWAY}/32` }],
      IPv6Data: [],
    });
    expect(ok.body).toEqual({});
    expect((await call(sock, 'NetworkDriver.CreateNetwork', { NetworkID: NET_ID, IPv4Data: [{ AddressSpace: 'weft', Pool: RANGE }] })).body).toEqual({});
    // Docker's own IPAM on weft's range (--subnet RANGE without --ipam-driver) would hand out
    // addresses weft never allocated.
    const defaultIpam = await call(sock, 'NetworkDriver.CreateNetwork', { NetworkID: NET_ID, IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: RANGE }] });
    expect(defaultIpam.body.Err).toContain('add --ipam-driver weft-proto');
    const bridgeIpam = await call(sock, 'NetworkDriver.CreateNetwork', { NetworkID: NET_ID, IPv4Data: [{ Pool: '172.18.0.0/16', Gateway: '172.18.0.1/16' }] });
    expect(bridgeIpam.body.Err).toContain('add --ipam-driver weft-proto');
    const v6 = await call(sock, 'NetworkDriver.CreateNetwork', { NetworkID: NET_ID, IPv4Data: [{ Pool: RANGE }], IPv6Data: [{ Pool: 'fd00::/64' }] });
    expect(v6.body.Err).toContain('IPv6');
    expect((await call(sock, 'NetworkDriver.DeleteNetwork', { NetworkID: NET_ID })).body).toEqual({});
    expect((await call(sock, 'NetworkDriver.DeleteNetwork', { NetworkID: NET_ID })).body).toEqual({}); // idempotent
  });

  test('an endpoint: veth and MAC at create, routes but no default gateway at join, veth gone at delete', async () => {
    fake.state.allocated.set('docker:weft-proto:5', '10.99.0.5');
    const created = await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: { Address: '10.99.0.5/32' }, Options: {} });
    expect(created.body).toEqual({ Interface: { MacAddress: '02:00:0a:63:00:05' } });
    expect(fake.state.veths).toEqual(new Set(['vh5']));

    const info = await call(sock, 'NetworkDriver.EndpointOperInfo', { NetworkID: NET_ID, EndpointID: EP_ID });
    expect(info.body).toEqual({ Value: { addr: '10.99.0.5', mac: '02:00:0a:63:00:05', hostIf: 'vh5', mtu: MTU } });

    const joined = await call(sock, 'NetworkDriver.Join', { NetworkID: NET_ID, EndpointID: EP_ID, SandboxKey: '/var/run/docker/netns/abc', Options: {} });
    expect(joined.body).toEqual({
      InterfaceName: { SrcName: 'vc5', DstPrefix: 'ethwe' },
      StaticRoutes: [
        { Destination: `${GATEWAY}/32`, RouteType: 1 },
        { Destination: RANGE, RouteType: 0, NextHop: GATEWAY },
      ],
    });
    expect(fake.state.joins).toEqual([{ endpointId: EP_ID, networkId: NET_ID, addr: '10.99.0.5', mac: '02:00:0a:63:00:05', sandboxKey: '/var/run/docker/netns/abc' }]);

    expect((await call(sock, 'NetworkDriver.Leave', { NetworkID: NET_ID, EndpointID: EP_ID })).body).toEqual({});
    expect(fake.state.lefts).toEqual([EP_ID]);
    expect((await call(sock, 'NetworkDriver.DeleteEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID })).body).toEqual({});
    expect(fake.state.veths.size).toBe(0);
  });

  test('a MAC given by Docker (--mac-address) is kept, and the reply carries no Interface then', async () => {
    const mac = '02:42:de:ad:be:ef';
    fake.state.allocated.set('docker:weft-proto:6', '10.99.0.6');
    const created = await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: { Address: '10.99.0.6/32', MacAddress: mac } });
    expect(created.body).toEqual({ Interface: {} });
    await call(sock, 'NetworkDriver.Join', { NetworkID: NET_ID, EndpointID: EP_ID, SandboxKey: '/sb' });
    expect(fake.state.joins[0]?.mac).toBe(mac);
  });

  test('endpoints without a weft address are refused', async () => {
    const none = await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: {} });
    expect(none.body.Err).toContain('has no IPv4 address');
    const outside = await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: { Address: '172.18.0.2/16' } });
    expect(outside.body.Err).toContain('outside weft\'s range');
    const notOurs = await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: { Address: '10.99.0.77/32' } });
    expect(notOurs.body.Err).toContain('10.99.0.77 was not allocated by weft');
    expect(fake.state.veths.size).toBe(0);
  });

  test('an unknown endpoint gets a sentence, not a crash', async () => {
    for (const m of ['Join', 'Leave', 'DeleteEndpoint', 'EndpointOperInfo']) {
      const r = await call(sock, `NetworkDriver.${m}`, { NetworkID: NET_ID, EndpointID: 'f'.repeat(64), SandboxKey: '/sb' });
      expect(r.status, m).toBe(200);
      expect(r.body.Err, m).toBe(`${m}: weft knows no endpoint ffffffffffff`);
    }
  });

  test('notifications and external connectivity are accepted and do nothing', async () => {
    for (const m of ['DiscoverNew', 'DiscoverDelete']) {
      expect((await call(sock, `NetworkDriver.${m}`, { DiscoveryType: 1, DiscoveryData: { Address: '10.0.0.1', self: true } })).body).toEqual({});
    }
    for (const m of ['ProgramExternalConnectivity', 'RevokeExternalConnectivity']) {
      expect((await call(sock, `NetworkDriver.${m}`, { NetworkID: NET_ID, EndpointID: EP_ID, Options: {} })).body).toEqual({});
    }
    expect((await call(sock, 'NetworkDriver.AllocateNetwork', { NetworkID: NET_ID, Options: { a: 'b' } })).body).toEqual({ Options: { a: 'b' } });
    expect((await call(sock, 'NetworkDriver.FreeNetwork', { NetworkID: NET_ID })).body).toEqual({});
  });

  test('malformed requests get an HTTP error with Err, are logged, and the plugin keeps serving', async () => {
    const cases: [string, Answer, number, string][] = [
      ['not JSON', await call(sock, 'NetworkDriver.Join', undefined, { raw: '{"NetworkID": ' }), 400, 'not JSON'],
      ['a JSON array', await call(sock, 'NetworkDriver.Join', [1, 2]), 400, 'not a JSON object'],
      ['a number for a string', await call(sock, 'NetworkDriver.Join', { NetworkID: 5, EndpointID: EP_ID }), 400, '"NetworkID" must be a string'],
      ['no EndpointID', await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID }), 400, 'no "EndpointID"'],
      ['Interface not an object', await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: 'x' }), 400, '"Interface" must be an object'],
      ['IPv4Data not a list', await call(sock, 'NetworkDriver.CreateNetwork', { NetworkID: NET_ID, IPv4Data: {} }), 400, 'list of objects'],
      ['a huge field', await call(sock, 'IpamDriver.ReleasePool', { PoolID: 'x'.repeat(5000) }), 400, 'longer than'],
      ['a body over 1 MiB', await call(sock, 'IpamDriver.RequestPool', undefined, { raw: Buffer.alloc(MAX_BODY_BYTES + 10, 0x20) }), 413, 'limit'],
      ['GET', await call(sock, 'Plugin.Activate', undefined, { httpMethod: 'GET' }), 405, 'POST'],
      ['an unknown method', await call(sock, 'NetworkDriver.Teleport', {}), 404, 'does not implement NetworkDriver.Teleport'],
      ['a prototype key', await call(sock, 'constructor', {}), 404, 'does not implement'],
    ];
    for (const [what, r, status, words] of cases) {
      expect(r.status, what).toBe(status);
      expect(String(r.body.Err), what).toContain(words);
    }
    expect(log.lines.filter((l) => l.startsWith('warn docker plugin request rejected'))).toHaveLength(cases.length);
    expect((await call(sock, 'Plugin.Activate')).status).toBe(200);
    expect(fake.state.veths.size + fake.state.allocated.size).toBe(0);
  });

  test('a raw garbage connection does not disturb the plugin', async () => {
    await new Promise<void>((resolve) => {
      const s = net.connect(sock, () => s.end('\x00\x01 not http at all\r\n\r\n'));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
      s.resume();
    });
    expect((await call(sock, 'Plugin.Activate')).status).toBe(200);
  });

  test('the socket: replaced when stale, refused when live or not a socket, removed on close', async () => {
    expect(fs.statSync(sock).isSocket()).toBe(true);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    await expect(DockerPlugin.start({ name: 'weft-proto', dir, backend: fake.backend, log })).rejects.toThrow(/another process serves/);
    await plugin.close();
    expect(fs.existsSync(sock)).toBe(false);

    // A stale socket file: what a SIGKILLed peer leaves behind.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`]);
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    child.kill('SIGKILL');
    await new Promise<void>((r) => child.once('exit', () => r()));
    expect(fs.existsSync(sock)).toBe(true);
    plugin = await DockerPlugin.start({ name: 'weft-proto', dir, backend: fake.backend, log });
    expect((await call(sock, 'Plugin.Activate')).status).toBe(200);
    await plugin.close();

    fs.writeFileSync(path.join(dir, 'weft-file.sock'), 'not a socket');
    await expect(DockerPlugin.start({ name: 'weft-file', dir, backend: fake.backend, log })).rejects.toThrow(/is not a socket/);
    await expect(DockerPlugin.start({ name: '../escape', dir, backend: fake.backend, log })).rejects.toThrow(/plugin name/);
    await expect(DockerPlugin.start({ name: 'weft-gw', dir, backend: { ...fake.backend, gateway: '10.99.0.1' }, log })).rejects.toThrow(/inside the container range/);
    plugin = await DockerPlugin.start({ name: 'weft-proto', dir, backend: fake.backend, log }); // for afterEach
  });
});

describe('a real dockerd drives the plugin (one harness host)', () => {
  const mesh = useHarness({ hosts: 1, name: 'docker-plugin' });
  let plugin: DockerPlugin | undefined;
  let backend: PluginBackend;
  afterAll(async () => {
    await plugin?.close();
  });

  /** Backend state the tests look at: what was allocated and released, which veths exist. */
  const allocated = new Map<string, string>(); // handle -> addr
  const released: string[] = [];
  const joined: string[] = [];
  const left: string[] = [];

  async function nsRun(ns: string, argv: string[]): Promise<string> {
    const full = ['nsenter', `--net=/var/run/netns/${ns}`, ...argv];
    const r = await run(full);
    if (r.code !== 0) throw new Error(describeFailure(full, r));
    return r.stdout;
  }

  /** Builds the host side the peer would: a bridge holding the gateway address, the range
   *  routed onto it, forwarding on; and starts the plugin with a real (if simple) backend. */
  async function setUp(): Promise<{ name: string; docker: (args: string[]) => Promise<string>; tryDocker: (args: string[]) => Promise<{ code: number | null; err: string }>; ns: string }> {
    const h = mesh().hosts[0]!;
    const ns = h.ns;
    await nsRun(ns, ['ip', 'link', 'add', 'weftbr', 'mtu', String(MTU), 'type', 'bridge']);
    await nsRun(ns, ['ip', 'addr', 'add', `${GATEWAY}/32`, 'dev', 'weftbr']);
    await nsRun(ns, ['ip', 'link', 'set', 'weftbr', 'up']);
    await nsRun(ns, ['ip', 'route', 'add', RANGE, 'dev', 'weftbr']);
    await nsRun(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    let next = 1;
    let veth = 0;
    const name = `weft-test-${mesh().id}`;
    backend = {
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
        prepareVeth: async () => {
          const i = veth++;
          const hostIf = `wfh${i}`;
          const containerIf = `wfc${i}`;
          await nsRun(ns, ['ip', 'link', 'add', hostIf, 'mtu', String(MTU), 'type', 'veth', 'peer', 'name', containerIf, 'mtu', String(MTU)]);
          await nsRun(ns, ['ip', 'link', 'set', hostIf, 'master', 'weftbr', 'up']);
          const mac = (JSON.parse(await nsRun(ns, ['ip', '-j', 'link', 'show', containerIf])) as { address: string }[])[0]!.address;
          return { hostIf, containerIf, mac };
        },
        removeVeth: async (hostIf) => {
          await nsRun(ns, ['ip', 'link', 'del', hostIf]);
        },
        joined: async (ep) => {
          joined.push(ep.endpointId);
        },
        left: async (id) => {
          left.push(id);
        },
    };
    plugin = await DockerPlugin.start({ name, log: memoryLog(), backend });
    const d = await h.startDockerd();
    await d.importBusybox();
    return {
      name,
      ns,
      docker: (args) => d.mustDocker(args, { timeoutMs: 60_000 }),
      tryDocker: async (args) => {
        const r = await d.docker(args, { timeoutMs: 60_000 });
        return { code: r.code, err: r.stderr.trim() };
      },
    };
  }

  let env: Awaited<ReturnType<typeof setUp>>;
  const IMAGE = 'weft-test/busybox:latest';

  test('docker network create needs only the driver names, no --subnet', async () => {
    env = await setUp();
    await env.docker(['network', 'create', '-d', env.name, '--ipam-driver', env.name, 'weftnet']);
    const info = JSON.parse(await env.docker(['network', 'inspect', 'weftnet', '--format', '{{json .}}'])) as {
      Driver: string;
      IPAM: { Driver: string; Config: { Subnet: string; Gateway: string }[] };
    };
    expect(info.Driver).toBe(env.name);
    expect(info.IPAM.Driver).toBe(env.name);
    expect(info.IPAM.Config[0]).toMatchObject({ Subnet: '0.0.0.0/0', Gateway: GATEWAY });
  });

  test('a container gets its address on ethwe0 with the overlay MTU, and routes the range via the gateway', async () => {
    const out = await env.docker(['run', '--rm', '--network', 'weftnet', IMAGE, 'sh', '-c', 'ip -o -4 addr show dev ethwe0; cat /sys/class/net/ethwe0/mtu; ip route']);
    const addr = [...allocated.values()][0] ?? '';
    expect(addr).toBe('10.99.0.1');
    expect(out).toMatch(new RegExp(`ethwe0\\s+inet ${addr.replace(/\./g, '\\.')}/32 `));
    const lines = out.split('\n').map((l) => l.trim());
    expect(lines).toContain(String(MTU));
    expect(lines).toContain(`${RANGE} via ${GATEWAY} dev ethwe0`);
    expect(lines).toContain(`${GATEWAY} dev ethwe0 scope link`);
    // Docker, seeing no default route from weft, connected docker_gwbridge for one.
    expect(lines.find((l) => l.startsWith('default'))).not.toContain('ethwe0');
    // --rm: the endpoint is gone and its address given back.
    await waitFor(() => released.length === 1, { what: 'the --rm container\'s address to be released' });
    expect(released[0]).toBe([...allocated.keys()][0]);
    expect(joined).toHaveLength(1);
    expect(left).toEqual(joined);
  });

  test('two containers on one host reach each other through the host\'s bridge', async () => {
    await env.docker(['run', '-d', '--name', 'c1', '--network', 'weftnet', IMAGE, 'sleep', '600']);
    await env.docker(['run', '-d', '--name', 'c2', '--network', 'weftnet', IMAGE, 'sleep', '600']);
    const ip2 = await env.docker(['inspect', '-f', '{{.NetworkSettings.Networks.weftnet.IPAddress}}', 'c2']);
    const ip1 = await env.docker(['inspect', '-f', '{{.NetworkSettings.Networks.weftnet.IPAddress}}', 'c1']);
    expect([ip1, ip2]).toEqual(['10.99.0.2', '10.99.0.3']);
    expect(await env.docker(['exec', 'c1', 'ping', '-c', '1', '-W', '5', ip2])).toContain('1 packets received');
    expect(await env.docker(['exec', 'c2', 'ping', '-c', '1', '-W', '5', ip1])).toContain('1 packets received');
    const mac = await env.docker(['inspect', '-f', '{{.NetworkSettings.Networks.weftnet.MacAddress}}', 'c1']);
    expect(await env.docker(['exec', 'c1', 'cat', '/sys/class/net/ethwe0/address'])).toBe(mac);
  });

  test('docker rm -f gives the addresses back and removes the veths', async () => {
    await env.docker(['rm', '-f', 'c1', 'c2']);
    await waitFor(() => released.length === 3, { what: 'both addresses to be released' });
    expect(new Set(released)).toEqual(new Set(allocated.keys()));
    const links = await nsRun(env.ns, ['ip', '-o', 'link', 'show']);
    expect(links).not.toMatch(/wf[hc]\d/);
  });

  test('what weft cannot honour is refused in words: another subnet, --ip, a network without weft\'s IPAM', async () => {
    const subnet = await env.tryDocker(['network', 'create', '-d', env.name, '--ipam-driver', env.name, '--subnet', '10.98.0.0/16', 'other']);
    expect(subnet.code).toBe(1);
    expect(subnet.err).toContain(`weft hands out addresses only from its range ${RANGE}`);
    const noIpam = await env.tryDocker(['network', 'create', '-d', env.name, 'other']);
    expect(noIpam.err).toContain(`add --ipam-driver ${env.name}`);
    // --subnet equal to the range is accepted, and is what --ip needs in Docker's eyes.
    await env.docker(['network', 'create', '-d', env.name, '--ipam-driver', env.name, '--subnet', RANGE, 'exact']);
    const ip = await env.tryDocker(['run', '--rm', '--network', 'exact', '--ip', '10.99.0.77', IMAGE, 'true']);
    expect(ip.err).toContain('weft chooses container addresses itself');
    await env.docker(['network', 'rm', 'exact']);
    expect(released).toHaveLength(3);
  });

  test('a restarted plugin serves the same dockerd again, under the same name', async () => {
    // dockerd keeps the plugin it activated and dials its socket path for every call. (While
    // nothing listens there it retries for ~15 s before failing the call.)
    await plugin?.close();
    plugin = await DockerPlugin.start({ name: env.name, log: memoryLog(), backend });
    const addr = await env.docker(['run', '--rm', '--network', 'weftnet', IMAGE, 'sh', '-c', 'ip -o -4 addr show dev ethwe0']);
    expect(addr).toContain('inet 10.99.0.');
    await waitFor(() => released.length === allocated.size, { what: 'the address to be released by the new plugin' });
  });

  test('docker network rm removes the network', async () => {
    await env.docker(['network', 'rm', 'weftnet']);
    expect(await env.docker(['network', 'ls', '--format', '{{.Name}}'])).not.toContain('weftnet');
  });
});
