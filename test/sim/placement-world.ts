// A simulated cluster for placement (test/sim/placement.test.ts): seeded random nodes (tags,
// zones, memory, health), services of every strategy, and a messy observed state (stale and
// duplicate copies, containers on dead, forgotten or untagged nodes); an agent that carries a
// plan out (it cannot touch a down node), and churn between rounds.

import type { CurrentContainer } from '../../scheduler/placement/container.ts';
import type { PlacementNode } from '../../scheduler/placement/node.ts';
import type { PlacementInput } from '../../scheduler/placement/placement.ts';
import type { Plan } from '../../scheduler/placement/plan.ts';
import { DEPLOYMENT_STRATEGIES, type ServiceSpec } from '../../scheduler/service/spec.ts';
import type { Rng } from './rng.ts';

const MIB = 1024 * 1024;
/** The brief's cluster sizes: a lone node up to a dozen. */
const MAX_NODES = 12;
/** Targets 0-20: enough to overfill small clusters' memory and to stack several per node. */
const MAX_TARGET = 20;
/** Few services, so that several share nodes and compete for memory without slow seeds. */
const MAX_SERVICES = 6;
/** A small tag vocabulary, so that tag sets overlap and some services find no node. */
const TAGS = ['ssd', 'gpu', 'edge'] as const;
const ZONES = ['a', 'b', 'c'] as const;
/** Capacities from none to roomy: 0 refuses every reservation, 4 GiB fits many. */
const CAPACITIES = [0, 256 * MIB, 512 * MIB, 1024 * MIB, 4096 * MIB] as const;
/** Reservations: mostly none (so spreads can be checked exactly), some that fill nodes. */
const RESERVATIONS = [0, 0, 0, 64 * MIB, 128 * MIB, 512 * MIB] as const;
/** Graces, seconds: 0 (reschedule at once), the default, a long one. */
const GRACES = [0, 30, 120] as const;

export function spec(p: Partial<ServiceSpec> & { name: string }): ServiceSpec {
  return {
    stack: 's',
    image: 'nginx',
    environment: {},
    ports: [],
    targetNumContainers: 1,
    tags: [],
    deploymentStrategy: 'EMPTIEST_NODE',
    autorestart: 'OFF',
    autodestroy: 'OFF',
    sequentialDeployment: false,
    links: [],
    memoryBytes: 0,
    cpuShares: 0,
    labels: {},
    volumes: [],
    rescheduleAfterSeconds: 30,
    update: { parallelism: 1, delayMs: 0, onFailure: 'pause' },
    ...p,
  };
}

export class PlacementWorld {
  nodes: PlacementNode[] = [];
  services: ServiceSpec[] = [];
  containers: CurrentContainer[] = [];
  private nextNode = 0;
  private nextService = 0;
  private nextContainer = 0;
  private readonly rng: Rng;

  constructor(rng: Rng) {
    this.rng = rng;
    const n = 1 + rng.int(MAX_NODES);
    for (let i = 0; i < n; i++) this.nodes.push(this.randomNode());
    const s = rng.int(MAX_SERVICES + 1);
    for (let i = 0; i < s; i++) this.services.push(this.randomService());
    this.messUp();
  }

  input(): PlacementInput {
    return { services: this.services, nodes: this.nodes, containers: this.containers };
  }

  /** The agents carry the plan out: live nodes remove and create; a down or forgotten node's
   *  containers stay in observed state until it returns. Containers that were starting run. */
  apply(plan: Plan): void {
    const alive = new Set(this.nodes.filter((n) => n.alive).map((n) => n.id));
    const gone = new Set(plan.remove.filter((r) => alive.has(r.container.node)).map((r) => r.container.id));
    this.containers = this.containers.filter((c) => !gone.has(c.id));
    for (const c of this.containers) if (c.state === 'starting' && alive.has(c.node)) c.state = 'running';
    for (const a of plan.create) {
      this.containers.push({ id: this.containerId(), service: a.service, index: a.index, node: a.node, state: 'starting', epoch: a.epoch });
    }
  }

  /** One to three things happen between rounds; time passes for down nodes. */
  churn(): void {
    const r = this.rng;
    for (const n of this.nodes) if (!n.alive) n.downForSeconds = (n.downForSeconds ?? 0) + r.int(90);
    const events = 1 + r.int(3);
    for (let e = 0; e < events; e++) {
      const node = this.nodes.length ? r.pick(this.nodes) : undefined;
      const svc = this.services.length ? r.pick(this.services) : undefined;
      switch (r.int(11)) {
        case 0: // a node dies (or is partitioned away)
          if (node) Object.assign(node, { alive: false, downForSeconds: 0 });
          break;
        case 1: // a node comes back, its stale copies with it
          if (node) Object.assign(node, { alive: true, downForSeconds: undefined });
          break;
        case 2:
          if (this.nodes.length < MAX_NODES) this.nodes.push(this.randomNode());
          break;
        case 3: // a node is forgotten (rmpeer); its containers' records linger
          if (node) this.nodes = this.nodes.filter((n) => n !== node);
          break;
        case 4: // the operator adds or removes a tag
          if (node) {
            const t = r.pick([...TAGS, 'zone=a', 'zone=b']);
            node.tags = node.tags.includes(t) ? node.tags.filter((x) => x !== t) : [...node.tags, t];
          }
          break;
        case 5:
          if (node) node.draining = !node.draining;
          break;
        case 6: // the node reports another amount of memory, possibly less than it holds
          if (node) node.memoryBytes = r.pick(CAPACITIES);
          break;
        case 7:
          if (svc) svc.targetNumContainers = r.int(MAX_TARGET + 1);
          break;
        case 8:
          if (svc && r.chance(0.5)) this.services = this.services.filter((s) => s !== svc);
          else if (this.services.length < MAX_SERVICES) this.services.push(this.randomService());
          break;
        case 9: // a container breaks or stops
          if (this.containers.length) r.pick(this.containers).state = r.pick(['dead', 'stopped'] as const);
          break;
        case 10: // a container vanishes from observed state (removed by hand)
          if (this.containers.length) {
            const c = r.pick(this.containers);
            this.containers = this.containers.filter((x) => x !== c);
          }
          break;
      }
    }
  }

  private randomNode(): PlacementNode {
    const r = this.rng;
    const i = this.nextNode++;
    const tags = TAGS.filter(() => r.chance(0.4)) as string[];
    if (r.chance(0.6)) tags.push(`zone=${r.pick(ZONES)}`);
    const alive = r.chance(0.85);
    return {
      id: `id-${String(i).padStart(2, '0')}`,
      // Names out of id order, so that the name tie-break is exercised.
      name: `node-${String((i * 7) % 13).padStart(2, '0')}-${i}`,
      tags,
      memoryBytes: r.pick(CAPACITIES),
      alive,
      ...(alive ? {} : { downForSeconds: r.int(200) }),
      ...(r.chance(0.1) ? { draining: true } : {}),
    };
  }

  private randomService(): ServiceSpec {
    const r = this.rng;
    return spec({
      name: `svc${this.nextService++}`,
      stack: r.pick(['', 'shop']),
      targetNumContainers: r.int(MAX_TARGET + 1),
      tags: r.chance(0.35) ? (TAGS.filter(() => r.chance(0.4)) as string[]) : [],
      deploymentStrategy: r.pick(DEPLOYMENT_STRATEGIES),
      memoryBytes: r.pick(RESERVATIONS),
      rescheduleAfterSeconds: r.pick(GRACES),
    });
  }

  /** Observed state as a restarted leader may find it: wrong, stale, duplicated. */
  private messUp(): void {
    const r = this.rng;
    const nodeIds = [...this.nodes.map((n) => n.id), 'forgotten-node'];
    const keys = [...this.services.map((s) => `${s.stack}/${s.name}`), 'old/removed'];
    const count = r.int(40);
    for (let i = 0; i < count; i++) {
      this.containers.push({
        id: this.containerId(),
        service: r.pick(keys),
        index: r.chance(0.03) ? 0 : 1 + r.int(MAX_TARGET + 3),
        node: r.pick(nodeIds),
        state: r.pick(['running', 'running', 'starting', 'stopped', 'dead'] as const),
        epoch: r.int(3),
      });
    }
  }

  private containerId(): string {
    return `c${String(this.nextContainer++).padStart(4, '0')}`;
  }
}
