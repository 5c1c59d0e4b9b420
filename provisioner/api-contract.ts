// The provisioner's API methods (`weft nodecluster ...`, `weft node ...`) as clients see them.
// The handlers are in api.ts.

import { method, NONE, text, v } from '../mesh/api/method.ts';
import { MAX_TAG_LENGTH, MAX_TAGS } from '../scheduler/stack/limits.ts';
import { CLUSTER_NAME, MAX_NODES } from './cluster/cluster-spec.ts';
import type { ClusterState } from './cluster/cluster-state.ts';
import type { TimelineEntry } from './cluster/timeline.ts';

const clusterName = v.pipe(v.string(), v.regex(CLUSTER_NAME, 'a node cluster name is a lowercase DNS label of at most 32 characters'));
/** Making and ending machines costs money on a cloud and runs root processes on this machine:
 *  an admin's call, not every deployer's. */
const INFRA = 'making and ending nodes is for admin tokens';
const count = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(MAX_NODES));

/** A node's state in Tutum's words. */
export type NodeStateWord = 'Deploying' | 'Deployed' | 'Unreachable' | 'Terminating' | 'Failed';

export interface ClusterRow {
  name: string;
  provider: string;
  region: string;
  nodeType: string;
  state: ClusterState;
  target: number;
  deployed: number;
  min: number;
  max: number;
  tags: string[];
  /** Nodes of an older generation an upgrade has yet to replace. */
  outdated: number;
  /** Why it cannot progress, when it cannot. */
  error?: string;
}

/** A node of the mesh: a cluster's (cluster and provider set) or a peer brought by its owner
 *  (cluster and provider null). */
export interface NodeRow {
  name: string;
  cluster: string | null;
  provider: string | null;
  state: NodeStateWord;
  zone: string | null;
  address?: string;
  /** Its peer's id once it joined. */
  peer?: string;
  providerId?: string;
  attempt?: number;
  error?: string;
  /** Drained (`weft node drain`, or being terminated): takes nothing, its containers move. */
  draining?: boolean;
  /** Containers assigned to it now. */
  containers?: number;
  /** Whether its agent reports a working Docker (it can run containers); absent: no report. */
  docker?: 'ok' | 'unavailable';
}

export const nodeClusterCreate = method<ClusterRow>()({
  name: 'nodecluster.create', access: 'admin', accessReason: INFRA,
  params: v.strictObject({
    name: clusterName,
    provider: v.pipe(v.string(), v.regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be `local` or a provider name')),
    region: v.optional(text(64)),
    nodeType: v.optional(text(64)),
    nodes: count,
    min: v.optional(count),
    max: v.optional(count),
    scaleDownAfterS: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(7 * 24 * 3600))),
    tags: v.optional(v.pipe(v.array(text(MAX_TAG_LENGTH)), v.maxLength(MAX_TAGS))),
    options: v.optional(v.pipe(v.record(text(64), v.pipe(v.string(), v.maxLength(1024))), v.check((r) => Object.keys(r).length <= 32, 'at most 32 options'))),
  }),
});
export const nodeClusterList = method<ClusterRow[]>()({ name: 'nodecluster.ls', access: 'operator', params: NONE });
export const nodeClusterInspect = method<{ cluster: ClusterRow; options: Record<string, string>; nodes: NodeRow[]; timeline: TimelineEntry[] }>()({
  name: 'nodecluster.inspect', access: 'operator', params: v.strictObject({ name: clusterName }),
});
export const nodeClusterScale = method<ClusterRow>()({
  name: 'nodecluster.scale', access: 'admin', accessReason: INFRA, params: v.strictObject({ name: clusterName, nodes: count }),
});
/** Replaces every node, one at a time (a new one joins, then an old one is drained and
 *  terminated), with nodes of the given type or of the same one (a new image, new user data). */
export const nodeClusterUpgrade = method<ClusterRow>()({
  name: 'nodecluster.upgrade', access: 'admin', accessReason: INFRA, params: v.strictObject({ name: clusterName, nodeType: v.optional(text(64)) }),
});
export const nodeClusterRemove = method<{ removing: string }>()({
  name: 'nodecluster.rm', access: 'admin', accessReason: INFRA, params: v.strictObject({ name: clusterName }),
});
export const nodeList = method<NodeRow[]>()({
  name: 'node.ls', access: 'operator', params: v.strictObject({ cluster: v.optional(clusterName) }),
});
export const nodeInspect = method<NodeRow & { timeline: TimelineEntry[] }>()({
  name: 'node.inspect', access: 'operator', params: v.strictObject({ name: text(64) }),
});

/** Moves a node's containers elsewhere and keeps new ones off it (`undrain` ends that). */
export const nodeDrain = method<NodeRow>()({
  name: 'node.drain', access: 'admin', accessReason: INFRA, params: v.strictObject({ name: text(64) }),
});
export const nodeUndrain = method<NodeRow>()({
  name: 'node.undrain', access: 'admin', accessReason: INFRA, params: v.strictObject({ name: text(64) }),
});

/** Removes a node: a cluster's is drained, terminated and its cluster shrinks by one; one brought
 *  by its owner must be down already (stop its peer first), and then its address space is taken
 *  over and the mesh forgets it (`weft rmpeer` and `weft forget` in one). */
export const nodeRemove = method<{ removed: string; how: 'terminating' | 'forgotten' }>()({
  name: 'node.rm', access: 'admin', accessReason: INFRA, params: v.strictObject({ name: text(64) }),
});
