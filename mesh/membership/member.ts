// A member as this peer holds it, and the event that reports a change to one: what the core
// hands out (members(), events) and what the shell keeps on disk between lives. Types only, in
// a leaf of their own, so the core and its outbox both use them without importing each other.

import type { MemberInfo, MemberState } from './wire.ts';

export interface Member extends MemberInfo {
  inc: number;
  state: MemberState;
  /** The member's own signature over its info at `inc` (its claim: alive, or left when the
   *  state is 'left'); null while we know it only unsigned (a seed address, or state restored
   *  from before claims), which we use locally but never gossip. Persisted with the rest. */
  sig: string | null;
  /** When we adopted the current state (ms, the shell's clock). */
  stateSince: number;
  /** Last direct message from it or a helper vouching for it; 0 if never. */
  lastHeard: number;
}

/** 'forgotten' is an addition to the list: the member was removed from the table (by
 *  `forget`, by a forget gossiped from another peer, or reaped after REAP_AFTER_MS). */
export type MembershipEventType = 'joined' | 'suspect' | 'dead' | 'left' | 'rejoined' | 'alive' | 'updated' | 'forgotten';
export type MembershipEvent = { type: MembershipEventType; member: Member; at: number };
