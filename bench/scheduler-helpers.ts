// What bench/scheduler.ts's phases share (the figures' shapes, polling, dig), and weft's side of
// it: five harness hosts with a dockerd and a peer each (3 managers, 2 workers, as
// test/e2e/scheduler.test.ts starts them), driven by the `weft` CLI for the timed commands and
// observed through in-process API clients (mesh/api/client.ts) and `dig` in each host's namespace.
import fs from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import * as meshApi from '../mesh/api/contract.ts';
import * as serviceApi from '../scheduler/service/api-contract.ts';
import type { ApiClient } from '../mesh/api/client.ts';
import { identityFromLabels, MESH_DOMAIN } from '../mesh/naming.ts';
import { BUSYBOX_IMAGE, waitFor, type ExecResult, type Harness, type Host, type RunOptions } from '../test/harness/harness.ts';
import { describeFailure } from '../test/harness/run.ts';
import { call, connectWeft, waitWeftConverged } from './lib/weft.ts';
import { now, sleep } from './lib/time.ts';

/** Poll period of every observation (task lists, dig on each host). Fine enough next to figures
 *  of seconds (it adds half a period on average, to both systems alike); coarse enough that five
 *  dig processes a round do not load the two cores that run both systems. */
export const POLL_MS = 200;
/** The managers of both systems: h1..h3; h4 and h5 are workers, the victims of the death phase. */
export const MANAGERS = 3;
export const HOSTS = 5;
/** What every container runs, in both systems: a sleep that ends at once on SIGTERM. A bare
 *  `sleep` as PID 1 ignores SIGTERM, so every stop would wait out the stop timeout (weft's 5 s,
 *  swarm's 10 s) and the rolling redeploy would measure those timeouts, not the schedulers. */
export const CONTAINER_COMMAND = ['sh', '-c', 'trap "exit 0" TERM; sleep 100000 & wait'] as const;
/** The stack (weft) and the service (both): containers are web-1.. in weft, web.1.. in swarm. */
export const STACK = 'bench';
export const SERVICE = 'web';
/** weft's reschedule_after for the bench's service: short so that a death run is short, long
 *  enough that the mesh's detection of a dead host (~1.5 s, README) ends well inside it, so
 *  the grace and not detection decides when containers move. Subtracted from weft's figure. */
export const GRACE_S = 5;
/** A deploy of 30 containers takes seconds; minutes means it is stuck. */
export const DEPLOY_TIMEOUT_MS = 180_000;
/** Ten containers one at a time, each stopped and started again: seconds each at most. */
export const REDEPLOY_TIMEOUT_MS = 300_000;
/** Removing 30 containers (each up to a 10 s stop timeout, five dockerds in parallel). */
export const GONE_TIMEOUT_MS = 120_000;
/** Swarm's node-down timeout alone is up to 16.5 s (3 × (5 s + 0.5 s)), weft's grace 5 s; then
 *  restarts of a few containers: a minute means they are not coming back. */
export const DEATH_TIMEOUT_MS = 60_000;
/** After a heal, until the returned node no longer runs its stale copies. */
export const STALE_TIMEOUT_MS = 60_000;
/** One dig process (30 questions, 1 s each at worst per question before it gives up). */
const DIG_TIMEOUT_MS = 15_000;
/** A local CLI command that only writes desired state. */
const CLI_TIMEOUT_MS = 60_000;
/** weft's DNS inside each host's namespace (dns/service.ts, DEFAULT_DNS_LISTEN). */
export const WEFT_DNS = '127.0.0.153';

export type SystemName = 'weft' | 'swarm';

/** A deploy: from the command's start until the bench saw every container running and every
 *  host resolving all of them. */
export interface DeployTiming {
  ms: number;
  runningMs: number;
  resolvedMs: number;
  /** When the deploy command itself returned (weft's waits for running; swarm's is --detach). */
  commandMs: number;
}

export interface RedeployTiming {
  /** From the command until every container was replaced, running and resolving everywhere. */
  ms: number;
  convergedMs: number;
  resolvedMs: number;
  commandMs: number;
  note: string;
}

export interface DeathTiming {
  /** From the cut until every container the dead host ran ran elsewhere and resolved on every
   *  surviving host. */
  totalMs: number;
  /** When the bench saw the host dead (weft: h1's member table; swarm: the node Down). */
  detectMs: number;
  /** What the figure leaves out: weft its reschedule_after, swarm its measured node-down time. */
  graceMs: number;
  figureMs: number;
  moved: number;
  note: string;
  /** From the heal until the returned host no longer ran its stale copies (NaN: not within
   *  STALE_TIMEOUT_MS). */
  staleGoneMs: number;
}

/** What the phases need of a system under test. */
export interface System {
  readonly name: SystemName;
  readonly hosts: readonly Host[];
  /** The workers: the hosts the death phase cuts off. */
  readonly victims: readonly Host[];
  /** What "resolves" means for this system, for the printout. */
  readonly resolves: string;
  readonly mesh: Harness;
  deploy(count: number): Promise<DeployTiming>;
  /** Removes the service (stack) and waits until no container and no name of it is left. */
  remove(): Promise<number>;
  /** Rolling replacement, one at a time, of a deployed service of `count`. */
  redeploy(count: number): Promise<RedeployTiming>;
  /** Deploys `count`, cuts `victim` off, measures, heals, removes. */
  death(victim: Host, count: number): Promise<DeathTiming>;
}

/** Thrown from a poll step to end the wait at once (a command failed). */
export class Abort extends Error {}

export const errorText = (e: unknown) => ((e as Error)?.message ?? String(e)).split('\n').slice(0, 3).join(' | ').slice(0, 1500);

/** Calls `step` every POLL_MS until it returns true; errors count as "not yet" (Abort ends it).
 *  Throws after `timeoutMs` with `what`, `state()` and the last error. */
export async function pollUntil(what: string, timeoutMs: number, step: () => Promise<boolean>, state: () => string): Promise<void> {
  const deadline = now() + timeoutMs;
  let lastError = '';
  // Bounded by the deadline; every round takes at least POLL_MS, so also by count.
  for (let i = 0; i <= timeoutMs / POLL_MS + 1; i++) {
    try {
      if (await step()) return;
      lastError = '';
    } catch (e) {
      if (e instanceof Abort) throw e;
      lastError = errorText(e);
    }
    if (now() > deadline) break;
    await sleep(POLL_MS);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}: ${state()}${lastError ? `; last error: ${lastError}` : ''}`);
}

export type Exec = (argv: readonly string[], opts?: RunOptions) => Promise<ExecResult>;

/** The A records `server` answers for each of `names` (one dig process), by lower-case name
 *  without the trailing dot. Throws if dig got no answer at all. */
export async function dig(exec: Exec, server: string, names: readonly string[]): Promise<Map<string, string[]>> {
  const argv = ['dig', `@${server}`, '+noall', '+answer', '+tries=1', '+time=1', ...names];
  const r = await exec(argv, { timeoutMs: DIG_TIMEOUT_MS });
  if (r.code !== 0) throw new Error(describeFailure(argv.slice(0, 6), r));
  const out = new Map<string, string[]>();
  for (const line of r.stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || f[3] !== 'A') continue;
    const name = (f[0] as string).toLowerCase().replace(/\.$/, '');
    out.set(name, [...(out.get(name) ?? []), f[4] as string]);
  }
  return out;
}

export const maxOf = (xs: Iterable<number>) => Math.max(...xs);

/** A line matching `re` from each host's peer log (its time and err field), for a failure's
 *  message. */
function logLines(hosts: readonly Host[], re: RegExp): string[] {
  const out: string[] = [];
  for (const h of hosts) {
    const file = h.peer?.logFile;
    if (file === undefined) continue;
    try {
      // The most telling line: one that names a reason beyond "ready", else the last.
      const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => re.test(l));
      const l = lines.filter((x) => !/: ready \(/.test(x)).at(-1) ?? lines.at(-1);
      if (l) out.push(`${h.name}: ${(l.match(/ts=\S+/)?.[0] ?? '')} ${(l.match(/err="[^"]*"/)?.[0] ?? l.slice(0, 300)).replace(/[0-9a-f]{64}/g, (x) => x.slice(0, 12))}`);
    } catch {
      // no log: nothing to add
    }
  }
  return out;
}

/** weft's container names for a service of `count`. */
export const weftNames = (count: number) => Array.from({ length: count }, (_, i) => `${SERVICE}-${i + 1}`);
const fqdn = (name: string) => `${name}.${STACK}.${MESH_DOMAIN}`;

interface Entry {
  name: string;
  id: string;
  address: string;
  host: string;
  state: string;
}

export class WeftSystem implements System {
  readonly name = 'weft' as const;
  readonly resolves = `every container's name (web-N.${STACK}.${MESH_DOMAIN}) answered by every host's weft DNS (dig @${WEFT_DNS} in the host's namespace)`;
  readonly mesh: Harness;
  private readonly clients: Map<Host, ApiClient>;
  private readonly dockers: Map<Host, Docker>;
  /** The names the last deploy made, for the gone check. */
  private deployed = 0;

  private constructor(mesh: Harness, clients: Map<Host, ApiClient>) {
    this.mesh = mesh;
    this.clients = clients;
    this.dockers = new Map(mesh.hosts.map((h) => [h, new Docker({ socketPath: (h.dockerd as NonNullable<Host['dockerd']>).socket })]));
  }

  get hosts(): readonly Host[] {
    return this.mesh.hosts;
  }

  get victims(): readonly Host[] {
    return this.mesh.hosts.slice(MANAGERS);
  }

  private get h1(): Host {
    return this.mesh.hosts[0] as Host;
  }

  /** Dockerds with busybox imported, then the peers as the e2e test starts them: h1 first, the
   *  rest joining it; h1..h3 may be managers (3 wanted), h4 and h5 are workers. */
  static async start(mesh: Harness, password: string): Promise<WeftSystem> {
    const hosts = mesh.hosts;
    await Promise.all(hosts.map(async (h) => (await h.startDockerd()).importBusybox()));
    const first = hosts[0] as Host;
    for (const [i, h] of hosts.entries()) {
      await h.startPeer({
        password,
        dataplane: true,
        peers: i === 0 ? [] : [first.address],
        // consensus=5: the IPAM ring is split once all five have met, as in the e2e test.
        args: ['--ipalloc-init', `consensus=${HOSTS}`, '--role', i < MANAGERS ? 'auto' : 'worker', '--managers', String(MANAGERS)],
      });
    }
    await waitFor(async () => (await first.weftJson<{ voter: boolean }[]>(['manager', 'ls', '--json'])).filter((m) => m.voter).length === MANAGERS, {
      timeoutMs: 120_000, intervalMs: 1_000, what: `${MANAGERS} voting weft managers`,
    });
    await waitWeftConverged(hosts);
    const clients = new Map<Host, ApiClient>();
    for (const h of hosts) clients.set(h, await connectWeft(h));
    return new WeftSystem(mesh, clients);
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close().catch(() => undefined)));
  }

  private stackFile(count: number): string {
    const file = path.join(this.mesh.tmpDir, `${STACK}-${count}.yml`);
    // A Tutum stackfile; the default strategy (EMPTIEST_NODE) spreads them like swarm does.
    const [sh, c, script] = CONTAINER_COMMAND;
    fs.writeFileSync(file, `${SERVICE}:\n  image: ${BUSYBOX_IMAGE}\n  command: ${sh} ${c} '${script}'\n  target_num_containers: ${count}\n  reschedule_after: ${GRACE_S}s\n`);
    return file;
  }

  /** The bench service's containers as h1's registry has them (every state). */
  private async entries(): Promise<Entry[]> {
    const cs = await call(this.clients.get(this.h1) as ApiClient, meshApi.ps, {});
    const out: Entry[] = [];
    for (const c of cs) {
      const n = identityFromLabels(c.name, c.labels);
      if (n.stack === STACK && n.service === SERVICE) out.push({ name: n.name, id: c.id, address: c.addr, host: c.host, state: c.state });
    }
    return out;
  }

  private resolve(h: Host, names: readonly string[]): Promise<Map<string, string[]>> {
    return dig((argv, opts) => h.exec(argv, opts), WEFT_DNS, names.map(fqdn)).then((m) => new Map(names.map((n) => [n, m.get(fqdn(n)) ?? []])));
  }

  /** Starts a weft CLI command in the background; resolves with its result and when it ended. */
  private command(h: Host, args: string[], timeoutMs: number, t0: number): { done: Promise<{ r: ExecResult; ms: number }>; result: () => { r: ExecResult; ms: number } | undefined } {
    let result: { r: ExecResult; ms: number } | undefined;
    const done = h.weft(args, { timeoutMs }).then((r) => (result = { r, ms: now() - t0 }));
    return { done, result: () => result };
  }

  private failed(args: string[], r: ExecResult): Abort {
    return new Abort(`weft ${describeFailure(args, r)}`);
  }

  async deploy(count: number): Promise<DeployTiming> {
    const file = this.stackFile(count);
    const names = weftNames(count);
    this.deployed = Math.max(this.deployed, count);
    const args = ['stack', 'deploy', '-f', file, STACK, '--timeout', String(DEPLOY_TIMEOUT_MS / 1000)];
    const t0 = now();
    const cmd = this.command(this.h1, args, DEPLOY_TIMEOUT_MS + 20_000, t0);
    let runningMs = NaN;
    let running = 0;
    const resolvedAt = new Map<Host, number>();
    await pollUntil(`weft: ${count} containers running and resolving on all ${HOSTS} hosts`, DEPLOY_TIMEOUT_MS, async () => {
      const c = cmd.result();
      if (c && c.r.code !== 0) throw this.failed(args, c.r);
      if (Number.isNaN(runningMs)) {
        const up = new Set((await this.entries()).filter((e) => e.state === 'running').map((e) => e.name));
        running = names.filter((n) => up.has(n)).length;
        if (running === count) runningMs = now() - t0;
      }
      await Promise.all(this.hosts.filter((h) => !resolvedAt.has(h)).map(async (h) => {
        const a = await this.resolve(h, names);
        if (names.every((n) => (a.get(n)?.length ?? 0) > 0)) resolvedAt.set(h, now() - t0);
      }));
      return !Number.isNaN(runningMs) && resolvedAt.size === this.hosts.length;
    }, () => `${running}/${count} running, ${resolvedAt.size}/${HOSTS} hosts resolve all; deploy command ${cmd.result() ? `exited ${cmd.result()?.r.code}` : 'still waiting'}`);
    const { r, ms } = await cmd.done;
    if (r.code !== 0) throw this.failed(args, r);
    const resolvedMs = maxOf(resolvedAt.values());
    return { ms: Math.max(runningMs, resolvedMs), runningMs, resolvedMs, commandMs: ms };
  }

  async remove(): Promise<number> {
    const names = weftNames(this.deployed);
    const t0 = now();
    const args = ['stack', 'rm', STACK];
    const r = await this.h1.weft(args, { timeoutMs: CLI_TIMEOUT_MS });
    if (r.code !== 0) throw new Error(`weft ${describeFailure(args, r)}`);
    let left = '';
    await pollUntil(`weft: stack ${STACK} gone (containers, registry, every host's DNS)`, GONE_TIMEOUT_MS, async () => {
      const counts = await Promise.all(this.hosts.map(async (h) => (await (this.dockers.get(h) as Docker).listContainers({ all: true, filters: { label: [`weft.stack=${STACK}`] } })).length));
      const entries = (await this.entries()).length;
      const answered = await Promise.all(this.hosts.map(async (h) => [...(await this.resolve(h, names)).values()].filter((a) => a.length > 0).length));
      left = `containers per host ${counts.join('/')}, ${entries} registry entries, names answered per host ${answered.join('/')}`;
      return counts.every((n) => n === 0) && entries === 0 && answered.every((n) => n === 0);
    }, () => left);
    this.deployed = 0;
    return now() - t0;
  }

  async redeploy(count: number): Promise<RedeployTiming> {
    const names = weftNames(count);
    const before = new Map((await this.entries()).filter((e) => e.state === 'running').map((e) => [e.name, e]));
    if (!names.every((n) => before.has(n))) throw new Error(`weft: redeploy needs ${count} running containers, has ${before.size}`);
    const args = ['service', 'redeploy', `${STACK}/${SERVICE}`, '--timeout', String(REDEPLOY_TIMEOUT_MS / 1000)];
    const t0 = now();
    // From h2: any peer takes the command (a non-leader forwards it).
    const cmd = this.command(this.hosts[1] as Host, args, REDEPLOY_TIMEOUT_MS + 20_000, t0);
    let convergedMs = NaN;
    let replaced = new Map<string, Entry>();
    const resolvedAt = new Map<Host, number>();
    await pollUntil(`weft: ${count} containers replaced, running and resolving on all hosts`, REDEPLOY_TIMEOUT_MS, async () => {
      const c = cmd.result();
      if (c && c.r.code !== 0) throw this.failed(args, c.r);
      if (Number.isNaN(convergedMs)) {
        const es = await this.entries();
        replaced = new Map(es.filter((e) => e.state === 'running' && e.id !== before.get(e.name)?.id && before.has(e.name)).map((e) => [e.name, e]));
        const oldRunning = es.filter((e) => e.state === 'running' && e.id === before.get(e.name)?.id).length;
        if (replaced.size === count && oldRunning === 0) convergedMs = now() - t0;
        else return false;
      }
      await Promise.all(this.hosts.filter((h) => !resolvedAt.has(h)).map(async (h) => {
        const a = await this.resolve(h, names);
        if (names.every((n) => a.get(n)?.includes((replaced.get(n) as Entry).address))) resolvedAt.set(h, now() - t0);
      }));
      return resolvedAt.size === this.hosts.length;
    }, () => `${replaced.size}/${count} replaced, ${resolvedAt.size}/${HOSTS} hosts resolve all; command ${cmd.result() ? `exited ${cmd.result()?.r.code}` : 'still waiting'}`);
    const { r, ms } = await cmd.done;
    if (r.code !== 0) throw this.failed(args, r);
    const moved = names.filter((n) => replaced.get(n)?.address !== before.get(n)?.address);
    const resolvedMs = maxOf(resolvedAt.values());
    return {
      ms: Math.max(convergedMs, resolvedMs), convergedMs, resolvedMs, commandMs: ms,
      note: moved.length === 0 ? 'every name kept its address' : `addresses changed: ${moved.join(', ')}`,
    };
  }

  async death(victim: Host, count: number): Promise<DeathTiming> {
    await this.deploy(count);
    const before = (await this.entries()).filter((e) => e.state === 'running');
    const onVictim = before.filter((e) => e.host === victim.name);
    if (onVictim.length === 0) throw new Error(`weft: no container of ${count} on ${victim.name}: ${before.map((e) => `${e.name}@${e.host}`).join(' ')}`);
    const names = onVictim.map((e) => e.name);
    const survivors = this.hosts.filter((h) => h !== victim);
    const h1 = this.clients.get(this.h1) as ApiClient;
    let detectMs = NaN;
    const moved = new Map<string, Entry>();
    const resolved = new Map<Host, Set<string>>(survivors.map((h) => [h, new Set()]));
    /** (host, name) pairs whose old record the host's DNS dropped before the move. */
    const dropped = new Set<string>();
    /** When the scheduler reported each one running on another host (service inspect). */
    const started = new Map<string, { ms: number; host: string }>();
    const t0 = now();
    await victim.cut();
    let totalMs = NaN;
    try {
      await pollUntil(`weft: ${names.join(', ')} running elsewhere and resolving on every survivor`, DEATH_TIMEOUT_MS, async () => {
        if (Number.isNaN(detectMs)) {
          const peers = await call(h1, meshApi.peers, {});
          if (peers.some((p) => p.name === victim.name && p.state === 'dead')) detectMs = now() - t0;
        }
        for (const e of await this.entries()) {
          if (names.includes(e.name) && e.state === 'running' && e.host !== victim.name && !moved.has(e.name)) moved.set(e.name, e);
        }
        if (started.size < names.length) {
          // The scheduler's own view (desired state and agents' reports), to tell "not moved" from
          // "moved but not on the network" if the run fails.
          const { tasks } = await call(h1, serviceApi.serviceInspect, { name: `${STACK}/${SERVICE}` });
          for (const t of tasks) if (names.includes(t.name) && t.host !== victim.name && t.state === 'running' && !started.has(t.name)) started.set(t.name, { ms: now() - t0, host: t.host });
        }
        await Promise.all(survivors.map(async (h) => {
          const a = await this.resolve(h, names);
          for (const n of names) {
            const got = a.get(n) ?? [];
            if (got.length === 0 && !moved.has(n)) dropped.add(`${h.name}/${n}`);
            const m = moved.get(n);
            if (m && got.includes(m.address)) (resolved.get(h) as Set<string>).add(n);
          }
        }));
        const done = moved.size === names.length && survivors.every((h) => resolved.get(h)?.size === names.length);
        if (done) totalMs = now() - t0;
        return done;
      }, () => `detected ${Number.isNaN(detectMs) ? 'not yet' : `after ${(detectMs / 1000).toFixed(2)} s`}, in the registry running elsewhere: ${[...moved.values()].map((e) => `${e.name}@${e.host}`).join(' ') || 'none'}, resolved per survivor ${survivors.map((h) => resolved.get(h)?.size).join('/')}`);
    } catch (e) {
      const scheduled = [...started].map(([n, x]) => `${n} on ${x.host} after ${(x.ms / 1000).toFixed(2)} s`).join(', ') || 'none';
      throw new Error(`${errorText(e)}; the scheduler reported running elsewhere: ${scheduled}; survivors' peer logs: ${logLines(survivors, /no address for/).join(' || ') || 'no "no address" line'}`);
    } finally {
      await victim.heal();
    }
    const t1 = now();
    const same = onVictim.filter((e) => moved.get(e.name)?.address === e.address).length;
    let staleGoneMs = NaN;
    const victimDocker = this.dockers.get(victim) as Docker;
    const oldIds = new Set(onVictim.map((e) => e.id));
    await pollUntil(`weft: ${victim.name}'s stale copies gone after the heal`, STALE_TIMEOUT_MS, async () => {
      const stale = (await victimDocker.listContainers({ filters: { label: [`weft.stack=${STACK}`] } })).filter((c) => oldIds.has(c.Id)).length;
      const es = (await this.entries()).filter((e) => names.includes(e.name) && e.state === 'running');
      return stale === 0 && es.length === names.length;
    }, () => '').then(() => { staleGoneMs = now() - t1; }, () => undefined);
    await this.remove();
    await waitWeftConverged(this.hosts);
    return {
      totalMs, detectMs, graceMs: GRACE_S * 1000, figureMs: totalMs - GRACE_S * 1000, moved: names.length,
      note: `${same}/${names.length} kept their address; old record dropped by ${dropped.size}/${names.length * survivors.length} (survivor, name) pairs before the move`,
      staleGoneMs,
    };
  }
}
