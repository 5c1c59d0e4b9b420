// How much of every peer's memory one owner may fill with replicated entries. Pure: the replica
// asks before it stores, locally (a refused write, with a sentence for the user) and for what
// arrives from another owner (refused, counted, not stored).
//
// The quotas are constants, the same on every peer, so an honest owner never writes what an
// honest receiver refuses: a write is refused at its owner first. Receivers allow REMOTE_SLACK
// times as much, because entries arrive out of order: a receiver may briefly hold an owner's new
// keys before the deletions that made room for them (see remoteRefusal).

import { API_TOKEN_PREFIX, API_TOKEN_REVOKED_PREFIX, CONTAINER_PREFIX, DATAPLANE_PREFIX, DNS_EXTRA_PREFIX, KV_PREFIX } from '../keyspace.ts';
import { entryWireBytes, type Entry } from './wire.ts';

export interface Kind {
  /** What the user calls it, in the refusal sentence. */
  name: string;
  /** Key prefix; '' is the catch-all for keys of no known kind. */
  prefix: string;
  /** Live entries one owner may hold of this kind. */
  quota: number;
  /** What to do when it is full, for the refusal sentence. */
  remedy: string;
}

/** Kinds by key prefix (mesh/keyspace.ts). */
export const KINDS: readonly Kind[] = [
  // A thousand containers on one host is already dense; records of stopped containers stay until
  // they are removed, so room for as many again plus headroom.
  { name: 'container', prefix: CONTAINER_PREFIX, quota: 4096, remedy: 'remove stopped containers with docker rm' },
  // One record per peer (its own tunnel endpoint); a few spare for a future second record.
  { name: 'data plane', prefix: DATAPLANE_PREFIX, quota: 4, remedy: 'restart the peer' },
  // One per person or CI job that calls the API through this peer: a thousand tokens minted on
  // one peer is an audit problem long before it is a memory one.
  { name: 'API token', prefix: API_TOKEN_PREFIX, quota: 1000, remedy: 'create tokens through another peer' },
  // Revocations are kept for good (a revocation must win over the record forever): ten thousand
  // is decades of revoking one a day, and each is ~150 bytes.
  { name: 'token revocation', prefix: API_TOKEN_REVOKED_PREFIX, quota: 10_000, remedy: 'revoke tokens through another peer' },
  // Hand-added names (`weft dns add`), and this peer's removal votes for them: a zone of
  // thousands of hand-made names is far past what service discovery by container needs.
  { name: 'DNS', prefix: DNS_EXTRA_PREFIX, quota: 10_000, remedy: 'remove some with weft dns remove' },
  // A debugging and testing space, not a database.
  { name: 'kv', prefix: KV_PREFIX, quota: 10_000, remedy: 'remove some with weft kv rm' },
  // Kinds a newer weft may add: counted together, so an unknown prefix cannot escape the quota.
  { name: 'other', prefix: '', quota: 1024, remedy: 'remove some of them' },
];

/** Live entries of one owner, all kinds together: a busy host's containers plus a few thousand
 *  kv and DNS entries. Lower than the sum of the kinds so one peer cannot fill every kind. */
export const OWNER_MAX_ENTRIES = 16_384;

/** Bytes of live entries of one owner (as on the wire: values, keys, signatures). Counts alone
 *  would allow 10,000 kv values of 256 KiB, 2.5 GiB on every peer. The mesh is designed and
 *  tested (test/peer.test.ts) to move 64 MiB of one owner's values to a new member in bounded
 *  chunks; half as much again covers keys, signatures and JSON around them (~2% for 128 KiB
 *  values, far more for small ones) with room to spare. */
export const OWNER_MAX_BYTES = 96 * 1024 * 1024;

/** Bytes of tombstones of one owner a receiver keeps (a deletion is never refused at its owner;
 *  this bounds what a hostile owner can make us hold). A container's tombstone is ~300 bytes:
 *  64 MiB is ~220,000 of them, a container started and removed every 0.4 s for the whole day a
 *  tombstone is kept (TOMBSTONE_GC_MS). */
export const OWNER_MAX_TOMBSTONE_BYTES = 64 * 1024 * 1024;

/** Receivers allow this many times each local quota. An honest owner holds at most the quota at
 *  any version, so a receiver that knows its state at one level and receives its state at a
 *  later one (chunks in key order, new keys possibly before the deletions of old ones) holds at
 *  most the union of the two: twice the quota. */
export const REMOTE_SLACK = 2;

const CATCH_ALL = KINDS[KINDS.length - 1] as Kind;

export function kindOf(key: string): Kind {
  for (const k of KINDS) if (k.prefix !== '' && key.startsWith(k.prefix)) return k;
  return CATCH_ALL;
}

/** One owner's use of a receiver's memory, kept up to date by OwnerLog. */
export class Usage {
  /** Live entries by kind name. */
  readonly live = new Map<string, number>();
  liveCount = 0;
  liveBytes = 0;
  tombBytes = 0;

  add(e: Entry, size: number, sign: 1 | -1): void {
    if (e.value === null) {
      this.tombBytes += sign * size;
      return;
    }
    const name = kindOf(e.key).name;
    this.live.set(name, (this.live.get(name) ?? 0) + sign);
    this.liveCount += sign;
    this.liveBytes += sign * size;
  }
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

function mib(n: number): string {
  return `${Math.round(n / (1024 * 1024))} MiB`;
}

/** What storing `next` in place of `prev` (same owner and key) would exceed, or undefined. A
 *  deletion, and a write that does not grow what the owner holds, are never refused. */
function exceeded(u: Usage, next: Entry, prev: Entry | undefined, slack: number): { what: 'kind' | 'total' | 'bytes' | 'tombstones'; limit: number } | undefined {
  const prevSize = prev === undefined ? 0 : entryWireBytes(prev);
  const size = entryWireBytes(next);
  if (next.value === null) {
    // Deleting a key we hold never grows memory much (a tombstone is smaller than the value).
    if (prev !== undefined) return undefined;
    if (slack > 1 && u.tombBytes + size > OWNER_MAX_TOMBSTONE_BYTES) return { what: 'tombstones', limit: OWNER_MAX_TOMBSTONE_BYTES };
    return undefined;
  }
  const wasLive = prev !== undefined && prev.value !== null;
  const grows = size - (wasLive ? prevSize : 0);
  if (!wasLive) {
    const kind = kindOf(next.key);
    if ((u.live.get(kind.name) ?? 0) + 1 > kind.quota * slack) return { what: 'kind', limit: kind.quota * slack };
    if (u.liveCount + 1 > OWNER_MAX_ENTRIES * slack) return { what: 'total', limit: OWNER_MAX_ENTRIES * slack };
  }
  if (grows > 0 && u.liveBytes + grows > OWNER_MAX_BYTES * slack) return { what: 'bytes', limit: OWNER_MAX_BYTES * slack };
  return undefined;
}

/** Why this peer may not write `next` (a sentence for the user), or undefined if it may. */
export function localRefusal(u: Usage, next: Entry, prev: Entry | undefined): string | undefined {
  const over = exceeded(u, next, prev, 1);
  if (over === undefined) return undefined;
  const kind = kindOf(next.key);
  switch (over.what) {
    case 'kind':
      return `the replicated ${kind.name} space of this peer is full (${count(over.limit)} entries): ${kind.remedy}`;
    case 'total':
      return `this peer holds ${count(over.limit)} replicated entries, the most one peer may: ${kind.remedy}`;
    default:
      return `this peer's replicated entries would exceed ${mib(over.limit)}: write smaller values, or ${kind.remedy}`;
  }
}

/** Why an entry of another owner is not stored here (for the log), or undefined to store it. */
export function remoteRefusal(u: Usage, next: Entry, prev: Entry | undefined): string | undefined {
  const over = exceeded(u, next, prev, REMOTE_SLACK);
  if (over === undefined) return undefined;
  const kind = kindOf(next.key);
  switch (over.what) {
    case 'kind':
      return `owner ${next.owner} is past the quota of ${count(over.limit)} ${kind.name} entries held for another peer`;
    case 'total':
      return `owner ${next.owner} is past the quota of ${count(over.limit)} entries held for another peer`;
    case 'bytes':
      return `owner ${next.owner} is past the quota of ${mib(over.limit)} held for another peer`;
    case 'tombstones':
      return `owner ${next.owner} is past the quota of ${mib(over.limit)} of deletions held for another peer`;
  }
}

/** A local write refused for quota; the message is a sentence for the user. */
export class QuotaError extends RangeError {
  override name = 'QuotaError';
}
