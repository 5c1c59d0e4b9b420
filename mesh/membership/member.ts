// A member as this peer holds it, and the event that reports a change to one: what the core
// hands out (members(), events) and what the shell keeps on disk between lives. Types only, in
// a leaf of their own, so the core and its outbox both use them without importing each other
// (the one value here, the list of event types, is data for `weft events --help` and docs).

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

/** What `weft events` reports, in the order a member's life usually goes through them. */
export const MEMBERSHIP_EVENT_TYPES = [
  /** First heard of, alive. */
  'joined',
  /** Missed its probes; it has the suspicion timeout to refute. */
  'suspect',
  /** A suspect that refuted (or was heard from directly) again. */
  'alive',
  /** Its name, addresses, tags or role changed (a new signed claim). */
  'updated',
  /** Declared dead: the suspicion ran out, or its death was confirmed. */
  'dead',
  /** Said goodbye (a clean stop). */
  'left',
  /** Back, at a higher incarnation, after dead or left. */
  'rejoined',
  /** Removed from the table: by `weft forget`, by a forget gossiped from another peer, or
   *  reaped after REAP_AFTER_MS. */
  'forgotten',
] as const;
export type MembershipEventType = (typeof MEMBERSHIP_EVENT_TYPES)[number];
export type MembershipEvent = { type: MembershipEventType; member: Member; at: number };
