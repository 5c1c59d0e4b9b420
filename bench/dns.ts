// Benchmark: weft's DNS server against dnsmasq serving the same names, with dnsperf, on the
// same machine in the same run.
//
//   node bench/dns.ts [--rounds 5] [--duration 10] [--rate 5000] [--rate-duration 10]
//                     [--services 50] [--per-service 4] [--clients 8] [--threads 1]
//                     [--outstanding 200] [--workers 0] [--churn 10] [--pin] [--feeder registry|records]
//
// Names: a stack `shop` of --services services with --per-service containers each; every
// container name (one address) and every service name (all its containers' addresses) is
// queried for A, each once per pass of the query file. dnsmasq serves the same names from a
// hosts file (one line per name and address, so a service name holds all its addresses);
// the answers of both are compared for every name before anything is timed.
//
// All servers run for the whole benchmark on loopback (weft 127.0.53.1, dnsmasq .2, weft
// with churn .3), and one at a time is measured, in an order that rotates every round:
// - saturation: dnsperf with --clients sockets on --threads threads, --outstanding queries in
//   flight, for --duration s; queries per second. The CPU time the server process used per
//   answered query (user + system, from /proc) is printed too: on a shared 2-core machine it
//   is the steadier measure of cost.
// - latency at --rate qps: dnsperf -Q for --rate-duration s; every answer's latency from its
//   verbose output; p50, p99, max.
// - with --churn record changes per second (weft only: a container moves to another address
//   while it is measured, which rebuilds the zone, as gossip would): the same two figures.
// A ratio is the median over --rounds rounds of weft's figure over dnsmasq's in the same
// round (the machine's load drifts; a round's runs are close in time), with the range.
// weft runs with --workers UDP threads (0: UDP on the main thread). --pin puts the servers on
// CPU 1 and dnsperf on CPU 0 (taskset), for both systems alike.
// Targets: saturation ratio weft/dnsmasq >= 0.8; p99 ratio weft/dnsmasq <= 1.5.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ContainerRecord } from '../dns/records.ts';
import type { DnsBenchSpec } from './lib/dns-server.ts';
import { median, printTable, quantile } from './lib/stats.ts';
import { sleep, withTimeout } from './lib/time.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NODE = process.execPath;
const WEFT_HOST = '127.0.53.1';
const DNSMASQ_HOST = '127.0.53.2';
const CHURN_HOST = '127.0.53.3';
/** sysconf(_SC_CLK_TCK) on Linux x86-64. */
const CLOCK_TICKS = 100;
const SATURATION_TARGET = 0.8;
const P99_TARGET = 1.5;
/** Long enough for either server to come up on a loaded machine. */
const START_TIMEOUT_MS = 15_000;
/** Before each measurement: long enough for V8 to optimize the hot path. */
const WARMUP_S = 2;

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '10' },
    rate: { type: 'string', default: '5000' },
    'rate-duration': { type: 'string', default: '10' },
    services: { type: 'string', default: '50' },
    'per-service': { type: 'string', default: '4' },
    clients: { type: 'string', default: '8' },
    threads: { type: 'string', default: '1' },
    outstanding: { type: 'string', default: '200' },
    workers: { type: 'string', default: '0' },
    feeder: { type: 'string', default: 'registry' },
    churn: { type: 'string', default: '10' },
    pin: { type: 'boolean', default: false },
  },
});
const int = (name: keyof typeof opt, lo: number, hi: number): number => {
  const v = Number(opt[name]);
  if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`--${name} must be a whole number from ${lo} to ${hi}, got ${opt[name]}`);
  return v;
};
const rounds = int('rounds', 1, 50);
const duration = int('duration', 1, 600);
const rate = int('rate', 1, 1_000_000);
const rateDuration = int('rate-duration', 1, 600);
const services = int('services', 1, 250);
const perService = int('per-service', 1, 250);
const clients = int('clients', 1, 256);
const threads = int('threads', 1, 64);
const outstanding = int('outstanding', 1, 65_535);
const workers = int('workers', 0, 16);
const feeder = opt.feeder as 'registry' | 'records';
if (feeder !== 'registry' && feeder !== 'records') throw new Error(`--feeder must be registry or records, got ${feeder}`);
const churn = int('churn', 0, 1000);
const pin = opt.pin === true;

// ---- Names, in the forms each server reads -------------------------------------------------

const containers: ContainerRecord[] = [];
const hostLines: string[] = [];
const queryLines: string[] = [];
for (let s = 0; s < services; s++) {
  for (let i = 1; i <= perService; i++) {
    const addr = `10.32.${s}.${i}`;
    containers.push({ name: `svc${s}-${i}`, stack: 'shop', service: `svc${s}`, addrs: [addr] });
    hostLines.push(`${addr} svc${s}-${i}.shop.weft.local`, `${addr} svc${s}.shop.weft.local`);
    queryLines.push(`svc${s}-${i}.shop.weft.local A`);
  }
  queryLines.push(`svc${s}.shop.weft.local A`);
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-dns-'));
const hostsFile = path.join(dir, 'hosts');
const queryFile = path.join(dir, 'queries');
fs.writeFileSync(hostsFile, hostLines.join('\n') + '\n');
fs.writeFileSync(queryFile, queryLines.join('\n') + '\n');

// ---- Processes -----------------------------------------------------------------------------

const children = new Set<ChildProcess>();
function cleanup(): void {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

const pinned = (cpu: number, cmd: string, args: string[]): [string, string[]] => (pin ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args]);

interface Server {
  name: string;
  host: string;
  port: number;
  proc: ChildProcess;
  churn?: boolean;
}

async function startWeft(withChurn: number, host: string): Promise<Server> {
  const spec: DnsBenchSpec = { host, port: 0, containers, churn: withChurn, workers, feeder };
  const specFile = path.join(dir, `weft-${withChurn}.json`);
  fs.writeFileSync(specFile, JSON.stringify(spec));
  const [cmd, args] = pinned(1, NODE, [path.join(ROOT, 'bench/lib/dns-server.ts'), specFile]);
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } });
  children.add(proc);
  const lines = readline.createInterface({ input: proc.stdout! });
  const ready = new Promise<string>((resolve, reject) => {
    lines.on('line', (l) => l.startsWith('ready ') && resolve(l.slice(6)));
    proc.once('exit', (code) => reject(new Error(`the weft DNS server exited with ${code} before it was ready`)));
  });
  const addr = await withTimeout(ready, START_TIMEOUT_MS, 'weft DNS server start');
  const port = Number(addr.split(':')[1]);
  return { name: withChurn ? `weft +${withChurn}/s` : 'weft', host, port, proc, churn: withChurn > 0 };
}

async function startDnsmasq(): Promise<Server> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 40_000);
    const [cmd, args] = pinned(1, 'dnsmasq', [
      '--keep-in-foreground', '--no-resolv', '--no-hosts', `--addn-hosts=${hostsFile}`,
      `--listen-address=${DNSMASQ_HOST}`, '--bind-interfaces', `--port=${port}`, '--pid-file=', '--user=root',
      '--log-facility=/dev/null',
    ]);
    const proc = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(proc);
    let exited = false;
    proc.once('exit', () => (exited = true));
    for (let i = 0; i < 50 && !exited; i++) {
      if (answers(DNSMASQ_HOST, port, 'svc0.shop.weft.local').length) return { name: 'dnsmasq', host: DNSMASQ_HOST, port, proc };
      await sleep(100);
    }
    proc.kill('SIGKILL');
    children.delete(proc);
  }
  throw new Error('dnsmasq did not start (is the Debian package dnsmasq installed?)');
}

async function stop(s: Server): Promise<void> {
  const exited = new Promise<void>((r) => (s.proc.exitCode !== null ? r() : s.proc.once('exit', () => r())));
  s.proc.kill('SIGTERM');
  await withTimeout(exited, 10_000, `${s.name} stop`).catch(() => s.proc.kill('SIGKILL'));
  children.delete(s.proc);
}

/** The sorted A answers for a name, by dig. */
function answers(host: string, port: number, name: string): string[] {
  const r = spawnSync('dig', [`@${host}`, '-p', String(port), name, 'A', '+short', '+time=1', '+tries=1'], { encoding: 'utf8', timeout: 5_000 });
  return r.status === 0 ? r.stdout.split('\n').filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l)).sort() : [];
}

/** User + system CPU ticks of a process (all threads). */
function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

interface PerfResult {
  qps: number;
  completed: number;
  lost: number;
  cpuUsPerQuery: number;
  latencies: number[];
}

async function dnsperf(s: Server, extra: string[], verbose: boolean): Promise<PerfResult> {
  const serverPid = s.proc.pid!; // taskset execs the server: the pid is the server's own
  const t0 = cpuTicks(serverPid);
  const [cmd, args] = pinned(0, 'dnsperf', ['-s', s.host, '-p', String(s.port), '-d', queryFile, ...extra, ...(verbose ? ['-v'] : [])]);
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  const latencies: number[] = [];
  let text = '';
  const lines = readline.createInterface({ input: proc.stdout! });
  const closed = new Promise((r) => lines.once('close', r));
  lines.on('line', (l) => {
    if (l.startsWith('> ')) {
      const v = Number(l.slice(l.lastIndexOf(' ') + 1));
      if (Number.isFinite(v) && l.startsWith('> NOERROR')) latencies.push(v * 1000);
    } else text += l + '\n';
  });
  const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  await closed;
  children.delete(proc);
  const t1 = cpuTicks(serverPid);
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  const completed = num(/Queries completed:\s+(\d+)/);
  if (code !== 0 || !Number.isFinite(completed)) throw new Error(`dnsperf against ${s.name} failed (exit ${code}):\n${text}`);
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    completed,
    lost: num(/Queries lost:\s+(\d+)/),
    cpuUsPerQuery: ((t1 - t0) / CLOCK_TICKS) * 1e6 / completed,
    latencies,
  };
}

const saturate = (s: Server) => dnsperf(s, ['-l', String(duration), '-c', String(clients), '-T', String(threads), '-q', String(outstanding)], false);
const warm = (s: Server) => dnsperf(s, ['-l', String(WARMUP_S), '-c', String(clients), '-T', String(threads), '-q', String(outstanding)], false);
const paced = (s: Server) => dnsperf(s, ['-l', String(rateDuration), '-Q', String(rate), '-c', String(clients), '-T', String(threads), '-q', String(outstanding)], true);

// ---- The run -------------------------------------------------------------------------------

function header(): void {
  const first = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', timeout: 10_000 });
    return r.status === 0 ? `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim())?.trim() ?? 'unknown' : 'unknown';
  };
  const help = spawnSync('dnsperf', ['-h'], { encoding: 'utf8' });
  const dnsperfVersion = /Version ([\d.]+)/.exec(`${help.stdout}${help.stderr}`)?.[1] ?? 'unknown';
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`dns: weft ${first('git', ['describe', '--always', '--dirty'])}, node ${process.version}, ${first('dnsmasq', ['--version']).replace(/\s+Copyright.*/, '')}, dnsperf ${dnsperfVersion}, ${os.cpus().length} cores, load ${load}, ${new Date().toISOString()}`);
  console.log(`names: ${containers.length + services} (${services} services x ${perService} containers, plus each container), A queries; dnsperf -c ${clients} -T ${threads} -q ${outstanding}; weft UDP workers ${workers}; feeder ${feeder}${pin ? '; pinned: servers CPU 1, dnsperf CPU 0' : ''}`);
}

interface Row {
  round: number;
  system: string;
  sat: PerfResult;
  lat: PerfResult;
}

const p99Of = (r: Row) => quantile(r.lat.latencies, 0.99);

async function main(): Promise<void> {
  header();
  // All servers stay up for the whole run; one is measured at a time. The churning one
  // changes records only while it is measured (SIGUSR1 starts, SIGUSR2 pauses).
  const weft = await startWeft(0, WEFT_HOST);
  const dnsmasq = await startDnsmasq();
  const churning = churn ? await startWeft(churn, CHURN_HOST) : undefined;
  const systems = [weft, dnsmasq, ...(churning ? [churning] : [])];
  try {
    // Same names, same answers: checked before anything is timed.
    for (const name of [...new Set(queryLines.map((l) => l.split(' ')[0] as string))]) {
      const a = answers(weft.host, weft.port, name).join(',');
      const b = answers(dnsmasq.host, dnsmasq.port, name).join(',');
      if (a !== b || a === '') throw new Error(`the servers disagree on ${name}: weft ${a || 'nothing'}, dnsmasq ${b || 'nothing'}`);
    }
    for (const s of systems) await warm(s); // JIT, caches, socket buffers
    const rows: Row[] = [];
    for (let round = 1; round <= rounds; round++) {
      // The order rotates, so that no system always follows the same one.
      const order = systems.map((_, i) => systems[(i + round) % systems.length] as Server);
      const sat = new Map<Server, PerfResult>();
      for (const s of order) sat.set(s, await withChurn(s, () => saturate(s)));
      for (const s of order) rows.push({ round, system: s.name, sat: sat.get(s)!, lat: await withChurn(s, () => paced(s)) });
    }
    report(rows);
  } finally {
    for (const s of systems) await stop(s);
  }
}

async function withChurn<T>(s: Server, f: () => Promise<T>): Promise<T> {
  if (!s.churn) return f();
  s.proc.kill('SIGUSR1');
  try {
    return await f();
  } finally {
    s.proc.kill('SIGUSR2');
  }
}

function report(rows: Row[]): void {
  printTable(
    ['round', 'system', 'qps', 'lost', 'cpu µs/query', `p50 ms @${rate}`, `p99 ms @${rate}`, 'max ms', 'answers'],
    rows.map((r) => [
      String(r.round), r.system, r.sat.qps.toFixed(0), String(r.sat.lost), r.sat.cpuUsPerQuery.toFixed(2),
      quantile(r.lat.latencies, 0.5).toFixed(3), p99Of(r).toFixed(3),
      Math.max(...r.lat.latencies).toFixed(2), String(r.lat.latencies.length),
    ]),
  );
  const of = (system: string) => rows.filter((r) => r.system === system);
  const med = (system: string, f: (r: Row) => number) => median(of(system).map(f));
  /** The median over rounds of weft's figure divided by dnsmasq's in the same round: the
   *  machine's load drifts, and a round's two runs are minutes closer than the medians. */
  const pairedRatio = (system: string, f: (r: Row) => number) =>
    median(of(system).map((r) => f(r) / f(of('dnsmasq').find((d) => d.round === r.round)!)));
  const range = (system: string, f: (r: Row) => number, digits: number) => {
    const xs = of(system).map(f);
    return `${Math.min(...xs).toFixed(digits)}..${Math.max(...xs).toFixed(digits)}`;
  };
  const qps = (r: Row) => r.sat.qps;
  const cpu = (r: Row) => r.sat.cpuUsPerQuery;
  const churned = `weft +${churn}/s`;
  console.log('');
  console.log(`ratios are medians over ${rounds} rounds of weft/dnsmasq in the same round (range over rounds in brackets)`);
  console.log(`dns cpu per query: weft ${med('weft', cpu).toFixed(2)} µs, dnsmasq ${med('dnsmasq', cpu).toFixed(2)} µs, ratio weft/dnsmasq ${pairedRatio('weft', cpu).toFixed(2)}`);
  if (churn) {
    console.log(`dns saturation with ${churn} record changes/s: weft ${med(churned, qps).toFixed(0)} qps, ratio weft/dnsmasq ${pairedRatio(churned, qps).toFixed(2)} [${rangeOfRatios(churned, qps)}] (target >= ${SATURATION_TARGET.toFixed(2)})`);
    console.log(`dns p99 at ${rate} qps with ${churn} record changes/s: weft ${med(churned, p99Of).toFixed(3)} ms, ratio weft/dnsmasq ${pairedRatio(churned, p99Of).toFixed(2)} [${rangeOfRatios(churned, p99Of)}] (target <= ${P99_TARGET.toFixed(2)})`);
  }
  console.log(`dns saturation: weft ${med('weft', qps).toFixed(0)} qps [${range('weft', qps, 0)}], dnsmasq ${med('dnsmasq', qps).toFixed(0)} qps [${range('dnsmasq', qps, 0)}], ratio weft/dnsmasq ${pairedRatio('weft', qps).toFixed(2)} [${rangeOfRatios('weft', qps)}] (target >= ${SATURATION_TARGET.toFixed(2)})`);
  console.log(`dns p99 at ${rate} qps: weft ${med('weft', p99Of).toFixed(3)} ms [${range('weft', p99Of, 3)}], dnsmasq ${med('dnsmasq', p99Of).toFixed(3)} ms [${range('dnsmasq', p99Of, 3)}], ratio weft/dnsmasq ${pairedRatio('weft', p99Of).toFixed(2)} [${rangeOfRatios('weft', p99Of)}] (target <= ${P99_TARGET.toFixed(2)})`);

  function rangeOfRatios(system: string, f: (r: Row) => number): string {
    const xs = of(system).map((r) => f(r) / f(of('dnsmasq').find((d) => d.round === r.round)!));
    return `${Math.min(...xs).toFixed(2)}..${Math.max(...xs).toFixed(2)}`;
  }
}

try {
  await main();
} finally {
  cleanup();
}
