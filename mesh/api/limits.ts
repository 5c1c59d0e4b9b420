/**
 * How much one API client can make a peer hold: requests in flight and reply bytes queued,
 * per stream (one CLI connection) and per caller (everything one credential has open).
 * Pure bookkeeping, no I/O: the API session asks before it starts a request or queues a
 * reply, and stops reading from its client when the answer is no.
 */
import { MAX_VALUE_BYTES } from '../replication/wire.ts';

/** The largest request frame. API requests are a method name and a few short parameters,
 *  the largest a `kv put` of one value (256 KiB); 1 MiB leaves room for JSON escaping. */
export const MAX_REQUEST_BYTES = 1024 * 1024;

/** Requests one stream may have in flight. The CLI sends one request per stream; 8 lets a
 *  script pipeline enough to hide a round trip, while one stream's
 *  unsent replies stay under 8 × the largest ordinary reply (a 256 KiB `kv get`) = 2 MiB.
 *  A request stays in flight until its reply has been handed to the transport, so a client
 *  that does not read holds its slots, and the stream stops being read. */
export const MAX_REQUESTS_PER_STREAM = 8;

/** Requests one caller (an API token, a member, or the local socket) may have in flight
 *  across all its streams and connections: 4 streams' worth, far more than a person or a
 *  script needs, and it caps the replies one caller can park here at 32 × 256 KiB = 8 MiB
 *  however many connections it opens. */
export const MAX_REQUESTS_PER_CALLER = 32;

/** Reply bytes one stream may queue behind a transport that wants no more. Ordinary replies
 *  cannot reach it (they hold request slots: at most 8 queue, about 2 MiB); what does is a
 *  streaming method (`events --follow`) whose client stopped reading, which is then dropped
 *  with a logged reason instead of being buffered forever. Twice the 8 largest replies. */
export const MAX_QUEUED_BYTES_PER_STREAM = 2 * MAX_REQUESTS_PER_STREAM * MAX_VALUE_BYTES;

/** Reply bytes one caller may queue across its streams: twice its 32 largest replies, so a
 *  caller with many stalled followers is cut off at 16 MiB, not 4 MiB times its streams. */
export const MAX_QUEUED_BYTES_PER_CALLER = 2 * MAX_REQUESTS_PER_CALLER * MAX_VALUE_BYTES;

interface CallerUse {
  requests: number;
  bytes: number;
  /** Sessions to wake when a request slot of this caller frees. */
  waiting: Set<() => void>;
}

/** Request slots and queued bytes per caller, shared by every session of an ApiServer. */
export class CallerBudget {
  private readonly use = new Map<string, CallerUse>();
  private readonly maxRequests: number;
  private readonly maxBytes: number;

  constructor(maxRequests = MAX_REQUESTS_PER_CALLER, maxBytes = MAX_QUEUED_BYTES_PER_CALLER) {
    this.maxRequests = maxRequests;
    this.maxBytes = maxBytes;
  }

  /** Takes a request slot for `caller`, or returns false and calls `wake` once one frees. */
  acquire(caller: string, wake: () => void): boolean {
    const u = this.entry(caller);
    if (u.requests >= this.maxRequests) {
      u.waiting.add(wake);
      return false;
    }
    u.waiting.delete(wake);
    u.requests++;
    return true;
  }

  release(caller: string): void {
    const u = this.use.get(caller);
    if (!u || u.requests === 0) return;
    u.requests--;
    const waiting = [...u.waiting];
    u.waiting.clear();
    this.prune(caller, u);
    for (const w of waiting) w();
  }

  /** A session that is gone no longer waits for a slot. */
  forget(caller: string, wake: () => void): void {
    const u = this.use.get(caller);
    if (!u) return;
    u.waiting.delete(wake);
    this.prune(caller, u);
  }

  /** Counts `n` more queued reply bytes for `caller`; false (and nothing counted) past the bound. */
  addBytes(caller: string, n: number): boolean {
    const u = this.entry(caller);
    if (u.bytes + n > this.maxBytes) {
      this.prune(caller, u);
      return false;
    }
    u.bytes += n;
    return true;
  }

  removeBytes(caller: string, n: number): void {
    const u = this.use.get(caller);
    if (!u) return;
    u.bytes = Math.max(0, u.bytes - n);
    this.prune(caller, u);
  }

  requestsOf(caller: string): number {
    return this.use.get(caller)?.requests ?? 0;
  }

  /** Callers with anything counted: stays as small as the set of active callers. */
  get callers(): number {
    return this.use.size;
  }

  private entry(caller: string): CallerUse {
    let u = this.use.get(caller);
    if (!u) {
      u = { requests: 0, bytes: 0, waiting: new Set() };
      this.use.set(caller, u);
    }
    return u;
  }

  private prune(caller: string, u: CallerUse): void {
    if (u.requests === 0 && u.bytes === 0 && u.waiting.size === 0) this.use.delete(caller);
  }
}
