// A MeshView over an in-memory registry, for DNS tests: MeshView is typed state and events,
// not a wire protocol, so a shared map stands in for the replicated space. Several views
// (peers) share one registry; every write is seen by all of them at once, as if gossip were
// instant, and each view keeps its own liveness beliefs. Entries are owner-keyed like the
// real replica: a peer writes only its own.

import type { MeshMember, MeshView, PeerLiveness } from '../../mesh/mesh-view.ts';
import type { Change, Entry } from '../../mesh/replication/wire.ts';
import type { ContainerEndpoint } from '../../mesh/endpoint.ts';
import { CONTAINER_PREFIX } from '../../mesh/keyspace.ts';

export class MemoryRegistry {
  private readonly map = new Map<string, Entry>();
  private readonly views = new Set<MemoryMeshView>();
  private version = 0;

  view(id: string, name = id): MemoryMeshView {
    const v = new MemoryMeshView(this, { id, name });
    this.views.add(v);
    return v;
  }

  entries(prefix: string): Entry[] {
    return [...this.map.values()].filter((e) => e.key.startsWith(prefix) && e.value !== null).map((e) => ({ ...e }));
  }

  /** A write by `owner` (value null deletes), delivered to every view. */
  write(owner: string, key: string, value: string | null): void {
    const id = `${owner}\n${key}`;
    const previous = this.map.get(id)?.value ?? null;
    if (previous === value) return;
    if (value === null) this.map.delete(id);
    else this.map.set(id, { owner, key, version: ++this.version, value, sig: 'test' });
    const change: Change = { owner, key, value, previous };
    for (const v of this.views) v.deliver([change]);
  }

  /** Publishes a container record as its host's peer would. */
  container(owner: string, ep: Partial<ContainerEndpoint> & { id: string; name: string; addr: string }): ContainerEndpoint {
    const full: ContainerEndpoint = {
      v: 1, mac: '02:42:0a:20:00:02', peer: owner, host: owner, state: 'running', health: 'none', labels: {}, since: 1, ...ep,
    };
    this.write(owner, CONTAINER_PREFIX + ep.id, JSON.stringify(full));
    return full;
  }

  removeContainer(owner: string, id: string): void {
    this.write(owner, CONTAINER_PREFIX + id, null);
  }
}

export class MemoryMeshView implements MeshView {
  readonly self: { id: string; name: string };
  private readonly registry: MemoryRegistry;
  private readonly live = new Map<string, PeerLiveness>();
  private readonly entryListeners = new Set<(changes: readonly Change[]) => void>();
  private readonly livenessListeners = new Set<(id: string, state: PeerLiveness | 'forgotten') => void>();
  puts = 0;

  constructor(registry: MemoryRegistry, self: { id: string; name: string }) {
    this.registry = registry;
    this.self = self;
  }

  entries(prefix: string): Entry[] {
    return this.registry.entries(prefix);
  }

  onEntries(fn: (changes: readonly Change[]) => void): () => void {
    this.entryListeners.add(fn);
    return () => this.entryListeners.delete(fn);
  }

  members(): MeshMember[] {
    return [];
  }

  liveness(id: string): PeerLiveness | undefined {
    return id === this.self.id ? 'alive' : this.live.get(id);
  }

  onLiveness(fn: (id: string, state: PeerLiveness | 'forgotten') => void): () => void {
    this.livenessListeners.add(fn);
    return () => this.livenessListeners.delete(fn);
  }

  async put(key: string, value: string | null): Promise<unknown> {
    this.puts++;
    await Promise.resolve();
    this.registry.write(this.self.id, key, value);
    return { key };
  }

  /** What this peer's membership now believes of another. */
  setLiveness(id: string, state: PeerLiveness): void {
    this.live.set(id, state);
    for (const l of [...this.livenessListeners]) l(id, state);
  }

  deliver(changes: readonly Change[]): void {
    for (const l of [...this.entryListeners]) l(changes);
  }

  get listeners(): number {
    return this.entryListeners.size + this.livenessListeners.size;
  }
}
