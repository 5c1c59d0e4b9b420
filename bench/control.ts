// Benchmark: the control plane, weft's Raft managers against etcd 3 members, in the same run on
// the same harness hosts (three network namespaces on a switch; a fourth and fifth for --soak).
//
//   node bench/control.ts [--systems weft,etcd] [--trials 10] [--modes kill,term[,cut]] [--clients 16] [--seconds 10] [--soak 0]
//
// Figures, per system (weft first, stopped before etcd starts):
//  (a) failover: SIGKILL of the current leader; from the signal until a write through a
//      surviving member succeeds again, committed in a newer term than the killed leader's.
//      A write attempt is sent every 20 ms, alternating between the two survivors, each with
//      its own 1 s limit, so attempts overlap (at most 50 in flight) and one stuck on a
//      follower that has not noticed the loss yet does not hold up the next; the figure is
//      the completion of the first qualifying write. A trial gives up after 30 s (missed).
//  (b) planned failover: SIGTERM of the leader instead (etcd transfers leadership on
//      SIGTERM); the same figure. Writes that still succeed in the old term after the signal
//      are counted, not timed. Also printed: how long the old leader took to exit, and per
//      mode the longest stretch from the signal to that write in which no write was answered
//      (the write gap a client saw; below the figure when old-term writes went on a while).
//  (c) committed writes per second: --clients concurrent clients (client i writes through
//      member i mod 3, each its own key, one write in flight each) for --seconds after a 1 s
//      warm-up; a write counts if it started and was answered inside the window.
//  (a') --modes ...,cut (off by default): the leader's host is cut off the switch instead (no
//      FIN, RST or ICMP: see test/harness/README.md), so nothing tells the others but the
//      missing heartbeats; healed after the trial. kill -9 closes the leader's connections,
//      which weft's managers take as the leader gone (no election timeout wait) and etcd does
//      not; a cut measures both on their election timers.
//  (d) --soak S (off by default): 5 members idle for S s, every member's term and leader
//      polled each second; term changes (elections started, failed ones included) and leader
//      changes seen.
// Between trials the stopped member is started again with its data dir, and the next trial
// waits until all 3 members answer, name the same leader in the same term, and have applied
// everything the leader had committed; then 1-1.5 s more, so signals land at random phases
// of the heartbeat.
//
// etcd: Debian's etcd-server, --heartbeat-interval 100 --election-timeout 1000 (its defaults),
//   driven through its JSON gateway on a unix socket (lib/etcd.ts): POST /v3/kv/put, leader
//   from POST /v3/maintenance/status (`leader` against `header.member_id`), the commit term
//   from a put answer's `header.raft_term`.
// weft: peers with `--role manager`, mesh only, over their API socket (lib/control-weft.ts):
//   `config.set` (answered once committed; a follower forwards to the leader) and `status`'s
//   `manager` {role, leader, term, commit, applied}. If config.set's answer carries no term,
//   the term is read from the member's status right after the write (slightly generous: a
//   write committed just before an election that then shows the new term counts).
// A build without the control plane prints "weft: not available (...)" and etcd still runs.
// Nothing is asserted.
import { parseArgs } from 'node:util';
import http from 'node:http';
import type { ApiClient } from '../mesh/api/client.ts';
import { Harness, type Host } from '../test/harness/harness.ts';
import { WeftControl } from './lib/control-weft.ts';
import { printEnvironment } from './lib/env.ts';
import { EtcdCluster, etcdVersion } from './lib/etcd.ts';
import { max, median, min, ms, printTable, quantile, ratio, sec } from './lib/stats.ts';
import { jitter, now, sleep, withTimeout } from './lib/time.ts';

const PASSWORD = 'bench-control-password';
/** A write attempt every this many ms during a failover. */
const ATTEMPT_EVERY_MS = 20;
/** Each attempt's own limit: long enough for a write on a healthy cluster under load,
 *  short enough that a stuck one is abandoned (the next ones are already under way). */
const ATTEMPT_TIMEOUT_MS = 1_000;
const MAX_INFLIGHT = ATTEMPT_TIMEOUT_MS / ATTEMPT_EVERY_MS;
/** A failover not over after this is a miss. */
const FAILOVER_TIMEOUT_MS = 30_000;
/** Quiet time after the cluster is healthy again, before the next signal (plus up to half). */
const SETTLE_MS = 1_000;
const WARMUP_MS = 1_000;
/** A throughput client's write that takes longer is counted as an error. */
const WRITE_TIMEOUT_MS = 5_000;
const SOAK_MEMBERS = 5;
const SOAK_POLL_MS = 1_000;
const MEMBERS = 3;

const SYSTEMS = ['weft', 'etcd'] as const;
type System = (typeof SYSTEMS)[number];
const MODES = ['kill', 'term', 'cut'] as const;
type Mode = (typeof MODES)[number];
const MODE_LABEL: Record<Mode, string> = { kill: 'failover (kill -9)', term: 'planned failover (SIGTERM)', cut: 'failover (leader cut off)' };

const { values: opt } = parseArgs({
  options: {
    systems: { type: 'string', default: 'weft,etcd' },
    trials: { type: 'string', default: '10' },
    modes: { type: 'string', default: 'kill,term' },
    clients: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '10' },
    soak: { type: 'string', default: '0' },
  },
});
const systems = opt.systems.split(',').filter(Boolean) as System[];
const modes = opt.modes.split(',').filter(Boolean) as Mode[];
const trials = Number(opt.trials);
const clients = Number(opt.clients);
const seconds = Number(opt.seconds);
const soakSeconds = Number(opt.soak);
for (const s of systems) if (!SYSTEMS.includes(s)) throw new Error(`--systems: "${s}" is not one of ${SYSTEMS.join(', ')}`);
for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: "${m}" is not one of ${MODES.join(', ')}`);
if (!Number.isInteger(trials) || trials < 0 || trials > 100) throw new Error(`--trials must be 0..100, got ${opt.trials}`);
if (!Number.isInteger(clients) || clients < 0 || clients > 256) throw new Error(`--clients must be 0..256 (0: no throughput phase), got ${opt.clients}`);
if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600) throw new Error(`--seconds must be 1..600, got ${opt.seconds}`);
if (!Number.isInteger(soakSeconds) || soakSeconds < 0 || soakSeconds > 3600) throw new Error(`--soak must be 0..3600 s (0: off), got ${opt.soak}`);

/** What the phases need of a cluster; lib/etcd.ts's EtcdCluster and lib/control-weft.ts's
 *  WeftControl both have it. */
interface Cluster {
  readonly hosts: readonly Host[];
  waitHealthy(): Promise<{ leader: Host; term: number }>;
  view(h: Host): Promise<{ term: number; leader: Host | undefined }>;
  term(h: Host): Promise<number>;
  kill(h: Host): Promise<void>;
  terminate(h: Host): Promise<void>;
  awaitExit(h: Host): Promise<void>;
  restart(h: Host): Promise<void>;
  stop(): Promise<void>;
}

/** One client's connection for the throughput phase. */
interface Writer {
  put(key: string, value: string): Promise<void>;
  close(): Promise<void>;
}

interface Subject {
  system: System;
  cluster: Cluster;
  /** A write through `h`; resolves with the term it was committed in (NaN: not said). */
  write(h: Host, key: string, value: string, timeoutMs: number): Promise<{ term: number }>;
  writer(h: Host): Promise<Writer>;
}

function etcdSubject(c: EtcdCluster): Subject {
  return {
    system: 'etcd',
    cluster: c,
    write: (h, key, value, timeoutMs) => c.put(h, key, value, timeoutMs),
    writer: async (h) => {
      // Its own keep-alive connection, as a separate client would have.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      return {
        put: async (key, value) => {
          await c.put(h, key, value, WRITE_TIMEOUT_MS, agent);
        },
        close: async () => agent.destroy(),
      };
    },
  };
}

function weftSubject(c: WeftControl): Subject {
  return {
    system: 'weft',
    cluster: c,
    write: (h, key, value, timeoutMs) => c.put(h, key, value, timeoutMs),
    writer: async (h) => {
      const api: ApiClient = await c.connect(h);
      return {
        put: async (key, value) => {
          await c.put(h, key, value, WRITE_TIMEOUT_MS, api);
        },
        close: () => api.close().catch(() => undefined),
      };
    },
  };
}

interface FailoverSample {
  /** From the signal until the first write committed in a newer term was answered (ms); NaN: missed. */
  ms: number;
  /** For SIGTERM: until the old leader's process had exited (ms); NaN if not within the trial. */
  exitMs: number;
  attempts: number;
  failed: number;
  /** Writes answered after the signal but committed in the old term. */
  oldTerm: number;
  /** The longest time from the signal until `ms` in which no write was answered (ms): `ms`
   *  itself unless writes went on in the old term for a while (SIGTERM). */
  gap: number;
}

const errorText = (e: unknown) => ((e as Error)?.message ?? String(e)).split('\n')[0]?.slice(0, 300) ?? '';

/** One trial; the stopped (or cut) member stays so (see the caller). */
async function failoverTrial(s: Subject, mode: Mode, trial: number): Promise<{ sample: FailoverSample; victim: Host }> {
  const c = s.cluster;
  await jitter(SETTLE_MS, SETTLE_MS / 2);
  const { leader: victim, term: oldTerm } = await c.waitHealthy();
  const survivors = c.hosts.filter((h) => h !== victim);
  const sample: FailoverSample = { ms: NaN, exitMs: NaN, attempts: 0, failed: 0, oldTerm: 0, gap: NaN };
  /** Answer times (ms from the signal) of writes that succeeded, in either term. */
  const answered: number[] = [];
  let newTerm = NaN;
  let lastError = '';
  const t0 = now();
  let signalled: Promise<void>;
  if (mode === 'kill') {
    signalled = c.kill(victim);
  } else if (mode === 'cut') {
    signalled = victim.cut();
  } else {
    const exited = c.terminate(victim);
    exited.then(() => { if (Number.isNaN(sample.exitMs)) sample.exitMs = now() - t0; }, () => undefined);
    signalled = Promise.resolve();
  }
  const inflight = new Set<Promise<void>>();
  const attempt = async (h: Host, i: number) => {
    try {
      const r = await s.write(h, 'bench-failover', `${trial}-${i}`, ATTEMPT_TIMEOUT_MS);
      const at = now() - t0;
      answered.push(at);
      const term = Number.isNaN(r.term) ? await c.term(h).catch(() => NaN) : r.term;
      if (term > oldTerm) {
        if (Number.isNaN(sample.ms) || at < sample.ms) {
          sample.ms = at;
          newTerm = term;
        }
      } else {
        sample.oldTerm++;
      }
    } catch (e) {
      sample.failed++;
      lastError = errorText(e);
    }
  };
  for (let i = 0; i < FAILOVER_TIMEOUT_MS / ATTEMPT_EVERY_MS + 1 && Number.isNaN(sample.ms) && now() - t0 < FAILOVER_TIMEOUT_MS; i++) {
    if (inflight.size < MAX_INFLIGHT) {
      const p = attempt(survivors[i % survivors.length] as Host, i);
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      sample.attempts++;
    }
    await sleep(ATTEMPT_EVERY_MS);
  }
  // Bounded: each attempt has its own limit (and its term check one of 2 s).
  await Promise.allSettled([...inflight]);
  await signalled;
  if (mode === 'term') await c.awaitExit(victim);
  if (!Number.isNaN(sample.ms)) {
    const marks = [0, ...answered.filter((a) => a <= sample.ms).sort((a, b) => a - b)];
    sample.gap = Math.max(0, ...marks.slice(1).map((m, k) => m - (marks[k] as number)));
  }
  const what = mode === 'kill' ? 'kill -9' : mode === 'term' ? 'SIGTERM' : 'cut';
  const outcome = Number.isNaN(sample.ms)
    ? `missed: no write in a newer term within ${FAILOVER_TIMEOUT_MS / 1000} s (last error: ${lastError || 'none'})`
    : `write ok after ${sec(sample.ms)} s (term ${oldTerm} -> ${newTerm}), longest gap without a write ${sec(sample.gap)} s`;
  const exit = mode === 'term' ? `, old leader exited after ${sec(sample.exitMs)} s` : '';
  console.log(`  ${s.system} ${what} #${trial + 1}: leader ${victim.name}: ${outcome}; ${sample.attempts} attempts, ${sample.failed} failed, ${sample.oldTerm} in the old term${exit}`);
  return { sample, victim };
}

interface Throughput {
  perSecond: number;
  writes: number;
  errors: number;
  p50: number;
  p99: number;
  lastError: string;
}

async function throughput(s: Subject): Promise<Throughput> {
  const c = s.cluster;
  await c.waitHealthy();
  const writers: Writer[] = [];
  try {
    for (let i = 0; i < clients; i++) writers.push(await s.writer(c.hosts[i % c.hosts.length] as Host));
    const lat: number[] = [];
    let errors = 0;
    let lastError = '';
    const start = now() + WARMUP_MS;
    const end = start + seconds * 1000;
    const value = 'x'.repeat(64);
    const loop = async (w: Writer, i: number) => {
      // Bounded by time, and by count for a write that fails at once.
      for (let k = 0; k < (WARMUP_MS + seconds * 1000) * 10 && now() < end; k++) {
        const a = now();
        try {
          await w.put(`bench-tp-${i}`, `${k}-${value}`);
          const b = now();
          if (a >= start && b <= end) lat.push(b - a);
        } catch (e) {
          errors++;
          lastError = errorText(e);
          await sleep(50);
        }
      }
    };
    await withTimeout(Promise.all(writers.map((w, i) => loop(w, i))), WARMUP_MS + seconds * 1000 + WRITE_TIMEOUT_MS + 5_000, `${s.system} throughput`);
    const r = { perSecond: lat.length / seconds, writes: lat.length, errors, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), lastError };
    console.log(`  ${s.system} writes: ${lat.length} in ${seconds} s with ${clients} clients = ${r.perSecond.toFixed(0)}/s, latency p50 ${ms(r.p50)} ms p99 ${ms(r.p99)} ms, ${errors} errors${lastError ? ` (last: ${lastError})` : ''}`);
    return r;
  } finally {
    await Promise.all(writers.map((w) => w.close().catch(() => undefined)));
  }
}

interface Soak {
  termChanges: number;
  leaderChanges: number;
  polls: number;
  unanswered: number;
}

async function soak(s: Subject): Promise<Soak> {
  const c = s.cluster;
  const { leader: first, term: startTerm } = await c.waitHealthy();
  let leader: Host | undefined = first;
  let maxTerm = startTerm;
  const r: Soak = { termChanges: 0, leaderChanges: 0, polls: 0, unanswered: 0 };
  const t0 = now();
  for (let i = 0; i < soakSeconds * (1000 / SOAK_POLL_MS) + 1 && now() - t0 < soakSeconds * 1000; i++) {
    await sleep(SOAK_POLL_MS);
    const views = await Promise.all(c.hosts.map((h) => c.view(h).catch(() => undefined)));
    r.polls++;
    for (const v of views) {
      if (v === undefined) {
        r.unanswered++;
        continue;
      }
      maxTerm = Math.max(maxTerm, v.term);
    }
    // The leader most members name; a change of it is a leader change.
    const named = new Map<Host, number>();
    for (const v of views) if (v?.leader) named.set(v.leader, (named.get(v.leader) ?? 0) + 1);
    const top = [...named].sort((a, b) => b[1] - a[1])[0];
    if (top && top[1] > c.hosts.length / 2 && top[0] !== leader) {
      r.leaderChanges++;
      console.log(`  ${s.system} soak: leader ${leader?.name ?? 'none'} -> ${top[0].name} after ${sec(now() - t0)} s`);
      leader = top[0];
    }
  }
  r.termChanges = maxTerm - startTerm;
  console.log(`  ${s.system} soak: ${SOAK_MEMBERS} members idle ${soakSeconds} s: term ${startTerm} -> ${maxTerm}, ${r.leaderChanges} leader changes, ${r.unanswered} unanswered status polls`);
  return r;
}

interface Results {
  system: System;
  /** Set when the system could not run (or stopped early), in one sentence. */
  error?: string;
  /** It could not start at all: later phases are not tried. */
  unavailable?: boolean;
  failover: Partial<Record<Mode, FailoverSample[]>>;
  throughput?: Throughput;
  soak?: Soak;
}

async function startCluster(system: System, hosts: readonly Host[], tag: string): Promise<Subject> {
  if (system === 'etcd') return etcdSubject(await EtcdCluster.start(hosts, tag));
  return weftSubject(await WeftControl.start(hosts, PASSWORD));
}

/** Runs `phase` against a fresh cluster of `system` on `hosts`, noting an error in `res`
 *  instead of throwing: the other system still runs. The cluster is stopped in any case. */
async function withCluster(res: Results, hosts: readonly Host[], tag: string, phase: (s: Subject) => Promise<void>): Promise<void> {
  if (res.unavailable) return;
  let subject: Subject;
  try {
    subject = await startCluster(res.system, hosts, tag);
  } catch (e) {
    res.unavailable = true;
    res.error = `not available (${errorText(e)})`;
    console.log(`  ${res.system}: ${res.error}`);
    return;
  }
  try {
    await phase(subject);
    if (subject.cluster instanceof WeftControl && subject.cluster.termInAnswer === false) {
      console.log(`  weft: config.set's answer carries no term: a failover write's term was read from that member's status right after it`);
    }
  } catch (e) {
    res.error = `${res.error ? `${res.error}; ` : ''}stopped after an error (${errorText(e)})`;
    console.log(`  ${res.system}: ${res.error}`);
  } finally {
    for (const h of hosts) if (h.isCut) await h.heal();
    await subject.cluster.stop();
  }
}

async function main(): Promise<void> {
  printEnvironment('control');
  console.log(`control: ${etcdVersion()}; ${EtcdCluster.describe()}`);
  console.log(
    `control: ${MEMBERS} members per system, ${trials} trials per failover mode (${modes.map((m) => MODE_LABEL[m]).join(', ')}), a write attempt every ${ATTEMPT_EVERY_MS} ms ` +
      `(${ATTEMPT_TIMEOUT_MS} ms limit each, ${FAILOVER_TIMEOUT_MS / 1000} s per trial); throughput ${clients} clients for ${seconds} s; soak ${soakSeconds > 0 ? `${SOAK_MEMBERS} members ${soakSeconds} s` : 'off'}`,
  );
  const results: Results[] = systems.map((system) => ({ system, failover: {} }));

  const mesh = await Harness.create({ hosts: MEMBERS, name: 'bench-control' });
  try {
    for (const res of results) {
      console.log(`${res.system}, ${MEMBERS} members:`);
      await withCluster(res, mesh.hosts, 'etcd', async (s) => {
        for (const mode of modes) {
          const samples: FailoverSample[] = [];
          res.failover[mode] = samples;
          for (let t = 0; t < trials; t++) {
            const { sample, victim } = await failoverTrial(s, mode, t);
            samples.push(sample);
            if (mode === 'cut') await victim.heal();
            else await s.cluster.restart(victim);
            await s.cluster.waitHealthy();
          }
        }
        if (clients > 0) res.throughput = await throughput(s);
      });
    }
  } finally {
    await mesh.cleanup();
  }

  if (soakSeconds > 0) {
    const big = await Harness.create({ hosts: SOAK_MEMBERS, name: 'bench-control-soak' });
    try {
      for (const res of results) {
        console.log(`${res.system}, ${SOAK_MEMBERS} members, idle soak:`);
        await withCluster(res, big.hosts, 'etcd-soak', async (s) => {
          res.soak = await soak(s);
        });
      }
    } finally {
      await big.cleanup();
    }
  }

  console.log();
  const rows: string[][] = [];
  const ok = (xs: FailoverSample[] | undefined) => (xs ?? []).map((x) => x.ms).filter((x) => !Number.isNaN(x));
  for (const res of results) {
    for (const mode of modes) {
      const xs = res.failover[mode];
      if (xs === undefined) continue;
      const good = ok(xs);
      const exits = xs.map((x) => x.exitMs).filter((x) => !Number.isNaN(x));
      const gaps = xs.map((x) => x.gap).filter((x) => !Number.isNaN(x));
      rows.push([
        res.system, `${MODE_LABEL[mode]}, s`, String(xs.length), sec(median(good)), sec(max(good)), sec(min(good)), String(xs.length - good.length),
        `longest write gap median ${sec(median(gaps))} s max ${sec(max(gaps))} s; ` +
          (mode === 'term' ? `old leader exit median ${sec(median(exits))} s; ${xs.reduce((a, x) => a + x.oldTerm, 0)} writes in the old term` : `${xs.reduce((a, x) => a + x.failed, 0)} failed attempts`),
      ]);
    }
    if (res.throughput) {
      const t = res.throughput;
      rows.push([res.system, `writes/s, ${clients} clients`, '1', t.perSecond.toFixed(0), '', '', '', `latency p50 ${ms(t.p50)} ms p99 ${ms(t.p99)} ms, ${t.errors} errors`]);
    }
    if (res.soak) {
      const k = res.soak;
      rows.push([res.system, `soak ${SOAK_MEMBERS} members ${soakSeconds} s: term changes`, '1', String(k.termChanges), '', '', '', `${k.leaderChanges} leader changes, ${k.unanswered}/${k.polls * SOAK_MEMBERS} status polls unanswered`]);
    }
  }
  printTable(['system', 'figure', 'trials', 'median', 'max', 'min', 'missed', 'notes'], rows);
  for (const res of results) if (res.error) console.log(`${res.system}: ${res.error}`);
  console.log();

  const weft = results.find((r) => r.system === 'weft');
  const etcd = results.find((r) => r.system === 'etcd');
  for (const mode of modes) {
    const w = ok(weft?.failover[mode]);
    const e = ok(etcd?.failover[mode]);
    console.log(`control ${MODE_LABEL[mode]}: weft median ${sec(median(w))} s max ${sec(max(w))} s, etcd median ${sec(median(e))} s max ${sec(max(e))} s, ratio ${ratio(median(w), median(e))} (weft/etcd, medians; below 1: weft recovers sooner)`);
  }
  if (clients > 0) {
    const w = weft?.throughput?.perSecond ?? NaN;
    const e = etcd?.throughput?.perSecond ?? NaN;
    console.log(`control writes/s (${clients} clients, ${seconds} s): weft ${Number.isFinite(w) ? w.toFixed(0) : '–'}, etcd ${Number.isFinite(e) ? e.toFixed(0) : '–'}, ratio ${ratio(w, e)} (weft/etcd; above 1: weft commits more)`);
  }
  if (soakSeconds > 0) {
    const w = weft?.soak;
    const e = etcd?.soak;
    console.log(`control idle soak (${SOAK_MEMBERS} members, ${soakSeconds} s): weft ${w ? `${w.termChanges} term changes, ${w.leaderChanges} leader changes` : '–'}, etcd ${e ? `${e.termChanges} term changes, ${e.leaderChanges} leader changes` : '–'} (target: 0)`);
  }
}

await main();
