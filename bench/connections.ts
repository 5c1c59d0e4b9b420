// Benchmark: what one idle admitted mesh connection costs the peer that holds it (issue 9: does
// every peer keep a connection to every other at N = 100 and N = 1,000?).
//
//   node bench/connections.ts [--steps 0,25,50,100,200] [--variant control|bare] [--settle 20000]
//                             [--samples 5] [--interval 1000] [--window 20000]
//
// One real peer ("center") is started with `bin/weft launch` on 127.0.2.1 (mesh only). The bench
// then opens K connections to it from in-process libp2p nodes (TCP + Noise + yamux behind
// weft's admission with the mesh key, as a member dials), node i dialing from 127.0.2.(10+i) so
// admission's per-address bounds never apply. K ramps up over --steps with the same center.
//   control: each node opens the membership control stream and keeps it open; the center
//            answers as it does to any new member connection (it opens its own control stream
//            back and sends its member table), which the node reads and discards.
//   bare:    each node opens one stream on a protocol the center does not serve (refused), only
//            so that the muxer is negotiated and the center finishes the upgrade; the admitted
//            connection then holds no stream.
// Neither node is a member (it never sends a signed record), so the center keeps no member
// state, replica or IPAM channel for it: a real member costs at least this.
// After each step the center sits idle --settle ms; then, in a --window ms window, VmRSS and
// RssAnon (/proc/PID/status) and the open fds (/proc/PID/fd) are read --samples times
// --interval ms apart (median), and the center's utime+stime over the window gives its idle CPU.
// Slopes are least-squares fits over the steps; the extrapolation is intercept + slope × (N−1).
// Only the center is measured: the client nodes' cost lands in the bench process.
// MB here is 10^6 bytes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createLibp2p } from 'libp2p';
import { tcp, type TCPSocketOptions } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Libp2p, Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { meshAdmission } from '../mesh/admission/admission.ts';
import { deriveMeshKey } from '../mesh/admission/mesh-key.ts';
import { MEMBERSHIP_PROTOCOL } from '../mesh/membership/wire.ts';
import { printEnvironment } from './lib/env.ts';
import { cpuSeconds, statusBytes } from './lib/scale-procs.ts';
import { median, printTable } from './lib/stats.ts';
import { now, sleep, withTimeout } from './lib/time.ts';

const WEFT_BIN = fileURLToPath(new URL('../bin/weft', import.meta.url));
const CENTER_HOST = '127.0.2.1';
const CENTER_PORT = 6783;
const CLIENT_BASE = 10;
/** 127.0.2.10 .. 127.0.2.254. */
const MAX_CLIENTS = 245;
const START_TIMEOUT_MS = 60_000;
const DIAL_TIMEOUT_MS = 15_000;
/** Connections opened at once: the center runs one CPace handshake per connection. */
const DIAL_CONCURRENCY = 8;
const STOP_TIMEOUT_MS = 10_000;
/** A protocol the center does not serve: negotiating it makes the muxer (bare variant). */
const UNSERVED_PROTOCOL = '/weft-bench/none/1.0.0';

const { values: opt } = parseArgs({
  options: {
    steps: { type: 'string', default: '0,25,50,100,200' },
    variant: { type: 'string', default: 'control' },
    settle: { type: 'string', default: '20000' },
    samples: { type: 'string', default: '5' },
    interval: { type: 'string', default: '1000' },
    window: { type: 'string', default: '20000' },
  },
});
const steps = opt.steps.split(',').map(Number);
const variant = opt.variant;
const settleMs = Number(opt.settle);
const samples = Number(opt.samples);
const intervalMs = Number(opt.interval);
const windowMs = Number(opt.window);
if (steps.length < 2 || steps.some((k, i) => !Number.isInteger(k) || k < 0 || k > MAX_CLIENTS || (i > 0 && k <= (steps[i - 1] as number)))) {
  throw new Error(`--steps must be at least two increasing integers in 0..${MAX_CLIENTS}, got ${opt.steps}`);
}
if (variant !== 'control' && variant !== 'bare') throw new Error(`--variant must be control or bare, got ${variant}`);
if (!Number.isInteger(settleMs) || settleMs < 0 || settleMs > 600_000) throw new Error('--settle must be 0..600000 ms');
if (!Number.isInteger(samples) || samples < 1 || samples > 100) throw new Error('--samples must be 1..100');
if (!Number.isInteger(intervalMs) || intervalMs < 10 || intervalMs > 60_000) throw new Error('--interval must be 10..60000 ms');
if (!Number.isInteger(windowMs) || windowMs < (samples - 1) * intervalMs || windowMs > 600_000) throw new Error('--window must cover the samples and be ≤ 600000 ms');

// ---- cleanup ----------------------------------------------------------------------------------

let center: { child: ChildProcess; pid: number; exit: string | undefined; log: string } | undefined;
const clients: Libp2p[] = [];
let tmp: string | undefined;

function killCenterSync(): void {
  if (center && center.exit === undefined) center.child.kill('SIGKILL');
}

async function cleanup(): Promise<void> {
  killCenterSync();
  await withTimeout(Promise.allSettled(clients.map((c) => c.stop())), STOP_TIMEOUT_MS, 'stopping the client nodes').catch(() => undefined);
  clients.length = 0;
  for (let i = 0; i < 250 && center && center.exit === undefined; i++) await sleep(20);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    killCenterSync();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    process.exit(130);
  });
}
process.once('exit', () => {
  killCenterSync();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---- /proc (VmRSS, RssAnon and CPU: bench/lib/scale-procs.ts) ---------------------------------

const fdCount = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length;

function maxOpenFiles(pid: number): string {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m ? `soft ${m[1]}, hard ${m[2]}` : 'unknown';
}

/** Established TCP connections on the center's mesh port, as the kernel sees them. */
function establishedAtCenter(): number {
  const r = spawnSync('ss', ['-Htn', 'state', 'established', 'src', `${CENTER_HOST}:${CENTER_PORT}`], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.split('\n').filter((l) => l.trim() !== '').length : NaN;
}

// ---- center and clients -------------------------------------------------------------------------

async function startCenter(dir: string, passwordFile: string): Promise<void> {
  const log = path.join(dir, 'center.log');
  const fd = fs.openSync(log, 'a');
  try {
    const child = spawn(WEFT_BIN, [
      'launch', '--data-dir', path.join(dir, 'p'), '--listen', `${CENTER_HOST}:${CENTER_PORT}`, '--name', 'center',
      '--password-file', passwordFile, '--no-dataplane', '--dns-listen', 'off', '--metrics-listen', 'off', '--plugin-name', 'off',
    ], { stdio: ['ignore', fd, fd] });
    if (child.pid === undefined) throw new Error('cannot start bin/weft');
    const c = { child, pid: child.pid, exit: undefined as string | undefined, log };
    child.on('exit', (code, signal) => { c.exit = signal ?? `code ${code}`; });
    child.on('error', (e) => { c.exit ??= `error ${e.message}`; });
    center = c;
  } finally {
    fs.closeSync(fd);
  }
  const deadline = now() + START_TIMEOUT_MS;
  for (let i = 0; i < START_TIMEOUT_MS / 100 + 1 && now() < deadline; i++) {
    if (center.exit !== undefined) throw new Error(`center exited (${center.exit}): ${logTail()}`);
    if (fs.readFileSync(log, 'utf8').includes('peer started')) return;
    await sleep(100);
  }
  throw new Error(`center did not start within ${START_TIMEOUT_MS} ms: ${logTail()}`);
}

/** What `bin/weft` runs, decided as it decides (dist/ when newer than every source, else the
 *  sources through type stripping, ~20 MB more): figures compare only within one kind. */
function weftEntry(): string {
  const root = path.dirname(path.dirname(WEFT_BIN));
  const dirs = ['mesh', 'cli', 'dns', 'scheduler', 'provisioner'].filter((d) => fs.existsSync(path.join(root, d)));
  const stale = spawnSync('find', [...dirs, '-name', '*.ts', '-newer', 'dist/.stamp', '-print', '-quit'], { cwd: root, encoding: 'utf8', timeout: 10_000 });
  return fs.existsSync(path.join(root, 'dist/.stamp')) && stale.status === 0 && stale.stdout.trim() === '' ? 'compiled dist/' : 'TypeScript sources (dist/ missing or older)';
}

function logTail(): string {
  try {
    return fs.readFileSync(center?.log ?? '', 'utf8').split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}

const target = multiaddr(`/ip4/${CENTER_HOST}/tcp/${CENTER_PORT}`);
/** The control streams the clients hold open (control variant), kept so they stay referenced. */
const held: Stream[] = [];

function drain(stream: Stream): void {
  void (async () => {
    try {
      for await (const _ of stream) { /* discard the center's member table */ }
    } catch { /* reset */ }
  })();
}

async function openClient(i: number, key: Uint8Array): Promise<void> {
  const localAddress = `127.0.2.${CLIENT_BASE + i}`;
  const node = await createLibp2p({
    transports: [tcp({ dialOpts: { localAddress } as TCPSocketOptions })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: meshAdmission({ key }),
    connectionMonitor: { enabled: false },
  });
  clients.push(node);
  if (variant === 'control') {
    // The center opens its own control stream back to send its member table.
    await node.handle(MEMBERSHIP_PROTOCOL, (stream: Stream) => drain(stream), { maxInboundStreams: 4 });
    const s = await node.dialProtocol(target, MEMBERSHIP_PROTOCOL, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) });
    drain(s);
    held.push(s);
  } else {
    const refused = await node.dialProtocol(target, UNSERVED_PROTOCOL, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) }).then(() => false, () => true);
    if (!refused) throw new Error(`the center accepted ${UNSERVED_PROTOCOL}`);
    if (node.getConnections().length !== 1) throw new Error(`client ${localAddress}: no connection after the refused stream`);
  }
}

async function rampTo(k: number, key: Uint8Array): Promise<void> {
  const todo: number[] = [];
  for (let i = clients.length; i < k; i++) todo.push(i);
  let next = 0;
  await Promise.all(Array.from({ length: DIAL_CONCURRENCY }, async () => {
    while (next < todo.length) await openClient(todo[next++] as number, key);
  }));
}

// ---- measurement --------------------------------------------------------------------------------

interface Step {
  k: number;
  rss: number;
  anon: number;
  fds: number;
  cpu: number;
  tcp: number;
  clientConns: number;
}

async function measure(k: number): Promise<Step> {
  const pid = (center as { pid: number }).pid;
  const rss: number[] = [];
  const anon: number[] = [];
  const fds: number[] = [];
  const cpu0 = cpuSeconds(pid);
  const t0 = now();
  for (let i = 0; i < samples; i++) {
    if (i > 0) await sleep(intervalMs);
    rss.push(statusBytes(pid, 'VmRSS'));
    anon.push(statusBytes(pid, 'RssAnon'));
    fds.push(fdCount(pid));
  }
  await sleep(Math.max(0, windowMs - (now() - t0)));
  const cpu = (cpuSeconds(pid) - cpu0) / ((now() - t0) / 1000);
  return {
    k, rss: median(rss), anon: median(anon), fds: median(fds), cpu,
    tcp: establishedAtCenter(), clientConns: clients.reduce((n, c) => n + c.getConnections().length, 0),
  };
}

/** Least squares y = a + b·x. */
function fit(xs: readonly number[], ys: readonly number[]): { a: number; b: number; r2: number } {
  const n = xs.length;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = (xs[i] as number) - mx;
    const dy = (ys[i] as number) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  const b = sxx > 0 ? sxy / sxx : NaN;
  return { a: my - b * mx, b, r2: syy > 0 ? (sxy * sxy) / (sxx * syy) : NaN };
}

const mb = (b: number) => (Number.isFinite(b) ? (b / 1e6).toFixed(1) : '–');

async function main(): Promise<void> {
  printEnvironment('bench/connections');
  console.log(`connections: variant ${variant}, steps ${steps.join(',')}, idle ${settleMs} ms after each step, then a ${windowMs} ms window (${samples} samples ${intervalMs} ms apart)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-connections-'));
  const passwordFile = path.join(tmp, 'password');
  const password = crypto.randomBytes(18).toString('base64');
  fs.writeFileSync(passwordFile, password, { mode: 0o600 });
  const key = deriveMeshKey(password);
  const entry = weftEntry();
  await startCenter(tmp, passwordFile);
  const pid = (center as { pid: number }).pid;
  console.log(`center pid ${pid}, exe ${fs.readlinkSync(`/proc/${pid}/exe`)}, max open files ${maxOpenFiles(pid)}, runs the ${entry}`);

  const results: Step[] = [];
  for (const k of steps) {
    const t0 = now();
    await rampTo(k, key);
    const rampMs = now() - t0;
    await sleep(settleMs);
    if (center?.exit !== undefined) throw new Error(`center exited (${center?.exit}): ${logTail()}`);
    const r = await measure(k);
    results.push(r);
    console.log(`K=${k}: opened in ${(rampMs / 1000).toFixed(1)} s; VmRSS ${mb(r.rss)} MB, RssAnon ${mb(r.anon)} MB, fds ${r.fds}, CPU ${(r.cpu * 100).toFixed(2)}%, center TCP established ${r.tcp}, client connections ${r.clientConns}`);
  }
  const warnings = fs.readFileSync((center as { log: string }).log, 'utf8').split('\n').filter((l) => /level=(warn|error)/.test(l));

  console.log();
  printTable(
    ['K', 'VmRSS MB', 'RssAnon MB', 'fds', 'CPU %', 'TCP at center'],
    results.map((r) => [String(r.k), mb(r.rss), mb(r.anon), String(r.fds), (r.cpu * 100).toFixed(2), String(r.tcp)]),
  );
  const ks = results.map((r) => r.k);
  const fr = fit(ks, results.map((r) => r.rss));
  const fa = fit(ks, results.map((r) => r.anon));
  const ff = fit(ks, results.map((r) => r.fds));
  const fc = fit(ks, results.map((r) => r.cpu * 100));
  console.log();
  console.log(`per connection (least squares over K=${ks.join(',')}):`);
  console.log(`  VmRSS   ${(fr.b / 1e3).toFixed(1)} kB/conn (intercept ${mb(fr.a)} MB, r² ${fr.r2.toFixed(3)})`);
  console.log(`  RssAnon ${(fa.b / 1e3).toFixed(1)} kB/conn (intercept ${mb(fa.a)} MB, r² ${fa.r2.toFixed(3)})`);
  console.log(`  fds     ${ff.b.toFixed(2)} /conn (intercept ${ff.a.toFixed(0)}, r² ${ff.r2.toFixed(3)})`);
  console.log(`  CPU     ${(fc.b * 1000).toFixed(2)} %·10⁻³ of one core /conn (intercept ${fc.a.toFixed(2)}%, r² ${fc.r2.toFixed(3)})`);
  console.log();
  console.log('full mesh extrapolation (one peer holds N−1 connections; intercept + slope × (N−1)):');
  printTable(
    ['N', 'conns', 'VmRSS MB', 'RssAnon MB', 'fds', 'CPU %'],
    [100, 1000].map((n) => {
      const c = n - 1;
      return [String(n), String(c), mb(fr.a + fr.b * c), mb(fa.a + fa.b * c), (ff.a + ff.b * c).toFixed(0), (fc.a + fc.b * c).toFixed(2)];
    }),
  );
  console.log(`center log: ${warnings.length} warn/error lines${warnings.length ? `; first: ${warnings[0]?.slice(0, 300)}` : ''}`);
}

try {
  await main();
} finally {
  await cleanup();
}
