// Benchmark: container data plane throughput and attach latency, against the raw tunnels it is
// built on, measured in the same run between the same two harness hosts.
//
//   node bench/dataplane.ts [--modes encrypted,fast] [--rounds 3] [--time 5] [--attaches 50]
//
// Throughput (iperf3, one TCP stream, h1 → h2), per mode, rounds interleaved:
//   weft encrypted: container namespace on h1 → container namespace on h2 (veth, bridge, routing,
//     wireguard-go, and back out through routing, bridge, veth)
//   raw wireguard-go: a plain wg tunnel between the two host namespaces (same MTU 1420)
//   weft fast: the same container path over kernel VXLAN
//   raw VXLAN: a point-to-point VXLAN device between the two host namespaces (same MTU 1450)
// Attach latency: from the attach() call on h1 until a container on h2 gets an echo reply from
// the new container, with h2's sync (what gossip would trigger) right after attach() returns.
// The namespace is created before the clock starts (Docker creates it, not us).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Harness, type Host } from '../test/harness/harness.ts';
import { mustRun, run } from '../test/harness/run.ts';
import { containerNs, deleteNamespace, makeNamespace, nsPath, nsRun, ping, TestMesh } from '../test/dataplane/fixture.ts';
import type { Mode } from '../mesh/network/dataplane/plan.ts';
import { daemonPids, WG_SOCKET_DIR } from '../mesh/network/dataplane/wireguard.ts';
import { printEnvironment } from './lib/env.ts';
import { median, ms, printTable, quantile, ratio } from './lib/stats.ts';
import { now, sleep } from './lib/time.ts';
import fs from 'node:fs';

/** Ports of the raw anchors: apart from weft's 6783/6784 so both can exist at once. */
const RAW_WG_PORT = 51820;
const RAW_VXLAN_PORT = 4789;
const RAW_VNI = 99;
const IPERF_PORT = 5201;
/** An echo not answered within this many attempts means the attach failed. */
const MAX_PING_ATTEMPTS = 50;
/** Targets from the brief: the overlay's cost over the tunnel it uses. */
const TARGET = { encrypted: 0.9, fast: 0.8 } as const;

const { values: opt } = parseArgs({
  options: {
    modes: { type: 'string', default: 'encrypted,fast' },
    rounds: { type: 'string', default: '3' },
    time: { type: 'string', default: '5' },
    attaches: { type: 'string', default: '50' },
  },
});
const modes = opt.modes.split(',') as Mode[];
const rounds = Number(opt.rounds);
const seconds = Number(opt.time);
const attaches = Number(opt.attaches);
for (const m of modes) if (m !== 'encrypted' && m !== 'fast') throw new Error(`--modes: "${m}" is not encrypted or fast`);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error(`--rounds must be 1..20, got ${rounds}`);
if (!Number.isInteger(seconds) || seconds < 1 || seconds > 60) throw new Error(`--time must be 1..60 s, got ${seconds}`);
if (!Number.isInteger(attaches) || attaches < 0 || attaches > 500) throw new Error(`--attaches must be 0..500, got ${attaches}`);

function version(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5_000 });
  return ((r.stdout || r.stderr || 'unknown').split('\n')[0] ?? '').trim();
}

/** A raw anchor tunnel between h1 and h2: its name per host and the addresses to use. */
interface Raw {
  name: string;
  addr: (h: Host) => string;
  teardown: () => Promise<void>;
}

async function rawWireguard(mesh: Harness, h1: Host, h2: Host): Promise<Raw> {
  const name = (h: Host) => `wr${mesh.id}h${h.n}`;
  const addr = (h: Host) => `10.99.1.${h.n}`;
  const keys = new Map<Host, { priv: string; pub: string }>();
  for (const h of [h1, h2]) {
    const priv = spawnSync('wg', ['genkey'], { encoding: 'utf8' }).stdout.trim();
    const pub = spawnSync('wg', ['pubkey'], { input: priv, encoding: 'utf8' }).stdout.trim();
    keys.set(h, { priv, pub });
    const keyFile = `${h.dir}/raw-wg.key`;
    fs.writeFileSync(keyFile, `${priv}\n`, { mode: 0o600 });
    await mustRun(['nsenter', `--net=${nsPath(h.ns)}`, '--', 'wireguard-go', name(h)]);
    await mustRun(['nsenter', `--net=${nsPath(h.ns)}`, '--', 'wg', 'set', name(h), 'private-key', keyFile, 'listen-port', String(RAW_WG_PORT)]);
    await mustRun(['ip', '-n', h.ns, '-batch', '-'], { input: `addr add ${addr(h)}/24 dev ${name(h)}\nlink set ${name(h)} mtu 1420 up\n` });
  }
  for (const [a, b] of [[h1, h2], [h2, h1]] as const) {
    await mustRun(['nsenter', `--net=${nsPath(a.ns)}`, '--', 'wg', 'set', name(a), 'peer', keys.get(b)!.pub, 'endpoint', `${b.ip}:${RAW_WG_PORT}`, 'allowed-ips', `${addr(b)}/32`]);
  }
  return {
    name: 'raw wireguard-go',
    addr,
    teardown: async () => {
      for (const h of [h1, h2]) {
        await run(['ip', '-n', h.ns, 'link', 'del', name(h)]);
        for (const pid of daemonPids(name(h))) process.kill(pid, 'SIGKILL');
        fs.rmSync(`${WG_SOCKET_DIR}/${name(h)}.sock`, { force: true });
      }
    },
  };
}

async function rawVxlan(h1: Host, h2: Host): Promise<Raw> {
  const addr = (h: Host) => `10.99.2.${h.n}`;
  for (const [a, b] of [[h1, h2], [h2, h1]] as const) {
    await mustRun(['ip', '-n', a.ns, '-batch', '-'], {
      input: `link add vxraw mtu 1450 type vxlan id ${RAW_VNI} dstport ${RAW_VXLAN_PORT} local ${a.ip} remote ${b.ip}\naddr add ${addr(a)}/24 dev vxraw\nlink set vxraw up\n`,
    });
  }
  return { name: 'raw VXLAN', addr, teardown: async () => void (await Promise.all([h1, h2].map((h) => run(['ip', '-n', h.ns, 'link', 'del', 'vxraw'])))) };
}

/** iperf3 servers we started, so they can be stopped by pid. */
const servers: ChildProcess[] = [];

function iperfServer(ns: string): void {
  const p = spawn('nsenter', [`--net=${nsPath(ns)}`, '--', 'iperf3', '-s', '-p', String(IPERF_PORT)], { stdio: 'ignore' });
  servers.push(p);
}

/** One iperf3 TCP run from namespace `from` to `to`; Gbit/s received. */
async function iperf(from: string, to: string): Promise<number> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    const r = await nsRun(from, ['iperf3', '-c', to, '-p', String(IPERF_PORT), '-t', String(seconds), '-J'], (seconds + 20) * 1000);
    if (r.code === 0) {
      const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
      return j.end.sum_received.bits_per_second / 1e9;
    }
    await sleep(500); // server not listening yet
  }
  throw new Error(`iperf3 from ${from} to ${to} failed three times`);
}

async function throughput(mesh: Harness, tm: TestMesh, mode: Mode): Promise<{ weft: number[]; raw: number[]; rawName: string }> {
  const [h1, h2] = mesh.hosts as [Host, Host];
  const client = await tm.attach(h1, 0, '10.32.1.10');
  const server = await tm.attach(h2, 0, '10.32.2.10');
  await tm.syncAll();
  const raw = mode === 'encrypted' ? await rawWireguard(mesh, h1, h2) : await rawVxlan(h1, h2);
  try {
    iperfServer(server.ns);
    iperfServer(h2.ns);
    await sleep(300);
    if (!(await ping(client.ns, server.addr, 2)) || !(await ping(h1.ns, raw.addr(h2), 2))) throw new Error(`${mode}: the paths do not work before measuring`);
    const out = { weft: [] as number[], raw: [] as number[], rawName: raw.name };
    for (let r = 1; r <= rounds; r++) {
      // Alternate which goes first, so neither always runs on a warmer machine.
      const order = r % 2 === 1 ? (['raw', 'weft'] as const) : (['weft', 'raw'] as const);
      for (const which of order) {
        const g = which === 'weft' ? await iperf(client.ns, server.addr) : await iperf(h1.ns, raw.addr(h2));
        out[which].push(g);
        console.log(`  ${mode} round ${r}: ${which === 'weft' ? `weft ${mode}` : raw.name} ${g.toFixed(2)} Gbit/s`);
      }
    }
    return out;
  } finally {
    for (const p of servers.splice(0)) p.kill('SIGKILL');
    await raw.teardown();
    await tm.detach(client);
    await tm.detach(server);
  }
}

async function attachLatency(mesh: Harness, tm: TestMesh): Promise<{ call: number[]; reachable: number[] }> {
  const [h1, h2] = mesh.hosts as [Host, Host];
  const watcher = await tm.attach(h2, 0, '10.32.2.10');
  await tm.syncAll();
  const call: number[] = [];
  const reachable: number[] = [];
  try {
    for (let i = 0; i < attaches; i++) {
      const k = 1 + (i % 8);
      const ns = containerNs(mesh, h1, k);
      const addr = `10.32.1.${100 + (i % 100)}`;
      await makeNamespace(ns);
      const t0 = now();
      const { mac } = await tm.plane(h1).attach(nsPath(ns), addr);
      const t1 = now();
      const c = { ns, addr, host: h1, mac };
      tm.containers.push(c);
      await tm.plane(h2).sync(tm.view());
      let ok = false;
      for (let a = 0; a < MAX_PING_ATTEMPTS && !ok; a++) ok = await ping(watcher.ns, addr, 1);
      const t2 = now();
      if (!ok) throw new Error(`attach #${i}: ${addr} never answered`);
      call.push(t1 - t0);
      reachable.push(t2 - t0);
      await tm.detach(c);
      await deleteNamespace(ns);
    }
  } finally {
    await tm.detach(watcher);
  }
  return { call, reachable };
}

async function main(): Promise<void> {
  printEnvironment('dataplane');
  console.log(`tools: ${version('wireguard-go', ['--version'])}, ${version('iperf3', ['--version'])}, ${version('ip', ['-V'])}`);
  console.log(`iperf3: 1 TCP stream h1 → h2, ${seconds} s per run, ${rounds} rounds per system (interleaved); attach latency over ${attaches} attaches\n`);
  const mesh = await Harness.create({ hosts: 2, name: 'bench.dataplane' });
  const rows: string[][] = [];
  const latRows: string[][] = [];
  const verdicts: string[] = [];
  try {
    for (const mode of modes) {
      const tm = new TestMesh(mesh, mode);
      try {
        for (const h of mesh.hosts) await tm.start(h);
        const t = await throughput(mesh, tm, mode);
        const w = median(t.weft);
        const r = median(t.raw);
        rows.push([`weft ${mode}`, w.toFixed(2), t.weft.map((x) => x.toFixed(2)).join(' '), t.rawName, r.toFixed(2), t.raw.map((x) => x.toFixed(2)).join(' '), ratio(w, r)]);
        verdicts.push(`${mode}: weft/${t.rawName} = ${ratio(w, r)} (target ≥ ${TARGET[mode]}: ${w / r >= TARGET[mode] ? 'met' : 'NOT met'})`);
        if (attaches > 0) {
          const l = await attachLatency(mesh, tm);
          latRows.push([mode, String(l.call.length), ms(median(l.call)), ms(quantile(l.call, 0.99)), ms(median(l.reachable)), ms(quantile(l.reachable, 0.99))]);
        }
        for (const dp of tm.planes.values()) await dp.reset();
      } finally {
        await tm.cleanup();
      }
    }
  } finally {
    for (const p of servers.splice(0)) p.kill('SIGKILL');
    await mesh.cleanup();
  }
  console.log('\nthroughput, Gbit/s (median of rounds)');
  printTable(['system', 'median', 'rounds', 'anchor', 'median', 'rounds', 'ratio'], rows);
  if (latRows.length > 0) {
    console.log('\nattach latency, ms (attach() call; until pingable from a container on the other host)');
    printTable(['mode', 'n', 'call p50', 'call p99', 'pingable p50', 'pingable p99'], latRows);
  }
  console.log('');
  for (const v of verdicts) console.log(v);
}

await main();
