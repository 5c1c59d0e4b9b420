// The agent on every node: it makes this node's Docker run the tasks desired state assigns it
// (scheduler/task/), and reports what runs in gossip (AGENT_STATE_KEY) for the reconciler and
// `weft ps`. The shell around planAgent (plan.ts): each round reads its tasks and their services
// (from its own desired state when a manager, else from the leader), lists the scheduled
// containers Docker has, carries the plan out and publishes the report. When no leader answers
// it changes nothing: a node cut off from the managers keeps running what it runs.

import type { Logger } from '../../mesh/log.ts';
import type { MeshView } from '../../mesh/mesh-view.ts';
import { AGENT_STATE_KEY } from '../../mesh/keyspace.ts';
import type { RaftNode } from '../manager/raft-node.ts';
import type { StoredService } from '../service/schema.ts';
import type { ServiceSpec } from '../service/spec.ts';
import { type AgentReport, MAX_REPORTED_TASKS, type TaskReport, type TaskState } from '../task/report.ts';
import type { TaskSpec } from '../task/task.ts';
import { createOptions } from './container-config.ts';
import type { DockerOps, LocalContainer } from './docker-ops.ts';
import { LINKS_LABEL } from '../../mesh/naming.ts';
import { linkEnvFor, linksLabel } from './links.ts';
import { type AgentTask, planAgent } from './plan.ts';

/** A round every half second: a task assigned shows up here within that, which is what a
 *  deploy's latency is made of; the reads it costs are answered from memory. */
export const AGENT_ROUND_MS = 500;
/** A stopped container's process gets this long to exit on SIGTERM before SIGKILL (Docker's own
 *  default is 10 s; a scheduler replacing containers one at a time should not wait that long). */
export const STOP_GRACE_SECONDS = 5;
/** After a failed create, the task waits before it is tried again, doubling up to the maximum:
 *  an image that cannot be pulled must not become a pull storm. */
export const RETRY_FIRST_MS = 2_000;
export const RETRY_MAX_MS = 60_000;
/** A pull's progress goes into the report (gossip) at most this often: a person watching sees
 *  it move, and a many-layer pull does not flood the mesh with reports. */
const PROGRESS_EVERY_MS = 1000;
/** Creations carried out at once: pulls and creates overlap, and dockerd on a small host is not
 *  swamped by a stack of dozens. */
const PARALLEL_CREATES = 4;

/** Node's names for architectures, as Docker (and Compose's node.platform.arch) spell them. */
const DOCKER_ARCH: Readonly<Record<string, string>> = { x64: 'x86_64', arm64: 'aarch64', arm: 'armv7l', ia32: 'i386', s390x: 's390x', ppc64: 'ppc64le' };

interface Failure {
  error: string;
  at: number;
  retryAt: number;
  attempts: number;
  epoch: number;
}

export interface AgentOptions {
  raft: RaftNode;
  view: MeshView;
  docker: DockerOps;
  log: Logger;
  /** Lifecycle events for `weft events`. */
  emit(type: 'container-started' | 'container-failed' | 'container-removed' | 'container-stopped', detail: string): void;
}

export class Agent {
  private readonly o: AgentOptions;
  private timer?: NodeJS.Timeout;
  private running = false;
  private stopped = false;
  /** What a task's container is doing now, by task name, while the agent acts on it. */
  private readonly busy = new Map<string, { state: TaskState; epoch: number; config: string; since: number; progress?: string }>();
  private readonly failures = new Map<string, Failure>();
  private published = '';
  private memoryBytes = 0;
  private lastTasks: readonly AgentTask[] = [];
  /** Containers this agent stopped for a stopped service (see planAgent). */
  private readonly stoppedHere = new Set<string>();

  constructor(o: AgentOptions) {
    this.o = o;
  }

  start(): void {
    this.timer = setInterval(() => void this.round(), AGENT_ROUND_MS);
    this.timer.unref?.();
    void this.round();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private async round(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      await this.roundOnce();
    } catch (err) {
      this.o.log.debug('agent round failed', { err: String(err) });
    } finally {
      this.running = false;
    }
  }

  private async roundOnce(): Promise<void> {
    let held: LocalContainer[];
    try {
      if (this.memoryBytes === 0) this.memoryBytes = await this.o.docker.memoryBytes();
      held = await this.o.docker.list();
    } catch (err) {
      await this.publish({ v: 1, docker: 'unavailable', error: String((err as Error).message ?? err).slice(0, 300), memoryBytes: 0, tasks: [] });
      return;
    }
    const desired = await this.readDesired();
    if (desired === undefined) {
      // No leader answers: report what runs, change nothing.
      await this.publish(this.report(held, this.lastTasks));
      return;
    }
    const { tasks, services } = desired;
    this.lastTasks = tasks;
    const plan = planAgent(this.o.view.self.id, tasks, services, held, this.stoppedHere);
    await Promise.all(plan.remove.map((c) => this.remove(c)));
    await Promise.all(plan.stop.map(async (c) => {
      try {
        await this.o.docker.stop(c.id, STOP_GRACE_SECONDS);
        this.stoppedHere.add(c.id);
        this.o.emit('container-stopped', `${c.dockerName} (task ${c.task}): its service is stopped`);
      } catch (err) {
        this.o.log.warn('could not stop a container', { task: c.task, err: String(err) });
      }
    }));
    await Promise.all(plan.start.map(async (c) => {
      try {
        await this.o.docker.start(c.id);
        this.stoppedHere.delete(c.id);
      } catch (err) {
        this.o.log.warn('could not start a container', { task: c.task, err: String(err) });
      }
    }));
    const now = Date.now();
    const due = plan.create.filter(({ task }) => {
      const f = this.failures.get(task.name);
      return f === undefined || f.epoch !== task.spec.epoch || f.retryAt <= now;
    });
    await this.publish(this.report(held, tasks));
    for (let i = 0; i < due.length; i += PARALLEL_CREATES) {
      await Promise.all(due.slice(i, i + PARALLEL_CREATES).map((c) => this.create(c.task, c.service, services)));
    }
    if (due.length > 0 || plan.remove.length > 0 || plan.stop.length > 0 || plan.start.length > 0) await this.publish(this.report(await this.o.docker.list(), tasks));
  }

  /** This node's tasks and every service, or undefined when no manager answers. */
  private async readDesired(): Promise<{ tasks: AgentTask[]; services: Map<string, StoredService> } | undefined> {
    try {
      const [t, s] = await Promise.all([
        this.o.raft.query({ q: 'list', kind: 'task', prefix: '' }, false),
        this.o.raft.query({ q: 'list', kind: 'service', prefix: '' }, false),
      ]);
      return {
        tasks: t.objects.map((o) => ({ name: o.name, spec: o.spec as TaskSpec })),
        services: new Map(s.objects.map((o) => [o.name, o.spec as StoredService])),
      };
    } catch {
      return undefined;
    }
  }

  private async remove(c: LocalContainer): Promise<void> {
    try {
      await this.o.docker.remove(c.id, STOP_GRACE_SECONDS);
      this.o.emit('container-removed', `${c.dockerName} (task ${c.task}, epoch ${c.epoch})`);
    } catch (err) {
      this.o.log.warn('could not remove a container', { container: c.dockerName, err: String(err) });
    }
  }

  private async create(task: AgentTask, service: ServiceSpec, services: ReadonlyMap<string, StoredService>): Promise<void> {
    const mark = (state: TaskState) => {
      this.busy.set(task.name, { state, epoch: task.spec.epoch, config: task.spec.config, since: Date.now() });
      void this.publishNow();
    };
    try {
      mark('pulling');
      // Bytes of every layer, summed: what the report shows while the pull lasts.
      const layers = new Map<string, { current: number; total: number }>();
      let shown = 0;
      await this.o.docker.ensureImage(service.image, (p) => {
        if (p.layer === undefined || p.total === undefined || p.current === undefined) return;
        layers.set(p.layer, { current: p.current, total: p.total });
        const b = this.busy.get(task.name);
        if (!b || Date.now() - shown < PROGRESS_EVERY_MS) return;
        shown = Date.now();
        let current = 0;
        let total = 0;
        for (const l of layers.values()) {
          current += l.current;
          total += l.total;
        }
        b.progress = `${(current / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`;
        void this.publishNow();
      });
      mark('creating');
      const links = linksLabel(service);
      const spec = links ? { ...service, labels: { ...service.labels, [LINKS_LABEL]: links } } : service;
      const id = await this.o.docker.create(createOptions({ taskName: task.name, spec, task: task.spec, linkEnv: linkEnvFor(service, task.spec.index, services) }));
      mark('starting');
      await this.o.docker.start(id);
      this.failures.delete(task.name);
      this.o.emit('container-started', `${service.name}-${task.spec.index} (task ${task.name}, epoch ${task.spec.epoch})`);
    } catch (err) {
      const prev = this.failures.get(task.name);
      const attempts = prev && prev.epoch === task.spec.epoch ? prev.attempts + 1 : 1;
      const wait = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (attempts - 1));
      const error = String((err as Error).message ?? err).slice(0, 400);
      this.failures.set(task.name, { error, at: Date.now(), retryAt: Date.now() + wait, attempts, epoch: task.spec.epoch });
      this.o.emit('container-failed', `${service.name}-${task.spec.index} (task ${task.name}): ${error}`);
    } finally {
      this.busy.delete(task.name);
    }
  }

  /** The report: every task of this node, from what Docker has, what the agent is doing and
   *  what failed. */
  private report(held: readonly LocalContainer[], tasks: readonly AgentTask[]): AgentReport {
    const self = this.o.view.self.id;
    const byTask = new Map<string, LocalContainer>();
    for (const c of held) if ((byTask.get(c.task)?.epoch ?? -1) < c.epoch) byTask.set(c.task, c);
    const out: TaskReport[] = [];
    const names = new Set([...tasks.filter((t) => t.spec.node === self).map((t) => t.name), ...byTask.keys(), ...this.busy.keys()]);
    for (const name of [...names].sort()) {
      const busy = this.busy.get(name);
      const c = byTask.get(name);
      const f = this.failures.get(name);
      if (busy) out.push({ task: name, epoch: busy.epoch, config: busy.config, state: busy.state, health: 'none', since: busy.since, ...(busy.progress ? { progress: busy.progress } : {}) });
      else if (c) out.push(containerReport(name, c));
      else if (f) {
        const t = tasks.find((x) => x.name === name);
        if (t && t.spec.epoch === f.epoch) out.push({ task: name, epoch: f.epoch, config: t.spec.config, state: 'failed', health: 'none', error: f.error, since: f.at });
      }
    }
    return { v: 1, docker: 'ok', memoryBytes: this.memoryBytes, arch: DOCKER_ARCH[process.arch] ?? process.arch, tasks: out.slice(0, MAX_REPORTED_TASKS) };
  }

  private async publishNow(): Promise<void> {
    try {
      await this.publish(this.report(await this.o.docker.list(), this.lastTasks));
    } catch {
      // The next round publishes.
    }
  }

  private async publish(r: AgentReport): Promise<void> {
    const text = JSON.stringify(r);
    if (text === this.published) return;
    this.published = text;
    await this.o.view.put(AGENT_STATE_KEY, text);
  }
}

function containerReport(name: string, c: LocalContainer): TaskReport {
  const state: TaskState = c.state === 'running' ? 'running' : c.state === 'exited' || c.state === 'dead' ? 'exited' : c.state === 'removing' ? 'removing' : 'starting';
  return {
    task: name, epoch: c.epoch, config: c.config, state, health: c.health,
    ...(c.exitCode !== undefined && state === 'exited' ? { exitCode: c.exitCode } : {}),
    container: c.id.slice(0, 64),
    since: c.startedAt ?? 0,
  };
}
