// Benchmark: the scheduler (issue 12, section 8) against Docker swarm mode, measured in the same
// run on the same machine: two harnesses of five hosts each (a dockerd per host; 3 managers and
// 2 workers), one for weft, one for swarm, so neither disturbs the other's dockerds; runs
// alternate between the two (the first of each pair alternates too), so drift in the machine's
// load falls on both.
//
//   node bench/scheduler.ts [--runs 5] [--death-runs 3] [--quick] [--systems weft,swarm] [--phases deploy,redeploy,death] [--count 30] [--roll 10] [--death-count 10]
//
// Figures, p50 over the runs:
//  (1) deploy: `weft stack deploy` of a Tutum stackfile with one service of --count containers
//      (busybox sleeping, ending at once on SIGTERM: CONTAINER_COMMAND), against `docker service create --detach --replicas N`; from the
//      command's start until the bench saw all N running and every host resolving all of them
//      (scheduler-helpers.ts / scheduler-swarm.ts say what "resolves" is for each). The stack or
//      service is removed between runs, and the next run waits until no container and no name
//      of it is left anywhere.
//  (2) rolling redeploy of --roll containers, one at a time: `weft service redeploy` against
//      `docker service update --force --update-parallelism 1 --update-delay 0s`; until every
//      container was replaced (a new container id / task id), runs, and resolves everywhere to
//      its current address.
//  (3) a worker's death: a service of --death-count containers; the worker (h4, h5 in turn) is
//      cut off the switch (test/harness/README.md: no FIN, RST or ICMP, as a power loss); until
//      every container it ran runs elsewhere and resolves on every surviving host (weft: by
//      the same name at the same address, checked; swarm gives a replacement a new address).
//      weft's figure leaves out its grace (reschedule_after, GRACE_S) but not its detection;
//      swarm has no grace but a node-down timeout (3 missed 5 s heartbeats) that is also its
//      detection, so its figure is from the moment the node was seen Down (its restart delay
//      set to 0 for this). Raw times from the cut are printed too. Then the host is healed and
//      the bench notes how long the stale copies it still ran took to go. A system's death
//      runs stop after its first failure.
// Swarm's own timers in these figures: a task's container is stopped 2 s after it leaves DNS
// (every replacement of the redeploy); its update state turns "completed" 5 s after the last
// task (--update-monitor, not waited for here).
// Both systems' commands are their CLIs (a Node start, ~0.5 s, for weft; a Go binary for docker:
// both measured and printed); everything else is observed in-process (weft's API socket,
// Docker's API socket) and with dig in the hosts' or probe containers' namespaces, every
// POLL_MS. Nothing is asserted.
import os from 'node:os';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Harness, WEFT_BIN, type Host } from '../test/harness/harness.ts';
import { printEnvironment } from './lib/env.ts';
import { max, median, min, printTable, ratio, sec } from './lib/stats.ts';
import { jitter, now } from './lib/time.ts';
import { SWARM_GRACE_MULTIPLIER, SWARM_HEARTBEAT_S, SWARM_RESTART_DELAY_S, SWARM_SHUTDOWN_DELAY_S, SwarmSystem } from './scheduler-swarm.ts';
import { errorText, GRACE_S, HOSTS, POLL_MS, WeftSystem, type DeathTiming, type DeployTiming, type RedeployTiming, type System, type SystemName } from './scheduler-helpers.ts';

const PASSWORD = 'bench-scheduler-password';
/** Quiet time between runs (plus up to half again): dockerd finishes its clean-up of removed
 *  containers, and runs do not land in lockstep with the peers' timers. */
const SETTLE_MS = 1_000;
/** CLI start-up samples for the header. */
const CLI_SAMPLES = 3;

const SYSTEMS = ['weft', 'swarm'] as const;
const PHASES = ['deploy', 'redeploy', 'death'] as const;
type Phase = (typeof PHASES)[number];

const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string' },
    'death-runs': { type: 'string' },
    quick: { type: 'boolean', default: false },
    systems: { type: 'string', default: 'weft,swarm' },
    phases: { type: 'string', default: PHASES.join(',') },
    count: { type: 'string', default: '30' },
    roll: { type: 'string', default: '10' },
    'death-count': { type: 'string', default: '10' },
  },
});
// --quick: two runs of deploy and redeploy and one death per system (~6 min); the defaults are
// issue 12's: p50 of 5 (deploy, redeploy) and of 3 (death: each run costs a deploy, the cut, a
// heal and a removal) (~17 min).
const runs = Number(opt.runs ?? (opt.quick ? 2 : 5));
const deathRuns = Number(opt['death-runs'] ?? (opt.quick ? 1 : 3));
const count = Number(opt.count);
const roll = Number(opt.roll);
const deathCount = Number(opt['death-count']);
const systems = opt.systems.split(',').filter(Boolean) as SystemName[];
const phases = opt.phases.split(',').filter(Boolean) as Phase[];
for (const s of systems) if (!SYSTEMS.includes(s)) throw new Error(`--systems: "${s}" is not one of ${SYSTEMS.join(', ')}`);
for (const p of phases) if (!PHASES.includes(p)) throw new Error(`--phases: "${p}" is not one of ${PHASES.join(', ')}`);
for (const [k, v, lo, hi] of [['runs', runs, 1, 50], ['death-runs', deathRuns, 1, 50], ['count', count, 1, 200], ['roll', roll, 1, 100], ['death-count', deathCount, HOSTS, 100]] as const) {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`--${k} must be ${lo}..${hi}, got ${v}`);
}

interface Results {
  name: SystemName;
  system?: System;
  /** It could not start: why, in the failing command's words. */
  unavailable?: string;
  /** Set once a phase could not clean up after a failure: later phases skip this system. */
  broken?: string;
  setupMs: number;
  deploy: DeployTiming[];
  redeploy: RedeployTiming[];
  death: DeathTiming[];
  failures: string[];
}

const results: Results[] = systems.map((name) => ({ name, setupMs: NaN, deploy: [], redeploy: [], death: [], failures: [] }));
const meshes: Harness[] = [];
const s2 = (x: number) => sec(x);

/** Where a failed weft run's logs go (outside the harness's temp dir, which cleanup removes). */
const logFile = (name: string) => `/tmp/bench-scheduler-${process.pid}-${name}-logs.txt`;

function note(res: Results, what: string, e: unknown): void {
  const text = `${what}: ${errorText(e)}`;
  res.failures.push(text);
  console.log(`  ${res.name} ${text}`);
  const sys = res.system;
  if (sys) {
    try {
      fs.writeFileSync(logFile(res.name), sys.mesh.dumpLogs());
      console.log(`  ${res.name}: log tails in ${logFile(res.name)} (WEFT_HARNESS_KEEP=1 keeps the whole temp dir)`);
    } catch {
      // logs are a courtesy
    }
  }
}

/** Runs one measurement; on failure notes it and tries to remove what is left, and if that
 *  fails too the system is broken for the rest of the bench. */
async function attempt<T>(res: Results, what: string, f: (s: System) => Promise<T>): Promise<T | undefined> {
  const sys = res.system;
  if (!sys || res.broken) return undefined;
  try {
    return await f(sys);
  } catch (e) {
    note(res, what, e);
    for (const h of sys.hosts) if (h.isCut) await h.heal().catch(() => undefined);
    try {
      await sys.remove();
    } catch (e2) {
      res.broken = `${what} failed and the clean-up after it too (${errorText(e2)})`;
      console.log(`  ${res.name}: ${res.broken}; skipping it from here on`);
    }
    return undefined;
  }
}

/** The systems in run order for run i: alternating which goes first. */
const order = (i: number) => (i % 2 === 0 ? results : [...results].reverse());

function cliStart(argv: string[]): number {
  const xs: number[] = [];
  for (let i = 0; i < CLI_SAMPLES; i++) {
    const t = now();
    spawnSync(argv[0] as string, argv.slice(1), { stdio: 'ignore', timeout: 30_000 });
    xs.push(now() - t);
  }
  return median(xs);
}

async function setup(): Promise<void> {
  for (const res of results) {
    const t0 = now();
    try {
      if (res.name === 'weft') {
        const mesh = await Harness.create({ hosts: HOSTS, name: 'bench-scheduler-weft' });
        meshes.push(mesh);
        res.system = await WeftSystem.start(mesh, PASSWORD);
      } else {
        // Inherited by the swarm dockerds (the harness takes the environment when it is built):
        // swarm's executor then uses the imported image instead of trying a registry.
        process.env.DOCKER_SERVICE_PREFER_OFFLINE_IMAGE = '1';
        let mesh: Harness;
        try {
          mesh = await Harness.create({ hosts: HOSTS, name: 'bench-scheduler-swarm' });
        } finally {
          delete process.env.DOCKER_SERVICE_PREFER_OFFLINE_IMAGE;
        }
        meshes.push(mesh);
        res.system = await SwarmSystem.start(mesh);
      }
      res.setupMs = now() - t0;
      console.log(`${res.name}: ${HOSTS} hosts up in ${s2(res.setupMs)} s (harness ${res.system.mesh.tmpDir}); resolves = ${res.system.resolves}`);
    } catch (e) {
      res.unavailable = errorText(e);
      console.log(`${res.name}: not available: ${res.unavailable}`);
    }
  }
}

async function deployPhase(): Promise<void> {
  console.log(`\n(1) deploy of ${count} containers over ${HOSTS} hosts, until all run and resolve on every host; ${runs} runs`);
  for (let i = 0; i < runs; i++) {
    for (const res of order(i)) {
      const d = await attempt(res, `deploy #${i + 1}`, (s) => s.deploy(count));
      if (!d) continue;
      res.deploy.push(d);
      const gone = await attempt(res, `removal after deploy #${i + 1}`, (s) => s.remove());
      console.log(`  ${res.name} deploy #${i + 1}: ${s2(d.ms)} s (all running ${s2(d.runningMs)} s, all resolving ${s2(d.resolvedMs)} s, command returned ${s2(d.commandMs)} s); removed in ${s2(gone ?? NaN)} s`);
      await jitter(SETTLE_MS, SETTLE_MS / 2);
    }
  }
}

async function redeployPhase(): Promise<void> {
  console.log(`\n(2) rolling redeploy of ${roll} containers, one at a time, until all replaced, running and resolving; ${runs} runs`);
  const ready = new Set<Results>();
  for (const res of results) {
    const d = await attempt(res, `deploy of ${roll} for the redeploys`, (s) => s.deploy(roll));
    if (d) {
      ready.add(res);
      console.log(`  ${res.name}: ${roll} deployed in ${s2(d.ms)} s (not a figure)`);
    }
  }
  for (let i = 0; i < runs; i++) {
    for (const res of order(i)) {
      if (!ready.has(res)) continue;
      const r = await attempt(res, `redeploy #${i + 1}`, (s) => s.redeploy(roll));
      if (!r) {
        ready.delete(res); // attempt() removed the service; no more redeploys of it
        continue;
      }
      res.redeploy.push(r);
      console.log(`  ${res.name} redeploy #${i + 1}: ${s2(r.ms)} s (replaced and running ${s2(r.convergedMs)} s, resolving ${s2(r.resolvedMs)} s, command returned ${s2(r.commandMs)} s); ${r.note}`);
      await jitter(SETTLE_MS, SETTLE_MS / 2);
    }
  }
  for (const res of ready) await attempt(res, 'removal after the redeploys', (s) => s.remove());
}

async function deathPhase(): Promise<void> {
  console.log(`\n(3) a worker cut off (h4, h5 in turn), ${deathCount} containers; until its containers run elsewhere and resolve on every survivor; ${deathRuns} runs`);
  for (let i = 0; i < deathRuns; i++) {
    for (const res of order(i)) {
      const victim = res.system?.victims[i % (res.system?.victims.length ?? 1)] as Host | undefined;
      if (!victim) continue;
      if (res.failures.some((f) => f.startsWith('death'))) {
        // Each failed death run costs minutes (the wait, the heal, the clean-up); the first
        // failure's words are the finding.
        console.log(`  ${res.name} death #${i + 1}: skipped (an earlier death run failed)`);
        continue;
      }
      const d = await attempt(res, `death #${i + 1} (${victim.name})`, (s) => s.death(victim, deathCount));
      if (!d) continue;
      res.death.push(d);
      const left = res.name === 'weft' ? `minus the ${GRACE_S} s grace` : 'from the node seen Down';
      console.log(
        `  ${res.name} death #${i + 1} (${victim.name}, ${d.moved} containers): ${s2(d.totalMs)} s after the cut, seen dead after ${s2(d.detectMs)} s; ${left}: ${s2(d.figureMs)} s; ` +
          `${d.note}; stale copies gone ${Number.isNaN(d.staleGoneMs) ? 'NOT within 60 s' : `${s2(d.staleGoneMs)} s`} after the heal`,
      );
      await jitter(SETTLE_MS, SETTLE_MS / 2);
    }
  }
}

function summary(weftCli: number, dockerCli: number, pulls: number | undefined): void {
  console.log();
  const rows: string[][] = [];
  const row = (res: Results, figure: string, xs: number[], notes: string) => rows.push([res.name, figure, String(xs.length), s2(median(xs)), s2(min(xs)), s2(max(xs)), notes]);
  for (const res of results) {
    if (res.deploy.length) row(res, `deploy ${count}, s`, res.deploy.map((d) => d.ms), `running p50 ${s2(median(res.deploy.map((d) => d.runningMs)))} s, command ${s2(median(res.deploy.map((d) => d.commandMs)))} s`);
    if (res.redeploy.length) row(res, `rolling redeploy ${roll}, s`, res.redeploy.map((d) => d.ms), `command ${s2(median(res.redeploy.map((d) => d.commandMs)))} s`);
    if (res.death.length) {
      row(res, `death: ${res.name === 'weft' ? `total − ${GRACE_S} s grace` : 'total − node Down'}, s`, res.death.map((d) => d.figureMs), `total p50 ${s2(median(res.death.map((d) => d.totalMs)))} s, seen dead p50 ${s2(median(res.death.map((d) => d.detectMs)))} s`);
    }
  }
  printTable(['system', 'figure', 'runs', 'p50', 'min', 'max', 'notes'], rows);
  for (const res of results) {
    if (res.unavailable) console.log(`${res.name}: not available: ${res.unavailable}`);
    if (res.broken) console.log(`${res.name}: ${res.broken}`);
    for (const f of res.failures) console.log(`${res.name} failed: ${f}`);
  }
  const weft = results.find((r) => r.name === 'weft');
  const swarm = results.find((r) => r.name === 'swarm');
  const sw = swarm?.system as SwarmSystem | undefined;
  console.log();
  console.log(`CLI start alone (median of ${CLI_SAMPLES}, in the command columns): weft ${s2(weftCli)} s, docker ${s2(dockerCli)} s`);
  if (sw) console.log(`swarm measured: ${sw.overlayError === undefined ? 'running and resolving (tasks.web in a probe on every node)' : `running only (${sw.overlayError})`}; image pull attempts in its dockerd logs: ${pulls ?? '–'}`);
  const p50 = (xs: number[] | undefined) => median(xs ?? []);
  if (phases.includes('deploy')) {
    const w = p50(weft?.deploy.map((d) => d.ms));
    const s = p50(swarm?.deploy.map((d) => d.ms));
    console.log(`scheduler deploy ${count} over ${HOSTS} hosts until running and resolving everywhere, p50: weft ${s2(w)} s, swarm ${s2(s)} s, ratio ${ratio(w, s)} (weft/swarm; target ≤ 1.0)`);
  }
  if (phases.includes('redeploy')) {
    const w = p50(weft?.redeploy.map((d) => d.ms));
    const s = p50(swarm?.redeploy.map((d) => d.ms));
    console.log(`scheduler rolling redeploy of ${roll}, parallelism 1, p50: weft ${s2(w)} s, swarm ${s2(s)} s, ratio ${ratio(w, s)} (weft/swarm; target ≤ 1.0; swarm waits ${SWARM_SHUTDOWN_DELAY_S} s before each stop, by design)`);
  }
  if (phases.includes('death')) {
    const w = p50(weft?.death.map((d) => d.figureMs));
    const s = p50(swarm?.death.map((d) => d.figureMs));
    const wt = p50(weft?.death.map((d) => d.totalMs));
    const st = p50(swarm?.death.map((d) => d.totalMs));
    console.log(
      `scheduler node death until its containers answer elsewhere, p50: weft ${s2(w)} s after its ${GRACE_S} s grace (detection included), swarm ${s2(s)} s after the node was Down, ratio ${ratio(w, s)}; ` +
        `raw from the cut: weft ${s2(wt)} s, swarm ${s2(st)} s (its node-down timeout: ${SWARM_GRACE_MULTIPLIER} × ${SWARM_HEARTBEAT_S} s heartbeats; --restart-delay ${SWARM_RESTART_DELAY_S}s, default 5 s), ratio ${ratio(wt, st)}`,
    );
  }
}

async function main(): Promise<void> {
  printEnvironment('scheduler');
  const dockerd = spawnSync('dockerd', ['--version'], { encoding: 'utf8' }).stdout?.trim() || 'dockerd: not found';
  console.log(
    `scheduler: ${dockerd}; ${HOSTS} hosts per system (${systems.join(', ')}), 3 managers + 2 workers; phases ${phases.join(', ')}; ` +
      `${runs} runs (deploy ${count}, redeploy ${roll}), ${deathRuns} death runs (${deathCount} containers); poll every ${POLL_MS} ms; ${os.cpus().length} cores`,
  );
  const weftCli = cliStart([WEFT_BIN, '--help']);
  const dockerCli = cliStart(['docker', '--version']);
  const t0 = now();
  let pulls: number | undefined;
  try {
    await setup();
    if (phases.includes('deploy')) await deployPhase();
    if (phases.includes('redeploy')) await redeployPhase();
    if (phases.includes('death')) await deathPhase();
  } finally {
    // Read before cleanup removes the logs.
    for (const res of results) if (res.system instanceof SwarmSystem) pulls = res.system.pullAttempts();
    for (const res of results) if (res.system instanceof WeftSystem) await res.system.close();
    const done = await Promise.allSettled(meshes.map((m) => m.cleanup()));
    for (const d of done) if (d.status === 'rejected') console.log(`cleanup: ${errorText(d.reason)}`);
  }
  summary(weftCli, dockerCli, pulls);
  console.log(`scheduler: ${s2(now() - t0)} s in all, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

await main();
