// A node cluster as desired state holds it: what the user asked for (`weft nodecluster create`):
// a name, where its nodes come from (provider, region, node type), how many (target within min
// and max) and the tags they carry. Everything the provisioner learns while keeping it (its
// nodes, their attempts and errors) lives in node records (node-record.ts), so a user's scale
// and the provisioner's bookkeeping never race for one object. Pure.

import * as v from 'valibot';
import { problem } from '../../scheduler/service/schema.ts';
import { MAX_TAG_LENGTH, MAX_TAGS } from '../../scheduler/stack/limits.ts';

/** A cluster name is a DNS label short enough that `<cluster>-<index>`, its nodes' peer and
 *  host names, stays one too (63) with room for the index. */
export const CLUSTER_NAME = /^[a-z][a-z0-9-]{0,31}$/;
/** Tutum capped a node cluster at 100 nodes in a request; one machine here runs a handful. */
export const MAX_NODES = 100;
/** Provider options are a handful of short settings (an image id, a subnet, a key name). */
const MAX_OPTIONS = 32;
const MAX_OPTION_LENGTH = 1024;

export interface NodeClusterSpec {
  name: string;
  /** `local`, or the name of a provider added with `weft provider add`. */
  provider: string;
  region: string;
  nodeType: string;
  /** target_num_nodes: how many nodes the provisioner keeps. */
  target: number;
  min: number;
  max: number;
  /** The user's deploy tags; every node also carries provider=, region=, zone= and cluster=. */
  tags: string[];
  options: Record<string, string>;
  /** Random, made at create: client tokens start with it, so a cluster created again under an
   *  old name never matches its predecessor's instances. */
  uid: string;
  createdAt: number;
  /** `weft nodecluster rm` asked: its nodes terminate, then the cluster goes. */
  terminating?: boolean;
  /** How long a node may run nothing before the cluster shrinks (above its min); absent: the
   *  default of provisioner/autoscale.ts. */
  scaleDownAfterS?: number;
  /** +1 at each `weft nodecluster upgrade` (absent: 1): nodes made for an older one are
   *  replaced, one at a time. */
  generation?: number;
}

const text = (max: number) => v.pipe(v.string(), v.minLength(1), v.maxLength(max));
const count = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(MAX_NODES));

export const clusterSpecSchema = v.pipe(
  v.strictObject({
    name: v.pipe(v.string(), v.regex(CLUSTER_NAME, 'must be a lowercase DNS label of at most 32 characters')),
    provider: v.pipe(v.string(), v.regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be `local` or a provider name')),
    region: text(64),
    nodeType: text(64),
    target: count,
    min: count,
    max: count,
    tags: v.pipe(v.array(text(MAX_TAG_LENGTH)), v.maxLength(MAX_TAGS)),
    options: v.pipe(v.record(text(64), v.pipe(v.string(), v.maxLength(MAX_OPTION_LENGTH))), v.check((r) => Object.keys(r).length <= MAX_OPTIONS, `at most ${MAX_OPTIONS} options`)),
    uid: v.pipe(v.string(), v.regex(/^[0-9a-f]{16}$/, 'must be 16 hex digits')),
    createdAt: v.pipe(v.number(), v.integer(), v.minValue(0)),
    terminating: v.optional(v.literal(true)),
    generation: v.optional(v.pipe(v.number(), v.integer(), v.minValue(2))),
    scaleDownAfterS: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(7 * 24 * 3600))),
  }),
  v.check((c) => c.min <= c.max, 'min must not exceed max'),
  v.check((c) => c.target >= c.min && c.target <= c.max, 'the target must lie between min and max'),
);

export function clusterSpecProblem(name: string, x: unknown): string | undefined {
  const p = problem(v.safeParse(clusterSpecSchema, x));
  if (p !== undefined) return p;
  return (x as NodeClusterSpec).name === name ? undefined : `a node cluster named "${(x as NodeClusterSpec).name}" is stored as "${name}"`;
}

/** The tags every node of a cluster carries besides the user's, so deploy tags can ask for a
 *  provider, region, zone or cluster (Tutum's automatic node tags). */
/** The automatic tag that names a node's cluster (the provisioner tells its nodes' peers by it). */
export const CLUSTER_TAG = 'cluster=';

export function automaticTags(c: Pick<NodeClusterSpec, 'name' | 'provider' | 'region'>, zone: string): string[] {
  return [`provider=${c.provider}`, `region=${c.region}`, `zone=${zone}`, `${CLUSTER_TAG}${c.name}`];
}
