// Provider credentials sealed at rest: a JSON value encrypted and authenticated with NaCl's
// secretbox (XSalsa20-Poly1305) under a key derived from the mesh key, so that the Raft log,
// snapshots, LevelDB and backups hold only ciphertext, and every manager (each holds the mesh
// key) can open them when it becomes leader. Sealing draws a random nonce, so it runs at the
// edge (the API handler, before proposing); the sealed box is what Raft replicates, and opening
// is deterministic.

import { hkdfSync } from 'node:crypto';
import { inspect } from 'node:util';
import nacl from 'tweetnacl';

/** HKDF's info: gives these credentials a key of their own, independent of the mesh key's other
 *  uses (admission proves possession of the mesh key itself), so that no output of one can serve
 *  as input to the other. Versioned: a future scheme takes a new label, and so a key unrelated to
 *  this one, instead of reusing it under other rules. */
export const CREDENTIALS_KEY_LABEL = 'weft provider credentials v1';
/** secretbox's key length. */
const KEY_LENGTH = nacl.secretbox.keyLength;
/** The mesh key's length (mesh/admission/mesh-key.ts). */
const MESH_KEY_LENGTH = 32;
/** The format of a sealed box; an unknown one is refused with its own error. */
export const SEALED_VERSION = 1;
/** The most plaintext a box holds: an access key pair is under 1 KiB and an STS session
 *  token at most 8 KiB (aws-credentials.ts); twice that leaves room for other providers' fields
 *  while a sealed record stays a small part of a Raft entry (≤ 1 MiB) and of every snapshot. */
export const MAX_SEALED_PLAINTEXT_BYTES = 16 * 1024;
/** The base64 length of the largest box (plaintext plus Poly1305's 16-byte tag). */
export const MAX_SEALED_BOX_CHARS = 4 * Math.ceil((MAX_SEALED_PLAINTEXT_BYTES + nacl.secretbox.overheadLength) / 3);
/** secretbox's nonce is 24 bytes: drawn at random, two collide under one key with negligible
 *  odds even after billions of seals, so no counter has to survive leader changes. */
const NONCE_LENGTH = nacl.secretbox.nonceLength;

/** Wrong key and altered box are the same failure to secretbox; both come down to this. */
export const CANNOT_OPEN = 'the provider credentials cannot be opened: sealed under a different mesh secret, or altered (give them again with `weft provider rotate`)';

export interface SealedBox {
  v: typeof SEALED_VERSION;
  /** base64, 24 bytes. */
  nonce: string;
  /** base64: secretbox of the plaintext's JSON (UTF-8). */
  box: string;
}

const REDACTED = 'CredentialsKey(<redacted>)';
const keyBytes = new WeakMap<CredentialsKey, Uint8Array>();

/** The key credentials are sealed under. Opaque: the type cannot be mixed up with the mesh key
 *  or any Uint8Array, and it prints as a placeholder (console.log, inspect, JSON, String). */
export class CredentialsKey {
  // Makes the type nominal: a Uint8Array (the mesh key itself) is not a CredentialsKey.
  declare private readonly brand: never;

  private constructor(bytes: Uint8Array) {
    keyBytes.set(this, bytes);
    Object.freeze(this);
  }

  /** Derives the credentials key from the 32-byte mesh key (HKDF-SHA256, CREDENTIALS_KEY_LABEL).
   *  Deterministic: every manager derives the same key. */
  static derive(meshKey: Uint8Array): CredentialsKey {
    if (!(meshKey instanceof Uint8Array) || meshKey.length !== MESH_KEY_LENGTH) throw new Error(`the mesh key must be ${MESH_KEY_LENGTH} bytes`);
    // No salt: the mesh key is already uniformly random (scrypt's output), which is what HKDF's
    // extract step would give; the label does the separating.
    return new CredentialsKey(new Uint8Array(hkdfSync('sha256', meshKey, new Uint8Array(0), CREDENTIALS_KEY_LABEL, KEY_LENGTH)));
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

/** Shorthand for CredentialsKey.derive. */
export function deriveCredentialsKey(meshKey: Uint8Array): CredentialsKey {
  return CredentialsKey.derive(meshKey);
}

/** Seals a JSON object under the key with a fresh random nonce. Throws (without the plaintext)
 *  if it is not a JSON object or is larger than MAX_SEALED_PLAINTEXT_BYTES. */
export function seal(key: CredentialsKey, plaintext: object): SealedBox {
  if (typeof plaintext !== 'object' || plaintext === null || Array.isArray(plaintext)) throw new Error('only an object can be sealed');
  let json: string;
  try {
    json = JSON.stringify(plaintext);
  } catch {
    throw new Error('the provider credentials cannot be sealed: they are not plain JSON data');
  }
  const message = new TextEncoder().encode(json);
  if (message.length > MAX_SEALED_PLAINTEXT_BYTES) throw new Error(`the provider credentials are too large to seal: at most ${MAX_SEALED_PLAINTEXT_BYTES} bytes`);
  const nonce = nacl.randomBytes(NONCE_LENGTH);
  const box = nacl.secretbox(message, nonce, bytesOf(key));
  message.fill(0);
  return { v: SEALED_VERSION, nonce: Buffer.from(nonce).toString('base64'), box: Buffer.from(box).toString('base64') };
}

/** Opens a sealed box and parses its JSON object. Throws CANNOT_OPEN when the key is not the one
 *  it was sealed under or the box is altered or malformed in any way, and a distinct error only
 *  for a box sealed in a newer format (which upgrading this peer fixes). */
export function open(key: CredentialsKey, sealed: unknown): Record<string, unknown> {
  const problem = sealedBoxProblem(sealed);
  if (problem !== undefined) throw new Error(problem.startsWith(NEWER) ? `the provider credentials cannot be opened: ${problem}` : CANNOT_OPEN);
  const s = sealed as SealedBox;
  const plain = nacl.secretbox.open(Buffer.from(s.box, 'base64'), Buffer.from(s.nonce, 'base64'), bytesOf(key));
  if (plain === null) throw new Error(CANNOT_OPEN);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plain));
  } catch {
    throw new Error(CANNOT_OPEN);
  } finally {
    plain.fill(0);
  }
  // Only seal() makes boxes that authenticate under this key, and it seals objects only.
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(CANNOT_OPEN);
  return value as Record<string, unknown>;
}

const NEWER = 'sealed by a newer weft';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const NONCE_CHARS = 4 * Math.ceil(NONCE_LENGTH / 3);
/** The base64 length of the smallest box: the tag of an empty plaintext. */
const MIN_BOX_CHARS = 4 * Math.ceil(nacl.secretbox.overheadLength / 3);

/** Why `x` is not a well-formed sealed box (undefined: it is one). Checks the shape and bounds
 *  only, with no key: desired state runs it on every put, and it never echoes a value. */
export function sealedBoxProblem(x: unknown): string | undefined {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'a sealed box must be an object';
  const s = x as Record<string, unknown>;
  const extra = Object.keys(s).find((k) => !['v', 'nonce', 'box'].includes(k));
  if (extra !== undefined) return `a sealed box has no field "${extra}"`;
  if (s.v !== SEALED_VERSION) {
    return typeof s.v === 'number' && Number.isSafeInteger(s.v) && s.v > SEALED_VERSION
      ? `${NEWER} (format ${s.v}): upgrade this peer`
      : `a sealed box's format must be ${SEALED_VERSION}`;
  }
  if (typeof s.nonce !== 'string' || s.nonce.length !== NONCE_CHARS || !canonicalBase64(s.nonce)) return `a sealed box's nonce must be ${NONCE_LENGTH} bytes in base64`;
  if (typeof s.box !== 'string' || s.box.length < MIN_BOX_CHARS || s.box.length > MAX_SEALED_BOX_CHARS || !canonicalBase64(s.box)) {
    return `a sealed box's box must be base64 of ${MIN_BOX_CHARS}-${MAX_SEALED_BOX_CHARS} characters`;
  }
  return undefined;
}

/** Base64 as seal() writes it, and only so: Node's decoder skips stray characters and ignores
 *  the spare bits of the last one, so without this two different strings would open alike. */
function canonicalBase64(s: string): boolean {
  return BASE64.test(s) && Buffer.from(s, 'base64').toString('base64') === s;
}

function bytesOf(key: CredentialsKey): Uint8Array {
  const bytes = keyBytes.get(key);
  // Only CredentialsKey.derive makes keys, so this is a programming error, not a user's.
  if (bytes === undefined) throw new Error('not a credentials key made by CredentialsKey.derive');
  return bytes;
}
