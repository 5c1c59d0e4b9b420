// Docker swarm mode on five harness hosts, the anchor of bench/scheduler.ts: the docker.io
// package's dockerd (the harness's own, see test/harness/dockerd.ts) on each host, h1 initialises
// the swarm, h2 and h3 join as managers, h4 and h5 as workers. Services go on an attachable
// overlay network, and a probe container on every node (attached to it, so that node holds the
// network's service records) is where "resolves" is checked: `tasks.web` through Docker's
// embedded DNS (127.0.0.11 in the container's namespace) must answer every task's address.
// Timed commands go through the docker CLI, as weft's go through the weft CLI; observation
// goes through Docker's API on the unix socket (dockerode), as weft's through its API socket.
//
// No registry: the image is imported on every node, services are created with
// --no-resolve-image, and the dockerds run with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 (set by
// scheduler.ts before the harness is built), which keeps swarm's executor from pulling a tag it
// already has (it otherwise always tries to, and only logs the failure).
import fs from 'node:fs';
import Docker from 'dockerode';
import { BUSYBOX_IMAGE, waitFor, type Harness, type Host } from '../test/harness/harness.ts';
import { describeFailure } from '../test/harness/run.ts';
import {
  Abort, CONTAINER_COMMAND, DEATH_TIMEOUT_MS, DEPLOY_TIMEOUT_MS, dig, errorText, GONE_TIMEOUT_MS, HOSTS, MANAGERS, maxOf, pollUntil, REDEPLOY_TIMEOUT_MS, SERVICE, STALE_TIMEOUT_MS,
  type DeathTiming, type DeployTiming, type RedeployTiming, type System,
} from './scheduler-helpers.ts';
import { now } from './lib/time.ts';

/** The overlay network the services and probes share. */
const NETWORK = 'benchnet';
/** Docker's embedded DNS inside a container attached to a user-defined network. */
const EMBEDDED_DNS = '127.0.0.11';
/** swarm's dispatcher defaults (moby/swarmkit manager/dispatcher): a worker heartbeats every
 *  5 s (+ up to 0.5 s), and is marked Down after 3 periods without one. Printed, not changed. */
export const SWARM_HEARTBEAT_S = 5;
export const SWARM_GRACE_MULTIPLIER = 3;
/** The death phase's --restart-delay (swarm's default: 5 s), see death(). */
export const SWARM_RESTART_DELAY_S = 0;
/** swarm stops a task's container 2 s after taking it out of the service's DNS and load
 *  balancing (daemon/cluster/executor/container: defaultGossipConvergeDelay), by design: in
 *  every rolling replacement. Printed with the figures. */
export const SWARM_SHUTDOWN_DELAY_S = 2;
/** A join or init answers in a second or two; a minute is failure. */
const SWARM_CMD_TIMEOUT_MS = 60_000;
const CLI_TIMEOUT_MS = 60_000;
/**
 * The probes' upstream resolver: answers every question NXDOMAIN at once, on 127.0.0.1:53 in
 * the probe's namespace (the probe runs with --dns 127.0.0.1). Docker's embedded DNS forwards
 * a name it does not hold (tasks.web before its records arrive, or after removal) upstream,
 * and dockerd 20.10 sends no answer at all when the upstream cannot be reached (the harness
 * hosts reach nothing outside the switch), so without this every such query would hang until
 * dig's timeout and make swarm's polls a second slow. A real host has a working upstream.
 */
const NXDOMAIN_SERVER = `const d = require('dgram').createSocket('udp4');
d.on('message', (m, r) => {
  if (m.length < 12) return;
  let i = 12;
  while (i < m.length && m[i] !== 0) i += m[i] + 1;
  const o = Buffer.from(m.subarray(0, Math.min(m.length, i + 5)));
  o[2] = 0x80 | (m[2] & 0x79); o[3] = 0x83;
  o.writeUInt16BE(1, 4); o.writeUInt16BE(0, 6); o.writeUInt16BE(0, 8); o.writeUInt16BE(0, 10);
  d.send(o, r.port, r.address);
});
d.bind(53, '127.0.0.1');`;
/** A probe's embedded DNS answers within a second or two of its start. */
const PROBE_READY_MS = 30_000;

interface TaskView {
  id: string;
  slot: number;
  node: string;
  state: string;
  desired: string;
  addresses: string[];
}

export class SwarmSystem implements System {
  readonly name = 'swarm' as const;
  readonly mesh: Harness;
  /** Set when the overlay network or its probes could not run: then only "running" is measured. */
  readonly overlayError: string | undefined;
  private readonly nodeIds: Map<Host, string>;
  private readonly probes: Map<Host, number>;
  private readonly dockers: Map<Host, Docker>;

  private constructor(mesh: Harness, nodeIds: Map<Host, string>, probes: Map<Host, number>, overlayError: string | undefined) {
    this.mesh = mesh;
    this.nodeIds = nodeIds;
    this.probes = probes;
    this.overlayError = overlayError;
    this.dockers = new Map(mesh.hosts.map((h) => [h, new Docker({ socketPath: (h.dockerd as NonNullable<Host['dockerd']>).socket })]));
  }

  get resolves(): string {
    return this.overlayError === undefined
      ? `tasks.${SERVICE} answered with every task's address by Docker's embedded DNS in a probe container on every node (overlay network "${NETWORK}")`
      : `not measured (overlay network unavailable: ${this.overlayError}); running only`;
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

  private get api(): Docker {
    return this.dockers.get(this.h1) as Docker;
  }

  private cli(h: Host) {
    return h.dockerd as NonNullable<Host['dockerd']>;
  }

  /** Starts the dockerds and the swarm; throws with the failing command's words if swarm mode
   *  cannot run here. An overlay network that cannot be made is noted, not thrown. */
  static async start(mesh: Harness): Promise<SwarmSystem> {
    const hosts = mesh.hosts;
    await Promise.all(hosts.map(async (h) => (await h.startDockerd()).importBusybox()));
    const first = hosts[0] as Host;
    const d1 = first.dockerd as NonNullable<Host['dockerd']>;
    await d1.mustDocker(['swarm', 'init', '--advertise-addr', first.ip, '--listen-addr', `${first.ip}:2377`], { timeoutMs: SWARM_CMD_TIMEOUT_MS });
    const managerToken = await d1.mustDocker(['swarm', 'join-token', '-q', 'manager']);
    const workerToken = await d1.mustDocker(['swarm', 'join-token', '-q', 'worker']);
    for (const [i, h] of hosts.entries()) {
      if (i === 0) continue;
      await (h.dockerd as NonNullable<Host['dockerd']>).mustDocker(
        ['swarm', 'join', '--token', i < MANAGERS ? managerToken : workerToken, '--advertise-addr', h.ip, '--listen-addr', `${h.ip}:2377`, `${first.ip}:2377`],
        { timeoutMs: SWARM_CMD_TIMEOUT_MS },
      );
    }
    const nodeIds = new Map<Host, string>();
    for (const h of hosts) nodeIds.set(h, await (h.dockerd as NonNullable<Host['dockerd']>).mustDocker(['info', '--format', '{{.Swarm.NodeID}}']));
    const api = new Docker({ socketPath: d1.socket });
    await waitFor(async () => (await api.listNodes()).filter((n) => n.Status?.State === 'ready').length === HOSTS, { timeoutMs: 60_000, intervalMs: 500, what: `${HOSTS} swarm nodes ready` });

    let overlayError: string | undefined;
    const probes = new Map<Host, number>();
    const net = await d1.docker(['network', 'create', '--driver', 'overlay', '--attachable', NETWORK], { timeoutMs: CLI_TIMEOUT_MS });
    if (net.code !== 0) overlayError = describeFailure(['docker', 'network', 'create', '--driver', 'overlay', '--attachable', NETWORK], net);
    for (const h of overlayError === undefined ? hosts : []) {
      const d = h.dockerd as NonNullable<Host['dockerd']>;
      const r = await d.docker(['run', '-d', '--name', 'probe', '--network', NETWORK, '--dns', '127.0.0.1', BUSYBOX_IMAGE, 'sleep', '100000'], { timeoutMs: CLI_TIMEOUT_MS });
      if (r.code !== 0) {
        overlayError = `${h.name}: ${describeFailure(['docker', 'run', '--network', NETWORK, '...'], r)}`;
        break;
      }
      const pid = Number(await d.mustDocker(['inspect', '-f', '{{.State.Pid}}', 'probe']));
      probes.set(h, pid);
      // A shell in the host's namespace (where the harness checks a process it starts) runs the
      // server in the probe's; both are in the host's cgroup, so cleanup kills them.
      await h.spawn('probe-upstream', ['sh', '-c', 'nsenter --net="/proc/$1/ns/net" -- "$2" -e "$3"; exit $?', 'probe-upstream', String(pid), process.execPath, NXDOMAIN_SERVER]);
    }
    const s = new SwarmSystem(mesh, nodeIds, probes, overlayError);
    if (overlayError === undefined) {
      // The probes' DNS answers (NXDOMAIN for a service that does not exist yet); the embedded
      // resolver comes up a moment after the container.
      for (const h of hosts) {
        await waitFor(() => s.resolve(h).then(() => true), { timeoutMs: PROBE_READY_MS, intervalMs: 500, what: `the embedded DNS in ${h.name}'s probe` })
          .catch((e: unknown) => { throw new Error(`swarm: ${errorText(e)}`); });
      }
    }
    return s;
  }

  /** The addresses `tasks.web` has in `h`'s probe. */
  private async resolve(h: Host): Promise<string[]> {
    const pid = this.probes.get(h);
    if (pid === undefined) return [];
    const a = await dig((argv, opts) => h.exec(['nsenter', `--net=/proc/${pid}/ns/net`, '--', ...argv], opts), EMBEDDED_DNS, [`tasks.${SERVICE}`]);
    return [...new Set(a.get(`tasks.${SERVICE}`) ?? [])];
  }

  private async tasks(): Promise<TaskView[]> {
    const ts = await this.api.listTasks({ filters: { service: [SERVICE] } });
    return ts.map((t: any) => ({
      id: t.ID as string,
      slot: t.Slot as number,
      node: t.NodeID as string,
      state: t.Status?.State as string,
      desired: t.DesiredState as string,
      addresses: ((t.NetworksAttachments ?? []) as any[]).flatMap((n) => ((n.Addresses ?? []) as string[]).map((a) => a.replace(/\/\d+$/, ''))),
    }));
  }

  /** Starts a docker CLI command on h1 in the background. */
  private command(args: string[], t0: number) {
    let result: { code: number | null; text: string; ms: number } | undefined;
    const done = this.cli(this.h1).docker(args, { timeoutMs: CLI_TIMEOUT_MS }).then((r) => (result = { code: r.code, text: describeFailure(['docker', ...args], r), ms: now() - t0 }));
    return { done, result: () => result };
  }

  deploy(count: number): Promise<DeployTiming> {
    return this.create(count, []);
  }

  private async create(count: number, extra: readonly string[]): Promise<DeployTiming> {
    const net = this.overlayError === undefined ? ['--network', NETWORK] : [];
    const args = ['service', 'create', '--detach', '--no-resolve-image', '--name', SERVICE, '--replicas', String(count), ...net, ...extra, BUSYBOX_IMAGE, ...CONTAINER_COMMAND];
    const t0 = now();
    const cmd = this.command(args, t0);
    let runningMs = NaN;
    let ips = new Set<string>();
    let running = 0;
    const resolvedAt = new Map<Host, number>();
    const probed = this.hosts.filter((h) => this.probes.has(h));
    await pollUntil(`swarm: ${count} tasks running${probed.length ? ` and tasks.${SERVICE} answering all on every node` : ''}`, DEPLOY_TIMEOUT_MS, async () => {
      const c = cmd.result();
      if (c && c.code !== 0) throw new Abort(c.text);
      if (Number.isNaN(runningMs)) {
        const up = (await this.tasks()).filter((t) => t.desired === 'running' && t.state === 'running');
        running = up.length;
        if (running === count) {
          runningMs = now() - t0;
          ips = new Set(up.flatMap((t) => t.addresses));
        }
      }
      if (!Number.isNaN(runningMs)) {
        await Promise.all(probed.filter((h) => !resolvedAt.has(h)).map(async (h) => {
          const a = await this.resolve(h);
          if (a.length === count && [...ips].every((ip) => a.includes(ip))) resolvedAt.set(h, now() - t0);
        }));
      }
      return !Number.isNaN(runningMs) && resolvedAt.size === probed.length;
    }, () => `${running}/${count} running, ${resolvedAt.size}/${probed.length} nodes resolve all`);
    const c = await cmd.done;
    if (c.code !== 0) throw new Error(c.text);
    const resolvedMs = probed.length ? maxOf(resolvedAt.values()) : NaN;
    return { ms: Math.max(runningMs, Number.isNaN(resolvedMs) ? 0 : resolvedMs), runningMs, resolvedMs, commandMs: c.ms };
  }

  async remove(): Promise<number> {
    const t0 = now();
    const r = await this.cli(this.h1).docker(['service', 'rm', SERVICE], { timeoutMs: CLI_TIMEOUT_MS });
    if (r.code !== 0 && !/not found/i.test(r.stderr)) throw new Error(describeFailure(['docker', 'service', 'rm', SERVICE], r));
    let left = '';
    await pollUntil(`swarm: service ${SERVICE} gone (containers, every node's DNS)`, GONE_TIMEOUT_MS, async () => {
      const counts = await Promise.all(this.hosts.map(async (h) => (await (this.dockers.get(h) as Docker).listContainers({ all: true, filters: { label: [`com.docker.swarm.service.name=${SERVICE}`] } })).length));
      const answered = await Promise.all(this.hosts.filter((h) => this.probes.has(h)).map(async (h) => (await this.resolve(h)).length));
      left = `containers per node ${counts.join('/')}, tasks.${SERVICE} addresses per node ${answered.join('/')}`;
      return counts.every((n) => n === 0) && answered.every((n) => n === 0);
    }, () => left);
    return now() - t0;
  }

  async redeploy(count: number): Promise<RedeployTiming> {
    const old = (await this.tasks()).filter((t) => t.desired === 'running' && t.state === 'running');
    const before = new Set(old.map((t) => t.id));
    const oldIps = new Set(old.flatMap((t) => t.addresses));
    if (before.size !== count) throw new Error(`swarm: redeploy needs ${count} running tasks, has ${before.size}`);
    const args = ['service', 'update', '--detach', '--force', '--update-parallelism', '1', '--update-delay', '0s', SERVICE];
    const t0 = now();
    const cmd = this.command(args, t0);
    let convergedMs = NaN;
    let replaced = 0;
    let ips = new Set<string>();
    const resolvedAt = new Map<Host, number>();
    const probed = this.hosts.filter((h) => this.probes.has(h));
    await pollUntil(`swarm: ${count} tasks replaced, running${probed.length ? ' and resolving' : ''}`, REDEPLOY_TIMEOUT_MS, async () => {
      const c = cmd.result();
      if (c && c.code !== 0) throw new Abort(c.text);
      if (Number.isNaN(convergedMs)) {
        const ts = (await this.tasks()).filter((t) => t.desired === 'running');
        const fresh = ts.filter((t) => !before.has(t.id) && t.state === 'running');
        replaced = fresh.length;
        if (fresh.length === count && ts.length === count) {
          convergedMs = now() - t0;
          ips = new Set(fresh.flatMap((t) => t.addresses));
        } else {
          return false;
        }
      }
      await Promise.all(probed.filter((h) => !resolvedAt.has(h)).map(async (h) => {
        const a = await this.resolve(h);
        if (a.length === ips.size && [...ips].every((ip) => a.includes(ip))) resolvedAt.set(h, now() - t0);
      }));
      return resolvedAt.size === probed.length;
    }, () => `${replaced}/${count} replaced, ${resolvedAt.size}/${probed.length} nodes resolve exactly the new tasks`);
    const c = await cmd.done;
    if (c.code !== 0) throw new Error(c.text);
    const resolvedMs = probed.length ? maxOf(resolvedAt.values()) : NaN;
    return {
      ms: Math.max(convergedMs, Number.isNaN(resolvedMs) ? 0 : resolvedMs), convergedMs, resolvedMs, commandMs: c.ms,
      // Swarm turns the update "completed" only after its --update-monitor (5 s) past the last
      // task; the tasks are what a client sees, so that is not waited for.
      note: `${[...ips].filter((ip) => oldIps.has(ip)).length}/${count} replacements got an address a replaced task had`,
    };
  }

  async death(victim: Host, count: number): Promise<DeathTiming> {
    // Swarm restarts a Down node's tasks after the service's restart delay (default 5 s, as for
    // a failed container): a deliberate wait like weft's grace, so it is set to 0 here and the
    // figure from the node's Down is swarm's machinery alone.
    await this.create(count, ['--restart-delay', `${SWARM_RESTART_DELAY_S}s`]);
    const victimId = this.nodeIds.get(victim) as string;
    const onVictim = (await this.tasks()).filter((t) => t.desired === 'running' && t.state === 'running' && t.node === victimId);
    if (onVictim.length === 0) throw new Error(`swarm: no task of ${count} on ${victim.name}`);
    const slots = onVictim.map((t) => t.slot);
    const survivors = this.hosts.filter((h) => h !== victim && this.probes.has(h));
    let detectMs = NaN;
    let totalMs = NaN;
    const moved = new Map<number, TaskView>();
    const resolved = new Map<Host, number>();
    const t0 = now();
    await victim.cut();
    try {
      await pollUntil(`swarm: slots ${slots.join(', ')} running elsewhere${survivors.length ? ' and resolving on every survivor' : ''}`, DEATH_TIMEOUT_MS, async () => {
        if (Number.isNaN(detectMs)) {
          const n: any = await this.api.getNode(victimId).inspect();
          if (n.Status?.State === 'down') detectMs = now() - t0;
        }
        for (const t of await this.tasks()) {
          if (slots.includes(t.slot) && t.desired === 'running' && t.state === 'running' && t.node !== victimId && !moved.has(t.slot)) moved.set(t.slot, t);
        }
        if (moved.size < slots.length) return false;
        const ips = [...moved.values()].flatMap((t) => t.addresses);
        await Promise.all(survivors.filter((h) => !resolved.has(h)).map(async (h) => {
          const a = await this.resolve(h);
          if (ips.every((ip) => a.includes(ip))) resolved.set(h, now() - t0);
        }));
        const done = resolved.size === survivors.length;
        if (done) totalMs = now() - t0;
        return done;
      }, () => `node ${Number.isNaN(detectMs) ? 'not Down yet' : `Down after ${(detectMs / 1000).toFixed(2)} s`}, ${moved.size}/${slots.length} moved, ${resolved.size}/${survivors.length} survivors resolve them`);
    } finally {
      await victim.heal();
    }
    const t1 = now();
    const kept = onVictim.filter((t) => t.addresses.every((a) => moved.get(t.slot)?.addresses.includes(a))).length;
    let staleGoneMs = NaN;
    const oldIds = new Set(onVictim.map((t) => t.id));
    const victimDocker = this.dockers.get(victim) as Docker;
    await pollUntil(`swarm: ${victim.name}'s stale tasks gone after the heal`, STALE_TIMEOUT_MS, async () => {
      const stale = (await victimDocker.listContainers({ filters: { label: [`com.docker.swarm.service.name=${SERVICE}`] } })).filter((c) => oldIds.has(c.Labels?.['com.docker.swarm.task.id'] ?? '')).length;
      return stale === 0;
    }, () => '').then(() => { staleGoneMs = now() - t1; }, () => undefined);
    await this.remove();
    await waitFor(async () => (await this.api.listNodes()).filter((n) => n.Status?.State === 'ready').length === HOSTS, { timeoutMs: 60_000, intervalMs: 500, what: `${victim.name} ready again in the swarm` });
    return {
      totalMs, detectMs, graceMs: detectMs, figureMs: totalMs - detectMs, moved: slots.length, staleGoneMs,
      note: `${kept}/${slots.length} kept their address (swarm gives a replacement task a new one)`,
    };
  }

  /** How many times the swarm dockerds logged an image pull attempt (0 expected: no registry). */
  pullAttempts(): number {
    let n = 0;
    for (const h of this.hosts) {
      const log = h.dockerd?.process.logFile;
      if (log === undefined) continue;
      try {
        n += (fs.readFileSync(log, 'utf8').match(/pulling image|pull access denied|Trying to pull|registry-1\.docker\.io/gi) ?? []).length;
      } catch {
        // the log is gone with the temp dir
      }
    }
    return n;
  }
}
