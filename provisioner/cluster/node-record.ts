// A node of a cluster as desired state holds it: one slot (`cluster/index`) and its current
// attempt. The leader writes it before every outside effect, so a new leader knows what may be
// under way: a record in `creating` holds the client token its create call uses, and calling
// again with that token returns the same node, never a second (ARCHITECTURE.md, fencing). Pure.
//
//   creating ──created──▶ provisioning ──peer joined──▶ deployed ──peer gone──▶ unreachable
//      │ provider error          │ join timeout                                    │ grace over
//      ▼                         ▼                                                 ▼
//    failed ◀──────────── terminating ◀────────────────────────────────────────────┘
//      │ backoff over: the next attempt, `creating` again (a new client token)

import * as v from 'valibot';
import { problem } from '../../scheduler/service/schema.ts';
import { CLUSTER_NAME, MAX_NODES } from './cluster-spec.ts';
import { clusterLogSchema, type TimelineEntry, timelineSchema } from './timeline.ts';

export const NODE_STATES = ['creating', 'provisioning', 'deployed', 'unreachable', 'terminating', 'failed'] as const;
export type NodeState = (typeof NODE_STATES)[number];

/** Former peers a record keeps: more would mean a slot replaced that often while none of its
 *  dead peers could be forgotten, and the oldest matter least. */
export const MAX_FORMER_PEERS = 16;

export interface NodeRecord {
  cluster: string;
  index: number;
  /** `<cluster>-<index>`: its peer's name, its host name. */
  name: string;
  /** 1 for the first try of this slot, +1 for each new one. */
  attempt: number;
  /** `<cluster uid>-<index>-<serial>` (timeline.ts, ClusterLog.serial): unique per attempt
   *  for the cluster's life, the provider's idempotency key. */
  clientToken: string;
  zone: string;
  state: NodeState;
  /** When it entered its state, by the leader's clock (ms). */
  since: number;
  /** The provider's id, once it has one. */
  providerId?: string;
  address?: string;
  /** The peer id of its joined peer. */
  peer?: string;
  /** Peers of the slot's earlier attempts the mesh still held when this one began: never this
   *  attempt's peer (they share its name), and forgotten by the leader once down (retire.ts). */
  formerPeers?: string[];
  /** Why it is failed or terminating, in the provider's or the provisioner's words. */
  error?: string;
  /** failed: when the next attempt may start. */
  retryAt?: number;
  /** terminating: what follows once it is gone: a new attempt at once (`replace`: it served and
   *  died), after a backoff (`retry`: it never came up), or nothing (`remove`: not wanted). */
  after?: 'replace' | 'retry' | 'remove';
  /** The cluster's generation it was made for (absent: 1); an older one is replaced by an
   *  upgrade. */
  generation?: number;
  /** Zones that refused capacity in this round of attempts, tried last. */
  avoid?: string[];
  timeline: TimelineEntry[];
}

const id = v.pipe(v.string(), v.minLength(1), v.maxLength(256));
const ms = v.pipe(v.number(), v.integer(), v.minValue(0));

const nodeRecordSchema = v.strictObject({
  cluster: v.pipe(v.string(), v.regex(CLUSTER_NAME)),
  index: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(10 * MAX_NODES)),
  name: v.pipe(v.string(), v.maxLength(64)),
  attempt: v.pipe(v.number(), v.integer(), v.minValue(1)),
  clientToken: v.pipe(v.string(), v.regex(/^[0-9a-f]{16}-\d+-\d+$/, 'must be <uid>-<index>-<serial>')),
  zone: v.pipe(v.string(), v.minLength(1), v.maxLength(64)),
  state: v.picklist(NODE_STATES),
  since: ms,
  providerId: v.optional(id),
  address: v.optional(v.pipe(v.string(), v.maxLength(64))),
  peer: v.optional(id),
  formerPeers: v.optional(v.pipe(v.array(id), v.maxLength(MAX_FORMER_PEERS))),
  error: v.optional(v.pipe(v.string(), v.maxLength(1000))),
  retryAt: v.optional(ms),
  after: v.optional(v.picklist(['replace', 'retry', 'remove'])),
  generation: v.optional(v.pipe(v.number(), v.integer(), v.minValue(2))),
  avoid: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(64))), v.maxLength(32))),
  timeline: timelineSchema,
});

/** The object name of a node record. */
export function nodeObjectName(cluster: string, index: number): string {
  return `${cluster}/${index}`;
}

export function nodeName(cluster: string, index: number): string {
  return `${cluster}-${index}`;
}

export function nodeRecordProblem(name: string, x: unknown): string | undefined {
  const p = problem(v.safeParse(nodeRecordSchema, x));
  if (p !== undefined) return p;
  const r = x as NodeRecord;
  if (r.name !== nodeName(r.cluster, r.index)) return `node ${r.cluster}/${r.index} must be named ${nodeName(r.cluster, r.index)}`;
  return name === nodeObjectName(r.cluster, r.index) ? undefined : `node ${r.name} is stored as "${name}", not "${nodeObjectName(r.cluster, r.index)}"`;
}

/** Why `x` is not a cluster's log (kind `timeline`). */
export function timelineProblem(x: unknown): string | undefined {
  return problem(v.safeParse(clusterLogSchema, x));
}
