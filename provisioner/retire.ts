// Which peers of terminated nodes to forget. A node the provisioner replaced or removed leaves
// its old peer behind in the mesh as a dead member, owning address space and listed with its
// containers as `unknown`. Once the provider says that peer's machine is gone, nothing can
// bring the peer back, so the leader does what `weft node rm` does for a gone peer by hand:
// takes over its address space (rmpeer) and forgets it. Never while the machine may still run:
// a peer that is only cut off keeps its space, as rmpeer itself insists for a live one.

import type { NodeRecord } from './cluster/node-record.ts';
import type { Listing } from './reconcile.ts';

/** Takes over a gone peer's address space and forgets it (weft rmpeer, then weft forget);
 *  throws the reason when it cannot (the peer is alive). */
export type RetirePeer = (peer: string) => Promise<void>;

/** The machine a peer ran on: its cluster and the client token of that attempt (unique to it,
 *  where a provider's id may be reused by the replacement, as a local node's name is). */
export interface PeerMachine {
  cluster: string;
  clientToken: string;
}

/** Notes the machine of every record's joined peer. */
export function notePeerMachines(known: Map<string, PeerMachine>, records: readonly NodeRecord[]): void {
  for (const r of records) if (r.peer) known.set(r.peer, { cluster: r.cluster, clientToken: r.clientToken });
}

/** Peers to retire now: named by no record, not up, and their machine gone by their
 *  provider's word (its listing has no live node of that attempt), or their cluster removed
 *  (which waits for its nodes' termination). A cluster whose provider does not answer waits. */
export function peersToRetire(o: {
  known: ReadonlyMap<string, PeerMachine>;
  records: readonly NodeRecord[];
  listings: ReadonlyMap<string, Listing>;
  clusters: ReadonlySet<string>;
  up: (peer: string) => boolean;
}): string[] {
  const named = new Set(o.records.flatMap((r) => (r.peer ? [r.peer] : [])));
  const out: string[] = [];
  for (const [peer, m] of o.known) {
    if (named.has(peer) || o.up(peer)) continue;
    if (o.clusters.has(m.cluster)) {
      const l = o.listings.get(m.cluster);
      if (!l || 'error' in l) continue;
      if (l.nodes.some((n) => n.clientToken === m.clientToken && n.state !== 'terminated')) continue;
    }
    out.push(peer);
  }
  return out.sort();
}
