// Benchmark: how long a write on one peer takes to be visible on all N, weft against Serf's
// user events, in the same run, on the same harness hosts (network namespaces on a switch).
//
//   node bench/propagation.ts [--sizes 3,10] [--trials 50] [--warmup 3] [--poll 5] [--gap 400]
//
// weft: the bench writes `kv.put` over the writer's API socket (in-process, the shared
//   ApiClient of mesh/api/client.ts: no Node start-up in the figure) and polls `kv.get` on every peer's socket every
//   --poll ms; a peer's time is its first poll that returns the value. t0 = the put was sent.
// Serf: the bench sends `event` over the origin agent's RPC and every agent pushes the event
//   back over an RPC `stream` subscription ("user:bench"); an agent's time is the arrival.
//   t0 = the event request was sent. Serf delivers a user event to its origin too.
// A trial's figure is the time until the last of the N saw it. The writer rotates over the
// hosts. weft runs first, stopped before Serf starts, so neither loads the other's cores.
// The polling adds on average half a poll period to weft's figure; Serf's is pushed.
import { parseArgs } from 'node:util';
import { Harness, type Host } from '../test/harness/harness.ts';
import type { ApiClient } from '../mesh/api/client.ts';
import * as meshApi from '../mesh/api/contract.ts';
import { printEnvironment } from './lib/env.ts';
import { SerfMesh, type SerfRpc, type StreamRecord } from './lib/serf.ts';
import { max, ms, printTable, ratio, summarize, type Summary } from './lib/stats.ts';
import { jitter, now, sleep } from './lib/time.ts';
import { call, connectWeft, startWeftMesh, stopWeftMesh } from './lib/weft.ts';

/** A write not seen everywhere after this is a miss, not a slow sample. */
const TRIAL_TIMEOUT_MS = 10_000;
/** Quiet time after a mesh converged, before the first trial: joins' gossip dies down. */
const SETTLE_MS = 3_000;
const PASSWORD = 'bench-propagation-password';

const { values: opt } = parseArgs({
  options: {
    sizes: { type: 'string', default: '3,10' },
    trials: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '3' },
    poll: { type: 'string', default: '5' },
    gap: { type: 'string', default: '400' },
  },
});
const sizes = opt.sizes.split(',').map(Number);
const trials = Number(opt.trials);
const warmup = Number(opt.warmup);
const pollMs = Number(opt.poll);
const gapMs = Number(opt.gap);
for (const [name, v] of [['trials', trials], ['warmup', warmup], ['poll', pollMs], ['gap', gapMs], ...sizes.map((s) => ['sizes', s] as const)] as const) {
  if (!Number.isInteger(v) || v < 0 || v > 10_000) throw new Error(`--${name} must be a whole number 0..10000, got ${v}`);
}

interface Result {
  /** Until visible on all N, per trial (ms). */
  all: number[];
  /** Until the writer's request was acknowledged (ms). */
  ack: number[];
  missed: number;
}

async function pollUntilVisible(c: ApiClient, key: string, value: string, deadline: number): Promise<number> {
  for (let i = 0; i < TRIAL_TIMEOUT_MS / Math.max(1, pollMs) + 1; i++) {
    const entries = await call(c, meshApi.kvGet, { key });
    const t = now();
    if (entries.some((e) => e.value === value)) return t;
    if (t > deadline) break;
    await sleep(pollMs);
  }
  return NaN;
}

async function weftTrials(hosts: readonly Host[], runId: string): Promise<Result> {
  const clients = await Promise.all(hosts.map((h) => connectWeft(h)));
  const r: Result = { all: [], ack: [], missed: 0 };
  try {
    for (let i = 0; i < warmup + trials; i++) {
      const writer = clients[i % clients.length] as ApiClient;
      const key = `bench/propagation/${runId}/${i}`;
      const value = `${runId}-${i}`;
      const t0 = now();
      let ackAt = NaN;
      const put = call(writer, meshApi.kvPut, { key, value }).then(() => { ackAt = now(); });
      const seen = await Promise.all(clients.map((c) => pollUntilVisible(c, key, value, t0 + TRIAL_TIMEOUT_MS)));
      await put;
      if (i >= warmup) {
        if (seen.some((t) => Number.isNaN(t))) r.missed++;
        else r.all.push(max(seen) - t0);
        r.ack.push(ackAt - t0);
      }
      await jitter(gapMs, gapMs / 2);
    }
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  }
  return r;
}

async function serfTrials(serf: SerfMesh, runId: string): Promise<Result> {
  const hosts = serf.hosts;
  const arrivals = new Map<string, Map<number, number>>();
  const rpcs: SerfRpc[] = [];
  const r: Result = { all: [], ack: [], missed: 0 };
  try {
    for (const [idx, h] of hosts.entries()) {
      const rpc = await serf.rpc(h);
      rpcs.push(rpc);
      await rpc.stream('user:bench', (rec: StreamRecord) => {
        const p = rec.body.Payload;
        const payload = Buffer.isBuffer(p) ? p.toString('utf8') : String(p);
        const m = arrivals.get(payload) ?? new Map<number, number>();
        if (!m.has(idx)) m.set(idx, rec.at);
        arrivals.set(payload, m);
      });
    }
    for (let i = 0; i < warmup + trials; i++) {
      const origin = rpcs[i % rpcs.length] as SerfRpc;
      const payload = `${runId}-${i}`;
      arrivals.set(payload, new Map());
      const t0 = now();
      await origin.event('bench', payload);
      const ackAt = now();
      const seen = arrivals.get(payload) as Map<number, number>;
      for (let k = 0; k < TRIAL_TIMEOUT_MS && seen.size < hosts.length && now() < t0 + TRIAL_TIMEOUT_MS; k++) await sleep(1);
      if (i >= warmup) {
        if (seen.size < hosts.length) r.missed++;
        else r.all.push(max([...seen.values()]) - t0);
        r.ack.push(ackAt - t0);
      }
      await jitter(gapMs, gapMs / 2);
    }
  } finally {
    for (const rpc of rpcs) rpc.close();
  }
  return r;
}

function row(system: string, n: number, r: Result, s: Summary): string[] {
  return [system, String(n), String(s.n), ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max), ms(summarize(r.ack).p50), String(r.missed)];
}

async function main(): Promise<void> {
  printEnvironment('propagation');
  const rows: string[][] = [];
  const finals: string[] = [];
  console.log(`propagation: ${trials} trials (+${warmup} warm-up) per system and size, weft polled every ${pollMs} ms, ${gapMs}-${gapMs * 1.5} ms between trials`);
  for (const n of sizes) {
    const mesh = await Harness.create({ hosts: n, name: `bench-propagation-${n}` });
    try {
      const runId = `${process.pid}-${n}`;
      await startWeftMesh(mesh.hosts, PASSWORD);
      await sleep(SETTLE_MS);
      const weft = await weftTrials(mesh.hosts, runId);
      await stopWeftMesh(mesh.hosts);

      const serfMesh = await SerfMesh.start(mesh.hosts);
      await sleep(SETTLE_MS);
      const serf = await serfTrials(serfMesh, runId);
      await serfMesh.stop();

      const ws = summarize(weft.all);
      const ss = summarize(serf.all);
      rows.push(row('weft', n, weft, ws), row('serf', n, serf, ss));
      finals.push(`propagation N=${n}: weft p50 ${ms(ws.p50)} ms p99 ${ms(ws.p99)} ms, serf p50 ${ms(ss.p50)} ms p99 ${ms(ss.p99)} ms, ratio ${ratio(ws.p50, ss.p50)} (p99 ratio ${ratio(ws.p99, ss.p99)}) (target ≤ 1)`);
      console.log(`N=${n} done`);
    } finally {
      await mesh.cleanup();
    }
  }
  console.log();
  printTable(['system', 'N', 'samples', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'ack p50 ms', 'missed'], rows);
  console.log();
  for (const f of finals) console.log(f);
}

await main();
