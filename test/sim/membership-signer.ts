// A deterministic stand-in for the peers' Ed25519 identities in simulations: a peer's
// signature is a hash of a secret only it knows and the bytes. Not cryptography: a test could
// brute-force 64 bits, but a core only ever forges by reusing what it was sent, which this
// catches just as the real thing does. Cheap, so thousands of seeds stay fast.

import { claimBytes, claimKind, type Signer } from '../../mesh/membership/claim.ts';
import { type MemberRecord } from '../../mesh/membership/wire.ts';

function secretOf(id: string): string {
  return `secret of ${id}`;
}

/** Two 32-bit FNV-1a passes with different offsets over the secret and then the bytes. */
function fakeSig(id: string, bytes: Uint8Array): string {
  let a = 0x811c9dc5;
  let b = 0x01234567;
  const mix = (c: number) => {
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (a >>> 7);
  };
  const secret = secretOf(id);
  for (let i = 0; i < secret.length; i++) mix(secret.charCodeAt(i));
  mix(0);
  for (let i = 0; i < bytes.length; i++) mix(bytes[i]!);
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}

/** `verify` alone: what every peer may do about any other. */
export function fakeVerify(id: string, bytes: Uint8Array, sig: string): boolean {
  return fakeSig(id, bytes) === sig;
}

/** The signer of peer `id`: it signs as itself and verifies anyone. */
export function fakeSigner(id: string): Signer {
  return { sign: (bytes) => fakeSig(id, bytes), verify: fakeVerify };
}

/** A record as its subject would sign it: for fixtures of honest gossip in unit-style tests. */
export function signedAs(r: Omit<MemberRecord, 'sig'>): MemberRecord {
  return { ...r, sig: fakeSig(r.id, claimBytes(r, r.inc, claimKind(r.state))) };
}
