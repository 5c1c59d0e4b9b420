// The tags weft puts on what it creates in EC2, and reads back to find it: every instance and
// managed security group carries its mesh, its cluster and `weft:managed=true`; an instance also
// its node slot and client token. Found by tags, not by names or ids kept elsewhere, so that a
// new leader, or an operator with the AWS console, sees the same thing. Pure.

import type { Filter, Tag } from '@aws-sdk/client-ec2';

export const TAG_MESH = 'weft:mesh';
export const TAG_CLUSTER = 'weft:cluster';
export const TAG_NODE = 'weft:node';
export const TAG_CLIENT_TOKEN = 'weft:client-token';
export const TAG_MANAGED = 'weft:managed';
/** The console shows the Name tag in its lists. */
export const TAG_NAME = 'Name';

/** A mesh's label in tags and group names: two meshes that share an account and region (staging
 *  and production) must never list, and so never end, each other's nodes; a cluster name alone
 *  is not unique across meshes. Printable in a tag value and a group name. */
export const MESH_LABEL = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function nodeTags(mesh: string, req: { cluster: string; node: string; clientToken: string }): Tag[] {
  return [
    { Key: TAG_MESH, Value: mesh },
    { Key: TAG_CLUSTER, Value: req.cluster },
    { Key: TAG_NODE, Value: req.node },
    { Key: TAG_CLIENT_TOKEN, Value: req.clientToken },
    { Key: TAG_MANAGED, Value: 'true' },
    { Key: TAG_NAME, Value: req.node },
  ];
}

export function groupTags(mesh: string, cluster: string, name: string): Tag[] {
  return [
    { Key: TAG_MESH, Value: mesh },
    { Key: TAG_CLUSTER, Value: cluster },
    { Key: TAG_MANAGED, Value: 'true' },
    { Key: TAG_NAME, Value: name },
  ];
}

/** DescribeX filters for what belongs to one cluster of one mesh. */
export function clusterFilters(mesh: string, cluster: string): Filter[] {
  return [
    { Name: `tag:${TAG_MESH}`, Values: [mesh] },
    { Name: `tag:${TAG_CLUSTER}`, Values: [cluster] },
  ];
}

export function tagMap(tags: readonly Tag[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const t of tags ?? []) if (t.Key !== undefined) m.set(t.Key, t.Value ?? '');
  return m;
}

/** Whether the tags say mesh and cluster: checked again on what a filter returned, because an
 *  EC2-compatible endpoint may ignore a filter it does not know rather than refuse it. */
export function belongsTo(tags: ReadonlyMap<string, string>, mesh: string, cluster: string): boolean {
  return tags.get(TAG_MESH) === mesh && tags.get(TAG_CLUSTER) === cluster;
}
