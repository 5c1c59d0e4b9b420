// IPAM wire messages and the persisted snapshot, with validators for untrusted decoded JSON.
// Every message names the sender's range, so peers launched with different --ipalloc-range
// refuse each other loudly instead of mixing offsets of different ranges.

import type { AcceptorState, Accepted, Ballot, BootstrapMessage, GenesisValue } from './bootstrap.ts';
import { MAX_IDENTITY_LENGTH, MAX_RESERVATIONS, type ReservationWire } from './reservations.ts';
import type { RemovalWire } from './removal.ts';
import { MAX_TOKENS, type RingWire } from './ring.ts';

/** libp2p protocol the shell opens IPAM streams on (or the message kind, if it multiplexes). */
export const IPAM_PROTOCOL = '/weft/ipam/1.0.0';

/** Frame limit for the shell's decoder. A full ring (MAX_TOKENS at ~25 bytes) plus its owner
 *  table and removal records stays near 1 MiB; reservations travel in their own chunks. */
export const MAX_IPAM_MESSAGE_BYTES = 2 * 1024 * 1024;
/** Backlog kept for one slow peer before messages are dropped: a whole ring to each peer at
 *  most, so a few MiB bounds a queue of them on a slow link. */
export const IPAM_MAX_QUEUE_BYTES = 8 * 1024 * 1024;
/** Reservations per 'res' message: 2048 at most ~330 bytes each stay under 700 KiB. */
export const MAX_RES_PER_MESSAGE = 2048;
/** Peers named in one message (ring owners, removal claims and acks, hints): membership keeps at
 *  most 512 records (mesh/membership/wire.ts); this leaves room for removed peers. */
export const MAX_PEERS = 4096;
/** Same bound as membership's peer ids. */
export const MAX_ID_LENGTH = 128;
/** Removal records: every peer ever removed stays listed so it can never come back unnoticed. */
export const MAX_REMOVALS = 4096;
/** Allocations one peer may hold: far more containers than a host runs. */
export const MAX_ALLOCATIONS = 1 << 20;
/** Container ids are 64 hex characters; other handles (a test's, a CNI-style id) fit in 256. */
export const MAX_HANDLE_LENGTH = 256;

/** Ring, removals and free-space hints: the whole of what must travel together. `hash` and
 *  `resHash` are the sender's checksums (without hints), so the receiver can tell whether the
 *  sender lacks something. A `reply` is never answered with another state. */
export interface StateMessage {
  t: 'state';
  v: 1;
  range: string;
  reply?: true;
  ring: RingWire | null;
  removed: RemovalWire[];
  /** [peer, free addresses it can give, sequence]: only each peer writes its own. */
  hints: Array<[string, number, number]>;
  hash: string;
  resHash: string;
}

export interface ResMessage {
  t: 'res';
  v: 1;
  range: string;
  items: ReservationWire[];
}

/** A request for space: any (donate half of your largest free run), or one address for an
 *  identity whose reservation it is. Answered with a state message either way. */
export interface WantMessage {
  t: 'want';
  v: 1;
  range: string;
  addr?: number;
  identity?: string;
}

export interface BootMessage {
  t: 'boot';
  v: 1;
  range: string;
  m: BootstrapMessage;
}

export type IpamMessage = StateMessage | ResMessage | WantMessage | BootMessage;

export interface IpamSnapshot {
  v: 1;
  self: string;
  range: string;
  expectedPeers: number;
  ring: RingWire | null;
  removed: RemovalWire[];
  reservations: ReservationWire[];
  /** [handle, offset, identity or null]. */
  allocations: Array<[string, number, string | null]>;
  acceptor: AcceptorState;
  hintSeq: number;
}

type Obj = Record<string, unknown>;

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isNat(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function isStr(x: unknown, max: number): x is string {
  return typeof x === 'string' && x.length > 0 && x.length <= max;
}

function isId(x: unknown): x is string {
  return isStr(x, MAX_ID_LENGTH);
}

function idList(x: unknown, max: number): x is string[] {
  return Array.isArray(x) && x.length <= max && x.every(isId);
}

function checkRing(x: unknown): string | undefined {
  if (x === null) return undefined;
  if (!isObj(x)) return 'ring is not an object';
  if (!isStr(x.genesis, 64)) return 'ring genesis is not a short string';
  if (!idList(x.peers, MAX_PEERS)) return 'ring peers are not a bounded list of ids';
  if (!Array.isArray(x.tokens) || x.tokens.length > 3 * MAX_TOKENS || !x.tokens.every(isNat)) return 'ring tokens are not a bounded list of integers';
  return undefined;
}

function checkRemovals(x: unknown): string | undefined {
  if (!Array.isArray(x) || x.length > MAX_REMOVALS) return 'removals are not a bounded list';
  for (const r of x) {
    if (!isObj(r) || !isId(r.dead) || !idList(r.claims, MAX_PEERS) || !idList(r.acks, MAX_PEERS)) return 'malformed removal record';
    if (r.heir !== null && !isId(r.heir)) return 'malformed removal heir';
  }
  return undefined;
}

function checkReservations(x: unknown, max: number): string | undefined {
  if (!Array.isArray(x) || x.length > max) return 'reservations are not a bounded list';
  for (const it of x) {
    if (!Array.isArray(it) || it.length !== 4) return 'malformed reservation';
    const [identity, addr, ver, by] = it as unknown[];
    if (!isStr(identity, MAX_IDENTITY_LENGTH) || !(addr === null || isNat(addr)) || !isNat(ver) || ver < 1 || !isId(by)) return 'malformed reservation';
  }
  return undefined;
}

function isBallot(x: unknown): x is Ballot {
  return Array.isArray(x) && x.length === 2 && isNat(x[0]) && isId(x[1]);
}

function isValue(x: unknown): x is GenesisValue {
  return isObj(x) && idList(x.members, MAX_PEERS) && (x.members as string[]).length > 0 && isBallot(x.by);
}

function isAccepted(x: unknown): x is Accepted | null {
  return x === null || (isObj(x) && isBallot(x.b) && isValue(x.value));
}

function checkBoot(m: unknown): string | undefined {
  if (!isObj(m) || !isBallot(m.b)) return 'malformed bootstrap message';
  switch (m.t) {
    case 'prepare':
    case 'accepted':
      return undefined;
    case 'promise':
      return isAccepted(m.acc) ? undefined : 'malformed promise';
    case 'accept':
      return isValue(m.value) ? undefined : 'malformed accept';
    case 'nack':
      return isBallot(m.promised) ? undefined : 'malformed nack';
    default:
      return 'unknown bootstrap message';
  }
}

/** Validates a decoded message; returns it typed, or one line saying what is wrong. */
export function parseIpamMessage(x: unknown): IpamMessage | string {
  if (!isObj(x)) return 'ipam message is not an object';
  if (x.v !== 1) return `ipam message version ${String(x.v)} is not supported (this peer speaks 1)`;
  if (!isStr(x.range, 32)) return 'ipam message has no range';
  switch (x.t) {
    case 'state': {
      if (x.reply !== undefined && x.reply !== true) return 'malformed state reply flag';
      const bad = checkRing(x.ring) ?? checkRemovals(x.removed);
      if (bad !== undefined) return bad;
      if (!Array.isArray(x.hints) || x.hints.length > MAX_PEERS) return 'hints are not a bounded list';
      for (const h of x.hints) if (!Array.isArray(h) || h.length !== 3 || !isId(h[0]) || !isNat(h[1]) || !isNat(h[2])) return 'malformed hint';
      if (!isStr(x.hash, 64) || !isStr(x.resHash, 64)) return 'malformed state checksums';
      return x as unknown as StateMessage;
    }
    case 'res': {
      const bad = checkReservations(x.items, MAX_RES_PER_MESSAGE);
      return bad ?? (x as unknown as ResMessage);
    }
    case 'want':
      if (x.addr !== undefined && !isNat(x.addr)) return 'malformed want address';
      if (x.identity !== undefined && !isStr(x.identity, MAX_IDENTITY_LENGTH)) return 'malformed want identity';
      if ((x.addr === undefined) !== (x.identity === undefined)) return 'want names an address without an identity or the reverse';
      return x as unknown as WantMessage;
    case 'boot': {
      const bad = checkBoot(x.m);
      return bad ?? (x as unknown as BootMessage);
    }
    default:
      return `unknown ipam message type ${JSON.stringify(String(x.t)).slice(0, 40)}`;
  }
}

/** Validates a snapshot read back from disk. */
export function parseIpamSnapshot(x: unknown): IpamSnapshot | string {
  if (!isObj(x) || x.v !== 1) return 'not an IPAM snapshot of version 1';
  if (!isId(x.self) || !isStr(x.range, 32) || !isNat(x.expectedPeers) || x.expectedPeers < 1) return 'snapshot header is malformed';
  const bad = checkRing(x.ring) ?? checkRemovals(x.removed) ?? checkReservations(x.reservations, MAX_RESERVATIONS);
  if (bad !== undefined) return bad;
  if (!Array.isArray(x.allocations) || x.allocations.length > MAX_ALLOCATIONS) return 'allocations are not a bounded list';
  for (const a of x.allocations) {
    if (!Array.isArray(a) || a.length !== 3 || !isStr(a[0], MAX_HANDLE_LENGTH) || !isNat(a[1]) || !(a[2] === null || isStr(a[2], MAX_IDENTITY_LENGTH))) return 'malformed allocation';
  }
  const acc = x.acceptor;
  if (!isObj(acc) || !(acc.promised === null || isBallot(acc.promised)) || !isAccepted(acc.accepted)) return 'malformed bootstrap state';
  if (!isNat(x.hintSeq)) return 'malformed hint sequence';
  return x as unknown as IpamSnapshot;
}
