// The provisioner's shell: on the leader only, a round (reconcile.ts) every few seconds and
// whenever desired state or membership changes. It asks each cluster's provider what it holds,
// decides, writes the record changes as one compare-and-set batch through Raft, and only once
// that is committed makes the provider calls: a create's client token is in desired state
// before the create is sent, so a leader that dies mid-call leaves its successor the token to
// repeat the call with, never a second node. Calls run in the background; each one's answer
// is kept (in memory: a new leader simply asks again) and feeds the next round.

import type { Logger } from '../mesh/log.ts';
import { isUp, type MeshMember, type MeshView } from '../mesh/mesh-view.ts';
import type { StateObject } from '../scheduler/manager/desired-state.ts';
import type { RaftNode } from '../scheduler/manager/raft-node.ts';
import type { Versioned } from '../scheduler/reconciler/observed.ts';
import { CLUSTER_TAG, type NodeClusterSpec } from './cluster/cluster-spec.ts';
import type { NodeRecord } from './cluster/node-record.ts';
import type { ClusterLog } from './cluster/timeline.ts';
import { ProviderError, type Provider, type ProviderNode } from './provider.ts';
import { autoscale, type Demand } from './autoscale.ts';
import { nodeRole } from './providers/local-host.ts';
import type { TaskSpec } from '../scheduler/task/task.ts';
import { LeaderRounds } from '../scheduler/manager/leader-rounds.ts';
import { backoffMs, type Listing, nodeKey, type NodePeer, provision, type ProvisionEvent, type Timing } from './reconcile.ts';
import { notePeerMachines, peersToRetire, type PeerMachine, type PeerState, type RetirePeer } from './retire.ts';

/** A round at least this often: provider state (an instance that started running) announces
 *  nothing, and EC2's API allows a steady few calls per second per account. */
export const PROVISION_EVERY_MS = 2000;
/** A provider's listing that takes longer is taken as an error for this round. */
export const LIST_TIMEOUT_MS = 30_000;
const SETTLE_MS = 50;

export interface ProvisionerOptions {
  raft: RaftNode;
  view: MeshView;
  log: Logger;
  /** The provider of a cluster, by the cluster's `provider` field, and a version that changes
   *  when its record does (a rotation); undefined: none such. */
  provider(name: string): Promise<{ provider: Provider; version: number } | undefined>;
  timing(c: NodeClusterSpec): Timing;
  /** What the scheduler cannot place now (its round's pending services). */
  demands(): Demand[];
  emit(type: ProvisionEvent['type'], detail: string): void;
  /** Forgets a terminated node's peer (retire.ts). */
  retire: RetirePeer;
}

/** Refusals of one peer's retirement after which it is said at warn level: IPAM may see a
 *  peer live a little longer than membership does, but not for this many tries. */
const RETIRE_WARN_ATTEMPTS = 5;
/** A retirement (rmpeer, then forget) is local work of milliseconds; one that has not ended by
 *  then is counted as refused and tried again, rather than holding its slot for ever. */
const RETIRE_TIMEOUT_MS = 20_000;

export class Provisioner {
  private readonly o: ProvisionerOptions;
  private readonly rounds: LeaderRounds;
  private readonly created = new Map<string, ProviderNode | ProviderError>();
  private readonly terminateAsked = new Map<string, number>();
  private readonly inFlight = new Set<string>();
  private readonly orphanSince = new Map<string, number>();
  /** Peers that nodes' records named, and their machines: to retire once those are gone. */
  private readonly peerMachines = new Map<string, PeerMachine>();
  /** Refused retirements: how many, and not again before `at` (backoffMs). */
  private readonly retireFailures = new Map<string, { attempts: number; at: number }>();
  /** A cluster whose provider refused to list: not asked again before `until` (the same
   *  backoff as a refused create), unless its provider record changes (a rotation). */
  /** When each cluster node was first seen running nothing (autoscale.ts's cool-down). */
  private readonly emptySince = new Map<string, number>();
  private readonly listFailures = new Map<string, { until: number; attempt: number; version: number; error: string }>();

  constructor(o: ProvisionerOptions) {
    this.o = o;
    this.rounds = new LeaderRounds({
      isLeader: () => o.raft.isLeader(), everyMs: PROVISION_EVERY_MS, settleMs: SETTLE_MS,
      round: () => this.round(),
      // What a leader remembers of its calls is its own; a later term starts afresh.
      notLeader: () => {
        this.created.clear();
        this.terminateAsked.clear();
        this.orphanSince.clear();
        this.peerMachines.clear();
        this.retireFailures.clear();
      },
    });
  }

  start(): void {
    const kick = () => this.rounds.kick();
    this.rounds.start([
      this.o.raft.onChange((c) => {
        if (c.kind === 'nodecluster') kick();
      }),
      this.o.view.onLiveness(kick),
    ]);
  }

  stop(): void {
    this.rounds.stop();
  }

  /** One round; true when another should follow at once. */
  private async round(): Promise<boolean> {
    try {
      const state = this.o.raft.state;
      const clusters = state.list('nodecluster').map((o) => versioned<NodeClusterSpec>(o));
      if (clusters.length === 0) {
        // The last cluster's removal: its nodes' peers are still to be forgotten.
        if (this.peerMachines.size > 0) this.retireGone([], [], new Map(), this.o.view.members());
        return false;
      }
      const nodes = state.list('node').map((o) => versioned<NodeRecord>(o));
      const timelines = new Map(state.list('timeline').map((o) => [o.name, versioned<ClusterLog>(o)]));
      const listings = new Map(await Promise.all(clusters.map(async (c) => [c.name, await this.listing(c.spec)] as const)));
      this.noteOrphans(listings, nodes);
      const members = this.o.view.members();
      this.retireGone(clusters, nodes, listings, members);
      const now = Date.now();
      const busy = this.busyNodes(members);
      for (const n of nodes) {
        if (busy.has(n.spec.name) || n.spec.state !== 'deployed') this.emptySince.delete(n.spec.name);
        else if (!this.emptySince.has(n.spec.name)) this.emptySince.set(n.spec.name, now);
      }
      const scalings = autoscale({
        clusters, nodes: nodes.map((n) => n.spec), demands: this.o.demands(), busy, emptySince: this.emptySince,
        role: (c) => nodeRole(c.options), now,
      });
      const result = provision({
        clusters, nodes, timelines, listings, members: membersByName(members),
        created: this.created, terminateAsked: this.terminateAsked, inFlight: this.inFlight, orphanSince: this.orphanSince,
        timing: this.o.timing, scalings, busy, now,
      });
      if (result.ops.length > 0) {
        const outcome = await this.o.raft.write({ op: 'batch', ops: result.ops, req: this.o.raft.requestId() });
        if (!outcome.ok) {
          this.o.log.debug('provisioner batch refused; deciding again', { error: outcome.error });
          return true;
        }
      }
      for (const e of result.events) this.o.emit(e.type, e.detail);
      this.forgetSettled(nodes, result.ops);
      const byName = new Map(clusters.map((c) => [c.name, c.spec]));
      for (const req of result.creates) this.call(req.clientToken, async () => (await this.providerOf(byName.get(req.cluster))).create(req), (r) => this.created.set(req.clientToken, r));
      for (const t of result.terminates) {
        const c = byName.get(t.cluster);
        this.terminateAsked.set(nodeKey(t.node), now);
        this.call(nodeKey(t.node), async () => (await this.providerOf(c)).terminate(t.node, c?.options ?? {}), (r) => {
          if (r instanceof Error) this.o.emit('node-failed', `${t.node.node}: terminating ${t.node.id} failed: ${r.message}`);
        });
      }
    } catch (err) {
      this.o.log.warn('provisioner round failed', { err: String(err) });
    }
    return false;
  }

  /** Forgets the peers of nodes whose machines are gone (retire.ts), in the background. */
  private retireGone(clusters: readonly Versioned<NodeClusterSpec>[], nodes: readonly Versioned<NodeRecord>[], listings: ReadonlyMap<string, Listing>, all: readonly MeshMember[]): void {
    const records = nodes.map((n) => n.spec);
    notePeerMachines(this.peerMachines, records);
    const members = new Map(all.map((m) => [m.id, m.state]));
    // Forgotten already (by hand, or by this leader's earlier round): nothing left to do.
    for (const peer of this.peerMachines.keys()) {
      if (members.has(peer)) continue;
      this.peerMachines.delete(peer);
      this.retireFailures.delete(peer);
    }
    const member = (peer: string): PeerState => {
      const s = members.get(peer);
      return s === undefined ? undefined : isUp(s) ? 'up' : 'down';
    };
    for (const peer of peersToRetire({ known: this.peerMachines, records, listings, clusters: new Set(clusters.map((c) => c.name)), member })) {
      const key = `retire:${peer}`;
      const failed = this.retireFailures.get(peer);
      if (this.inFlight.has(key) || (failed && Date.now() < failed.at)) continue;
      this.call(key, () => withTimeout(this.o.retire(peer), RETIRE_TIMEOUT_MS, `forgetting ${peer} took over ${RETIRE_TIMEOUT_MS / 1000} s`), (r) => {
        if (r instanceof Error) {
          const attempts = (failed?.attempts ?? 0) + 1;
          this.retireFailures.set(peer, { attempts, at: Date.now() + backoffMs(attempts) });
          const level = attempts === RETIRE_WARN_ATTEMPTS ? 'warn' : 'info';
          this.o.log[level]('cannot forget the peer of a terminated node yet; trying again', { peer, attempts, err: r.message });
          return;
        }
        this.o.log.info('forgot the peer of a terminated node; its address space is taken over', { peer });
        this.peerMachines.delete(peer);
        this.retireFailures.delete(peer);
      });
    }
  }

  /** Runs a provider call in the background, once per key at a time; its answer (a value or a
   *  ProviderError) goes to `done`, and a round follows. */
  private call<T>(key: string, f: () => Promise<T>, done: (r: T | ProviderError) => void): void {
    this.inFlight.add(key);
    void f()
      .then(done, (err: unknown) => done(asProviderError(err)))
      .finally(() => {
        this.inFlight.delete(key);
        this.rounds.kick();
      });
  }

  /** Names of the nodes that have containers assigned (tasks in desired state). */
  private busyNodes(members: readonly MeshMember[]): Set<string> {
    const names = new Map(members.map((m) => [m.id, m.name]));
    const out = new Set<string>();
    for (const t of this.o.raft.state.list('task')) {
      const name = names.get((t.spec as TaskSpec).node);
      if (name) out.add(name);
    }
    return out;
  }

  private async listing(c: NodeClusterSpec): Promise<Listing> {
    const found = await this.o.provider(c.provider).catch((err: unknown) => asProviderError(err));
    if (found instanceof ProviderError) return { error: found.message };
    if (!found) return { error: `no provider "${c.provider}" (see weft provider ls)` };
    const failed = this.listFailures.get(c.name);
    const now = Date.now();
    if (failed && failed.version === found.version && now < failed.until) return { error: failed.error };
    try {
      const p = found.provider;
      const [nodes, zones] = await withTimeout(Promise.all([p.list(c.name, c.options), p.zones(c.options)]), LIST_TIMEOUT_MS, `${c.provider} did not answer within ${LIST_TIMEOUT_MS / 1000} s`);
      this.listFailures.delete(c.name);
      return { nodes, zones };
    } catch (err) {
      const error = asProviderError(err).message;
      const attempt = failed && failed.version === found.version ? failed.attempt + 1 : 1;
      this.listFailures.set(c.name, { until: Date.now() + backoffMs(attempt), attempt, version: found.version, error });
      return { error };
    }
  }

  private async providerOf(c: NodeClusterSpec | undefined): Promise<Provider> {
    const p = c && (await this.o.provider(c.provider));
    if (!p) throw new ProviderError('parameters', 'NoProvider', `no provider "${c?.provider}"`);
    return p.provider;
  }

  private noteOrphans(listings: ReadonlyMap<string, Listing>, nodes: readonly Versioned<NodeRecord>[]): void {
    const tokens = new Set(nodes.map((n) => n.spec.clientToken));
    const seen = new Set<string>();
    const now = Date.now();
    for (const l of listings.values()) {
      if ('error' in l) continue;
      for (const p of l.nodes) {
        if (p.state === 'terminated' || tokens.has(p.clientToken)) continue;
        seen.add(nodeKey(p));
        if (!this.orphanSince.has(nodeKey(p))) this.orphanSince.set(nodeKey(p), now);
      }
    }
    for (const id of this.orphanSince.keys()) if (!seen.has(id)) this.orphanSince.delete(id);
  }

  /** Answers to creates are kept until their record has moved past `creating`. */
  private forgetSettled(nodes: readonly Versioned<NodeRecord>[], ops: readonly { op: string; kind: string; spec?: unknown }[]): void {
    const creating = new Set(nodes.filter((n) => n.spec.state === 'creating').map((n) => n.spec.clientToken));
    for (const op of ops) {
      if (op.kind !== 'node' || op.op !== 'put') continue;
      const r = op.spec as NodeRecord;
      if (r.state === 'creating') creating.add(r.clientToken);
      else creating.delete(r.clientToken);
    }
    for (const t of this.created.keys()) if (!creating.has(t)) this.created.delete(t);
  }

}

function versioned<T>(o: StateObject): Versioned<T> {
  return { name: o.name, version: o.version, spec: o.spec as T };
}

/** Every member by peer name, with its cluster tag: a node's earlier attempts' peers share its
 *  name, and the round tells them apart (reconcile.ts, peerOf). */
function membersByName(members: readonly MeshMember[]): Map<string, NodePeer[]> {
  const out = new Map<string, NodePeer[]>();
  for (const m of members) {
    const cluster = m.tags.find((t) => t.startsWith(CLUSTER_TAG))?.slice(CLUSTER_TAG.length);
    const peer: NodePeer = { id: m.id, up: isUp(m.state), ...(cluster ? { cluster } : {}) };
    out.set(m.name, [...(out.get(m.name) ?? []), peer]);
  }
  return out;
}

export function asProviderError(err: unknown): ProviderError {
  if (err instanceof ProviderError) return err;
  return new ProviderError('transient', 'Error', err instanceof Error ? err.message : String(err));
}

function withTimeout<T>(p: Promise<T>, ms: number, why: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new ProviderError('transient', 'Timeout', why)), ms)))]).finally(() => clearTimeout(timer));
}
