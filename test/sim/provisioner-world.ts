// A simulated world for the provisioner's pure round: desired state (the real DesiredState, so
// every record the round writes is validated as on a manager), a provider that behaves as EC2's
// contract says (a client token names one node for ever; listings may lag; calls may fail),
// peers that join some time after their node runs, and a leader whose memory of its calls can
// be lost (a crash, a new leader) at any point. Seeded; no timers.

import { DesiredState, type Kind, type StateObject } from '../../scheduler/manager/desired-state.ts';
import type { Versioned } from '../../scheduler/reconciler/observed.ts';
import type { NodeClusterSpec } from '../../provisioner/cluster/cluster-spec.ts';
import type { NodeRecord } from '../../provisioner/cluster/node-record.ts';
import type { ClusterLog } from '../../provisioner/cluster/timeline.ts';
import { type CreateRequest, ProviderError, type ProviderNode } from '../../provisioner/provider.ts';
import { autoscale, type Demand } from '../../provisioner/autoscale.ts';
import { type Listing, nodeKey, type NodePeer, provision, type ProvisionResult, type Timing } from '../../provisioner/reconcile.ts';
import { notePeerMachines, type PeerMachine, peersToRetire } from '../../provisioner/retire.ts';

export const TIMING: Timing = { provisionTimeoutMs: 120_000, unreachableGraceMs: 30_000, orphanGraceMs: 60_000 };

export interface SimNode extends ProviderNode {
  createdAt: number;
  /** When its peer joins (undefined: never). */
  joinsAt?: number;
  terminatedAt?: number;
  /** Asked to terminate: it goes at this time. */
  terminateAt?: number;
}

export class World {
  readonly state = new DesiredState();
  readonly nodes = new Map<string, SimNode>();
  readonly calls = { create: 0, terminate: 0, list: 0 };
  /** Zones that refuse capacity; a failure for the next create calls. */
  readonly noCapacity = new Set<string>();
  createFailure: ProviderError | undefined;
  listFails = false;
  /** How long after a create a node is listed (EC2's eventual consistency). */
  listLagMs = 0;
  joinDelayMs = 5_000;
  /** How long a terminated node keeps running after the call (EC2's shutting-down). */
  terminateLagMs = 0;
  /** Peers that never join (a bad image). */
  neverJoin = false;
  zones = ['a', 'b', 'c'];
  /** Ids as the local provider gives them: the node's name, the same for every attempt. */
  idIsName = false;
  now = 1_000_000;
  readonly events: string[] = [];
  private index = 0;
  private seq = 0;
  // The leader's memory (lost by crash()).
  created = new Map<string, ProviderNode | ProviderError>();
  terminateAsked = new Map<string, number>();
  orphanSince = new Map<string, number>();
  /** What the scheduler cannot place (autoscale.ts), and the nodes that run containers. */
  demands: Demand[] = [];
  busy = new Set<string>();
  emptySince = new Map<string, number>();
  /** Peers killed: their node stays running but the peer is gone. */
  readonly downPeers = new Set<string>();
  /** How long the mesh still holds a peer up (suspect) after its machine is terminated: the
   *  provider may say gone a second or two before the mesh has it dead. */
  detectLagMs = 0;
  /** Every node ever made: a local node's id is its name, so `nodes` holds only a slot's
   *  newest, while the mesh still holds the peers of the older ones. */
  readonly made: SimNode[] = [];
  /** Peers the leader forgot (retire.ts), and the machine each was of at that moment. */
  readonly forgotten = new Map<string, SimNode>();
  /** The leader's memory of its nodes' peers (retire.ts; lost by crash()). */
  peerMachines = new Map<string, PeerMachine>();
  crashes = 0;

  put(kind: Kind, name: string, spec: unknown, expect?: number): void {
    const r = this.state.apply(++this.index, JSON.stringify({ op: 'put', kind, name, spec, req: `t${this.index}`, ...(expect !== undefined ? { expect } : {}) }));
    if (!r.outcome.ok) throw new Error(r.outcome.error);
  }

  cluster(name: string): NodeClusterSpec | undefined {
    return this.state.get('nodecluster', name)?.spec as NodeClusterSpec | undefined;
  }

  createCluster(name: string, target: number, extra: Partial<NodeClusterSpec> = {}): void {
    this.put('nodecluster', name, {
      name, provider: 'sim', region: 'r', nodeType: 't', target, min: 0, max: 100, tags: [], options: {},
      uid: (0xabc0000000000000n + BigInt([...name].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) % 0xffffff, 7))).toString(16), createdAt: this.now, ...extra,
    } satisfies NodeClusterSpec, 0);
  }

  change(name: string, f: (c: NodeClusterSpec) => NodeClusterSpec): void {
    const o = this.state.get('nodecluster', name) as StateObject;
    this.put('nodecluster', name, f(o.spec as NodeClusterSpec), o.version);
  }

  records(cluster?: string): NodeRecord[] {
    return this.state.list('node').map((o) => o.spec as NodeRecord).filter((n) => cluster === undefined || n.cluster === cluster);
  }

  live(cluster: string): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.cluster === cluster && n.state !== 'terminated');
  }

  /** One round: the pure decision, its batch applied, then its calls (answered at once). */
  round(): ProvisionResult {
    const clusters = this.state.list('nodecluster').map((o) => v<NodeClusterSpec>(o));
    const listings = new Map<string, Listing>();
    for (const c of clusters) {
      this.calls.list++;
      if (this.listFails) listings.set(c.name, { error: 'RequestLimitExceeded: slow down' });
      else listings.set(c.name, { nodes: [...this.nodes.values()].filter((n) => n.cluster === c.name && this.now - n.createdAt >= this.listLagMs).map((n) => ({ ...n })), zones: this.zones });
    }
    const tokens = new Set(this.records().map((r) => r.clientToken));
    for (const n of this.nodes.values()) if (n.state !== 'terminated' && !tokens.has(n.clientToken) && !this.orphanSince.has(nodeKey(n))) this.orphanSince.set(nodeKey(n), this.now);
    const members = this.members();
    for (const r of this.records()) {
      if (this.busy.has(r.name) || r.state !== 'deployed') this.emptySince.delete(r.name);
      else if (!this.emptySince.has(r.name)) this.emptySince.set(r.name, this.now);
    }
    const scalings = autoscale({ clusters, nodes: this.records(), demands: this.demands, busy: this.busy, emptySince: this.emptySince, role: () => 'worker', now: this.now });
    const result = provision({
      clusters, nodes: this.state.list('node').map((o) => v<NodeRecord>(o)),
      timelines: new Map(this.state.list('timeline').map((o) => [o.name, v<ClusterLog>(o)])),
      listings, members, created: this.created, terminateAsked: this.terminateAsked, inFlight: new Set(), orphanSince: this.orphanSince,
      timing: () => TIMING, scalings, busy: this.busy, now: this.now,
    });
    if (result.ops.length > 0) {
      const r = this.state.apply(++this.index, JSON.stringify({ op: 'batch', ops: result.ops, req: `r${this.index}` }));
      if (!r.outcome.ok) throw new Error(`the round's batch was refused: ${r.outcome.error}`);
    }
    for (const e of result.events) this.events.push(`${e.type} ${e.detail}`);
    this.retire(listings);
    for (const req of result.creates) this.created.set(req.clientToken, this.create(req));
    for (const t of result.terminates) {
      this.terminateAsked.set(nodeKey(t.node), this.now);
      this.terminate(t.node.id);
    }
    return result;
  }

  /** Mesh members by name: the peers that joined and are not forgotten, up while their node
   *  runs and for detectLagMs after it is terminated. Tagged with their cluster. */
  members(): Map<string, NodePeer[]> {
    const out = new Map<string, NodePeer[]>();
    for (const n of this.made) {
      if (n.joinsAt === undefined || this.now < n.joinsAt || this.forgotten.has(peerOf(n))) continue;
      const lagging = n.state === 'terminated' && this.now - (n.terminatedAt ?? 0) < this.detectLagMs;
      const up = (n.state === 'running' && !this.downPeers.has(n.id)) || lagging;
      out.set(n.node, [...(out.get(n.node) ?? []), { id: peerOf(n), up, cluster: n.cluster }]);
    }
    return out;
  }

  /** The leader's retirements, as the shell makes them (answered at once). */
  private retire(listings: ReadonlyMap<string, Listing>): void {
    const records = this.records();
    notePeerMachines(this.peerMachines, records);
    const state = new Map([...this.members().values()].flat().map((m) => [m.id, m.up ? ('up' as const) : ('down' as const)]));
    for (const peer of this.peerMachines.keys()) if (!state.has(peer)) this.peerMachines.delete(peer);
    const clusters = new Set(this.state.list('nodecluster').map((o) => o.name));
    for (const peer of peersToRetire({ known: this.peerMachines, records, listings, clusters, member: (p) => state.get(p) })) {
      this.forgotten.set(peer, { ...(this.nodeOfPeer(peer) as SimNode) });
      this.peerMachines.delete(peer);
    }
  }

  nodeOfPeer(peer: string): SimNode | undefined {
    return this.made.find((n) => peerOf(n) === peer);
  }

  /** The leader's memory of its calls is gone (a crash; a new leader). */
  crash(): void {
    this.crashes++;
    this.peerMachines = new Map();
    this.created = new Map();
    this.terminateAsked = new Map();
    this.orphanSince = new Map();
  }

  advance(ms: number): void {
    this.now += ms;
    for (const n of this.nodes.values()) {
      if (n.terminateAt !== undefined && this.now >= n.terminateAt && n.state !== 'terminated') {
        n.state = 'terminated';
        n.terminatedAt = this.now;
      }
      if (n.state === 'pending' && this.now - n.createdAt >= 2_000) n.state = 'running';
      if (n.state === 'running' && n.joinsAt === undefined && !this.neverJoin) n.joinsAt = this.now + this.joinDelayMs;
    }
  }

  create(req: CreateRequest): ProviderNode | ProviderError {
    this.calls.create++;
    const same = [...this.nodes.values()].find((n) => n.clientToken === req.clientToken);
    if (same) return { ...same };
    if (this.createFailure) return this.createFailure;
    if (this.noCapacity.has(req.zone)) return new ProviderError('capacity', 'InsufficientInstanceCapacity', `no capacity in ${req.zone}`);
    const n: SimNode = { id: this.idIsName ? req.node : `i-${++this.seq}`, node: req.node, cluster: req.cluster, clientToken: req.clientToken, zone: req.zone, state: 'pending', createdAt: this.now };
    this.nodes.set(n.id, n);
    this.made.push(n);
    return { ...n };
  }

  terminate(id: string): void {
    this.calls.terminate++;
    const n = this.nodes.get(id);
    if (!n || n.state === 'terminated') return;
    if (this.terminateLagMs > 0) {
      n.terminateAt ??= this.now + this.terminateLagMs;
      return;
    }
    n.state = 'terminated';
    n.terminatedAt = this.now;
  }

  /** Runs rounds a second apart, at most `max`, until `done`. */
  runUntil(done: () => boolean, max = 600): boolean {
    for (let i = 0; i < max; i++) {
      if (done()) return true;
      this.round();
      this.advance(1000);
    }
    return done();
  }

  deployed(cluster: string): number {
    return this.records(cluster).filter((r) => r.state === 'deployed').length;
  }
}

/** A node's peer id: one per machine, as a real peer makes its identity on first start. */
export function peerOf(n: Pick<SimNode, 'clientToken'>): string {
  return `peer-${n.clientToken}`;
}

function v<T>(o: StateObject): Versioned<T> {
  return { name: o.name, version: o.version, spec: o.spec as T };
}
