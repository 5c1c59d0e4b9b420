// The wire format of gossip replication: entries, digests, the messages peers exchange, their
// bounds, and the validator for untrusted decoded JSON. Pure: no I/O, no clock, no randomness.

/** Bumped on any incompatible change; a peer rejects messages of a version it does not speak. */
export const REPLICA_PROTOCOL_VERSION = 1;

/** libp2p protocol id the shell opens replication streams on, versioned so a future
 *  incompatible change can run beside this one. */
export const SYNC_PROTOCOL = '/weft/sync/1.0.0';
/** Largest frame the replication channel takes. Messages are chunked at MAX_MESSAGE_BYTES
 *  (1 MiB) by the replica core; this leaves headroom for JSON escaping. (The core's own bound
 *  for a decoder, MAX_FRAME_BYTES below, is tighter.) */
export const SYNC_MAX_FRAME = 8 * 1024 * 1024;
/** Backlog kept for one slow peer before messages are dropped. A full state transfer to a new
 *  peer is queued at once; 96 MiB covers the 64 MiB test state with room to spare, and
 *  anti-entropy resends anything dropped beyond it. */
export const SYNC_MAX_QUEUE = 96 * 1024 * 1024;

/** Keys are a namespace prefix, a DNS name (≤ 253 bytes) and a container or peer id (64 hex);
 *  1 KiB holds that with room, and keeps the two keys a snapshot chunk header carries small.
 *  Measured as JSON-encoded UTF-8 bytes, i.e. what the key costs on the wire. */
export const MAX_KEY_BYTES = 1024;

/** An endpoint record or an IPAM range list is a few KiB; 256 KiB leaves ample headroom while a
 *  single entry still fits four times into one message. Measured as JSON-encoded UTF-8 bytes. */
export const MAX_VALUE_BYTES = 256 * 1024;

/** Owners are libp2p peer ids (52 base58 characters for Ed25519 keys); 128 allows other forms. */
export const MAX_OWNER_LENGTH = 128;

/** An Ed25519 signature is 88 base64 characters; 512 admits other encodings but bounds garbage. */
export const MAX_SIG_LENGTH = 512;

/** Bounds the work one message can force on a receiver: each entry costs a signature check
 *  (~50 µs for Ed25519), so 4096 entries stay near 200 ms of CPU in the worst case. */
export const MAX_ENTRIES_PER_MESSAGE = 4096;

/** One digest row per peer the mesh has known (~200 bytes at most each), so 4096 rows keep a
 *  digest under 1 MiB; larger meshes split the digest into owner-id ranges. */
export const MAX_OWNERS_PER_DIGEST = 4096;

/** Default bound on one encoded message. A 64 MiB catch-up becomes ~70 messages, a stream write
 *  never holds more than 1 MiB in memory, and the largest entry fits with 4x headroom. The shell
 *  should refuse frames above MAX_FRAME_BYTES before decoding them. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Frame limit for the shell's decoder: a lone entry of the maximum size plus its chunk header
 *  may exceed a small configured maxMessageBytes, never this. */
export const MAX_FRAME_BYTES = 2 * MAX_MESSAGE_BYTES;

/** The highest version or level any peer accepts, and the most writes an owner can make. An
 *  owner numbers its writes 1, 2, 3, ..., so at 10,000 writes a second (far above what any
 *  consumer writes) it takes 890 years to get here: a higher number can only be a forgery or a
 *  bug, and is refused with a reason. It sits far below 2^53, where a JSON number stops being
 *  exact, so no arithmetic on levels can lose precision. */
export const MAX_VERSION = 2 ** 48;

export interface Entry {
  owner: string;
  key: string;
  version: number;
  value: string | null;
  sig: string;
}

/** An effective change to the visible state; value null means the key was deleted. */
export interface Change {
  owner: string;
  key: string;
  value: string | null;
  previous: string | null;
}

/** What we know of one owner. `complete`: we hold every change of that owner up to this version
 *  (or a newer one for the same key). `floor`: the highest version whose tombstone we dropped.
 *  `hash`: a checksum of the owner's live entries, present only when we hold nothing above
 *  `complete`, so two peers at the same level can detect that they still differ. */
export interface OwnerDigest {
  complete: number;
  floor: number;
  hash?: number;
}
export type Digest = Record<string, OwnerDigest>;

/** Half-open range of strings [from, to); to null means unbounded. */
export interface KeyRange {
  from: string;
  to: string | null;
}

/** What the sender knows. `owners` set: the digest covers only owners in that id range (large
 *  meshes split it); rows missing inside the range mean "nothing". `reply`: sent in answer to a
 *  digest, so it must not trigger another digest back (one exchange, no ping-pong). */
export interface DigestMessage {
  t: 'digest';
  v: 1;
  digest: Digest;
  owners?: KeyRange;
  reply?: boolean;
}

/** Entries without any range claim: fresh local writes, and entries a receiver may lack above
 *  the sender's complete level. Each entry still proves its own version was seen. */
export interface PushMessage {
  t: 'push';
  v: 1;
  entries: Entry[];
}

/** One chunk of a delta: every entry of `owner` the sender holds with version > from and key in
 *  `keys`, from a sender complete to `to`. A chunk says: for these keys, the receiver now has
 *  every change in (from, to] or a newer one. Chunks are cut by key, not by version, because a
 *  change in the range may be superseded by a newer entry of the same key (one above `to`, even),
 *  which must travel in the same chunk for the claim to hold. The receiver raises its complete
 *  level only once chunks with a compatible range cover every key. */
export interface DeltaMessage {
  t: 'delta';
  v: 1;
  owner: string;
  from: number;
  to: number;
  keys: KeyRange;
  entries: Entry[];
}

/** One chunk of a snapshot of `owner`: every entry the sender holds whose key is in `keys`, as of
 *  the sender's complete level `level`. With `replace`, the receiver drops its entries of that
 *  owner in that key range that the chunk lacks (version ≤ level): their deletion was garbage-
 *  collected by the sender. Without `replace` it is a union, used when two peers at the same
 *  level still differ. */
export interface SnapshotMessage {
  t: 'snapshot';
  v: 1;
  owner: string;
  level: number;
  floor: number;
  replace: boolean;
  keys: KeyRange;
  entries: Entry[];
}

export type ReplicaMessage = DigestMessage | PushMessage | DeltaMessage | SnapshotMessage;

const encoder = new TextEncoder();
const SIGNING_DOMAIN = 'weft/replica/v1\n';

/** The bytes an owner signs: a domain tag and a canonical JSON array, so no two distinct entries
 *  (or messages of another protocol) share signing bytes. */
export function entrySigningBytes(e: Omit<Entry, 'sig'>): Uint8Array {
  return encoder.encode(SIGNING_DOMAIN + JSON.stringify([e.owner, e.key, e.version, e.value]));
}

/** UTF-8 length of a well-formed string, without allocating. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Bytes one string costs inside a JSON message. */
export function jsonBytes(s: string): number {
  return utf8Length(JSON.stringify(s));
}

/** Bytes one entry costs inside a JSON message. */
export function entryWireBytes(e: Entry): number {
  return utf8Length(JSON.stringify({ owner: e.owner, key: e.key, version: e.version, value: e.value, sig: e.sig }));
}

/** Why a key cannot be written, or undefined if it can. */
export function checkKey(key: unknown): string | undefined {
  if (typeof key !== 'string' || key.length === 0) return 'key must be a non-empty string';
  if (!key.isWellFormed()) return 'key is not well-formed Unicode';
  if (key.length > MAX_KEY_BYTES || jsonBytes(key) > MAX_KEY_BYTES) return `key exceeds ${MAX_KEY_BYTES} bytes`;
  return undefined;
}

/** Why a value cannot be written, or undefined if it can. */
export function checkValue(value: unknown): string | undefined {
  if (value === null) return undefined;
  if (typeof value !== 'string') return 'value must be a string or null';
  if (value.length > MAX_VALUE_BYTES) return `value exceeds ${MAX_VALUE_BYTES} bytes`;
  if (!value.isWellFormed()) return 'value is not well-formed Unicode';
  if (jsonBytes(value) > MAX_VALUE_BYTES) return `value exceeds ${MAX_VALUE_BYTES} bytes`;
  return undefined;
}

const OWNER_PATTERN = /^[\x21-\x7e]+$/;

export function checkOwner(owner: unknown): string | undefined {
  if (typeof owner !== 'string' || owner.length === 0 || owner.length > MAX_OWNER_LENGTH || !OWNER_PATTERN.test(owner)) {
    return `owner must be 1-${MAX_OWNER_LENGTH} printable ASCII characters`;
  }
  return undefined;
}

function isVersion(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 && n <= MAX_VERSION;
}

function isLevel(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= MAX_VERSION;
}

function isRecord(u: unknown): u is Record<string, unknown> {
  return typeof u === 'object' && u !== null && !Array.isArray(u);
}

function field(o: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(o, name) ? o[name] : undefined;
}

/** A typed entry from untrusted data, or why not. Does not check the signature. */
export function parseEntry(u: unknown): Entry | string {
  if (!isRecord(u)) return 'entry is not an object';
  const owner = field(u, 'owner');
  const key = field(u, 'key');
  const version = field(u, 'version');
  const value = field(u, 'value');
  const sig = field(u, 'sig');
  const bad = checkOwner(owner) ?? checkKey(key) ?? checkValue(value);
  if (bad !== undefined) return bad;
  if (!isVersion(version)) return `entry version must be an integer from 1 to ${MAX_VERSION}`;
  if (typeof sig !== 'string' || sig.length === 0 || sig.length > MAX_SIG_LENGTH) return 'entry sig must be a short non-empty string';
  return { owner: owner as string, key: key as string, version, value: value as string | null, sig };
}

function parseEntries(u: unknown): Entry[] | string {
  if (!Array.isArray(u)) return 'entries must be an array';
  if (u.length > MAX_ENTRIES_PER_MESSAGE) return `more than ${MAX_ENTRIES_PER_MESSAGE} entries`;
  const out: Entry[] = [];
  for (const item of u) {
    const e = parseEntry(item);
    if (typeof e === 'string') return e;
    out.push(e);
  }
  return out;
}

function parseRange(u: unknown, what: string, check: (s: unknown) => string | undefined): KeyRange | string {
  if (!isRecord(u)) return `${what} range is not an object`;
  const from = field(u, 'from');
  const to = field(u, 'to');
  if (from !== '' && check(from) !== undefined) return `${what} range start is invalid`;
  if (to !== null && check(to) !== undefined) return `${what} range end is invalid`;
  if (to !== null && (from as string) >= (to as string)) return `${what} range is empty`;
  return { from: from as string, to: to as string | null };
}

export function inRange(s: string, r: KeyRange | undefined): boolean {
  return r === undefined || (s >= r.from && (r.to === null || s < r.to));
}

function parseDigest(u: unknown, owners: KeyRange | undefined): Digest | string {
  if (!isRecord(u)) return 'digest is not an object';
  const rows = Object.keys(u);
  if (rows.length > MAX_OWNERS_PER_DIGEST) return `digest lists more than ${MAX_OWNERS_PER_DIGEST} owners`;
  // Null prototype: an owner named "__proto__" must stay a plain row.
  const digest: Digest = Object.create(null) as Digest;
  for (const owner of rows) {
    if (checkOwner(owner) !== undefined) return 'digest owner id is invalid';
    if (!inRange(owner, owners)) return 'digest owner outside the digest range';
    const row = u[owner];
    if (!isRecord(row)) return 'digest row is not an object';
    const complete = field(row, 'complete');
    const floor = field(row, 'floor');
    const hash = field(row, 'hash');
    if (!isLevel(complete) || !isLevel(floor) || floor > complete) return `digest row needs integer levels up to ${MAX_VERSION} with floor ≤ complete`;
    if (hash !== undefined && !(typeof hash === 'number' && Number.isInteger(hash) && hash >= 0 && hash <= 0xffffffff)) {
      return 'digest hash must be a 32-bit unsigned integer';
    }
    digest[owner] = hash === undefined ? { complete, floor } : { complete, floor, hash };
  }
  return digest;
}

function parseUnchecked(u: unknown): ReplicaMessage | string {
  if (!isRecord(u)) return 'message is not an object';
  const t = field(u, 't');
  const v = field(u, 'v');
  // A missing version is read as 1, the only one there has been.
  if (v !== undefined && v !== REPLICA_PROTOCOL_VERSION) return `unsupported replica protocol version ${String(v)}`;
  switch (t) {
    case 'digest': {
      const rawOwners = field(u, 'owners');
      const owners = rawOwners === undefined ? undefined : parseRange(rawOwners, 'owner', checkOwner);
      if (typeof owners === 'string') return owners;
      const digest = parseDigest(field(u, 'digest'), owners);
      if (typeof digest === 'string') return digest;
      const reply = field(u, 'reply');
      if (reply !== undefined && typeof reply !== 'boolean') return 'digest reply flag must be boolean';
      const msg: DigestMessage = { t, v: 1, digest };
      if (owners !== undefined) msg.owners = owners;
      if (reply === true) msg.reply = true;
      return msg;
    }
    case 'push': {
      const entries = parseEntries(field(u, 'entries'));
      if (typeof entries === 'string') return entries;
      return { t, v: 1, entries };
    }
    case 'delta': {
      const owner = field(u, 'owner');
      const from = field(u, 'from');
      const to = field(u, 'to');
      if (checkOwner(owner) !== undefined) return 'delta owner id is invalid';
      if (!isLevel(from) || !isLevel(to) || from >= to) return `delta range must be integers up to ${MAX_VERSION} with from < to`;
      const keys = parseRange(field(u, 'keys'), 'key', checkKey);
      if (typeof keys === 'string') return keys;
      const entries = parseEntries(field(u, 'entries'));
      if (typeof entries === 'string') return entries;
      const wrong = entriesOutside('delta', owner as string, keys, entries, from);
      if (wrong) return wrong;
      return { t, v: 1, owner: owner as string, from, to, keys, entries };
    }
    case 'snapshot': {
      const owner = field(u, 'owner');
      const level = field(u, 'level');
      const floor = field(u, 'floor');
      const replace = field(u, 'replace');
      if (checkOwner(owner) !== undefined) return 'snapshot owner id is invalid';
      if (!isLevel(level) || !isLevel(floor) || floor > level) return `snapshot needs integer levels up to ${MAX_VERSION} with floor ≤ level`;
      if (typeof replace !== 'boolean') return 'snapshot replace flag must be boolean';
      const keys = parseRange(field(u, 'keys'), 'key', checkKey);
      if (typeof keys === 'string') return keys;
      const entries = parseEntries(field(u, 'entries'));
      if (typeof entries === 'string') return entries;
      const wrong = entriesOutside('snapshot', owner as string, keys, entries);
      if (wrong) return wrong;
      return { t, v: 1, owner: owner as string, level, floor, replace, keys, entries };
    }
    default:
      return `unknown replica message type ${typeof t === 'string' ? JSON.stringify(t.slice(0, 32)) : typeof t}`;
  }
}

/** Validates untrusted decoded JSON; returns the typed message or a reason. Never throws. */
export function parseReplicaMessage(u: unknown): ReplicaMessage | string {
  try {
    return parseUnchecked(u);
  } catch (err) {
    // Only exotic inputs (proxies, getters) get here; plain decoded JSON cannot throw above.
    return `malformed replica message: ${err instanceof Error ? err.message : 'unreadable'}`;
  }
}

/** Why a delta's or snapshot's entries do not belong in it (another owner's, outside its key
 *  range, a key twice, or for a delta at or below the versions it says it starts after), or
 *  undefined when they all do. */
function entriesOutside(kind: 'delta' | 'snapshot', owner: string, keys: KeyRange, entries: readonly Entry[], after?: number): string | undefined {
  const seen = new Set<string>();
  for (const e of entries) {
    if (e.owner !== owner) return `${kind} holds an entry of another owner`;
    if (after !== undefined && e.version <= after) return `${kind} holds an entry at or below its range`;
    if (!inRange(e.key, keys)) return `${kind} holds an entry outside its key range`;
    if (seen.has(e.key)) return `${kind} holds a key twice`;
    seen.add(e.key);
  }
  return undefined;
}
