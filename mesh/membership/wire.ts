// The membership protocol's wire messages and their decoder. Messages come from other mesh
// members over an authenticated transport, but a buggy or hostile peer can still send
// anything: every field is checked for type and size before the core sees it.

/** libp2p protocol id the shell opens membership streams on; bump the major on an
 *  incompatible change to the message shapes below so old and new peers never mix. */
export const MEMBERSHIP_PROTOCOL = '/weft/membership/2.0.0';
/** Largest frame the control channel takes. Its messages are heartbeats and member lists; a
 *  list of MAX_RECORDS (~300 KiB with signatures) fits with room, and longer ones are sent in
 *  several messages. */
export const CONTROL_MAX_FRAME = 1024 * 1024;
/** Backlog kept for one slow peer before messages are dropped: a full table or two. What is
 *  dropped is periodic (heartbeats) or repaired (a later digest mismatch swaps tables). */
export const CONTROL_MAX_QUEUE = 1024 * 1024;

/** A libp2p peer id in text is ~52 characters; 128 leaves room without letting one record
 *  carry kilobytes. */
export const MAX_ID_LENGTH = 128;
/** A DNS name is at most 253 characters, and peer names become DNS labels. */
export const MAX_NAME_LENGTH = 253;
/** A host rarely has more than a few interfaces; 16 multiaddrs covers IPv4+IPv6 per NIC. */
export const MAX_ADDRS = 16;
/** A multiaddr with DNS name, port and peer id stays well below 256 characters. */
export const MAX_ADDR_LENGTH = 256;
/** Deploy tags are a handful per node in Tutum's model; 32 is generous. */
export const MAX_TAGS = 32;
export const MAX_TAG_LENGTH = 128;
/** Meshes are up to ~50 peers, plus dead ones kept for a day; 512 records bound a full
 *  member list at roughly 300 KiB (with signatures), a size the transport accepts in one message. */
export const MAX_RECORDS = 512;
/** Incarnations only grow by one per refutation or self-update; 2^31 can never be reached
 *  honestly, and the bound keeps arithmetic far inside safe integers. */
export const MAX_INCARNATION = 2 ** 31 - 1;
/** A helper reports how long ago it heard a target; anything past a day means "not recently"
 *  just as well, so larger values are refused rather than carried. */
export const MAX_HEARD_AGO_MS = 86_400_000;
/** An Ed25519 signature is 88 base64 characters; 512 admits another encoding or scheme but
 *  keeps garbage from making each of MAX_RECORDS records kilobytes longer. */
export const MAX_SIG_LENGTH = 512;

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';
/** Launched as: `auto` may be made a manager when the mesh needs one, `manager` is preferred,
 *  `worker` never is (scheduler/manager/autopilot.ts). */
export type Role = 'auto' | 'manager' | 'worker';

export interface MemberInfo {
  id: string;
  name: string;
  addrs: string[];
  tags: string[];
  role: Role;
}

/** One member's state as gossiped: who it is, its incarnation and what we believe of it.
 *  `sig` is the subject's own signature over its info at `inc` (its claim, see
 *  claim.ts): of being alive for 'alive', 'suspect' and 'dead', of its goodbye for
 *  'left'. Only the state is the sender's belief; everything else is the subject's word. */
export interface MemberRecord extends MemberInfo {
  inc: number;
  state: MemberState;
  sig: string;
}

/** A member deliberately forgotten (`weft forget`, or reaped after a day dead): records about
 *  it at or below `inc` are stale and must not bring it back. */
export interface Tombstone {
  id: string;
  inc: number;
}

/** What a receiver holds about the sender of a heartbeat, when that differs from what the
 *  heartbeat says: 'unknown' (no record), 'forgotten' (tombstone) or a record's state. */
export type HeldState = MemberState | 'forgotten' | 'unknown';

export type MembershipMessage =
  /** "I am alive at incarnation `inc`", plus a digest of the sender's member table so that
   *  two peers notice when they disagree and exchange full lists (anti-entropy). A ping, or
   *  with `ack` the answer to one; either may carry changes being spread (piggyback). */
  | { t: 'hb'; inc: number; sum: number; ack?: true; records?: MemberRecord[]; forgotten?: Tombstone[] }
  /** Reply to a heartbeat that disagrees with what we hold about its sender. */
  | { t: 'you'; inc: number; state: HeldState }
  /** Full member table (sent on connect and when digests disagree): the sender's standing
   *  beliefs, however old, not news. Also carries an accusation to its subject from a peer
   *  that did not believe it (so the subject refutes, without taking it as news). */
  | { t: 'members'; records: MemberRecord[]; forgotten: Tombstone[] }
  /** Changed records: broadcast by their originator, relayed by a few who adopt them. */
  | { t: 'update'; records: MemberRecord[]; forgotten: Tombstone[] }
  /** "I have not heard `target` for a while; have you?" */
  | { t: 'probe-req'; target: string }
  /** Answer from the helper's own direct evidence; null when the helper does not know it.
   *  `linked`: the helper still has a transport connection to the target. `abstain`: the
   *  helper never reached the target, so its silence says nothing (neither vouch nor failure). */
  | { t: 'probe-ack'; target: string; heardAgoMs: number | null; linked: boolean; abstain?: true }
  /** "My own probe of `target` at incarnation `inc` failed": an independent confirmation of a
   *  suspicion, which shortens its timeout (Lifeguard); changes no state by itself. */
  | { t: 'suspect'; target: string; inc: number };

const STATES: readonly string[] = ['alive', 'suspect', 'dead', 'left'];
const HELD_STATES: readonly string[] = [...STATES, 'forgotten', 'unknown'];
const ROLES: readonly string[] = ['auto', 'manager', 'worker'];

/** Thrown inside the decoder only, caught at its boundary, so each check is one line. */
class Reject {
  readonly reason: string;
  constructor(reason: string) {
    this.reason = reason;
  }
}

function fail(reason: string): never {
  throw new Reject(reason);
}

function isObject(u: unknown): u is Record<string, unknown> {
  return typeof u === 'object' && u !== null && !Array.isArray(u);
}

/** Reads an own data property only: a decoded JSON value has no others, and refusing
 *  inherited ones keeps `__proto__` tricks from reaching the core. */
function field(o: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
}

function str(o: Record<string, unknown>, key: string, max: number, what: string, allowEmpty = false): string {
  const v = field(o, key);
  if (typeof v !== 'string') fail(`${what}: ${key} is not a string`);
  if (v.length > max) fail(`${what}: ${key} longer than ${max} characters`);
  if (!allowEmpty && v.length === 0) fail(`${what}: ${key} is empty`);
  return v;
}

function int(o: Record<string, unknown>, key: string, max: number, what: string): number {
  const v = field(o, key);
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(`${what}: ${key} is not an integer`);
  if (v < 0 || v > max) fail(`${what}: ${key} out of range 0..${max}`);
  return v + 0; // -0 becomes 0: the core compares with ===, and JSON has no -0 to send
}

function strList(o: Record<string, unknown>, key: string, maxItems: number, maxLength: number, what: string): string[] {
  const v = field(o, key);
  if (!Array.isArray(v)) fail(`${what}: ${key} is not a list`);
  if (v.length > maxItems) fail(`${what}: ${key} has more than ${maxItems} entries`);
  const out: string[] = [];
  for (const s of v) {
    if (typeof s !== 'string') fail(`${what}: ${key} holds a non-string`);
    if (s.length === 0 || s.length > maxLength) fail(`${what}: ${key} entry empty or longer than ${maxLength}`);
    out.push(s);
  }
  return out;
}

function oneOf<T extends string>(o: Record<string, unknown>, key: string, allowed: readonly string[], what: string): T {
  const v = field(o, key);
  if (typeof v !== 'string' || !allowed.includes(v)) fail(`${what}: ${key} is not one of ${allowed.join(', ')}`);
  return v as T;
}

function list(o: Record<string, unknown>, key: string, what: string): unknown[] {
  const v = field(o, key);
  if (!Array.isArray(v)) fail(`${what}: ${key} is not a list`);
  if (v.length > MAX_RECORDS) fail(`${what}: ${key} has more than ${MAX_RECORDS} entries`);
  return v;
}

export function parseRecord(u: unknown): MemberRecord {
  if (!isObject(u)) fail('record is not an object');
  return {
    id: str(u, 'id', MAX_ID_LENGTH, 'record'),
    name: str(u, 'name', MAX_NAME_LENGTH, 'record', true),
    addrs: strList(u, 'addrs', MAX_ADDRS, MAX_ADDR_LENGTH, 'record'),
    tags: strList(u, 'tags', MAX_TAGS, MAX_TAG_LENGTH, 'record'),
    role: oneOf<Role>(u, 'role', ROLES, 'record'),
    inc: int(u, 'inc', MAX_INCARNATION, 'record'),
    state: oneOf<MemberState>(u, 'state', STATES, 'record'),
    sig: str(u, 'sig', MAX_SIG_LENGTH, 'record'),
  };
}

function parseTombstone(u: unknown): Tombstone {
  if (!isObject(u)) fail('tombstone is not an object');
  return { id: str(u, 'id', MAX_ID_LENGTH, 'tombstone'), inc: int(u, 'inc', MAX_INCARNATION, 'tombstone') };
}

function decode(u: unknown): MembershipMessage {
  if (!isObject(u)) fail('message is not an object');
  const t = field(u, 't');
  switch (t) {
    case 'hb':
      return {
        t,
        inc: int(u, 'inc', MAX_INCARNATION, t),
        sum: int(u, 'sum', 0xffffffff, t),
        ...(field(u, 'ack') === true ? { ack: true as const } : {}),
        // News piggybacked on the ping or ack, as in an 'update'.
        ...(field(u, 'records') !== undefined ? { records: list(u, 'records', t).map(parseRecord) } : {}),
        ...(field(u, 'forgotten') !== undefined ? { forgotten: list(u, 'forgotten', t).map(parseTombstone) } : {}),
      };
    case 'you':
      return { t, inc: int(u, 'inc', MAX_INCARNATION, t), state: oneOf<HeldState>(u, 'state', HELD_STATES, t) };
    case 'members':
    case 'update':
      return {
        t,
        records: list(u, 'records', t).map(parseRecord),
        forgotten: list(u, 'forgotten', t).map(parseTombstone),
      };
    case 'probe-req':
      return { t, target: str(u, 'target', MAX_ID_LENGTH, t) };
    case 'suspect':
      return { t, target: str(u, 'target', MAX_ID_LENGTH, t), inc: int(u, 'inc', MAX_INCARNATION, t) };
    case 'probe-ack': {
      const target = str(u, 'target', MAX_ID_LENGTH, t);
      const ago = field(u, 'heardAgoMs');
      const heardAgoMs = ago === null ? null : int(u, 'heardAgoMs', MAX_HEARD_AGO_MS, t);
      const linked = field(u, 'linked');
      if (typeof linked !== 'boolean') fail(`${t}: linked is not a boolean`);
      const abstain = field(u, 'abstain');
      if (abstain !== undefined && abstain !== true) fail(`${t}: abstain is not true`);
      return abstain ? { t, target, heardAgoMs, linked, abstain } : { t, target, heardAgoMs, linked };
    }
    default:
      return fail(typeof t === 'string' ? `unknown message type "${t.slice(0, 32)}"` : 'message has no type');
  }
}

/** Validates an untrusted decoded JSON value; returns the typed message or a string saying why
 *  it is rejected. Builds fresh objects holding only known fields, so nothing extra a sender
 *  attached survives into the core. Checks shapes and sizes only: signatures are the core's to
 *  verify, record by record. Never throws. */
export function parseMembershipMessage(u: unknown): MembershipMessage | string {
  try {
    return decode(u);
  } catch (err) {
    if (err instanceof Reject) return err.reason;
    // Only an exotic value (a proxy, a throwing getter) gets here; JSON.parse never makes one.
    return 'message could not be read';
  }
}
