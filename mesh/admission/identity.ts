import { IDENTITY_KEY } from '../keyspace.ts';
import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import type { Store } from '../store.ts';

/** DER prefixes that wrap a raw 32-byte Ed25519 seed / public key for node:crypto (RFC 8410). */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
/** Public keys are derived from peer ids on every signature check; a small cache keeps that
 *  off the gossip hot path. Bounded because ids arrive from the network. */
const VERIFY_KEY_CACHE_MAX = 4096;

/**
 * The peer's long-term Ed25519 identity. The libp2p peer id is derived from it, and it
 * signs the replicated entries this peer owns, so that no other member can forge them.
 */
export interface Identity {
  id: string;
  libp2pKey: PrivateKey;
  sign(bytes: Uint8Array): string;
}

export async function identityFromSeed(seed: Uint8Array): Promise<Identity> {
  const libp2pKey = await generateKeyPairFromSeed('Ed25519', seed);
  const nodeKey = ed25519PrivateKey(seed);
  return {
    id: peerIdFromPrivateKey(libp2pKey).toString(),
    libp2pKey,
    sign: (bytes) => sign(null, bytes, nodeKey).toString('base64'),
  };
}

/** Loads the identity from the store, making one on first start. */
export async function loadIdentity(store: Store): Promise<Identity> {
  let seedB64 = await store.get<string>(IDENTITY_KEY);
  if (seedB64 === undefined) {
    seedB64 = randomBytes(32).toString('base64');
    await store.put(IDENTITY_KEY, seedB64);
  }
  return identityFromSeed(Buffer.from(seedB64, 'base64'));
}

/** A node:crypto Ed25519 private key from its raw 32-byte seed. */
export function ed25519PrivateKey(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** A node:crypto Ed25519 public key from its raw 32 bytes; throws on a malformed key. */
export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** The raw 32 bytes of an Ed25519 public key (the last 32 of its SPKI encoding). */
export function ed25519RawPublicKey(key: KeyObject): Buffer {
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return Buffer.from(spki.subarray(spki.length - 32));
}

const verifyKeys = new Map<string, KeyObject | null>();

function verifyKeyFor(id: string): KeyObject | null {
  let key = verifyKeys.get(id);
  if (key !== undefined) return key;
  try {
    const raw = peerIdFromString(id).publicKey?.raw;
    key = raw && raw.length === 32
      ? ed25519PublicKey(raw)
      : null;
  } catch {
    key = null;
  }
  if (verifyKeys.size >= VERIFY_KEY_CACHE_MAX) verifyKeys.clear();
  verifyKeys.set(id, key);
  return key;
}

/** Checks that `sig` is `id`'s signature over `bytes`; the public key comes from the id itself. */
export function verifySignature(id: string, bytes: Uint8Array, sig: string): boolean {
  const key = verifyKeyFor(id);
  if (!key) return false;
  try {
    return verify(null, bytes, key, Buffer.from(sig, 'base64'));
  } catch {
    return false;
  }
}
