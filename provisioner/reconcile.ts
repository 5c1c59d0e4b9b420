// One round of the provisioner, pure: from the node clusters (what users asked), their node
// records (what the provisioner keeps), what each provider lists and the mesh's members, decide
// the record changes (one compare-and-set batch) and the provider calls to make after they are
// committed. Level-triggered: a new leader runs the same round on the same state and carries on.
// No clock, no I/O: the shell passes `now`, the calls under way and the results of past calls.

import type { BatchOp } from '../scheduler/manager/desired-state.ts';
import type { Versioned } from '../scheduler/reconciler/observed.ts';
import { automaticTags, type NodeClusterSpec } from './cluster/cluster-spec.ts';
import { type ClusterState, clusterState } from './cluster/cluster-state.ts';
import { MAX_FORMER_PEERS, type NodeRecord, nodeName, nodeObjectName, type NodeState } from './cluster/node-record.ts';
import { appended, type ClusterLog } from './cluster/timeline.ts';
import type { Scaling } from './autoscale.ts';
import type { CreateRequest, ProviderError, ProviderNode } from './provider.ts';

/** A failed attempt waits this long before the next, doubling per attempt: a provider that
 *  refuses (no capacity anywhere, a limit, bad credentials) is asked about once per backoff,
 *  never in a storm; 10 s lets a transient refusal pass quickly. */
export const BACKOFF_BASE_MS = 10_000;
/** ...up to this: a cluster broken for a day is still retried every ten minutes. */
export const BACKOFF_MAX_MS = 10 * 60_000;
/** A terminate that did not take is asked again after this (EC2 lists a terminating instance
 *  as `shutting-down` for a minute or more: asking every round would be a storm). */
export const TERMINATE_AGAIN_MS = 60_000;
/** Termination drains first: a node being terminated whose peer is up and still runs
 *  containers is given this long for the scheduler to move them (they start elsewhere, then the
 *  node's copies go) before it is terminated anyway. */
export const DRAIN_TIMEOUT_MS = 120_000;
/** A created node the provider does not list yet is waited for this long before it is taken
 *  for lost: EC2's DescribeInstances is eventually consistent right after RunInstances. */
export const LIST_LAG_MS = 30_000;

export interface Timing {
  /** How long a node may take from created to joined before it is replaced. */
  provisionTimeoutMs: number;
  /** How long a deployed node's peer may be gone (its machine still running) before it is. */
  unreachableGraceMs: number;
  /** How long a node the provider holds for a cluster, but no record names, is left alone
   *  before it is terminated (a create whose answer was lost, a node of an earlier leader). */
  orphanGraceMs: number;
}

/** A provider's word on a cluster this round: its nodes and zones, or why it could not say. */
export type Listing = { nodes: ProviderNode[]; zones: string[] } | { error: string };

/** A mesh member as the provisioner sees it. */
export interface NodePeer {
  id: string;
  /** Alive or suspect. */
  up: boolean;
  /** Its `cluster=` tag: the cluster whose node it was made as. */
  cluster?: string;
}

export interface ProvisionInput {
  clusters: readonly Versioned<NodeClusterSpec>[];
  nodes: readonly Versioned<NodeRecord>[];
  timelines: ReadonlyMap<string, Versioned<ClusterLog>>;
  listings: ReadonlyMap<string, Listing>;
  /** Mesh members by peer name (a slot's old and new peers share one). */
  members: ReadonlyMap<string, readonly NodePeer[]>;
  /** Answers to create calls, by client token, kept by the shell until the record moves on. */
  created: ReadonlyMap<string, ProviderNode | ProviderError>;
  /** When each provider node (by nodeKey) was last asked to terminate. */
  terminateAsked: ReadonlyMap<string, number>;
  /** Client tokens and provider nodes (by nodeKey) with a call under way: not asked again meanwhile. */
  inFlight: ReadonlySet<string>;
  /** When each orphan (see Timing, by nodeKey) was first listed. */
  orphanSince: ReadonlyMap<string, number>;
  timing: (c: NodeClusterSpec) => Timing;
  /** The scheduler's asks this round (autoscale.ts): a cluster's new target and why. */
  scalings?: readonly Scaling[];
  /** Names of nodes that run containers: of two otherwise alike, an empty one goes first. */
  busy?: ReadonlySet<string>;
  now: number;
}

export interface ClusterStatus {
  name: string;
  state: ClusterState;
  target: number;
  deployed: number;
  nodes: number;
  /** Why it cannot progress, in the provider's words. */
  error?: string;
}

export interface ProvisionEvent {
  type: 'node-created' | 'node-deployed' | 'node-unreachable' | 'node-terminated' | 'node-failed' | 'nodecluster-error' | 'nodecluster-scaled' | 'nodecluster-removed';
  detail: string;
}

export interface ProvisionResult {
  ops: BatchOp[];
  creates: CreateRequest[];
  terminates: { cluster: string; node: ProviderNode }[];
  events: ProvisionEvent[];
  status: ClusterStatus[];
}

/** Preference when a cluster shrinks or keeps `target` of more slots: the ones that serve. */
const KEEP_RANK: Record<NodeState, number> = { deployed: 0, unreachable: 1, provisioning: 2, creating: 3, failed: 4, terminating: 5 };

/** A provider node's key for the shell's memory of calls: its id and its attempt's client token,
 *  since a provider may give one slot's attempts the same id (a local node is its name). */
export function nodeKey(p: Pick<ProviderNode, 'id' | 'clientToken'>): string {
  return `${p.id}#${p.clientToken}`;
}

export function backoffMs(attempt: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(30, Math.max(0, attempt - 1)));
}

export function provision(input: ProvisionInput): ProvisionResult {
  const out: ProvisionResult = { ops: [], creates: [], terminates: [], events: [], status: [] };
  for (const c of input.clusters) roundOfCluster(input, c, out);
  return out;
}

function roundOfCluster(input: ProvisionInput, co: Versioned<NodeClusterSpec>, out: ProvisionResult): void {
  const scaling = input.scalings?.find((x) => x.cluster === co.spec.name && !co.spec.terminating);
  const c = scaling ? { ...co.spec, target: scaling.to } : co.spec;
  const records = input.nodes.filter((n) => n.spec.cluster === c.name);
  const listing = input.listings.get(c.name);
  const status = (error?: string): ClusterStatus => clusterStatus(c, records.map((r) => r.spec), error);
  const tl = input.timelines.get(c.name);
  if (!listing || 'error' in listing) {
    const error = listing?.error ?? 'its provider was not asked';
    out.status.push(status(error));
    // Said once, in the cluster's log, until it changes: nothing else can be decided without
    // knowing what the provider holds.
    if (tl?.spec.error !== error) {
      out.ops.push({ op: 'put', kind: 'timeline', name: c.name, spec: { ...tl?.spec, entries: appended(tl?.spec.entries ?? [], input.now, `provider: ${error}`), error } satisfies ClusterLog, expect: tl?.version ?? 0 });
      out.events.push({ type: 'nodecluster-error', detail: `${c.name}: ${error}` });
    }
    return;
  }
  const timing = input.timing(c);
  const before = tl?.spec.entries ?? [];
  let timeline = before;
  // Attempts are numbered across the cluster's life (ClusterLog.serial); tokens written before
  // the count was kept end in a slot's attempt, so the count starts above every one in use.
  let serial = Math.max(tl?.spec.serial ?? 0, ...records.map((r) => Number(r.spec.clientToken.split('-').at(-1)) || 0));
  const take = () => ++serial;
  const say = (type: ProvisionEvent['type'], detail: string) => {
    out.events.push({ type, detail });
    timeline = appended(timeline, input.now, detail);
  };
  if (scaling) {
    out.ops.push({ op: 'put', kind: 'nodecluster', name: c.name, spec: c, expect: co.version });
    say('nodecluster-scaled', `${c.name}: ${scaling.from} -> ${scaling.to} nodes: ${scaling.why}`);
  }
  const byToken = new Map(listing.nodes.filter((p) => p.state !== 'terminated').map((p) => [p.clientToken, p]));
  /** The records after this round, by object name (`cluster/index`). */
  const next = new Map<string, NodeRecord>();

  // Each record's own step: what its provider node and its peer say now.
  for (const r of records) {
    const stepped = step(r.spec, byToken.get(r.spec.clientToken), input, timing, listing.zones, c, say, take);
    if (stepped) next.set(r.name, stepped);
  }

  // Which slots are wanted: `target` of them, the serving ones first; new slots fill the rest.
  // An upgrade (`weft nodecluster upgrade`: a new generation) wants one more while nodes of an
  // older generation are left: the replacement is made first, then an old one goes.
  const generation = c.generation ?? 1;
  const outdated = (r: NodeRecord) => (r.generation ?? 1) < generation;
  const live = [...next.entries()].filter(([, r]) => !(r.state === 'terminating' && r.after === 'remove'));
  const upgrading = !c.terminating && live.some(([, r]) => outdated(r));
  const target = c.terminating ? 0 : c.target + (upgrading && c.target > 0 ? 1 : 0);
  const busy = (r: NodeRecord) => (input.busy?.has(r.name) ? 0 : 1);
  live.sort(([, a], [, b]) => KEEP_RANK[a.state] - KEEP_RANK[b.state] || Number(outdated(a)) - Number(outdated(b)) || busy(a) - busy(b) || a.index - b.index);
  for (const [name, r] of live.slice(target)) {
    if (r.state === 'failed' || (r.state === 'creating' && !input.inFlight.has(r.clientToken) && !byToken.has(r.clientToken) && !input.created.has(r.clientToken))) {
      next.delete(name);
      say('node-terminated', `${r.name}: no longer wanted (the cluster wants ${target})`);
    } else {
      next.set(name, moved(r, 'terminating', input.now, c.terminating ? 'the cluster is being removed' : `the cluster shrinks to ${target}`, { after: 'remove' }));
    }
  }
  // The replacement has joined (every wanted node serves): one old node goes, drained first.
  const liveNow = [...next.values()].filter((r) => !(r.state === 'terminating' && r.after === 'remove'));
  if (upgrading && liveNow.length >= target && liveNow.every((r) => r.state === 'deployed')) {
    const old = liveNow.filter(outdated).sort((a, b) => busy(b) - busy(a) || b.index - a.index)[0];
    if (old) {
      next.set(nodeObjectName(c.name, old.index), moved(old, 'terminating', input.now, `upgraded: a node of type ${c.nodeType} replaces it`, { after: 'remove' }));
      say('node-terminated', `${old.name}: replaced by an upgraded node (type ${c.nodeType})`);
    }
  }
  // An index removed this round is not reused in it: one batch names an object once.
  const used = new Set([...records.map((r) => r.spec.index), ...[...next.values()].map((r) => r.index)]);
  // Nor is the name of a machine the provider still holds (an orphan, terminated below): two
  // machines, and two peers, would answer to it.
  const held = new Set([...byToken.values()].map((p) => p.node));
  for (let i = live.length, index = 1; i < target; i++) {
    while (used.has(index) || held.has(nodeName(c.name, index))) index++;
    used.add(index);
    const zone = chooseZone(listing.zones, [...next.values()], []);
    if (zone === undefined) {
      out.status.push(status('its provider offers no zone'));
      return;
    }
    const r = fresh(c, index, 1, take(), zone, input.now, formerPeers({ cluster: c.name, name: nodeName(c.name, index) }, input));
    next.set(nodeObjectName(c.name, index), r);
    say('node-created', `${r.name}: new node in ${zone} (the cluster wants ${target})`);
  }

  // Calls: creates for records in `creating`, terminates for those `terminating`.
  for (const r of next.values()) {
    if (r.state === 'creating' && !input.inFlight.has(r.clientToken) && !input.created.has(r.clientToken) && !byToken.has(r.clientToken)) {
      out.creates.push(createRequest(c, r));
    }
    if (r.state === 'terminating') {
      const p = byToken.get(r.clientToken);
      const draining = peerOf(r, input)?.up === true && input.busy?.has(r.name) === true && input.now - r.since < DRAIN_TIMEOUT_MS;
      if (p && !draining && !input.inFlight.has(nodeKey(p)) && input.now - (input.terminateAsked.get(nodeKey(p)) ?? -Infinity) >= TERMINATE_AGAIN_MS) out.terminates.push({ cluster: c.name, node: p });
    }
  }
  // Nodes the provider holds for this cluster that no record names.
  const tokens = new Set([...next.values()].map((r) => r.clientToken));
  for (const p of byToken.values()) {
    if (tokens.has(p.clientToken) || input.inFlight.has(nodeKey(p))) continue;
    const since = input.orphanSince.get(nodeKey(p)) ?? input.now;
    if (input.now - since >= timing.orphanGraceMs && input.now - (input.terminateAsked.get(nodeKey(p)) ?? -Infinity) >= TERMINATE_AGAIN_MS) {
      out.terminates.push({ cluster: c.name, node: p });
      say('node-terminated', `${p.node} (${p.id}): held by the provider for this cluster but not in desired state for ${Math.round((input.now - since) / 1000)} s; terminating it`);
    }
  }

  // Writes: every record that changed, the timeline, and the cluster itself once it is gone.
  for (const [name, r] of next) {
    const was = records.find((x) => x.name === name);
    if (!was) out.ops.push({ op: 'put', kind: 'node', name: nodeObjectName(c.name, r.index), spec: r, expect: 0 });
    else if (JSON.stringify(was.spec) !== JSON.stringify(r)) out.ops.push({ op: 'put', kind: 'node', name: nodeObjectName(c.name, r.index), spec: r, expect: was.version });
  }
  for (const was of records) {
    if (!next.has(was.name)) out.ops.push({ op: 'delete', kind: 'node', name: nodeObjectName(c.name, was.spec.index), expect: was.version });
  }
  const gone = c.terminating && next.size === 0 && byToken.size === 0;
  if (gone) {
    out.ops.push({ op: 'delete', kind: 'nodecluster', name: c.name, expect: co.version });
    if (tl) out.ops.push({ op: 'delete', kind: 'timeline', name: c.name, expect: tl.version });
    out.events.push({ type: 'nodecluster-removed', detail: `${c.name}: every node terminated; the cluster is removed` });
  } else if (timeline !== before || tl?.spec.error !== undefined || serial !== (tl?.spec.serial ?? 0)) {
    // The provider answered: whatever error its log held is over.
    out.ops.push({ op: 'put', kind: 'timeline', name: c.name, spec: { entries: timeline, ...(serial > 0 ? { serial } : {}) } satisfies ClusterLog, expect: tl?.version ?? 0 });
  }
  const after = [...next.values()];
  out.status.push(clusterStatus(c, after, after.find((r) => r.state === 'failed')?.error));
}

function clusterStatus(c: NodeClusterSpec, nodes: readonly NodeRecord[], error: string | undefined): ClusterStatus {
  return {
    name: c.name, state: clusterState(c, nodes), target: c.target,
    deployed: nodes.filter((r) => r.state === 'deployed').length, nodes: nodes.length,
    ...(error ? { error } : {}),
  };
}

/** A record's next state from its provider node (undefined: not listed) and its peer. */
function step(r: NodeRecord, p: ProviderNode | undefined, input: ProvisionInput, timing: Timing, zones: readonly string[], c: NodeClusterSpec, say: (t: ProvisionEvent['type'], d: string) => void, take: () => number): NodeRecord | null {
  const now = input.now;
  const member = peerOf(r, input);
  const answer = input.created.get(r.clientToken);
  const known = p ?? (answer && !isError(answer) ? answer : undefined);
  switch (r.state) {
    case 'creating': {
      if (answer && isError(answer)) {
        if (answer.kind === 'capacity') {
          const avoid = [...(r.avoid ?? []), r.zone];
          const zone = chooseZone(zones, input.nodes.map((n) => n.spec).filter((n) => n.cluster === c.name && n.name !== r.name), avoid);
          if (zone !== undefined) {
            say('node-failed', `${r.name}: ${r.zone} has no capacity (${answer.code}: ${answer.message}); trying ${zone}`);
            return { ...fresh(c, r.index, r.attempt + 1, take(), zone, now, formerPeers(r, input)), avoid, timeline: appended(r.timeline, now, `no capacity in ${r.zone}; trying ${zone}`) };
          }
        }
        const retryAt = now + backoffMs(r.attempt);
        say('node-failed', `${r.name}: the provider refused it (${answer.code}: ${answer.message}); next attempt in ${Math.round((retryAt - now) / 1000)} s`);
        return { ...moved(r, 'failed', now, `${answer.code}: ${answer.message}`), retryAt };
      }
      if (known) {
        say('node-created', `${r.name}: ${known.id} created in ${known.zone}`);
        return { ...moved(r, 'provisioning', now, `created as ${known.id}`), providerId: known.id, zone: known.zone, ...(known.address ? { address: known.address } : {}) };
      }
      return r;
    }
    case 'provisioning': {
      if (member?.up) {
        say('node-deployed', `${r.name}: its peer joined the mesh`);
        return { ...moved(r, 'deployed', now, 'joined the mesh'), peer: member.id, ...(p?.address ? { address: p.address } : {}) };
      }
      if (p?.state === 'stopped') return replace(r, now, 'its machine stopped before its peer joined', say, false);
      if (!p && now - r.since > LIST_LAG_MS) return replace(r, now, 'the provider no longer lists it', say, false);
      if (now - r.since > timing.provisionTimeoutMs) return replace(r, now, `its peer did not join within ${Math.round(timing.provisionTimeoutMs / 1000)} s`, say, false);
      return p?.address && p.address !== r.address ? { ...r, address: p.address } : r;
    }
    case 'deployed': {
      if (!p || p.state === 'stopped') return replace(r, now, p ? 'its machine stopped' : 'the provider no longer lists it', say, true);
      if (!member?.up) {
        say('node-unreachable', `${r.name}: its peer left the mesh`);
        return moved(r, 'unreachable', now, 'its peer left the mesh');
      }
      return member.id !== r.peer ? { ...r, peer: member.id } : r;
    }
    case 'unreachable': {
      if (member?.up) {
        say('node-deployed', `${r.name}: its peer is back`);
        return { ...moved(r, 'deployed', now, 'its peer is back'), peer: member.id };
      }
      if (!p || p.state === 'stopped') return replace(r, now, p ? 'its machine stopped' : 'the provider no longer lists it', say, true);
      if (now - r.since > timing.unreachableGraceMs) return replace(r, now, `its peer was gone for ${Math.round(timing.unreachableGraceMs / 1000)} s`, say, true);
      return r;
    }
    case 'terminating': {
      if (p) return r;
      say('node-terminated', `${r.name}: terminated`);
      if (r.after === 'remove') return null;
      if (r.after !== 'replace') return { ...moved(r, 'failed', now, r.error ?? 'terminated'), retryAt: now + backoffMs(r.attempt) };
      const zone = chooseZone(zones, input.nodes.map((n) => n.spec).filter((n) => n.cluster === c.name && n.name !== r.name), []) ?? r.zone;
      return { ...fresh(c, r.index, r.attempt + 1, take(), zone, now, formerPeers(r, input)), timeline: appended(r.timeline, now, `replacing it in ${zone}`) };
    }
    case 'failed': {
      if (r.retryAt !== undefined && now < r.retryAt) return r;
      const zone = chooseZone(zones, input.nodes.map((n) => n.spec).filter((n) => n.cluster === c.name && n.name !== r.name), []) ?? r.zone;
      return { ...fresh(c, r.index, r.attempt + 1, take(), zone, now, formerPeers(r, input)), timeline: appended(r.timeline, now, `attempt ${r.attempt + 1} in ${zone}`) };
    }
  }
}

/** The peer of a record's attempt: a member of its name that no earlier attempt had (the up
 *  one if there are two). Earlier attempts' peers share the name, and one of a machine the
 *  provider already calls gone stays suspect, so up, until the mesh holds it dead. */
function peerOf(r: NodeRecord, input: ProvisionInput): NodePeer | undefined {
  const own = (input.members.get(r.name) ?? []).filter((m) => !r.formerPeers?.includes(m.id));
  return own.find((m) => m.up) ?? own[0];
}

/** The peers a new attempt of a slot must not take for its own: every peer of this cluster
 *  under the slot's name that the mesh still holds (the new machine is not yet asked for, so
 *  none of them is its peer). Forgotten ones drop out, so the list stays short. */
function formerPeers(r: Pick<NodeRecord, 'cluster' | 'name' | 'formerPeers' | 'peer'>, input: ProvisionInput): string[] {
  const had = new Set([...(r.formerPeers ?? []), ...(r.peer ? [r.peer] : [])]);
  return (input.members.get(r.name) ?? []).filter((m) => m.cluster === r.cluster || had.has(m.id)).map((m) => m.id).slice(-MAX_FORMER_PEERS);
}

/** To `terminating`; `now` replaces it at once when gone (a node that served and died), else
 *  after a backoff (one that never came up: the same again would likely fail the same way). */
function replace(r: NodeRecord, now: number, why: string, say: (t: ProvisionEvent['type'], d: string) => void, at: boolean): NodeRecord {
  say(at ? 'node-unreachable' : 'node-failed', `${r.name}: ${why}; terminating it`);
  return moved(r, 'terminating', now, why, { after: at ? 'replace' : 'retry' });
}

function moved(r: NodeRecord, state: NodeState, now: number, why: string, extra: Partial<NodeRecord> = {}): NodeRecord {
  const { retryAt: _r, error: _e, after: _a, ...rest } = r;
  const keepsError = state === 'failed' || state === 'terminating';
  return { ...rest, state, since: now, ...(keepsError ? { error: why } : {}), ...extra, timeline: appended(r.timeline, now, `${state}: ${why}`) };
}

function fresh(c: NodeClusterSpec, index: number, attempt: number, serial: number, zone: string, now: number, former: string[]): NodeRecord {
  return {
    cluster: c.name, index, name: nodeName(c.name, index), attempt,
    clientToken: `${c.uid}-${index}-${serial}`, zone, state: 'creating', since: now,
    ...((c.generation ?? 1) > 1 ? { generation: c.generation } : {}),
    ...(former.length > 0 ? { formerPeers: former } : {}),
    timeline: [{ at: now, text: `creating: attempt ${attempt} in ${zone}` }],
  };
}

/** The least populated zone not to avoid (ties: the provider's order); avoided ones only when
 *  nothing else is left; undefined when every zone is avoided. */
export function chooseZone(zones: readonly string[], nodes: readonly NodeRecord[], avoid: readonly string[]): string | undefined {
  const count = new Map(zones.map((z) => [z, 0]));
  for (const n of nodes) if (count.has(n.zone) && n.state !== 'failed' && !(n.state === 'terminating' && n.after === 'remove')) count.set(n.zone, (count.get(n.zone) ?? 0) + 1);
  const open = zones.filter((z) => !avoid.includes(z));
  let best: string | undefined;
  for (const z of open) if (best === undefined || (count.get(z) ?? 0) < (count.get(best) ?? 0)) best = z;
  return best;
}

function createRequest(c: NodeClusterSpec, r: NodeRecord): CreateRequest {
  return {
    node: r.name, cluster: c.name, clientToken: r.clientToken, zone: r.zone, nodeType: c.nodeType,
    tags: [...automaticTags(c, r.zone), ...c.tags], options: c.options,
  };
}

function isError(x: ProviderNode | ProviderError): x is ProviderError {
  return x instanceof Error;
}
