// What the mesh offers the subsystems built on it (dns/, the data plane, Docker attachment,
// later the scheduler): the replicated registry and the liveness of peers, as typed state and
// events, without reaching into the Peer class. dns/ depends on mesh/, never the reverse.

import type { Change, Entry } from './replication/wire.ts';
import type { Role } from './membership/wire.ts';

export type PeerLiveness = 'alive' | 'suspect' | 'dead' | 'left';

/** Up: alive or suspect. A suspect may still refute, so it is treated as up until proven dead. */
export function isUp(state: PeerLiveness): boolean {
  return state === 'alive' || state === 'suspect';
}

/** A member as the subsystems see it. */
export interface MeshMember {
  id: string;
  name: string;
  /** Where it is dialed (its first advertised address). */
  address: string;
  role: Role;
  state: PeerLiveness;
  /** Its deploy tags, as it claims them (`weft launch --tags`). */
  tags: readonly string[];
}

export interface MeshView {
  /** This peer's id and name. */
  readonly self: { id: string; name: string };
  /** Live replicated entries under a key prefix, every owner's. */
  entries(prefix: string): Entry[];
  /** Called after replicated entries change (ours or gossiped); returns the unsubscribe. */
  onEntries(fn: (changes: readonly Change[]) => void): () => void;
  /** What membership believes of a peer (this peer is 'alive'); undefined if unknown. */
  liveness(id: string): PeerLiveness | undefined;
  /** Called after any peer's liveness changes; returns the unsubscribe. */
  onLiveness(fn: (id: string, state: PeerLiveness | 'forgotten') => void): () => void;
  /** Every member this peer knows of, itself included. */
  members(): MeshMember[];
  /** Writes (null deletes) an entry owned by this peer; resolves once it is on disk. */
  put(key: string, value: string | null): Promise<unknown>;
}
