// CPace, a balanced PAKE (draft-irtf-cfrg-cpace), over the prime-order group ristretto255
// from @noble/curves. Both sides hold the same password-related string (PRS, here the mesh
// key); each sends one group element; both derive the same secret only if their PRS match.
// Whoever sees or takes part in a run learns nothing to test password guesses with offline:
// an active attacker gets one guess per run, against a live peer that logs every failure.
//
// Pure: no sockets, no clock. Randomness is a parameter so tests can fix it.

import { createHash } from 'node:crypto';
import { ristretto255, ristretto255_hasher } from '@noble/curves/ed25519.js';

type Point = InstanceType<typeof ristretto255.Point>;
const Point = ristretto255.Point;

/** Domain separation: a generator made for weft's admission is useful nowhere else. */
const GENERATOR_DST = 'weft/admission/v2/cpace/generator';
/** An encoded ristretto255 element. */
export const SHARE_LENGTH = 32;
/** Wide reduction of 64 random bytes: the scalar's bias is below 2^-250. */
const SCALAR_SOURCE_BYTES = 64;

/** The session's generator: the PRS and the session id (both nonces), hashed onto the group.
 *  A generator for a wrong PRS has an unknown discrete log to the right one, so nothing
 *  computed under it helps with another guess. */
export function generator(prs: Uint8Array, sid: Uint8Array): Point {
  const msg = Buffer.concat([lengthPrefixed(prs), lengthPrefixed(sid)]);
  return ristretto255_hasher.hashToCurve(msg, { DST: GENERATOR_DST }) as Point;
}

/** The ristretto255 base point: plain ephemeral Diffie-Hellman, for credentials that
 *  authenticate by signature instead (API tokens). */
export function basePoint(): Point {
  return Point.BASE;
}

export interface Ephemeral {
  scalar: bigint;
  share: Uint8Array;
}

/** A fresh secret scalar and its public share under generator `g`. */
export function ephemeral(g: Point, random: (n: number) => Uint8Array): Ephemeral {
  const bytes = random(SCALAR_SOURCE_BYTES);
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  const scalar = (n % (Point.Fn.ORDER - 1n)) + 1n;
  return { scalar, share: g.multiply(scalar).toBytes() };
}

/** A share that could have come from a real run, for answering a dialer we will refuse:
 *  it must not tell apart "no such token" from "wrong secret". */
export function decoyShare(random: (n: number) => Uint8Array): Uint8Array {
  return ephemeral(Point.BASE, random).share;
}

/** The shared element from our scalar and their share; undefined for a share that does not
 *  decode to a group element or is the identity (which would fix the result for anyone). */
export function sharedSecret(mine: Ephemeral, theirs: Uint8Array): Uint8Array | undefined {
  let p: Point;
  try {
    p = Point.fromBytes(theirs);
  } catch {
    return undefined;
  }
  if (p.is0()) return undefined;
  const k = p.multiply(mine.scalar);
  return k.is0() ? undefined : k.toBytes();
}

function lengthPrefixed(b: Uint8Array): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

/** SHA-512 of length-prefixed parts: an unambiguous transcript hash. */
export function transcriptHash(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha512');
  for (const p of parts) h.update(lengthPrefixed(p));
  return h.digest();
}
