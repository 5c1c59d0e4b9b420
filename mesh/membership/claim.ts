// What a member says about itself, signed with its identity key: who it is (name, addresses,
// tags, role) at an incarnation, and whether it is here ('alive') or has said goodbye ('left').
// Every record on the wire carries its subject's claim and signature, so a relaying member can
// change a record's state but not what the subject said: not its addresses, not a higher
// incarnation, not a goodbye.
//
// What this allows a hostile member (one that holds the mesh secret and its own identity):
//  - accuse X (suspect, dead) at an incarnation X signed; below X's latest it changes nothing
//    (precedence), at X's latest X refutes by signing the next one;
//  - replay an older claim of X, which precedence ignores;
//  - forget X at the incarnation the receiver holds (`forget` is an operator's action on any one
//    peer, so tombstones are not signed, only bounded), which X refutes the same way.
// It cannot: give X other addresses or info, push X's incarnation past what X signed (so X can
// always refute), or say X left.
//
// The core calls only the injected `Signer`: the shell passes Ed25519 (mesh/admission/identity.ts), a
// simulation a cheap deterministic fake.

import type { MemberInfo, MemberState } from './wire.ts';

/** Domain label and version of the signed bytes: no claim shares bytes with a replicated entry
 *  or another protocol's signature, and a change of layout cannot be misread as this one. */
export const CLAIM_DOMAIN = 'weft/membership/claim/v1\n';

export interface Signer {
  /** Signs bytes as this peer. */
  sign(bytes: Uint8Array): string;
  /** True if `sig` is `id`'s signature over `bytes`; false for an id with no usable key. */
  verify(id: string, bytes: Uint8Array, sig: string): boolean;
}

/** What the subject itself said: 'left' records carry a goodbye, every other state the claim
 *  of being alive at that incarnation (an accusation is a receiver's belief about that claim). */
export type ClaimKind = 'alive' | 'left';

export function claimKind(state: MemberState): ClaimKind {
  return state === 'left' ? 'left' : 'alive';
}

const encoder = new TextEncoder();

/** The bytes a member signs about itself: the domain label and a canonical JSON array of the
 *  claim, so two distinct claims never share bytes. */
export function claimBytes(info: MemberInfo, inc: number, kind: ClaimKind): Uint8Array {
  return encoder.encode(CLAIM_DOMAIN + JSON.stringify([kind, info.id, info.name, info.addrs, info.tags, info.role, inc]));
}

/** Whether a record's signature is its subject's over the claim the record's state implies. */
export function signedBySubject(
  verify: Signer['verify'],
  r: MemberInfo & { inc: number; state: MemberState; sig: string },
): boolean {
  try {
    return verify(r.id, claimBytes(r, r.inc, claimKind(r.state)), r.sig) === true;
  } catch {
    // A verifier that throws on a malformed id or signature has said no.
    return false;
  }
}
