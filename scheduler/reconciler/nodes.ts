// The nodes placement sees, from observed state: every member the mesh knows (liveness, name,
// deploy tags) and its agent's report (memory; whether Docker answers). A node whose agent has
// not reported, or whose Docker does not answer, takes nothing new and its containers move
// (`draining`): placing there would only make tasks that never run. Pure.

import { isUp, type MeshMember } from '../../mesh/mesh-view.ts';
import type { PlacementNode } from '../placement/node.ts';
import type { AgentReport } from '../task/report.ts';

/** Besides its own --tags, every node carries what Compose's constraints can ask of it
 *  (scheduler/stack/constraints.ts): `hostname=<its name>`, `role=manager|worker` (a Raft voter
 *  or learner is a manager), `arch=<x86_64...>` once its agent has said. */
export function implicitTags(m: MeshMember, managers: ReadonlySet<string>, r: AgentReport | undefined): string[] {
  return [`hostname=${m.name}`, `role=${managers.has(m.id) ? 'manager' : 'worker'}`, ...(r?.arch ? [`arch=${r.arch}`] : [])];
}

export function placementNodes(members: readonly MeshMember[], reports: ReadonlyMap<string, AgentReport>, downSeconds: (id: string) => number, managers: ReadonlySet<string> = new Set(), drained: ReadonlySet<string> = new Set()): PlacementNode[] {
  // A member that left (a peer stopped on purpose: an upgrade, a restart) is down like a dead
  // one, not gone: its containers wait out the grace period, so a restart moves nothing.
  return members
    .map((m) => {
      const r = reports.get(m.id);
      const alive = isUp(m.state);
      return {
        id: m.id,
        name: m.name,
        tags: [...m.tags, ...implicitTags(m, managers, r)],
        // A down node's memory does not matter (nothing new goes there) and its last report may
        // say 0 (Docker went first): its containers are kept through the grace period whatever
        // it said, not removed as over its memory.
        memoryBytes: alive ? (r?.memoryBytes ?? 0) : Number.MAX_SAFE_INTEGER,
        alive,
        ...(alive ? {} : { downForSeconds: downSeconds(m.id) }),
        draining: r === undefined || r.docker !== 'ok' || drained.has(m.id),
      };
    });
}
