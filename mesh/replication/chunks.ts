// Cutting replication traffic into messages under a byte bound. Pure functions of the entries
// given; the replica decides which entries a peer needs.

import type { Rec } from './owner.ts';
import {
  type DeltaMessage,
  type Entry,
  type KeyRange,
  MAX_ENTRIES_PER_MESSAGE,
  MAX_KEY_BYTES,
  type PushMessage,
  type SnapshotMessage,
  utf8Length,
} from './wire.ts';

type ChunkHeader = Omit<DeltaMessage, 'keys' | 'entries'> | Omit<SnapshotMessage, 'keys' | 'entries'>;

function byKey(a: Rec, b: Rec): number {
  return a.e.key < b.e.key ? -1 : a.e.key > b.e.key ? 1 : 0;
}

/** Delta or snapshot chunks of one owner, cut by key range: each chunk holds every one of the
 *  given recs in its range, so each is a self-contained claim. A chunk exceeds maxBytes only if
 *  a single entry does. Sorts recs in place. */
export function keyChunks(recs: Rec[], header: ChunkHeader, maxBytes: number): Array<DeltaMessage | SnapshotMessage> {
  recs.sort(byKey);
  const out: Array<DeltaMessage | SnapshotMessage> = [];
  // A chunk ends where the next begins, at a key not yet known: reserve room for the longest.
  const head = (from: string) => utf8Length(JSON.stringify({ ...header, keys: { from, to: null }, entries: [] })) + MAX_KEY_BYTES;
  const emit = (keys: KeyRange, entries: Entry[]) => out.push({ ...header, keys, entries } as DeltaMessage | SnapshotMessage);
  let from = '';
  let bytes = head(from);
  let batch: Entry[] = [];
  for (const rec of recs) {
    if (batch.length >= MAX_ENTRIES_PER_MESSAGE || (batch.length > 0 && bytes + rec.size + 1 > maxBytes)) {
      emit({ from, to: rec.e.key }, batch);
      from = rec.e.key;
      batch = [];
      bytes = head(from);
    }
    batch.push(rec.e);
    bytes += rec.size + 1;
  }
  emit({ from, to: null }, batch);
  return out;
}

/** Push messages carrying recs, none over maxBytes unless a single entry is. */
export function pushChunks(recs: Rec[], maxBytes: number): PushMessage[] {
  const out: PushMessage[] = [];
  const head = utf8Length(JSON.stringify({ t: 'push', v: 1, entries: [] }));
  let batch: Entry[] = [];
  let bytes = head;
  for (const rec of recs) {
    if (batch.length >= MAX_ENTRIES_PER_MESSAGE || (batch.length > 0 && bytes + rec.size + 1 > maxBytes)) {
      out.push({ t: 'push', v: 1, entries: batch });
      batch = [];
      bytes = head;
    }
    batch.push(rec.e);
    bytes += rec.size + 1;
  }
  if (batch.length > 0) out.push({ t: 'push', v: 1, entries: batch });
  return out;
}
