// Why a service cannot be fully placed: a structured reason (for tests and `--json`) and the
// sentence shown in the service's status and events. Pure.

import type { ServiceSpec } from '../service/spec.ts';
import type { Ledger } from './ledger.ts';
import { type PlacementNode, byNodeName, carriesTags } from './node.ts';

export type PendingReason =
  /** No node at all, alive or not, carries every tag (or, with no tags, there is no node). */
  | { kind: 'no-tagged-node'; tags: string[] }
  /** Nodes carry the tags but every one is down or draining. */
  | { kind: 'no-usable-node'; tags: string[]; down: number; draining: number }
  /** Usable nodes exist but none has the memory one more container reserves. */
  | { kind: 'memory'; needsBytes: number; mostFreeBytes: number; node: string };

export interface Pending {
  reason: PendingReason;
  /** The sentence for status and events, e.g. `no node carries tags gpu,ssd`. */
  message: string;
  /** Containers it wants and could not place (EVERY_NODE with no usable node: 0, yet pending,
   *  so that the user learns why it runs nowhere). */
  unplaced: number;
}

export function pending(reason: PendingReason, unplaced: number): Pending {
  return { reason, message: describe(reason), unplaced };
}

export function describe(r: PendingReason): string {
  const tags = r.kind === 'memory' ? '' : r.tags.join(',');
  switch (r.kind) {
    case 'no-tagged-node':
      return tags ? `no node carries tags ${tags}` : 'no node has joined the cluster';
    case 'no-usable-node': {
      const why = [r.down ? `${r.down} down` : '', r.draining ? `${r.draining} draining` : ''].filter(Boolean).join(', ');
      return `${tags ? `every node carrying tags ${tags}` : 'every node'} is down or draining (${why})`;
    }
    case 'memory':
      return `not enough memory (needs ${formatBytes(r.needsBytes)}, most free ${formatBytes(r.mostFreeBytes)} on node ${r.node})`;
  }
}

/** Why one more container of `spec` fits on none of `nodes` (all nodes, any state). */
export function diagnose(spec: ServiceSpec, nodes: readonly PlacementNode[], ledger: Ledger): PendingReason {
  const tags = [...spec.tags];
  const tagged = nodes.filter((n) => carriesTags(n, spec.tags));
  if (tagged.length === 0) return { kind: 'no-tagged-node', tags };
  const usable = tagged.filter((n) => n.alive && n.draining !== true);
  if (usable.length === 0) {
    const down = tagged.filter((n) => !n.alive).length;
    return { kind: 'no-usable-node', tags, down, draining: tagged.length - down };
  }
  return memoryReason(spec, usable, ledger);
}

/** The memory reason over the nodes that could not take the container: the most free of them. */
export function memoryReason(spec: ServiceSpec, nodes: readonly PlacementNode[], ledger: Ledger): PendingReason {
  const best = [...nodes].sort((a, b) => ledger.memoryFree(b.id) - ledger.memoryFree(a.id) || byNodeName(a, b))[0];
  return { kind: 'memory', needsBytes: spec.memoryBytes, mostFreeBytes: best ? ledger.memoryFree(best.id) : 0, node: best?.name ?? '' };
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** `512 MiB`, `1.5 GiB`: binary units, as Docker's `--memory` is read. */
export function formatBytes(bytes: number): string {
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const shown = Number.isInteger(v) ? String(v) : v.toFixed(1).replace(/\.0$/, '');
  return `${shown} ${UNITS[u]}`;
}
