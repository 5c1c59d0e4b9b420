// How a replica lies on disk: one LevelDB key per entry plus one meta record. The shell writes
// what Replica reports (persist, remove, dropped) and rebuilds with Replica.load.

import type { Entry } from './wire.ts';

/** The one meta record beside the entries on disk (Replica.meta()). It may lag the entries, so
 *  the shell can write it lazily: lower levels only cost a refetch. It must never run ahead of
 *  them: write entries before meta or in the same batch. After dropOwner, write meta first,
 *  then delete the owner's range (Replica.load skips entries of dropped owners). */
export interface ReplicaMeta {
  v: 1;
  self: string;
  counter: number;
  owners: Record<string, { complete: number; floor: number }>;
  dropped: Record<string, number>;
}

export interface ReplicaSnapshot {
  v: 1;
  meta: ReplicaMeta;
  entries: Entry[];
}

/** LevelDB key of an entry. Owner ids are printable ASCII, so the NUL makes the owner part of
 *  the key an unambiguous prefix (dropOwner deletes the range starting at ownerStoragePrefix). */
export function entryStorageKey(owner: string, key: string): string {
  return `${owner}\u0000${key}`;
}

export function ownerStoragePrefix(owner: string): string {
  return `${owner}\u0000`;
}
