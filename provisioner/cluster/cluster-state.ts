// A node cluster's state as users read it (Tutum's words), derived from its spec and its node
// records, never stored: a new leader and every peer answering `weft nodecluster ls` agree. Pure.

import type { NodeClusterSpec } from './cluster-spec.ts';
import type { NodeRecord } from './node-record.ts';

export const CLUSTER_STATES = ['Init', 'Deploying', 'Deployed', 'Partly deployed', 'Scaling', 'Terminating', 'Terminated', 'Empty cluster'] as const;
export type ClusterState = (typeof CLUSTER_STATES)[number];

export function clusterState(c: NodeClusterSpec, nodes: readonly NodeRecord[]): ClusterState {
  if (c.terminating) return nodes.length === 0 ? 'Terminated' : 'Terminating';
  const deployed = nodes.filter((n) => n.state === 'deployed').length;
  const settled = deployed === c.target && nodes.length === c.target;
  if (c.target === 0 && nodes.length === 0) return 'Empty cluster';
  if (settled) return 'Deployed';
  if (nodes.length === 0) return 'Init';
  // A slot that failed and waits for its next attempt: the cluster is short for a reason.
  if (nodes.some((n) => n.state === 'failed')) return deployed > 0 ? 'Partly deployed' : 'Deploying';
  // None up yet: coming up; some up and the count not settled: growing, shrinking or replacing.
  return deployed === 0 ? 'Deploying' : 'Scaling';
}
