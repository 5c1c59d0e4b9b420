// Drained nodes: `weft node drain` (kind `drain` in desired state, named by the peer's id), and
// a node cluster's nodes the provisioner is about to terminate (their records in `terminating`:
// termination drains first). A drained node takes nothing new and its containers move, as one
// whose Docker is down (nodes.ts): the scheduler recreates them elsewhere, under the same names
// and addresses, and the node's agent removes the old copies. Pure.

/** An object of desired state as far as this file reads it (desired-state.ts validates drains
 *  with drainProblem, so this file cannot import it back). */
interface Named {
  name: string;
  spec: unknown;
}

export interface DrainRecord {
  /** When it was asked (ms, the asking peer's clock). */
  at: number;
}

export function drainProblem(x: unknown): string | undefined {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'a drain must be an object';
  const d = x as Record<string, unknown>;
  const extra = Object.keys(d).find((k) => k !== 'at');
  if (extra !== undefined) return `a drain has no field "${extra}"`;
  if (!Number.isSafeInteger(d.at) || (d.at as number) < 0) return 'a drain needs the time it was asked';
  return undefined;
}

/** Peer ids to drain: the `drain` objects' names and the peers of node records being removed
 *  (records of kind `node` in `terminating` that no replacement follows, read by shape so the
 *  scheduler needs nothing of the provisioner's types). A node terminated because it died is
 *  not drained: its containers move as any dead node's do, once it is dead past their grace,
 *  when their addresses can be taken from its space (drained at once, while it was only
 *  suspect, a new copy found its address held by a peer still counted live: seen in the demo). */
export function drainedPeers(drains: readonly Named[], nodeRecords: readonly Named[]): Set<string> {
  const out = new Set(drains.map((o) => o.name));
  for (const o of nodeRecords) {
    const r = o.spec as { state?: unknown; peer?: unknown; after?: unknown };
    if (r.state === 'terminating' && r.after === 'remove' && typeof r.peer === 'string') out.add(r.peer);
  }
  return out;
}
