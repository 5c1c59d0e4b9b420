// The API a host peer offers the leader for the `local` provider's nodes: a local node is a
// network namespace on the host where its cluster was created, so the leader (perhaps another
// peer) asks that host to make, list and end them. Members only: it starts processes as root.

import { method, text, v } from '../../mesh/api/method.ts';
import { MAX_TAG_LENGTH, MAX_TAGS } from '../../scheduler/stack/limits.ts';
import type { ProviderNode } from '../provider.ts';

const REASON = 'the leader asks the host of a local node cluster to run its nodes';
const nodeName = v.pipe(v.string(), v.regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be a node name'));
const cluster = v.pipe(v.string(), v.regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be a cluster name'));
const token = v.pipe(v.string(), v.regex(/^[0-9a-f]{16}-\d{1,6}-\d{1,9}$/, 'must be a client token'));
const options = v.pipe(v.record(text(64), v.pipe(v.string(), v.maxLength(1024))), v.check((r) => Object.keys(r).length <= 32, 'at most 32 options'));

export const localNodeCreate = method<ProviderNode>()({
  name: 'localnode.create', access: 'member', accessReason: REASON,
  params: v.strictObject({
    node: nodeName, cluster, clientToken: token, zone: text(64),
    tags: v.pipe(v.array(text(MAX_TAG_LENGTH)), v.maxLength(MAX_TAGS + 8)), options,
  }),
});
export const localNodeList = method<ProviderNode[]>()({
  name: 'localnode.ls', access: 'member', accessReason: REASON, params: v.strictObject({ cluster }),
});
export const localNodeDestroy = method<{ destroyed: string }>()({
  name: 'localnode.destroy', access: 'member', accessReason: REASON, params: v.strictObject({ node: nodeName, clientToken: token }),
});
