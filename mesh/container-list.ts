// The mesh's containers as `weft ps` lists them: the registry's valid records (each signed by the
// peer it names, of peers not removed by rmpeer), a dead or departed host's shown as `unknown`.
// Read from the replicated registry alone, so any peer answers, one without a data plane too.

import { CONTAINER_PREFIX } from './keyspace.ts';
import { type ContainerEndpoint, parseContainerEndpoint } from './endpoint.ts';
import type { MeshView } from './mesh-view.ts';

export function containerRecords(view: MeshView, removedPeers: readonly string[]): ContainerEndpoint[] {
  const removed = new Set(removedPeers);
  const out: ContainerEndpoint[] = [];
  for (const e of view.entries(CONTAINER_PREFIX)) {
    if (e.value === null) continue;
    const c = parseContainerEndpoint(e.value);
    if (typeof c !== 'string' && c.peer === e.owner && !removed.has(c.peer)) out.push(c);
  }
  return out;
}

/** Every container (or only this peer's, `local`), by host and name. */
export function listContainers(view: MeshView, removedPeers: readonly string[], local: boolean): ContainerEndpoint[] {
  const out: ContainerEndpoint[] = [];
  for (const c of containerRecords(view, removedPeers)) {
    if (local && c.peer !== view.self.id) continue;
    const live = view.liveness(c.peer);
    out.push(live === 'dead' || live === 'left' ? { ...c, state: 'unknown' as ContainerEndpoint['state'] } : c);
  }
  return out.sort((a, b) => a.host.localeCompare(b.host) || a.name.localeCompare(b.name));
}
