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

/** Notes the machine of every record's joined peer. A peer belongs to the attempt that first
 *  named it: a later one never takes it over (reconcile.ts, peerOf). */
export function notePeerMachines(known: Map<string, PeerMachine>, records: readonly NodeRecord[]): void {
  for (const r of records) if (r.peer && !known.has(r.peer)) known.set(r.peer, { cluster: r.cluster, clientToken: r.clientToken });
}

/** A peer in the mesh: up (alive or suspect), down (dead or left), or not held (forgotten). */
export type PeerState = 'up' | 'down' | undefined;

/** Peers to retire now: down, named by no record, and their machine gone by their provider's
 *  word (its listing has no live node of that attempt), or their cluster removed (which waits
 *  for its nodes' termination). A cluster whose provider does not answer waits. A record's
 *  former peers go once its provider lists no other machine under the slot's name than the
 *  record's own; the record keeps them across a change of leader, where `known` is one
 *  leader's memory. */
export function peersToRetire(o: {
  known: ReadonlyMap<string, PeerMachine>;
  records: readonly NodeRecord[];
  listings: ReadonlyMap<string, Listing>;
  clusters: ReadonlySet<string>;
  member: (peer: string) => PeerState;
}): string[] {
  const named = new Set(o.records.flatMap((r) => (r.peer ? [r.peer] : [])));
  const retirable = (peer: string) => !named.has(peer) && o.member(peer) === 'down';
  const out = new Set<string>();
  for (const [peer, m] of o.known) {
    if (!retirable(peer)) continue;
    if (o.clusters.has(m.cluster)) {
      const l = o.listings.get(m.cluster);
      if (!l || 'error' in l) continue;
      if (l.nodes.some((n) => n.clientToken === m.clientToken && n.state !== 'terminated')) continue;
    }
    out.add(peer);
  }
  for (const r of o.records) {
    const l = o.listings.get(r.cluster);
    if (!l || 'error' in l) continue;
    // Another machine under the slot's name (an orphan, one still shutting down) may be theirs.
    if (l.nodes.some((n) => n.node === r.name && n.clientToken !== r.clientToken && n.state !== 'terminated')) continue;
    for (const peer of r.formerPeers ?? []) if (retirable(peer)) out.add(peer);
  }
  return [...out].sort();
}
