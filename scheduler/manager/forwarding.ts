// Requests a peer sends to the leader and waits on: each a promise settled by the leader's
// answer, by a timeout, or at once when leadership moves (a leader cut off never answers, and
// the next one should be asked now). And the retry loop around them (viaLeader), which tries
// whoever leads until one answers or the time is up.

import type { ForwardOp, ManagerMessage } from './wire.ts';

/** One try at a write or a read through the leader: a commit takes milliseconds, and an
 *  election 1-2 s, after which the write is retried on the new leader. */
export const ATTEMPT_MS = 2_500;
/** How long a write or consistent read keeps trying before it fails with a reason. */
export const REQUEST_TIMEOUT_MS = 10_000;
/** While no leader is known, or the one asked has just stepped down, a request waits this long
 *  before it looks again: a handover completes in a few milliseconds, and a look costs nothing
 *  (a field read), so a short wait is what keeps a planned failover near etcd's 20 ms. */
export const LEADER_POLL_MS = 10;

export interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  /** For a forwarded request: the leader it was sent to. */
  to?: string;
}

export function settle<T>(w: Waiter<T>, err: Error | undefined, value?: T): void {
  clearTimeout(w.timer);
  if (err) w.reject(err);
  else w.resolve(value as T);
}

/** Settles the waiter `id` of `map`, if still there, with `why`. */
export function expire<T>(map: Map<string, Waiter<T>>, id: string, why: string): void {
  const w = map.get(id);
  if (!w) return;
  map.delete(id);
  settle(w, new Error(why));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Failures that a try on the next leader may not have. */
function isRetriable(message: string): boolean {
  return /not the leader|in time|leader change/.test(message);
}

/** Tries `attempt` on the leader known, again on whoever leads next, until it succeeds or
 *  REQUEST_TIMEOUT_MS passes. A failure the leader gives as its answer is final. Between tries
 *  it waits for the next leader (`next`: a LeaderWatch), at most LEADER_POLL_MS; not at all
 *  when another than the one just asked already leads. */
export async function viaLeader<T>(
  o: { leader(): string | undefined; stopped(): boolean; next?(ms: number): Promise<void> }, attempt: (leader: string) => Promise<T>, what: string,
): Promise<T> {
  const deadline = Date.now() + REQUEST_TIMEOUT_MS;
  const wait = () => (o.next ? o.next(LEADER_POLL_MS) : sleep(LEADER_POLL_MS));
  let last = 'no leader is known (are a majority of managers up and connected?)';
  for (let i = 0; i < REQUEST_TIMEOUT_MS / LEADER_POLL_MS && Date.now() < deadline && !o.stopped(); i++) {
    const leader = o.leader();
    if (!leader) {
      await wait();
      continue;
    }
    try {
      return await attempt(leader);
    } catch (err) {
      last = (err as Error).message;
      if (!isRetriable(last)) throw err;
      if (o.leader() === leader) await wait();
    }
  }
  throw new Error(`${what} failed after ${REQUEST_TIMEOUT_MS / 1000} s: ${last}`);
}

/** Wakes the requests waiting for a leader (viaLeader) the moment one is known, rather than at
 *  their next look: in a planned handover the successor leads within a millisecond or two. */
export class LeaderWatch {
  private readonly waiters = new Set<() => void>();

  /** The leader known here changed. */
  changed(): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  /** Resolves at the next change, or after `ms`. */
  next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }
}

/** Requests under way to a leader, by request id. */
export class Forwards {
  private readonly pending = new Map<string, Waiter<unknown>>();
  private readonly transmit: (to: string, m: ManagerMessage) => void;
  private readonly nextId: () => string;

  constructor(transmit: (to: string, m: ManagerMessage) => void, nextId: () => string) {
    this.transmit = transmit;
    this.nextId = nextId;
  }

  send(leader: string, op: ForwardOp): Promise<unknown> {
    const id = this.nextId();
    const done = new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, to: leader, timer: setTimeout(() => expire(this.pending, id, `no answer from the leader ${leader} in time`), ATTEMPT_MS) });
    });
    this.transmit(leader, { k: 'req', id, ...op } as ManagerMessage);
    return done;
  }

  /** The leader's answer; one nobody waits for (late, or forged) is dropped. */
  answered(m: Extract<ManagerMessage, { k: 'res' }>): void {
    const w = this.pending.get(m.id);
    if (!w) return;
    this.pending.delete(m.id);
    if (m.ok) settle(w, undefined, m.value);
    else settle(w, new Error(m.error));
  }

  /** Requests sent to a leader that no longer leads fail at once, to be tried again on the
   *  new one rather than after the attempt's timeout. */
  leaderChanged(leader: string | null): void {
    for (const [id, w] of this.pending) {
      if (w.to === leader) continue;
      this.pending.delete(id);
      settle(w, new Error('leader change'));
    }
  }

  failAll(err: Error): void {
    for (const w of this.pending.values()) settle(w, err);
    this.pending.clear();
  }
}
