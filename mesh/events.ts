/**
 * The peer's event log for `weft events`: a bounded ring of typed events with sequence
 * numbers, and live subscribers for `--follow`.
 */

import type { MembershipEventType } from './membership/member.ts';

/** Enough history for an operator looking back over an incident, small in memory. */
const EVENT_HISTORY = 1000;

/** The control plane's events (scheduler/), in the same log: an operator
 *  looking back over an incident sees a leader change beside the deaths that caused it. */
export const CONTROL_EVENT_TYPES = [
  'leader-elected', 'leader-lost', 'manager-added', 'manager-promoted', 'manager-removed',
  // The scheduler's (scheduler/reconciler/, on the leader; scheduler/agent/, on the container's node).
  'container-scheduled', 'container-rescheduled', 'container-redeployed', 'container-unscheduled', 'service-pending', 'service-update-paused',
  'container-started', 'container-failed', 'container-removed', 'container-stopped',
  // The provisioner's (provisioner/, on the leader).
  'node-created', 'node-deployed', 'node-unreachable', 'node-terminated', 'node-failed', 'nodecluster-error', 'nodecluster-scaled', 'nodecluster-removed',
] as const;
export type ControlEventType = (typeof CONTROL_EVENT_TYPES)[number];

export interface MeshEvent {
  seq: number;
  at: string;
  type: MembershipEventType | ControlEventType;
  peer?: { id: string; name: string; address?: string };
  detail?: string;
}

export class EventLog {
  private readonly ring: MeshEvent[] = [];
  private seq = 0;
  private readonly subscribers = new Set<(e: MeshEvent) => void>();

  add(e: Omit<MeshEvent, 'seq' | 'at'>, at = new Date()): MeshEvent {
    const event: MeshEvent = { seq: ++this.seq, at: at.toISOString(), ...e };
    this.ring.push(event);
    if (this.ring.length > EVENT_HISTORY) this.ring.shift();
    for (const s of this.subscribers) s(event);
    return event;
  }

  list(): MeshEvent[] {
    return [...this.ring];
  }

  subscribe(fn: (e: MeshEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }
}
