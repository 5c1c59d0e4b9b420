// A simulated cluster for the reconciler (test/sim/reconciler.test.ts) and the helpers its unit
// tests share. Desired state is the real DesiredState (every batch validated and compare-and-set
// checked as the managers apply it); observed state is each node's last agent report, passed
// through the real decoder as gossip would. The world: 3-8 nodes (tags, memory, some without
// Docker), random services (strategies, tags, memory, targets, health checks, update policies,
// sequential deployment), and seeded chaos: reconciler rounds (some computed on a state that a
// user changes before the batch lands, some by a new leader that remembers nothing), agents that
// act like scheduler/agent/agent.ts around the real planAgent (slowly, failing to pull, reading a
// stale desired state), nodes dying and returning, Docker going away, services scaled, updated,
// redeployed, rolled back and removed. The invariants are checked after every step; the checks
// that the code is not meant to guarantee (see `Kind`) are counted apart, not failed.

import type { MeshMember } from '../../mesh/mesh-view.ts';
import { type AgentTask, type HeldContainer, planAgent } from '../../scheduler/agent/plan.ts';
import { type BatchOp, type Command, DesiredState, type Outcome, type StateChange } from '../../scheduler/manager/desired-state.ts';
import { carriesTags, type PlacementNode } from '../../scheduler/placement/node.ts';
import { placementNodes } from '../../scheduler/reconciler/nodes.ts';
import { reportOf, serving, type Versioned } from '../../scheduler/reconciler/observed.ts';
import { type ReconcileInput, reconcile, type RoundResult } from '../../scheduler/reconciler/reconcile.ts';
import { containerConfigHash } from '../../scheduler/service/config-hash.ts';
import type { StoredService } from '../../scheduler/service/schema.ts';
import { DEPLOYMENT_STRATEGIES, type ServiceSpec } from '../../scheduler/service/spec.ts';
import { spec } from './placement-world.ts';
import { type AgentReport, decodeReport, type TaskReport, type TaskState } from '../../scheduler/task/report.ts';
import { keyOfServiceObject, serviceObjectName, type TaskSpec, taskName, taskProblem } from '../../scheduler/task/task.ts';
import type { Rng } from './rng.ts';

export const MIB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Helpers shared with the unit tests.

/** A valid service spec with quiet defaults (stack `s`, one container, no reservation). */
export function serviceSpec(p: Partial<ServiceSpec> & { name: string }): ServiceSpec {
  return spec(p);
}

export const HEALTHCHECK = { test: ['CMD', 'true'], intervalMs: 1000, timeoutMs: 1000, retries: 3, startPeriodMs: 0 };

export function node(id: string, p: Partial<PlacementNode> = {}): PlacementNode {
  return { id, name: `name-${id}`, tags: [], memoryBytes: 8192 * MIB, alive: true, ...p };
}

export function configOf(s: StoredService): string {
  return containerConfigHash(s.spec, s.deployment);
}

/** An agent report saying every given task of `nodeId` runs (healthy when its service checks). */
export function runningReport(nodeId: string, tasks: readonly Versioned<TaskSpec>[], p: { health?: TaskReport['health']; state?: TaskState; memoryBytes?: number } = {}): AgentReport {
  return {
    v: 1,
    docker: 'ok',
    memoryBytes: p.memoryBytes ?? 8192 * MIB,
    tasks: tasks.filter((t) => t.spec.node === nodeId).map((t) => ({
      task: t.name, epoch: t.spec.epoch, config: t.spec.config, state: p.state ?? 'running', health: p.health ?? 'healthy', since: 0,
    })),
  };
}

/** Desired state as the managers hold it, fed entries at 1, 2, 3... */
export class Desired {
  readonly state = new DesiredState();
  private index = 0;
  private reqs = 0;
  /** Bumped on every change: what an agent that "heard the latest" has seen. */
  generation = 0;

  apply(cmd: Command | Record<string, unknown>): { outcome: Outcome; changes: StateChange[] } {
    const r = this.state.apply(++this.index, JSON.stringify(cmd));
    if (r.changes.length > 0) this.generation++;
    return r;
  }

  batch(ops: readonly BatchOp[]): { outcome: Outcome; changes: StateChange[] } {
    return this.apply({ op: 'batch', ops, req: `req-${++this.reqs}` });
  }

  /** Puts a service (created or replaced), as the API would; throws if refused. */
  putService(spec: ServiceSpec, deployment = 0, previous?: ServiceSpec): void {
    const name = serviceObjectName(spec);
    const stored: StoredService = { spec, deployment, ...(previous ? { previous } : {}) };
    const r = this.batch([{ op: 'put', kind: 'service', name, spec: stored, expect: this.state.get('service', name)?.version ?? 0 }]);
    if (!r.outcome.ok) throw new Error(r.outcome.error);
  }

  services(): Versioned<StoredService>[] {
    return this.state.list('service').map((o) => ({ name: o.name, version: o.version, spec: o.spec as StoredService }));
  }

  tasks(): Versioned<TaskSpec>[] {
    return this.state.list('task').map((o) => ({ name: o.name, version: o.version, spec: o.spec as TaskSpec }));
  }
}

// ---------------------------------------------------------------------------------------------
// The simulated world.

/** `strict`: something the code promises. Known, counted apart: `forgotten`, a task deleted
 *  while its service still wants its index (its epoch is lost: reconciler.test.ts's known bug);
 *  `grace`, a reserving task moved off a node still within its grace because the node's last
 *  report gives too little memory (the other known bug); `reused`, a fencing collision on a
 *  name deleted by a scale-down or a removal and made again (epochs live only in the task). */
export type Kind = 'strict' | 'forgotten' | 'grace' | 'reused';

export interface Violation {
  kind: Kind;
  step: number;
  what: string;
}

interface SimContainer extends HeldContainer {
  health: TaskReport['health'];
}

interface Failure {
  epoch: number;
  error: string;
  at: number;
  retryAt: number;
  attempts: number;
}

interface InFlight {
  task: AgentTask;
  service: ServiceSpec;
  stage: 'pulling' | 'creating' | 'starting';
  since: number;
}

interface SimNode {
  id: string;
  name: string;
  tags: string[];
  memoryBytes: number;
  /** Never has Docker (a manager-only host): it always reports `unavailable`. */
  hasDocker: boolean;
  dockerUp: boolean;
  alive: boolean;
  /** Acts rarely: a loaded host, or one cut off from the managers. */
  slow: boolean;
  held: SimContainer[];
  failures: Map<string, Failure>;
  /** A round whose creations are under way (agent.ts awaits them: no new round meanwhile). */
  inFlight: InFlight[];
  inFlightGeneration: number;
  /** The desired generation its last finished round planned from (-1: none, or a stale one). */
  heard: number;
  lastTasks: AgentTask[];
}

interface Snapshot {
  tasks: AgentTask[];
  services: Map<string, StoredService>;
}

const TAGS = ['ssd', 'gpu', 'edge'] as const;
const CAPACITIES = [256 * MIB, 512 * MIB, 1024 * MIB, 4096 * MIB] as const;
const RESERVATIONS = [0, 0, 0, 0, 64 * MIB, 200 * MIB] as const;
/** Graces, seconds: at once, a short one, a long one. */
const GRACES = [0, 30, 120] as const;
const DELAYS = [0, 0, 1000, 5000] as const;
const MAX_SERVICES = 5;
const MAX_TARGET = 6;
const RETRY_FIRST_MS = 2000;
const RETRY_MAX_MS = 60_000;

export interface Chaos {
  /** Chance a create fails (a pull or create Docker refuses). */
  createFails: number;
  /** Chance a create takes several agent rounds. */
  slowCreate: number;
  /** Chance a health check starts failing, per running checked container per step. */
  unhealthy: number;
  /** Chance an agent plans from a stale desired state. */
  staleRead: number;
}

const CALM: Chaos = { createFails: 0, slowCreate: 0, unhealthy: 0, staleRead: 0 };

export class ReconcilerWorld {
  readonly desired = new Desired();
  readonly nodes: SimNode[] = [];
  /** Each node's last published report, as gossip holds it (a dead node's stays). */
  readonly reports = new Map<string, AgentReport>();
  readonly violations: Violation[] = [];
  /** What happened, for the coverage check. */
  readonly tally = new Map<string, number>();
  now = 1_000_000;
  step = 0;
  private chaos: Chaos;
  private readonly rng: Rng;
  /** The reconciler shell's memory (reconciler.ts): when each node went down, when each service
   *  last stepped. A new leader starts both empty. */
  private readonly downSince = new Map<string, number>();
  private readonly lastStep = new Map<string, number>();
  private readonly history: Snapshot[] = [];
  /** Every epoch each task name ever had, and why it was last deleted. */
  private readonly everMax = new Map<string, number>();
  private readonly deletedWhy = new Map<string, 'wanted' | 'unwanted'>();
  /** Task epochs after the previous step, for "never decreases". */
  private lastEpochs = new Map<string, number>();
  private nextService = 0;
  private nextContainer = 1;

  constructor(rng: Rng, chaos: Chaos = { createFails: 0.15, slowCreate: 0.25, unhealthy: 0.02, staleRead: 0.1 }) {
    this.rng = rng;
    this.chaos = chaos;
    const n = 3 + rng.int(6);
    for (let i = 0; i < n; i++) {
      const hasDocker = i === 0 || rng.chance(0.8);
      this.nodes.push({
        id: `peer${i}`,
        // Names out of id order, so placement's tie-break by name is exercised.
        name: `host-${(i * 5) % 8}-${i}`,
        tags: TAGS.filter(() => rng.chance(0.4)) as string[],
        memoryBytes: rng.pick(CAPACITIES),
        hasDocker,
        dockerUp: hasDocker,
        alive: true,
        slow: rng.chance(0.2),
        held: [],
        failures: new Map(),
        inFlight: [],
        inFlightGeneration: -1,
        heard: -1,
        lastTasks: [],
      });
    }
    const s = 1 + rng.int(MAX_SERVICES);
    for (let i = 0; i < s; i++) this.desired.putService(this.randomService());
    this.snapshot();
  }

  // ------------------------------------------------------------------ the loop

  /** One random thing happens, then the invariants are checked. */
  chaosStep(): void {
    this.step++;
    this.now += this.rng.int(1500);
    const r = this.rng;
    const roll = r.int(100);
    if (roll < 25) this.round();
    else if (roll < 30) this.round(() => this.userChange()); // a user's write lands between the round's read and its batch
    else if (roll < 58) this.act(r.pick(this.nodes));
    else if (roll < 62) for (const n of this.nodes) this.act(n);
    else if (roll < 67) this.killOrRevive(r.pick(this.nodes));
    else if (roll < 70) this.toggleDocker(r.pick(this.nodes));
    else if (roll < 76) this.now += r.int(200_000); // long enough for every grace
    else if (roll < 88) this.userChange();
    else if (roll < 92) this.healthFlip();
    else if (roll < 94) this.newLeader();
    else if (roll < 96) r.pick(this.nodes).slow = r.chance(0.5);
    else this.retag(r.pick(this.nodes));
    this.check();
  }

  /** Chaos stops: every node up, Docker back where there is Docker, agents quick and lucky. */
  heal(): void {
    this.chaos = CALM;
    for (const n of this.nodes) {
      n.alive = true;
      n.dockerUp = n.hasDocker;
      n.slow = false;
    }
  }

  /** One calm round: the reconciler, then every agent until its round is done (and Docker's
   *  health checks pass). Returns the reconciler's result. */
  calmRound(): RoundResult {
    this.step++;
    this.now += 1000;
    const result = this.round();
    for (const n of this.nodes) {
      this.act(n);
      while (n.inFlight.length > 0) this.act(n);
    }
    this.check();
    return result;
  }

  /** Why the healed world is not settled yet (empty: settled), from what a round would decide
   *  now that the agents have acted. */
  unsettled(): string[] {
    const { result } = this.decide();
    const why: string[] = [];
    if (result.ops.length > 0) why.push(`the round still writes ${result.ops.length} ops`);
    for (const n of this.nodes) if (n.dockerUp && n.heard !== this.desired.generation) why.push(`${n.id} has not acted on the latest desired state`);
    const services = this.desired.services();
    const tasks = this.desired.tasks();
    for (const s of result.services) {
      const svc = services.find((x) => x.name === s.name) as Versioned<StoredService>;
      const spec = svc.spec.spec;
      if (s.update.state !== 'done') why.push(`${s.name}: update ${s.update.state}`);
      const suits = new Set(this.nodes.filter((n) => n.alive && n.dockerUp && carriesTags(node(n.id, { tags: n.tags }), spec.tags)).map((n) => n.id));
      const mine = tasks.filter((t) => t.spec.service === keyOfServiceObject(s.name));
      const placed = mine.filter((t) => suits.has(t.spec.node));
      // With no room for it on a suitable node, a task its service still wants stays where it
      // was (kept for its epoch) and the service says why it is pending; EVERY_NODE's tasks
      // belong to their nodes and go with them.
      const stranded = mine.length - placed.length;
      if (stranded > 0 && (s.pending === undefined || spec.deploymentStrategy === 'EVERY_NODE')) why.push(`${s.name}: ${stranded} tasks on unsuitable nodes, and no pending reason`);
      for (const t of placed) if (t.spec.config !== configOf(svc.spec)) why.push(`${t.name} runs an outdated configuration`);
      if (s.running < placed.length) why.push(`${s.name}: ${s.running} of ${placed.length} placed tasks serve`);
      if (s.pending === undefined && s.tasks !== s.target) why.push(`${s.name}: ${s.tasks} tasks for ${s.target}, and no pending reason`);
      if (spec.deploymentStrategy !== 'EVERY_NODE' && s.pending !== undefined && placed.length >= s.target) why.push(`${s.name}: pending (${s.pending}) with ${placed.length} of ${s.target} placed`);
      // Independently of placement, where no memory is reserved: how many it can have.
      if (spec.memoryBytes === 0) {
        const placeable = spec.deploymentStrategy === 'EVERY_NODE' ? suits.size : suits.size > 0 ? spec.targetNumContainers : 0;
        if (placed.length !== placeable) why.push(`${s.name}: ${placed.length} tasks placed, ${placeable} placeable`);
      }
    }
    // Nothing left over: every container anywhere is its node's task at its epoch.
    for (const n of this.nodes) {
      for (const c of n.held) {
        const t = tasks.find((x) => x.name === c.task);
        if (!t || t.spec.node !== n.id || t.spec.epoch !== c.epoch || c.state !== 'running') why.push(`${n.id} holds ${c.task}#${c.epoch} (${c.state})`);
      }
    }
    return why;
  }

  // ------------------------------------------------------------------ the reconciler

  /** One round as the shell runs it: read, decide, (something may happen), write the batch. */
  round(between?: () => void): RoundResult {
    const { input, result } = this.decide();
    this.checkRound(input, result);
    between?.();
    if (result.ops.length === 0) return result;
    const { outcome, changes } = this.desired.batch(result.ops);
    if (!outcome.ok) {
      this.bump('batch refused');
      // The shell drops a refused batch and decides again; only a lost compare-and-set may be why.
      if (!/expected version|does not exist/.test(outcome.error)) this.violate('strict', `the round's batch is invalid: ${outcome.error}`);
      return result;
    }
    for (const s of result.stepped) this.lastStep.set(s, this.now);
    this.recordChanges(changes, input);
    this.snapshot();
    return result;
  }

  /** What a round would decide now (the shell's compute). */
  decide(): { input: ReconcileInput; result: RoundResult } {
    const services = this.desired.services();
    const tasks = this.desired.tasks();
    const members: MeshMember[] = this.nodes.map((n) => ({ id: n.id, name: n.name, address: '', role: 'worker', state: n.alive ? 'alive' : 'dead', tags: [...n.tags] }));
    for (const m of members) {
      if (m.state === 'alive') this.downSince.delete(m.id);
      else if (!this.downSince.has(m.id)) this.downSince.set(m.id, this.now);
    }
    const nodes = placementNodes(members, this.reports, (id) => (this.now - (this.downSince.get(id) ?? this.now)) / 1000);
    const input: ReconcileInput = { services, tasks, nodes, reports: new Map(this.reports), now: this.now, lastStep: new Map(this.lastStep) };
    return { input, result: reconcile(input) };
  }

  private newLeader(): void {
    this.bump('new leader');
    this.downSince.clear();
    this.lastStep.clear();
  }

  // ------------------------------------------------------------------ the agents

  /** One agent round on `n`, as agent.ts does it around planAgent. */
  act(n: SimNode): void {
    if (!n.alive) return;
    if (n.slow && this.chaos !== CALM && !this.rng.chance(0.2)) return;
    if (!n.hasDocker || !n.dockerUp) {
      n.heard = -1;
      this.publish(n, { v: 1, docker: 'unavailable', error: 'Cannot connect to the Docker daemon', memoryBytes: 0, tasks: [] });
      return;
    }
    // Docker's health checks run meanwhile.
    for (const c of n.held) {
      if (c.state !== 'running') continue;
      if (c.health === 'starting' && (this.chaos === CALM || this.rng.chance(0.6))) c.health = 'healthy';
      else if (c.health === 'unhealthy' && (this.chaos === CALM || this.rng.chance(0.3))) c.health = 'healthy';
    }
    if (n.inFlight.length > 0) {
      this.advance(n);
      return;
    }
    const stale = this.history.length > 1 && this.rng.chance(this.chaos.staleRead);
    const view = stale ? (this.history[this.history.length - 2 - this.rng.int(Math.min(3, this.history.length - 1))] as Snapshot) : this.current();
    if (stale) this.bump('stale agent read');
    n.lastTasks = view.tasks;
    const plan = planAgent(n.id, view.tasks, view.services, n.held);
    const gone = new Set(plan.remove.map((c) => c.id));
    n.held = n.held.filter((c) => !gone.has(c.id));
    for (const c of plan.start) Object.assign(c, { state: 'running' });
    if (plan.remove.length) this.bump('agent removed');
    if (plan.waiting.length) this.bump('agent waiting');
    const due = plan.create.filter(({ task }) => {
      const f = n.failures.get(task.name);
      return f === undefined || f.epoch !== task.spec.epoch || f.retryAt <= this.now || this.chaos === CALM;
    });
    this.publish(n, this.report(n));
    for (const { task, service } of due) {
      if (this.rng.chance(this.chaos.createFails)) {
        const prev = n.failures.get(task.name);
        const attempts = prev && prev.epoch === task.spec.epoch ? prev.attempts + 1 : 1;
        n.failures.set(task.name, { epoch: task.spec.epoch, error: `pull access denied for ${service.image}`, at: this.now, retryAt: this.now + Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (attempts - 1)), attempts });
        this.bump('create failed');
      } else if (this.rng.chance(this.chaos.slowCreate)) {
        n.inFlight.push({ task, service, stage: 'pulling', since: this.now });
      } else {
        this.createContainer(n, task, service);
      }
    }
    if (n.inFlight.length > 0) n.inFlightGeneration = stale ? -1 : this.desired.generation;
    else n.heard = stale ? -1 : this.desired.generation;
    this.publish(n, this.report(n));
  }

  /** A slow round's creations move on a stage; when all are done the round ends. */
  private advance(n: SimNode): void {
    for (const f of [...n.inFlight]) {
      if (f.stage === 'pulling') f.stage = 'creating';
      else if (f.stage === 'creating') f.stage = 'starting';
      else {
        n.inFlight = n.inFlight.filter((x) => x !== f);
        this.createContainer(n, f.task, f.service);
      }
    }
    // A round that planned from a state since changed has not heard the latest.
    if (n.inFlight.length === 0) n.heard = n.inFlightGeneration;
    this.publish(n, this.report(n));
  }

  private createContainer(n: SimNode, task: AgentTask, service: ServiceSpec): void {
    n.failures.delete(task.name);
    n.held.push({ id: (this.nextContainer++).toString(16).padStart(12, '0'), task: task.name, epoch: task.spec.epoch, config: task.spec.config, state: 'running', health: service.healthcheck ? 'starting' : 'none' });
    this.bump('container created');
  }

  /** agent.ts's report: every task of this node, from its containers, its busy creations, its
   *  failures. */
  private report(n: SimNode): AgentReport {
    const byTask = new Map<string, SimContainer>();
    for (const c of n.held) if ((byTask.get(c.task)?.epoch ?? -1) < c.epoch) byTask.set(c.task, c);
    const busy = new Map(n.inFlight.map((f) => [f.task.name, f]));
    const names = new Set([...n.lastTasks.filter((t) => t.spec.node === n.id).map((t) => t.name), ...byTask.keys(), ...busy.keys()]);
    const out: TaskReport[] = [];
    for (const name of [...names].sort()) {
      const b = busy.get(name);
      const c = byTask.get(name);
      const f = n.failures.get(name);
      if (b) out.push({ task: name, epoch: b.task.spec.epoch, config: b.task.spec.config, state: b.stage, health: 'none', since: b.since });
      else if (c) {
        const state: TaskState = c.state === 'running' ? 'running' : c.state === 'exited' || c.state === 'dead' ? 'exited' : c.state === 'removing' ? 'removing' : 'starting';
        out.push({ task: name, epoch: c.epoch, config: c.config, state, health: c.health, container: c.id, since: 0 });
      } else if (f) {
        const t = n.lastTasks.find((x) => x.name === name);
        if (t && t.spec.epoch === f.epoch) out.push({ task: name, epoch: f.epoch, config: t.spec.config, state: 'failed', health: 'none', error: f.error, since: f.at });
      }
    }
    return { v: 1, docker: 'ok', memoryBytes: n.memoryBytes, tasks: out };
  }

  /** Into gossip, through the decoder every reader uses: a report must survive it whole. */
  private publish(n: SimNode, r: AgentReport): void {
    const decoded = decodeReport(JSON.stringify(r));
    if (decoded === undefined || JSON.stringify(decoded) !== JSON.stringify(r)) this.violate('strict', `${n.id}'s report does not survive decodeReport`);
    this.reports.set(n.id, decoded ?? r);
  }

  // ------------------------------------------------------------------ chaos

  private killOrRevive(n: SimNode): void {
    n.alive = !n.alive;
    this.bump(n.alive ? 'node returned' : 'node died');
  }

  private toggleDocker(n: SimNode): void {
    if (!n.hasDocker) return;
    n.dockerUp = !n.dockerUp;
    this.bump('docker toggled');
  }

  private retag(n: SimNode): void {
    const t = this.rng.pick(TAGS);
    n.tags = n.tags.includes(t) ? n.tags.filter((x) => x !== t) : [...n.tags, t];
    this.bump('node retagged');
  }

  private healthFlip(): void {
    const checked = this.nodes.flatMap((n) => n.held.filter((c) => c.state === 'running' && c.health !== 'none'));
    if (checked.length === 0) return;
    this.rng.pick(checked).health = 'unhealthy';
    this.bump('health check failed');
  }

  /** A user's change through the API's shape: a compare-and-set write of the service. */
  private userChange(): void {
    const r = this.rng;
    const services = this.desired.services();
    if (services.length === 0 || (services.length < MAX_SERVICES && r.chance(0.15))) {
      this.desired.putService(this.randomService());
      this.bump('user: service added');
      return;
    }
    const o = r.pick(services);
    const s = o.spec;
    const put = (next: StoredService, what: string) => {
      const res = this.desired.batch([{ op: 'put', kind: 'service', name: o.name, spec: next, expect: o.version }]);
      if (!res.outcome.ok) throw new Error(`user write refused: ${res.outcome.error}`);
      this.bump(`user: ${what}`);
      this.snapshot();
    };
    switch (r.int(8)) {
      case 0:
        this.desired.batch([{ op: 'delete', kind: 'service', name: o.name, expect: o.version }]);
        this.bump('user: service removed');
        this.snapshot();
        return;
      case 1:
      case 2:
        return put({ ...s, spec: { ...s.spec, targetNumContainers: r.int(MAX_TARGET + 1) } }, 'scaled');
      case 3: // a stack deploy of a new image: the old spec becomes `previous`
        return put({ spec: { ...s.spec, image: `nginx:${2 + r.int(50)}`, ...(r.chance(0.3) ? { healthcheck: HEALTHCHECK } : {}) }, deployment: s.deployment, previous: s.spec }, 'updated');
      case 4:
        return put({ ...s, deployment: s.deployment + 1 }, 'redeployed');
      case 5:
        return put({ ...s, spec: { ...s.spec, tags: TAGS.filter(() => r.chance(0.3)) as string[] } }, 'retagged service');
      case 6:
        return put({ ...s, spec: { ...s.spec, update: this.randomUpdate(), sequentialDeployment: r.chance(0.25) } }, 'changed update policy');
      default:
        if (!s.previous) return;
        return put({ spec: s.previous, deployment: s.deployment, previous: s.spec }, 'rolled back');
    }
  }

  private randomUpdate(): ServiceSpec['update'] {
    const r = this.rng;
    return { parallelism: 1 + r.int(3), delayMs: r.pick(DELAYS), onFailure: r.pick(['pause', 'continue', 'rollback'] as const) };
  }

  private randomService(): ServiceSpec {
    const r = this.rng;
    return serviceSpec({
      name: `svc${this.nextService++}`,
      stack: r.pick(['', 'shop']),
      targetNumContainers: r.int(MAX_TARGET + 1),
      tags: r.chance(0.35) ? (TAGS.filter(() => r.chance(0.4)) as string[]) : [],
      deploymentStrategy: r.pick(DEPLOYMENT_STRATEGIES),
      memoryBytes: r.pick(RESERVATIONS),
      rescheduleAfterSeconds: r.pick(GRACES),
      sequentialDeployment: r.chance(0.25),
      update: this.randomUpdate(),
      ...(r.chance(0.4) ? { healthcheck: HEALTHCHECK } : {}),
    });
  }

  // ------------------------------------------------------------------ invariants

  /** The round's decision, against what it read. */
  private checkRound(input: ReconcileInput, result: RoundResult): void {
    const services = new Map(input.services.map((s) => [keyOfServiceObject(s.name), s]));
    const tasks = new Map(input.tasks.map((t) => [t.name, t]));
    const nodes = new Map(input.nodes.map((n) => [n.id, n]));
    const rolled = new Map<string, number>();
    const created = new Map<string, number>();
    for (const op of result.ops) {
      if (!Number.isSafeInteger(op.expect) || (op.expect as number) < 0) this.violate('strict', `${op.op} ${op.kind} ${op.name} carries no expect`);
      if (op.kind === 'service') {
        const svc = input.services.find((s) => s.name === op.name);
        const back = op.op === 'put' ? (op.spec as StoredService) : undefined;
        if (!svc || svc.spec.spec.update.onFailure !== 'rollback' || !svc.spec.previous || JSON.stringify(back) !== JSON.stringify({ spec: svc.spec.previous, deployment: svc.spec.deployment }) || op.expect !== svc.version) {
          this.violate('strict', `unexpected service op ${JSON.stringify(op)}`);
        }
        this.bump('rollback');
        continue;
      }
      if (op.kind !== 'task') {
        this.violate('strict', `the round writes a ${op.kind}`);
        continue;
      }
      const before = tasks.get(op.name);
      if (op.expect !== (before?.version ?? 0)) this.violate('strict', `${op.name}: expect ${op.expect}, read version ${before?.version ?? 0}`);
      if (op.op === 'delete') {
        if (!before) {
          this.violate('strict', `deletes ${op.name}, which it did not read`);
          continue;
        }
        const svc = services.get(before.spec.service)?.spec.spec;
        const wanted = svc !== undefined && svc.deploymentStrategy !== 'EVERY_NODE' && before.spec.index <= svc.targetNumContainers;
        if (wanted) this.violate('forgotten', `deletes ${op.name} (epoch ${before.spec.epoch}) though ${before.spec.service} still wants index ${before.spec.index}`);
        this.bump(!wanted ? 'delete' : svc.sequentialDeployment ? 'delete of a wanted task (sequential)' : 'delete of a wanted task (no room)');
        continue;
      }
      const spec = op.spec as TaskSpec;
      const problem = taskProblem(spec);
      if (problem) this.violate('strict', `${op.name}: ${problem}`);
      if (taskName(spec.service, spec.index) !== op.name) this.violate('strict', `${op.name} holds ${spec.service} index ${spec.index}`);
      const svc = services.get(spec.service);
      if (!svc) {
        this.violate('strict', `${op.name}: a task for a service the round did not read`);
        continue;
      }
      if (spec.config !== configOf(svc.spec)) this.violate('strict', `${op.name}: written with config ${spec.config}, service's is ${configOf(svc.spec)}`);
      if (before && spec.epoch <= before.spec.epoch) this.violate('strict', `${op.name}: epoch ${before.spec.epoch} -> ${spec.epoch}`);
      const assigned = !before || before.spec.node !== spec.node;
      if (assigned) {
        // A new assignment: to a live node with the tags, whose Docker answers (as read).
        const n = nodes.get(spec.node);
        if (!n) this.violate('strict', `${op.name} assigned to unknown node ${spec.node}`);
        else {
          if (!n.alive) this.violate('strict', `${op.name} assigned to down node ${n.id}`);
          if (n.draining) this.violate('strict', `${op.name} assigned to ${n.id}, whose Docker is unavailable or unreported`);
          if (input.reports.get(n.id)?.docker !== 'ok') this.violate('strict', `${op.name} assigned to ${n.id}, whose report is not ok`);
          if (!carriesTags(n, svc.spec.spec.tags)) this.violate('strict', `${op.name} assigned to ${n.id} without tags ${svc.spec.spec.tags.join(',')}`);
        }
        if (before) {
          // A move: only off a node that is dead beyond the grace, or alive (it will hear).
          const from = nodes.get(before.spec.node);
          if (from && !from.alive && (from.downForSeconds ?? 0) < svc.spec.spec.rescheduleAfterSeconds) {
            // Reserving tasks are evicted by placement's memory check when the node's last report
            // gives less memory than they reserve (an `unavailable` report gives 0): known, apart.
            const kind: Kind = svc.spec.spec.memoryBytes > 0 ? 'grace' : 'strict';
            this.violate(kind, `${op.name} moved off ${from.id} (reporting ${from.memoryBytes} bytes), down only ${from.downForSeconds}s of ${svc.spec.spec.rescheduleAfterSeconds}s`);
          }
          this.bump(from?.alive ? 'moved off a live node' : 'moved off a dead node');
        } else this.bump('task created');
        created.set(spec.service, (created.get(spec.service) ?? 0) + 1);
      } else if (before && before.spec.config !== spec.config) {
        rolled.set(spec.service, (rolled.get(spec.service) ?? 0) + 1);
        this.bump('rolling replacement');
      }
    }
    for (const [key, count] of rolled) {
      const svc = services.get(key) as Versioned<StoredService>;
      const u = svc.spec.spec.update;
      if (count > u.parallelism) this.violate('strict', `${svc.name}: ${count} tasks replaced in one step, parallelism ${u.parallelism}`);
      const last = input.lastStep.get(svc.name);
      if (last !== undefined && input.now - last < u.delayMs) this.violate('strict', `${svc.name}: stepped ${input.now - last} ms after the last step, delay ${u.delayMs}`);
      if (!result.stepped.includes(svc.name)) this.violate('strict', `${svc.name}: replaced tasks without saying it stepped`);
    }
    for (const [key, count] of created) {
      const svc = services.get(key) as Versioned<StoredService>;
      if (!svc.spec.spec.sequentialDeployment) continue;
      this.bump('sequential creation');
      if (count > 1) this.violate('strict', `${svc.name} is sequential: ${count} tasks created in one round`);
      const config = configOf(svc.spec);
      // A task on a node it cannot stay on (down, draining, without the tags) will not serve
      // there and is itself to be moved: it does not hold the next creation up.
      const rewritten = new Set(result.ops.map((o) => o.name));
      const stays = (t: Versioned<TaskSpec>) => {
        const n = nodes.get(t.spec.node);
        return n !== undefined && n.alive && n.draining !== true && carriesTags(n, svc.spec.spec.tags) && !rewritten.has(t.name);
      };
      const waiting = input.tasks.filter((t) => t.spec.service === key && stays(t) && !serving(reportOf(input.reports, t.name, t.spec), svc.spec.spec, config));
      if (waiting.length > 0) this.violate('strict', `${svc.name} is sequential: creates while ${waiting[0]?.name} does not serve`);
    }
    for (const s of result.services) {
      const key = keyOfServiceObject(s.name);
      const mine = input.tasks.filter((t) => t.spec.service === key).length;
      if (s.tasks !== mine || s.running > s.tasks) this.violate('strict', `${s.name}: status says ${s.running}/${s.tasks}, it has ${mine}`);
      if (s.update.state === 'paused') this.bump('update paused');
    }
  }

  private recordChanges(changes: readonly StateChange[], input: ReconcileInput): void {
    for (const c of changes) {
      if (c.kind !== 'task') continue;
      if (c.object === null) {
        const t = input.tasks.find((x) => x.name === c.name);
        const svc = input.services.find((s) => t && keyOfServiceObject(s.name) === t.spec.service)?.spec.spec;
        const wanted = t !== undefined && svc !== undefined && svc.deploymentStrategy !== 'EVERY_NODE' && t.spec.index <= svc.targetNumContainers;
        this.deletedWhy.set(c.name, wanted ? 'wanted' : 'unwanted');
        continue;
      }
      const epoch = (c.object.spec as TaskSpec).epoch;
      const max = this.everMax.get(c.name);
      if (max !== undefined && epoch <= max && !input.tasks.some((t) => t.name === c.name)) {
        // Made again after a delete, at an epoch a copy of the name already had.
        const why = this.deletedWhy.get(c.name) === 'wanted' ? 'forgotten' : 'reused';
        this.bump(`epoch reused (${why})`);
      }
      this.everMax.set(c.name, Math.max(max ?? 0, epoch));
    }
  }

  /** After every step. */
  private check(): void {
    const tasks = this.desired.tasks();
    const byName = new Map(tasks.map((t) => [t.name, t]));
    const epochs = new Map<string, number>();
    for (const t of tasks) {
      if (taskName(t.spec.service, t.spec.index) !== t.name) this.violate('strict', `task ${t.name} holds ${t.spec.service} index ${t.spec.index}`);
      const before = this.lastEpochs.get(t.name);
      if (before !== undefined && t.spec.epoch < before) this.violate('strict', `${t.name}: epoch went down ${before} -> ${t.spec.epoch}`);
      epochs.set(t.name, t.spec.epoch);
    }
    this.lastEpochs = epochs;
    // A node that is alive and has acted on the latest desired state holds only its tasks'
    // containers, one each: so among such nodes at most one copy of a name serves.
    const serving = new Map<string, string>();
    for (const n of this.nodes) {
      if (!n.alive || !n.dockerUp || n.inFlight.length > 0 || n.heard !== this.desired.generation) continue;
      const seen = new Set<string>();
      for (const c of n.held) {
        const t = byName.get(c.task);
        if (!t || t.spec.node !== n.id || t.spec.epoch !== c.epoch || t.spec.config !== c.config) this.violate('strict', `${n.id} heard the latest yet holds ${c.task}#${c.epoch}`);
        if (seen.has(c.task)) this.violate('strict', `${n.id} holds two containers of ${c.task}`);
        seen.add(c.task);
        if (c.state !== 'running') continue;
        const other = serving.get(c.task);
        if (other !== undefined) this.violate('strict', `${c.task} serves on ${other} and ${n.id}, both up to date`);
        serving.set(c.task, n.id);
      }
    }
    // What the code does not promise: two live nodes may run a name at once for a while (a move
    // is written at once; the old node removes its copy when its agent next acts). Counted.
    const live = new Map<string, number>();
    for (const n of this.nodes) if (n.alive) for (const c of n.held) if (c.state === 'running') live.set(c.task, (live.get(c.task) ?? 0) + 1);
    if ([...live.values()].some((k) => k > 1)) this.bump('steps with two live copies of a name');
    // Fencing, on every node alive or not: one node per (name, epoch) among running copies,
    // and no stale copy newer than the task.
    const copies = new Map<string, string>();
    for (const n of this.nodes) {
      for (const c of n.held) {
        if (c.state !== 'running') continue;
        const kind: Kind = this.deletedWhy.get(c.task) === 'wanted' ? 'forgotten' : this.deletedWhy.has(c.task) ? 'reused' : 'strict';
        const k = `${c.task}#${c.epoch}`;
        const other = copies.get(k);
        if (other !== undefined && other !== n.id) {
          this.violate(kind, `${k} runs on ${other} and ${n.id}`);
          this.bump(`two copies at one epoch (${kind})`);
        }
        copies.set(k, n.id);
        const t = byName.get(c.task);
        if (t && c.epoch > t.spec.epoch) {
          this.violate(kind, `${c.task}: a copy on ${n.id} at epoch ${c.epoch} outranks the task's ${t.spec.epoch} on ${t.spec.node}`);
          this.bump(`stale copy outranks its task (${kind})`);
        }
      }
    }
  }

  // ------------------------------------------------------------------ bookkeeping

  private current(): Snapshot {
    return {
      tasks: this.desired.tasks().map((t) => ({ name: t.name, spec: t.spec })),
      services: new Map(this.desired.services().map((s) => [s.name, s.spec])),
    };
  }

  private snapshot(): void {
    this.history.push(this.current());
    if (this.history.length > 6) this.history.shift();
  }

  private violate(kind: Kind, what: string): void {
    this.violations.push({ kind, step: this.step, what });
  }

  bump(k: string): void {
    this.tally.set(k, (this.tally.get(k) ?? 0) + 1);
  }
}
