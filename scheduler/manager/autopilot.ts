// Which peers are managers: the leader's autopilot (after Consul's), pure. Each round it
// proposes at most one membership change, and never one that leaves the voters without a live
// majority: keep `target` voters (3, or 5) among live eligible peers, an odd number of them,
// bring a new manager in as a learner that votes only once it has caught up, replace a voter
// dead longer than the grace period (the replacement first, then the removal), and obey the
// operator's promote and demote (kind `node-role` in desired state).

import type { MembershipChange } from '../raft/membership.ts';
import type { Membership } from '../raft/types.ts';

/** Consul autopilot's default: a server dead this long is not coming back soon, and a reboot
 *  or an upgrade takes less. Shorter would replace managers during maintenance. */
export const DEFAULT_GRACE_MS = 120_000;
/** A learner this close to the leader's last index votes without stalling commits while the
 *  rest arrives (Consul waits for the same kind of "healthy and caught up"). */
export const CATCH_UP_SLACK = 64;

export type PeerRole = 'auto' | 'manager' | 'worker';

export interface Candidate {
  id: string;
  /** The role the peer was launched with. */
  role: PeerRole;
  /** The operator's promote (manager) or demote (worker), overriding `role`. */
  override?: 'manager' | 'worker';
  alive: boolean;
  /** Since when it has not been alive (ms), if it is not. */
  downSince?: number;
}

export interface AutopilotInput {
  self: string;
  conf: Membership;
  peers: readonly Candidate[];
  target: number;
  graceMs: number;
  now: number;
  lastIndex: number;
  match(id: string): number;
}

export type Decision = { change: MembershipChange; why: string } | { transfer: true; why: string } | undefined;

const wants = (p: Candidate | undefined): 'manager' | 'auto' | 'worker' => p?.override ?? (p?.role === 'manager' ? 'manager' : p?.role ?? 'auto');

export function decide(i: AutopilotInput): Decision {
  const byId = new Map(i.peers.map((p) => [p.id, p]));
  const gone = (id: string) => {
    if (id === i.self) return false;
    const p = byId.get(id);
    return !p || (!p.alive && p.downSince !== undefined && i.now - p.downSince >= i.graceMs);
  };
  const alive = (id: string) => id === i.self || byId.get(id)?.alive === true;
  const { voters, learners } = i.conf;

  // Learners that are gone or no longer wanted leave first: they count for nothing.
  for (const id of learners) {
    if (gone(id)) return { change: { type: 'remove', id }, why: `learner ${id} has been down longer than the grace period` };
    if (wants(byId.get(id)) === 'worker') return { change: { type: 'remove', id }, why: `${id} is to be a worker` };
  }
  // A demoted voter: the leader hands over before removing itself.
  for (const id of voters) {
    if (wants(byId.get(id)) !== 'worker' || voters.length === 1) continue;
    // Handing over only helps if the next leader can then remove this one.
    if (id === i.self) {
      if (keepsMajority(voters.filter((v) => v !== id), alive)) return { transfer: true, why: 'this manager is to be a worker' };
      continue;
    }
    if (keepsMajority(voters.filter((v) => v !== id), alive)) return { change: { type: 'remove', id }, why: `${id} is to be a worker` };
  }
  const eligible = i.peers.filter((p) => p.alive && wants(p) !== 'worker');
  // Peers down for less than the grace period count: they are expected back, and the goal
  // must not swing with every brief failure.
  const eligibleCount = i.peers.filter((p) => !gone(p.id) && wants(p) !== 'worker').length + (byId.has(i.self) ? 0 : 1);
  // An odd number of voters: a fourth adds no fault tolerance and one more way to lose quorum.
  const goal = Math.max(1, Math.min(i.target, eligibleCount % 2 === 1 ? eligibleCount : eligibleCount - 1));
  const healthy = voters.filter((id) => !gone(id));
  const forced = (id: string) => byId.get(id)?.override === 'manager';

  for (const id of learners) {
    const caughtUp = i.match(id) + CATCH_UP_SLACK >= i.lastIndex;
    // A learner that is down would be a voter that cannot vote: it waits until it is back.
    if (caughtUp && alive(id) && (healthy.length < goal || forced(id))) return { change: { type: 'promote', id }, why: `${id} has caught up` };
    // One no longer needed (the voter it was to replace came back) leaves, so it does not
    // hold up the next change.
    if (healthy.length >= goal && !forced(id)) return { change: { type: 'remove', id }, why: `learner ${id} is not needed: ${healthy.length} of ${goal} managers are up` };
  }
  for (const id of voters) {
    if (!gone(id)) continue;
    const rest = voters.filter((v) => v !== id);
    // The replacement first: a dead voter leaves once another voter took its place, or when
    // no peer could (learners still catching up count as replacements under way).
    const replacementPossible = eligible.some((p) => !voters.includes(p.id));
    if ((voters.length > goal || !replacementPossible) && keepsMajority(rest, alive)) {
      return { change: { type: 'remove', id }, why: `voter ${id} has been down longer than the grace period` };
    }
  }
  if (learners.length > 0) return undefined;
  const fresh = eligible.filter((p) => !isMember(i.conf, p.id) && p.id !== i.self).sort(preference);
  const next = fresh.find((p) => forced(p.id)) ?? (healthy.length < goal ? fresh[0] : undefined);
  if (next) return { change: { type: 'add-learner', id: next.id }, why: healthy.length < goal ? `${healthy.length} of ${goal} managers` : `${next.id} was promoted` };
  return undefined;
}

function isMember(m: Membership, id: string): boolean {
  return m.voters.includes(id) || m.learners.includes(id);
}

/** Whether the live voters of `voters` are a majority of them. */
function keepsMajority(voters: readonly string[], alive: (id: string) => boolean): boolean {
  return voters.filter(alive).length > voters.length / 2;
}

/** Launched as managers first, then by id, so every leader picks alike. */
function preference(a: Candidate, b: Candidate): number {
  const rank = (p: Candidate) => (wants(p) === 'manager' ? 0 : 1);
  return rank(a) - rank(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
