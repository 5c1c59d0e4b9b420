// Membership changes waiting to be spread, piggybacked on probe traffic: SWIM's
// infection-style dissemination, with memberlist's retransmit bound. Each change is sent a
// bounded number of times by each peer that holds it, so spreading one costs every peer the
// same few messages whatever the size of the mesh, and it reaches everyone in O(log N) periods
// with high probability; the periodic digest comparison (and full table exchange on mismatch)
// repairs the rest.
//
// One entry per subject: a newer record about a member replaces the queued older one, which
// would only be outranked wherever it arrived. So the queue never holds more entries than the
// mesh has members.

/** Sends of each change per peer: memberlist's RetransmitMult (4) times log10(N + 1),
 *  rounded up. Enough that a change reaches all of 1,000 peers with a miss probability far
 *  below the loss rate; the digest repair catches the rare miss. */
export const RETRANSMIT_MULT = 4;

export function retransmitLimit(n: number, mult = RETRANSMIT_MULT): number {
  return mult * Math.ceil(Math.log10(Math.max(1, n) + 1));
}

interface Queued<T> {
  payload: T;
  bytes: number;
  sent: number;
  seq: number;
}

export class Broadcasts<T> {
  private readonly items = new Map<string, Queued<T>>();
  private seq = 0;

  get size(): number {
    return this.items.size;
  }

  /** Queues `payload` about `subject`, replacing what was queued about it. */
  enqueue(subject: string, payload: T, bytes: number): void {
    this.items.set(subject, { payload, bytes, sent: 0, seq: ++this.seq });
  }

  /** Nothing more to say about `subject` (forgotten). */
  drop(subject: string): void {
    this.items.delete(subject);
  }

  /** What to piggyback on one outgoing message: the least-sent entries first (newest first
   *  among equals, so fresh news overtakes old), as many as fit in `maxBytes`. Each taken entry
   *  counts a send, and goes once it was sent `retransmitLimit(n)` times. */
  take(maxBytes: number, n: number): T[] {
    if (this.items.size === 0) return [];
    const limit = retransmitLimit(n);
    const order = [...this.items].sort(([, a], [, b]) => a.sent - b.sent || b.seq - a.seq);
    const out: T[] = [];
    let room = maxBytes;
    for (const [subject, q] of order) {
      if (q.bytes > room) continue;
      room -= q.bytes;
      out.push(q.payload);
      if (++q.sent >= limit) this.items.delete(subject);
    }
    return out;
  }
}
