// The scheduler drives node clusters' sizes: a service whose containers stay pending because no
// node carries its tags (or none has the memory) grows a cluster whose new nodes would carry
// them, within its max; a cluster's node that stays empty beyond its cool-down is removed, down
// to its min. One node at a time per cluster: a growth waits until the last new node has
// joined (it may be all the service needed), a shrink until the next round. Pure.

import type { PendingReason } from '../scheduler/placement/reasons.ts';
import type { Versioned } from '../scheduler/reconciler/observed.ts';
import { automaticTags, type NodeClusterSpec } from './cluster/cluster-spec.ts';
import type { NodeRecord } from './cluster/node-record.ts';

/** How long a node may stay empty before its cluster shrinks, unless the cluster says: long
 *  enough that a redeploy or a burst of restarts does not give nodes back only to ask for them
 *  again (Kubernetes' cluster autoscaler waits 10 minutes). */
export const SCALE_DOWN_AFTER_MS = 10 * 60_000;

/** A pending service as the scheduler's round reports it. */
export interface Demand {
  service: string;
  reason: PendingReason;
  unplaced: number;
}

export interface Scaling {
  cluster: string;
  from: number;
  to: number;
  why: string;
}

export interface AutoscaleInput {
  clusters: readonly Versioned<NodeClusterSpec>[];
  nodes: readonly NodeRecord[];
  demands: readonly Demand[];
  /** Names of nodes that run (or are assigned) containers. */
  busy: ReadonlySet<string>;
  /** When each node was first seen empty (the shell keeps it; forgotten = empty from now). */
  emptySince: ReadonlyMap<string, number>;
  /** A node's role in its cluster's options (workers carry `role=worker`). */
  role(c: NodeClusterSpec): string;
  now: number;
}

/** The tags a new node of the cluster would carry that a service can ask for. Zones are not
 *  known before the node is made, so `zone=` is never promised. */
export function promisedTags(c: NodeClusterSpec, role: string): Set<string> {
  return new Set([...automaticTags(c, '').filter((t) => !t.startsWith('zone=')), ...c.tags, `role=${role === 'worker' ? 'worker' : 'manager'}`]);
}

function serves(c: NodeClusterSpec, d: Demand, role: string): boolean {
  if (d.reason.kind === 'no-usable-node') return false; // its nodes exist: they are down or draining, not missing
  const tags = d.reason.kind === 'memory' ? [] : d.reason.tags;
  const promised = promisedTags(c, role);
  return tags.every((t) => promised.has(t));
}

export function autoscale(input: AutoscaleInput): Scaling[] {
  const out: Scaling[] = [];
  const grown = new Set<string>();
  for (const d of input.demands) {
    if (d.unplaced <= 0) continue;
    const candidates = input.clusters
      .map((o) => o.spec)
      .filter((c) => !c.terminating && c.target < c.max && !grown.has(c.name) && serves(c, d, input.role(c)))
      .filter((c) => !input.nodes.some((n) => n.cluster === c.name && (n.state === 'creating' || n.state === 'provisioning')))
      .sort((a, b) => b.max - b.target - (a.max - a.target) || (a.name < b.name ? -1 : 1));
    const c = candidates[0];
    if (!c) continue;
    grown.add(c.name);
    const why = d.reason.kind === 'memory' ? 'not enough memory' : d.reason.tags.length ? `no node carries tags ${d.reason.tags.join(',')}` : 'no node to run it';
    out.push({ cluster: c.name, from: c.target, to: c.target + 1, why: `service ${d.service} has ${d.unplaced} container(s) pending (${why})` });
  }
  for (const o of input.clusters) {
    const c = o.spec;
    if (c.terminating || grown.has(c.name) || c.target <= c.min) continue;
    if (input.demands.some((d) => d.unplaced > 0 && serves(c, d, input.role(c)))) continue;
    const after = c.scaleDownAfterS !== undefined ? c.scaleDownAfterS * 1000 : SCALE_DOWN_AFTER_MS;
    const idle = input.nodes
      .filter((n) => n.cluster === c.name && n.state === 'deployed' && !input.busy.has(n.name))
      .filter((n) => input.now - (input.emptySince.get(n.name) ?? input.now) >= after)
      .sort((a, b) => b.index - a.index)[0];
    if (!idle) continue;
    out.push({ cluster: c.name, from: c.target, to: c.target - 1, why: `${idle.name} has run nothing for ${Math.round(after / 1000)} s` });
  }
  return out;
}
