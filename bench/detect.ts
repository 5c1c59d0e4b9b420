// Benchmark: failure detection, weft against Serf in the same run on the same harness hosts.
// A victim host (the last, hN) is (a) cut off the network silently (no FIN, RST or ICMP), or
// (b) its peer is killed with SIGKILL; the figure is the time from the cut or kill until the
// last of the other N-1 has marked it dead.
//
//   node bench/detect.ts [--sizes 5] [--reps 5] [--modes cut,kill] [--hold 3000] [--settle 3000]
//
// weft: every other peer's event stream (`events` with follow, over its API socket, through
//   the shared ApiClient of mesh/api/client.ts) is open throughout; an observer's time is the
//   arrival of its `dead` event for the victim.
// Serf (default "lan" profile): every other agent's RPC `stream` of "member-failed" events;
//   an observer's time is the arrival of the event naming the victim.
// The victim stays down --hold ms after it was detected (so a cut victim has declared the
// others dead by the time it is healed, as after a real outage). Then it is healed (Serf:
// and asked to join again, since a failed member is otherwise retried only every 30 s) or
// restarted with the same data dir, and the mesh must converge and stay quiet for --settle
// ms. Any suspect or dead event about a peer that was not the victim counts as a false
// suspicion or false death.
import { parseArgs } from 'node:util';
import { Harness, type Host } from '../test/harness/harness.ts';
import type { ApiClient } from '../mesh/api/client.ts';
import * as meshApi from '../mesh/api/contract.ts';
import { printEnvironment } from './lib/env.ts';
import { SERF_PORT, SerfMesh, type SerfRpc, type StreamRecord } from './lib/serf.ts';
import { max, median, min, printTable, ratio, sec } from './lib/stats.ts';
import { now, sleep } from './lib/time.ts';
import { connectWeft, startWeftMesh, stopWeftMesh, waitWeftConverged } from './lib/weft.ts';

/** A victim not marked dead everywhere after this is a miss. Serf needs ~6 s; 30 s means
 *  "it is not going to happen". */
const DETECT_TIMEOUT_MS = 30_000;
const PASSWORD = 'bench-detect-password';
/** After subscribing: the replayed history arrives before the first trial starts. */
const HISTORY_SETTLE_MS = 500;
/** False observations listed in detail, per kind; the table counts them all. */
const MAX_FALSE_LINES = 15;
const MODES = ['cut', 'kill'] as const;
type Mode = (typeof MODES)[number];
const SYSTEMS = ['weft', 'serf'] as const;
type System = (typeof SYSTEMS)[number];

const { values: opt } = parseArgs({
  options: {
    sizes: { type: 'string', default: '5' },
    reps: { type: 'string', default: '5' },
    modes: { type: 'string', default: 'cut,kill' },
    systems: { type: 'string', default: 'weft,serf' },
    settle: { type: 'string', default: '3000' },
    hold: { type: 'string', default: '3000' },
  },
});
const sizes = opt.sizes.split(',').map(Number);
const reps = Number(opt.reps);
const settleMs = Number(opt.settle);
const holdMs = Number(opt.hold);
const modes = opt.modes.split(',') as Mode[];
const systems = opt.systems.split(',') as System[];
for (const s of sizes) if (!Number.isInteger(s) || s < 3 || s > 50) throw new Error(`--sizes: each size must be 3..50, got ${s}`);
if (!Number.isInteger(reps) || reps < 1 || reps > 100) throw new Error(`--reps must be 1..100, got ${reps}`);
if (!Number.isInteger(settleMs) || settleMs < 0 || settleMs > 60_000) throw new Error(`--settle must be 0..60000 ms, got ${settleMs}`);
if (!Number.isInteger(holdMs) || holdMs < 0 || holdMs > 60_000) throw new Error(`--hold must be 0..60000 ms, got ${holdMs}`);
for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: "${m}" is not one of ${MODES.join(', ')}`);
for (const s of systems) if (!SYSTEMS.includes(s)) throw new Error(`--systems: "${s}" is not one of ${SYSTEMS.join(', ')}`);

/** A membership observation: `kind` about peer `name`, arrived at `at` (bench clock). */
interface Seen {
  at: number;
  observer: string;
  kind: 'suspect' | 'dead';
  name: string;
  /** For false observations: when, relative to the cut/kill or to the restore. */
  when?: string;
}

interface Trial {
  /** Until the last observer marked the victim dead (ms), NaN if some never did. */
  last: number;
  /** Until the first observer did (ms). */
  first: number;
}

interface Outcome {
  trials: Trial[];
  /** Suspect/dead observations about peers that were not the victim at the time. */
  falseSuspect: Seen[];
  falseDead: Seen[];
}

/** What a system under test must offer the trial loop. */
interface Subject {
  /** Observations so far (appended to as they arrive). */
  seen: Seen[];
  cut(victim: Host): Promise<void>;
  kill(victim: Host): Promise<void>;
  /** Undo the cut or kill and wait until everyone sees everyone alive again. */
  restore(victim: Host, mode: Mode): Promise<void>;
}

async function runTrials(subject: Subject, hosts: readonly Host[], mode: Mode): Promise<Outcome> {
  const victim = hosts[hosts.length - 1] as Host;
  const observers = hosts.filter((h) => h !== victim).map((h) => h.name);
  const out: Outcome = { trials: [], falseSuspect: [], falseDead: [] };
  for (let rep = 0; rep < reps; rep++) {
    const from = subject.seen.length;
    const t0 = now();
    if (mode === 'cut') await subject.cut(victim);
    else await subject.kill(victim);
    const deadAt = new Map<string, number>();
    for (let i = 0; i < DETECT_TIMEOUT_MS / 10 && deadAt.size < observers.length && now() - t0 < DETECT_TIMEOUT_MS; i++) {
      for (const s of subject.seen.slice(from)) {
        if (s.kind === 'dead' && s.name === victim.name && s.at >= t0 && !deadAt.has(s.observer)) deadAt.set(s.observer, s.at);
      }
      await sleep(10);
    }
    const times = [...deadAt.values()].map((t) => t - t0);
    out.trials.push({ last: deadAt.size === observers.length ? max(times) : NaN, first: min(times) });
    process.stdout.write(`  ${mode} #${rep + 1}: ${deadAt.size === observers.length ? `${sec(max(times))} s` : `missed (${deadAt.size}/${observers.length} observers)`}\n`);
    // Keep the victim down a while longer, as a real outage would be: long enough for a cut
    // victim to have declared everyone else dead, so the heal exercises that view meeting
    // the others'.
    await sleep(holdMs);
    const restoreAt = now();
    await subject.restore(victim, mode);
    await sleep(settleMs);
    // Everything observed since the cut or kill about anyone else is false; about the victim
    // it is expected.
    for (const s of subject.seen.slice(from)) {
      if (s.name === victim.name) continue;
      const when = s.at < restoreAt ? `${sec(s.at - t0)} s after the ${mode}` : `${sec(s.at - restoreAt)} s after the ${mode === 'cut' ? 'heal' : 'restart'}`;
      (s.kind === 'dead' ? out.falseDead : out.falseSuspect).push({ ...s, when });
    }
  }
  return out;
}

async function weftSubject(hosts: readonly Host[]): Promise<{ subject: Subject; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const victim = hosts[hosts.length - 1] as Host;
  const clients: ApiClient[] = [];
  // No stream on the victim: it is killed, and its view is not what is measured.
  for (const h of hosts.filter((x) => x !== victim)) {
    const c = await connectWeft(h);
    clients.push(c);
    // The stream starts with the history; it lands before the first trial's mark.
    c.call(meshApi.events, { follow: true }, (e) => {
      const at = now();
      const ev = e;
      if ((ev.type === 'dead' || ev.type === 'suspect') && ev.peer) seen.push({ at, observer: h.name, kind: ev.type, name: ev.peer.name });
    }).catch(() => undefined); // ends when the bench closes the client
  }
  await sleep(HISTORY_SETTLE_MS);
  return {
    subject: {
      seen,
      cut: (v) => v.cut(),
      kill: async (v) => { await v.kill(); },
      restore: async (v, mode) => {
        if (mode === 'cut') await v.heal();
        else await v.restart();
        await waitWeftConverged(hosts);
      },
    },
    close: async () => { await Promise.all(clients.map((c) => c.close().catch(() => undefined))); },
  };
}

async function serfSubject(serf: SerfMesh): Promise<{ subject: Subject; close: () => Promise<void> }> {
  const hosts = serf.hosts;
  const seen: Seen[] = [];
  const victim = hosts[hosts.length - 1] as Host;
  const first = hosts[0] as Host;
  const rpcs: SerfRpc[] = [];
  for (const h of hosts.filter((x) => x !== victim)) {
    const rpc = await serf.rpc(h);
    rpcs.push(rpc);
    await rpc.stream('member-failed', (r: StreamRecord) => {
      for (const m of (r.body.Members ?? []) as { Name?: string }[]) seen.push({ at: r.at, observer: h.name, kind: 'dead', name: String(m.Name) });
    });
  }
  await sleep(HISTORY_SETTLE_MS);
  return {
    subject: {
      seen,
      cut: (v) => v.cut(),
      kill: (v) => serf.killAgent(v),
      restore: async (v, mode) => {
        if (mode === 'cut') {
          await v.heal();
          const rpc = await serf.rpc(v);
          try {
            await rpc.join([`${first.ip}:${SERF_PORT}`]);
          } finally {
            rpc.close();
          }
        } else {
          await serf.startAgent(v);
        }
        await serf.waitConverged();
      },
    },
    close: async () => { for (const r of rpcs) r.close(); },
  };
}

interface Row {
  system: System;
  n: number;
  mode: Mode;
  out: Outcome;
}

async function main(): Promise<void> {
  printEnvironment('detect');
  const results: Row[] = [];
  console.log(`detect: ${reps} repetitions per system, mode and size; victim = the last host, kept down ${holdMs} ms after detection; ${settleMs} ms quiet between repetitions`);
  for (const n of sizes) {
    const mesh = await Harness.create({ hosts: n, name: `bench-detect-${n}` });
    try {
      if (systems.includes('weft')) {
        console.log(`weft N=${n}:`);
        await startWeftMesh(mesh.hosts, PASSWORD);
        await sleep(settleMs);
        const { subject, close } = await weftSubject(mesh.hosts);
        try {
          for (const mode of modes) results.push({ system: 'weft', n, mode, out: await runTrials(subject, mesh.hosts, mode) });
        } finally {
          await close();
        }
        await stopWeftMesh(mesh.hosts);
      }
      if (systems.includes('serf')) {
        console.log(`serf N=${n}:`);
        const serf = await SerfMesh.start(mesh.hosts);
        await sleep(settleMs);
        const { subject, close } = await serfSubject(serf);
        try {
          for (const mode of modes) results.push({ system: 'serf', n, mode, out: await runTrials(subject, mesh.hosts, mode) });
        } finally {
          await close();
          await serf.stop();
        }
      }
    } finally {
      await mesh.cleanup();
    }
  }

  console.log();
  const lasts = (r: Row) => r.out.trials.map((t) => t.last).filter((x) => !Number.isNaN(x));
  printTable(
    ['system', 'N', 'mode', 'reps', 'median s', 'max s', 'min s', 'first-observer median s', 'missed', 'false suspect', 'false dead'],
    results.map((r) => [
      r.system, String(r.n), r.mode, String(r.out.trials.length),
      sec(median(lasts(r))), sec(max(lasts(r))), sec(min(lasts(r))),
      sec(median(r.out.trials.map((t) => t.first).filter((x) => Number.isFinite(x)))),
      String(r.out.trials.length - lasts(r).length), String(r.out.falseSuspect.length), String(r.out.falseDead.length),
    ]),
  );
  const describe = (r: Row, s: Seen) => `${r.system} N=${r.n} ${r.mode}: ${s.observer} saw ${s.name} ${s.kind}, ${s.when}`;
  for (const [what, pick] of [['false deaths', (o: Outcome) => o.falseDead], ['false suspicions', (o: Outcome) => o.falseSuspect]] as const) {
    const lines = results.flatMap((r) => pick(r.out).map((s) => describe(r, s)));
    if (lines.length === 0) continue;
    console.log(`\n${what} (about peers that were neither cut nor killed; first ${Math.min(MAX_FALSE_LINES, lines.length)} of ${lines.length}):`);
    for (const l of lines.slice(0, MAX_FALSE_LINES)) console.log(`  ${l}`);
  }
  console.log();
  for (const n of sizes) {
    for (const mode of modes) {
      const w = results.find((r) => r.system === 'weft' && r.n === n && r.mode === mode);
      const s = results.find((r) => r.system === 'serf' && r.n === n && r.mode === mode);
      const wm = w ? median(lasts(w)) : NaN;
      const sm = s ? median(lasts(s)) : NaN;
      console.log(`detect ${mode} N=${n}: weft median ${sec(wm)} s max ${w ? sec(max(lasts(w))) : '–'} s, serf median ${sec(sm)} s max ${s ? sec(max(lasts(s))) : '–'} s, ratio ${ratio(wm, sm)} (target: weft median ≤ 2 s)`);
    }
  }
}

await main();
