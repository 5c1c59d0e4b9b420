// Hostile input on the Docker plugin's socket: whoever can write to /run/docker/plugins/NAME.sock
// (root, or a confused program) sends oversized, malformed, slow or very many requests. Each
// gets one JSON error (`{"Err": ...}`, what libnetwork reads), the peer's process survives, the
// plugin then serves a valid request, and the endpoint a container uses is untouched.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { DockerPlugin, type PluginLimits } from '../../mesh/network/docker/plugin.ts';
import { MAX_BODY_BYTES } from '../../mesh/network/docker/plugin-wire.ts';
import { Store } from '../../mesh/store.ts';
import { waitFor } from '../harness/harness.ts';
import { call, fakeBackend, memoryLog, RANGE } from './plugin-fixtures.ts';

const NET_ID = 'a'.repeat(64);
const EP_ID = 'b'.repeat(64);
const POOL = `weft-${RANGE}`;

/** Small enough that the tests see each bound quickly; the production values are the
 *  constants of plugin-wire.ts. */
const LIMITS: Partial<PluginLimits> = { requestTimeoutMs: 400, maxInFlight: 4, maxConnections: 16 };

/** Longest a test waits for the plugin to answer or close a connection: far above the 400 ms
 *  request timeout (Node checks it every 100 ms), for a loaded machine. */
const CLOSE_WAIT_MS = 15_000;

interface RawResult {
  /** Everything the plugin wrote before closing. */
  text: string;
  /** Bytes of the request written before the plugin closed the connection. */
  written: number;
}

/** Writes `head`, then `body` chunks (awaiting drain, stopping once the plugin closes), and
 *  collects what comes back until the connection closes. */
function rawExchange(sock: string, head: string, body: { chunk: Buffer; count: number } | undefined = undefined): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    const got: Buffer[] = [];
    let written = 0;
    let closed = false;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`the plugin neither answered nor closed within ${CLOSE_WAIT_MS} ms; got: ${Buffer.concat(got).toString().slice(0, 200)}`));
    }, CLOSE_WAIT_MS);
    s.on('data', (b: Buffer) => got.push(b));
    s.on('error', () => undefined);
    s.on('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve({ text: Buffer.concat(got).toString('utf8'), written });
    });
    s.on('connect', async () => {
      s.write(head);
      written += head.length;
      if (body === undefined) return;
      for (let i = 0; i < body.count && !closed; i++) {
        const ok = s.write(body.chunk);
        written += body.chunk.length;
        if (!ok) await new Promise<void>((r) => { s.once('drain', r); s.once('close', r); });
      }
    });
  });
}

/** The status line and the JSON body of a raw HTTP answer. */
function parseRaw(text: string): { status: number; body: Record<string, unknown> } {
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
  const i = text.indexOf('\r\n\r\n');
  return { status, body: i < 0 ? {} : (JSON.parse(text.slice(i + 4)) as Record<string, unknown>) };
}

describe('hostile input on the plugin socket', () => {
  let dir: string;
  let store: Store;
  let plugin: DockerPlugin;
  let fake: ReturnType<typeof fakeBackend>;
  let sock: string;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-plugin-hostile-'));
    store = await Store.open(path.join(dir, 'db'));
    fake = fakeBackend();
    plugin = await DockerPlugin.start({ name: 'weft-hostile', dir, backend: fake.backend, log: memoryLog(), store, limits: LIMITS });
    sock = plugin.socketPath;
    // The victim: a container's endpoint, created and joined as dockerd does it.
    const a = await call(sock, 'IpamDriver.RequestAddress', { PoolID: POOL });
    const cidr = String(a.body.Address);
    expect((await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: { Address: cidr } })).body.Err).toBeUndefined();
    expect((await call(sock, 'NetworkDriver.Join', { NetworkID: NET_ID, EndpointID: EP_ID, SandboxKey: '/var/run/docker/netns/victim' })).body.Err).toBeUndefined();
  });
  afterEach(async () => {
    await plugin.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** What an attack must not change: the backend's addresses and veths, the stored endpoints,
   *  and what the plugin says about the victim. */
  async function state(): Promise<unknown> {
    return {
      allocated: [...fake.state.allocated],
      released: [...fake.state.released],
      veths: [...fake.state.veths].sort(),
      joins: fake.state.joins.length,
      lefts: [...fake.state.lefts],
      stored: await store.scan('docker-plugin/'),
      victim: (await call(sock, 'NetworkDriver.EndpointOperInfo', { NetworkID: NET_ID, EndpointID: EP_ID })).body,
    };
  }

  async function stillServes(): Promise<void> {
    const r = await call(sock, 'Plugin.Activate');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ Implements: ['NetworkDriver', 'IpamDriver'] });
  }

  test('an oversized body, declared or streamed without end, gets one 413 and the connection is cut', async () => {
    const before = await state();
    const declared = await rawExchange(sock, `POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: x\r\nContent-Length: ${1 << 30}\r\n\r\n{"NetworkID":`);
    expect(parseRaw(declared.text)).toEqual({ status: 413, body: expect.objectContaining({ Err: expect.stringContaining('over the') }) });

    // Chunked, 64 MiB offered: the plugin stops reading past its limit and closes, so only
    // the limit plus what the socket buffers is ever written.
    const chunk = Buffer.from(`4000\r\n${'x'.repeat(0x4000)}\r\n`);
    const streamed = await rawExchange(sock, 'POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', { chunk, count: 4096 });
    expect(parseRaw(streamed.text)).toEqual({ status: 413, body: expect.objectContaining({ Err: `request body is over the ${MAX_BODY_BYTES}-byte limit` }) });
    expect(streamed.written).toBeLessThan(4096 * chunk.length);

    expect(await state()).toEqual(before);
    await stillServes();
  });

  test('malformed, deeply nested and wrongly typed requests each get one JSON error and change nothing', async () => {
    const before = await state();
    // Options nested 40 000 deep: echoing it back would overflow the stack while encoding.
    const deep = `{"NetworkID":"${NET_ID}","Options":${'{"a":'.repeat(40_000)}"x"${'}'.repeat(40_000)}}`;
    const cases: [string, string, unknown, number, string][] = [
      ['not JSON', 'NetworkDriver.Join', '{"EndpointID": ', 400, 'not JSON'],
      ['invalid UTF-8', 'NetworkDriver.Join', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 400, 'not JSON'],
      ['a string', 'NetworkDriver.CreateEndpoint', '"hello"', 400, 'not a JSON object'],
      ['nested arrays', 'NetworkDriver.Join', '['.repeat(100_000) + ']'.repeat(100_000), 400, 'not a JSON object'],
      ['an id that is a number', 'NetworkDriver.Leave', { NetworkID: NET_ID, EndpointID: 7 }, 400, '"EndpointID" must be a string'],
      ['an id with a path in it', 'NetworkDriver.DeleteEndpoint', { NetworkID: NET_ID, EndpointID: '../../etc' }, 400, 'is not a Docker id'],
      ['an id with \\xff', 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: 'c\u00ff', Interface: { Address: '10.99.0.9/32' } }, 400, 'is not a Docker id'],
      ['a sandbox key that is an object', 'NetworkDriver.Join', { NetworkID: NET_ID, EndpointID: EP_ID, SandboxKey: { a: 1 } }, 400, '"SandboxKey" must be a string'],
      ['an Interface that is a list', 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: 'c'.repeat(64), Interface: [] }, 400, '"Interface" must be an object'],
      ['a MAC that is not one', 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: 'c'.repeat(64), Interface: { Address: '10.99.0.1/32', MacAddress: 'zz' } }, 400, 'is not a MAC address'],
      ['an address that is a number', 'IpamDriver.ReleaseAddress', { PoolID: POOL, Address: 167_968_769 }, 400, '"Address" must be a string'],
      ['IPv4Data of strings', 'NetworkDriver.CreateNetwork', { NetworkID: NET_ID, IPv4Data: ['10.99.0.0/16'] }, 400, 'list of objects'],
      ['Options nested deep', 'NetworkDriver.AllocateNetwork', deep, 200, ''],
      ['Options nested deep, to CreateNetwork', 'NetworkDriver.CreateNetwork', deep, 200, 'add --ipam-driver'],
    ];
    for (const [what, method, payload, status, words] of cases) {
      const raw = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload);
      const r = await call(sock, method, undefined, { raw });
      expect(r.status, what).toBe(status);
      if (words !== '') expect(String(r.body.Err), what).toContain(words);
    }
    // The deep AllocateNetwork is answered with the string options only (none here).
    expect((await call(sock, 'NetworkDriver.AllocateNetwork', undefined, { raw: deep })).body).toEqual({ Options: {} });
    expect(await state()).toEqual(before);
    await stillServes();
  });

  test('unknown endpoints, another network\'s endpoint and addresses weft did not give are refused by name', async () => {
    const before = await state();
    const other = 'f'.repeat(64);
    for (const m of ['Join', 'Leave', 'DeleteEndpoint', 'EndpointOperInfo']) {
      const unknown = await call(sock, `NetworkDriver.${m}`, { NetworkID: NET_ID, EndpointID: other, SandboxKey: '/sb' });
      expect(unknown.body.Err, m).toBe(`${m}: weft knows no endpoint ffffffffffff`);
      const wrongNet = await call(sock, `NetworkDriver.${m}`, { NetworkID: other, EndpointID: EP_ID, SandboxKey: '/sb' });
      expect(wrongNet.body.Err, m).toBe(`${m}: endpoint bbbbbbbbbbbb is on network aaaaaaaaaaaa, not ffffffffffff`);
    }
    const victimAddr = String((before as { victim: { Value: { addr: string } } }).victim.Value.addr);
    const again = await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: NET_ID, EndpointID: EP_ID, Interface: { Address: `${victimAddr}/32` } });
    expect(again.body.Err).toContain('exists already');
    const stolen = await call(sock, 'NetworkDriver.CreateEndpoint', { NetworkID: other, EndpointID: other, Interface: { Address: `${victimAddr}/32` } });
    expect(stolen.body.Err).toBe(`${victimAddr} belongs to endpoint bbbbbbbbbbbb already`);
    expect((await call(sock, 'IpamDriver.ReleaseAddress', { PoolID: POOL, Address: '10.99.0.200' })).body.Err).toContain('did not hand out 10.99.0.200');
    expect((await call(sock, 'IpamDriver.ReleaseAddress', { PoolID: 'weft-10.0.0.0/8', Address: victimAddr })).body.Err).toContain('is not weft\'s');
    expect((await call(sock, 'NetworkDriver.DeleteNetwork', { NetworkID: other })).body).toEqual({});
    expect(await state()).toEqual(before);
    await stillServes();
  });

  test('a client that never finishes its headers or its body is answered 408 and cut off', async () => {
    const before = await state();
    const headers = await rawExchange(sock, 'POST /NetworkDriver.Join HTTP/1.1\r\nHost: x\r\nContent-Le');
    expect(parseRaw(headers.text)).toEqual({ status: 408, body: expect.objectContaining({ Err: 'the request did not arrive within 0.4 s' }) });
    const body = await rawExchange(sock, `POST /NetworkDriver.Leave HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n{"EndpointID":"${EP_ID}"`);
    expect(parseRaw(body.text)).toEqual({ status: 408, body: expect.objectContaining({ Err: 'request body did not arrive within 0.4 s' }) });
    // A connection that never says anything is closed too.
    expect((await rawExchange(sock, '')).text).toContain('408');
    expect(fake.state.lefts).toEqual([]);
    expect(await state()).toEqual(before);
    await stillServes();
  });

  test('bytes that are not HTTP get a 400 in JSON', async () => {
    const r = await rawExchange(sock, '\x00\x01\x02 not http\r\n\r\n');
    const { status, body } = parseRaw(r.text);
    expect(status).toBe(400);
    expect(String(body.Err)).toContain('is not HTTP the plugin protocol can read');
    await stillServes();
  });

  test('requests past the in-flight bound are told the plugin is busy; those in flight complete', async () => {
    let open!: () => void;
    fake.state.allocateGate = new Promise<void>((r) => (open = r));
    const held = Array.from({ length: 4 }, () => call(sock, 'IpamDriver.RequestAddress', { PoolID: POOL }));
    await waitFor(() => fake.state.allocating === 4, { timeoutMs: 10_000, intervalMs: 10, what: 'four allocations to be waiting' });
    const allocatedBefore = fake.state.allocated.size;
    const refused = await Promise.all(Array.from({ length: 12 }, () => call(sock, 'NetworkDriver.Join', { NetworkID: NET_ID, EndpointID: EP_ID, SandboxKey: '/x' })));
    for (const r of refused) {
      expect(r.status).toBe(503);
      expect(r.body.Err).toBe('weft\'s docker plugin is busy with 4 requests; try again');
    }
    expect(fake.state.joins).toHaveLength(1); // only the victim's own Join
    open();
    const served = await Promise.all(held);
    expect(served.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(fake.state.allocated.size).toBe(allocatedBefore + 4);
    await stillServes();
  });

  test('many connections at once: past the bound they are closed, and all go in time', async () => {
    const before = await state();
    const n = 48;
    const results = await Promise.all(Array.from({ length: n }, () => rawExchange(sock, '')));
    // Those past the 16 the plugin keeps were closed at once, without a word (all 32 of them
    // unless the machine stalled past the 400 ms timeout while connecting); the ones it kept
    // were answered 408 when their request did not come.
    const silent = results.filter((r) => r.text === '').length;
    expect(silent).toBeGreaterThan(0);
    for (const r of results.filter((x) => x.text !== '')) expect(parseRaw(r.text).status).toBe(408);
    expect(await state()).toEqual(before);
    await stillServes();
  });
});
