// The provisioner's API handlers. Node clusters are written through Raft from any peer (the
// leader's provisioner then acts on them); their state is read from the node records, the same
// on every peer. A `local` cluster's nodes run on the peer that was asked to create it.

import { randomBytes } from 'node:crypto';
import { asUserError, UserError } from '../mesh/api/request.ts';
import type { MethodTable } from '../mesh/api/table.ts';
import { isUp, type MeshView } from '../mesh/mesh-view.ts';
import type { BatchOp, StateObject } from '../scheduler/manager/desired-state.ts';
import type { RaftNode } from '../scheduler/manager/raft-node.ts';
import { type DrainRecord, drainedPeers } from '../scheduler/reconciler/drain.ts';
import type { TaskSpec } from '../scheduler/task/task.ts';
import { readReports } from '../scheduler/reconciler/reconciler.ts';
import * as api from './api-contract.ts';
import { clusterSpecProblem, type NodeClusterSpec } from './cluster/cluster-spec.ts';
import { clusterState } from './cluster/cluster-state.ts';
import type { NodeRecord } from './cluster/node-record.ts';
import { appended, type ClusterLog, type TimelineEntry } from './cluster/timeline.ts';
import type { ProviderRecord } from './credentials/provider-record.ts';
import { awsOptionsProblem } from './providers/aws/aws-options.ts';
import type { RetirePeer } from './retire.ts';

/** What a `local` cluster may be given: its host peer (set to the peer asked, by default),
 *  zones to spread over, DNS upstreams for its nodes' peers, images to load into their dockerds,
 *  and its nodes' peers' role (worker unless asked). */
const LOCAL_OPTIONS = ['host', 'zones', 'dns-upstream', 'load-images', 'role'];

const WORD: Record<NodeRecord['state'], api.NodeStateWord> = {
  creating: 'Deploying', provisioning: 'Deploying', deployed: 'Deployed', unreachable: 'Unreachable', terminating: 'Terminating', failed: 'Failed',
};

export function registerProvisionerMethods(table: MethodTable, raft: RaftNode, view: MeshView, retire: RetirePeer): void {
  const user = asUserError;
  const list = async (kind: 'nodecluster' | 'node' | 'timeline' | 'drain' | 'task', prefix = '') => (await raft.query({ q: 'list', kind, prefix }, true)).objects;
  const write = async (ops: BatchOp[]) => {
    const o = await raft.write({ op: 'batch', ops, req: raft.requestId() });
    if (!o.ok) throw new UserError(`${o.error} (changed meanwhile: try again)`);
  };
  const cluster = async (name: string): Promise<StateObject> => {
    const o = (await raft.query({ q: 'get', kind: 'nodecluster', name }, true)).objects[0];
    if (!o) throw new UserError(`no node cluster "${name}" (see weft nodecluster ls)`);
    return o;
  };
  const rowOf = (c: NodeClusterSpec, nodes: readonly NodeRecord[], log?: ClusterLog): api.ClusterRow => {
    const failed = nodes.find((n) => n.state === 'failed' && n.error);
    const error = log?.error ?? (failed?.error ? `${failed.name}: ${failed.error}` : undefined);
    return {
      name: c.name, provider: c.provider, region: c.region, nodeType: c.nodeType, state: clusterState(c, nodes),
      target: c.target, deployed: nodes.filter((n) => n.state === 'deployed').length, min: c.min, max: c.max, tags: c.tags,
      outdated: nodes.filter((n) => (n.generation ?? 1) < (c.generation ?? 1) && !(n.state === 'terminating' && n.after === 'remove')).length,
      ...(error ? { error } : {}),
    };
  };
  const nodesOf = async (name: string) => (await list('node', `${name}/`)).map((o) => o.spec as NodeRecord).filter((n) => n.cluster === name);
  const nodeRow = (n: NodeRecord, provider: string): api.NodeRow => ({
    name: n.name, cluster: n.cluster, provider, state: WORD[n.state], zone: n.zone,
    ...(n.address ? { address: n.address } : {}), ...(n.peer ? { peer: n.peer } : {}), ...(n.providerId ? { providerId: n.providerId } : {}),
    attempt: n.attempt, ...(n.error && (n.state === 'failed' || n.state === 'terminating') ? { error: n.error } : {}),
  });
  const allNodes = async (): Promise<(api.NodeRow & { timeline: TimelineEntry[] })[]> => {
    const [clusters, nodes, drains, tasks] = await Promise.all([list('nodecluster'), list('node'), list('drain'), list('task')]);
    const drained = drainedPeers(drains, nodes);
    const load = new Map<string, number>();
    for (const t of tasks) load.set((t.spec as TaskSpec).node, (load.get((t.spec as TaskSpec).node) ?? 0) + 1);
    const reports = readReports(view);
    const withPeer = <R extends api.NodeRow>(r: R): R => {
      if (!r.peer) return r;
      const docker = reports.get(r.peer)?.docker;
      return { ...r, draining: drained.has(r.peer), containers: load.get(r.peer) ?? 0, ...(docker ? { docker } : {}) };
    };
    const provider = new Map(clusters.map((o) => [o.name, (o.spec as NodeClusterSpec).provider]));
    const rows = nodes.map((o) => o.spec as NodeRecord).map((n) => withPeer({ ...nodeRow(n, provider.get(n.cluster) ?? ''), timeline: n.timeline }));
    const named = new Set(rows.filter((r) => r.state === 'Deployed' || r.state === 'Unreachable').map((r) => r.name));
    // Every other peer of the mesh is a node brought by its owner (Tutum's "bring your own").
    for (const m of view.members()) {
      if (named.has(m.name) || rows.some((r) => r.peer === m.id)) continue;
      const up = isUp(m.state);
      if (m.state === 'left') continue;
      rows.push(withPeer({ name: m.name, cluster: null, provider: null, state: up ? 'Deployed' : 'Unreachable', zone: null, address: m.address, peer: m.id, timeline: [] }));
    }
    return rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  };

  table.register(api.nodeClusterCreate, (p) => user(async () => {
    const options: Record<string, string> = { ...(p.options ?? {}) };
    let region = p.region;
    if (p.provider !== 'local') {
      const record = (await raft.query({ q: 'get', kind: 'provider', name: p.provider }, true)).objects[0]?.spec as ProviderRecord | undefined;
      if (!record) throw new UserError(`no provider "${p.provider}" (use local, or add one with weft provider add)`);
      // One region per provider record: another region is another provider.
      if (region !== undefined && region !== record.region) throw new UserError(`provider "${p.provider}" is in ${record.region}, not ${region}: add a provider for ${region}`);
      region = record.region;
      const bad = awsOptionsProblem(options);
      if (bad) throw new UserError(bad);
    } else {
      const bad = Object.keys(options).find((k) => !LOCAL_OPTIONS.includes(k));
      if (bad) throw new UserError(`a local node cluster has no option "${bad}" (it takes ${LOCAL_OPTIONS.join(', ')})`);
      options.host ??= view.self.id;
      if (options.role !== undefined && !['worker', 'auto', 'manager'].includes(options.role)) throw new UserError(`option role must be worker, auto or manager, not "${options.role}"`);
    }
    const spec: NodeClusterSpec = {
      name: p.name, provider: p.provider, region: region ?? 'local', nodeType: p.nodeType ?? (p.provider === 'local' ? 'local' : ''),
      // Automatic scaling is asked for with --min or --max: by default a cluster keeps its count.
      target: p.nodes, min: p.min ?? p.nodes, max: p.max ?? p.nodes,
      ...(p.scaleDownAfterS !== undefined ? { scaleDownAfterS: p.scaleDownAfterS } : {}), tags: p.tags ?? [], options,
      uid: randomBytes(8).toString('hex'), createdAt: Date.now(),
    };
    if (!spec.region) throw new UserError('give the region of its nodes (--region)');
    if (!spec.nodeType) throw new UserError('give the type of its nodes (--node-type)');
    const problem = clusterSpecProblem(spec.name, spec);
    if (problem) throw new UserError(problem);
    const existing = (await raft.query({ q: 'get', kind: 'nodecluster', name: p.name }, true)).objects[0];
    if (existing) throw new UserError(`a node cluster "${p.name}" exists (scale it, or remove it first)`);
    await write([{ op: 'put', kind: 'nodecluster', name: spec.name, spec, expect: 0 }]);
    return rowOf(spec, []);
  }));

  table.register(api.nodeClusterList, () => user(async () => {
    const [clusters, nodes, logs] = await Promise.all([list('nodecluster'), list('node'), list('timeline')]);
    return clusters.map((o) => {
      const c = o.spec as NodeClusterSpec;
      return rowOf(c, nodes.map((n) => n.spec as NodeRecord).filter((n) => n.cluster === c.name), logs.find((l) => l.name === c.name)?.spec as ClusterLog | undefined);
    });
  }));

  table.register(api.nodeClusterInspect, ({ name }) => user(async () => {
    const [o, nodes, logs] = await Promise.all([cluster(name), nodesOf(name), list('timeline')]);
    const c = o.spec as NodeClusterSpec;
    const log = logs.find((l) => l.name === name)?.spec as ClusterLog | undefined;
    return { cluster: rowOf(c, nodes, log), options: c.options, nodes: nodes.map((n) => nodeRow(n, c.provider)), timeline: log?.entries ?? [] };
  }));

  table.register(api.nodeClusterScale, ({ name, nodes }) => user(async () => {
    const o = await cluster(name);
    const c = o.spec as NodeClusterSpec;
    if (c.terminating) throw new UserError(`node cluster "${name}" is being removed`);
    // min and max bound the scheduler's automatic scaling; a person's explicit scale moves them
    // (a cluster that does not scale by itself, min = max, goes on not doing so).
    const fixed = c.min === c.max;
    const spec: NodeClusterSpec = { ...c, target: nodes, min: fixed ? nodes : Math.min(c.min, nodes), max: fixed ? nodes : Math.max(c.max, nodes) };
    await write([{ op: 'put', kind: 'nodecluster', name, spec, expect: o.version }]);
    return rowOf(spec, await nodesOf(name));
  }));

  table.register(api.nodeClusterUpgrade, ({ name, nodeType }) => user(async () => {
    const o = await cluster(name);
    const c = o.spec as NodeClusterSpec;
    if (c.terminating) throw new UserError(`node cluster "${name}" is being removed`);
    const spec: NodeClusterSpec = { ...c, generation: (c.generation ?? 1) + 1, nodeType: nodeType ?? c.nodeType };
    const problem = clusterSpecProblem(name, spec);
    if (problem) throw new UserError(problem);
    await write([{ op: 'put', kind: 'nodecluster', name, spec, expect: o.version }]);
    return rowOf(spec, await nodesOf(name));
  }));

  table.register(api.nodeClusterRemove, ({ name }) => user(async () => {
    const o = await cluster(name);
    const c = o.spec as NodeClusterSpec;
    if (!c.terminating) await write([{ op: 'put', kind: 'nodecluster', name, spec: { ...c, terminating: true }, expect: o.version }]);
    return { removing: name };
  }));

  table.register(api.nodeList, ({ cluster: only }) => user(async () => {
    const rows = await allNodes();
    return rows.filter((r) => only === undefined || r.cluster === only).map(({ timeline: _t, ...r }) => r);
  }));

  const peerOf = async (name: string): Promise<{ row: api.NodeRow; peer: string }> => {
    const row = (await allNodes()).find((r) => r.name === name || r.peer === name);
    if (!row?.peer) throw new UserError(`no node "${name}" with a peer in the mesh (see weft node ls)`);
    return { row, peer: row.peer };
  };
  table.register(api.nodeDrain, ({ name }) => user(async () => {
    const { peer } = await peerOf(name);
    const o = (await raft.query({ q: 'get', kind: 'drain', name: peer }, true)).objects[0];
    if (!o) await write([{ op: 'put', kind: 'drain', name: peer, spec: { at: Date.now() } satisfies DrainRecord, expect: 0 }]);
    return (await peerOf(name)).row;
  }));
  table.register(api.nodeUndrain, ({ name }) => user(async () => {
    const { peer } = await peerOf(name);
    const o = (await raft.query({ q: 'get', kind: 'drain', name: peer }, true)).objects[0];
    if (o) await write([{ op: 'delete', kind: 'drain', name: peer, expect: o.version }]);
    return (await peerOf(name)).row;
  }));

  table.register(api.nodeRemove, ({ name }) => user(async () => {
    const record = (await list('node')).find((o) => (o.spec as NodeRecord).name === name);
    if (record) {
      const r = record.spec as NodeRecord;
      const co = await cluster(r.cluster);
      const c = co.spec as NodeClusterSpec;
      if (c.terminating) throw new UserError(`node cluster "${c.name}" is being removed with all its nodes`);
      if (r.state === 'terminating') return { removed: name, how: 'terminating' as const };
      // That node goes (drained first) and its cluster keeps one fewer, in one write.
      const target = Math.max(0, c.target - 1);
      const fixed = c.min === c.max;
      const spec: NodeClusterSpec = { ...c, target, min: fixed ? target : Math.min(c.min, target), max: fixed ? target : c.max };
      const now = Date.now();
      const after: NodeRecord = { ...r, state: 'terminating', since: now, after: 'remove', error: 'removed by weft node rm', timeline: appended(r.timeline, now, 'terminating: removed by weft node rm') };
      delete after.retryAt;
      await write([
        { op: 'put', kind: 'nodecluster', name: c.name, spec, expect: co.version },
        { op: 'put', kind: 'node', name: record.name, spec: after, expect: record.version },
      ]);
      return { removed: name, how: 'terminating' as const };
    }
    const m = view.members().find((x) => x.name === name || x.id === name);
    if (!m) throw new UserError(`no node "${name}" (see weft node ls)`);
    if (m.id === view.self.id) throw new UserError(`${name} is the peer you are asking: remove it from another peer`);
    if (isUp(m.state)) throw new UserError(`${name} is up: stop its peer first (weft reset there, or stop the weft service), then remove it`);
    await retire(m.id);
    return { removed: name, how: 'forgotten' as const };
  }));

  table.register(api.nodeInspect, ({ name }) => user(async () => {
    const row = (await allNodes()).find((r) => r.name === name);
    if (!row) throw new UserError(`no node "${name}" (see weft node ls)`);
    return row;
  }));
}
