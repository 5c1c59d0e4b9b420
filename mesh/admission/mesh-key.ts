// The mesh key: the 32-byte secret every member derives from the shared mesh password.
// Admission (admission.ts) proves possession of it; it never leaves the process.

import { scryptSync } from 'node:crypto';
import { inspect } from 'node:util';

/** Versioned so a future change of KDF or parameters yields a different key instead of a
 *  silent mismatch; peers on different versions then fail admission with a clear reason. */
export const MESH_KEY_SALT = 'weft/mesh-key/v1';

/** ChaCha20 and HMAC-SHA256 both take 32-byte keys. */
export const MESH_KEY_LENGTH = 32;

/** scrypt cost 2^15 with r = 8: ~60 ms and 32 MiB on one core of the 2-core test hosts.
 *  Derivation runs once per peer start, so the cost is invisible to users, while every
 *  guess of someone who recorded an admission handshake costs the same 32 MiB and time. */
export const SCRYPT_N = 2 ** 15;
/** scrypt's standard block size; N and r together fix the memory cost (128 * N * r bytes). */
export const SCRYPT_R = 8;
/** No parallelism: one derivation per process start, nothing to gain from more lanes. */
export const SCRYPT_P = 1;
/** Node's default maxmem is exactly 128 * 2^15 * 8 bytes; leave headroom so the call
 *  never fails on an off-by-one in the limit check. */
const SCRYPT_MAXMEM = 64 * 1024 * 1024;

const REDACTED = 'MeshKey(<redacted>)';

/** Uint8Array that will not print its bytes: console.log, util.inspect, String(),
 *  JSON.stringify and template strings all show a placeholder. The bytes are still there
 *  for crypto calls that take a Uint8Array. */
class RedactedKey extends Uint8Array {
  override toString(): string {
    return REDACTED;
  }

  override toLocaleString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }

  // Copies made with slice/subarray/map stay plain Uint8Arrays; they are the caller's business.
  static get [Symbol.species](): Uint8ArrayConstructor {
    return Uint8Array;
  }
}

/**
 * Derives the 32-byte mesh key from the mesh password. Deterministic: every peer given the
 * same password gets the same key. The password is Unicode-normalised (NFC) so the same
 * password typed on different systems matches; it is not trimmed, so callers reading a
 * password file should strip its trailing newline.
 */
export function deriveMeshKey(password: string): Uint8Array {
  if (typeof password !== 'string' || password.length === 0) {
    throw new Error('the mesh password is empty: give every peer the same non-empty password (for example with --password-file)');
  }
  const derived = scryptSync(password.normalize('NFC'), MESH_KEY_SALT, MESH_KEY_LENGTH, {
    N: SCRYPT_N,
    r: SCRYPT_R,
    p: SCRYPT_P,
    maxmem: SCRYPT_MAXMEM,
  });
  const key = new RedactedKey(MESH_KEY_LENGTH);
  key.set(derived);
  derived.fill(0);
  return key;
}
