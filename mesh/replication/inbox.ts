// What members send on the sync channel, worked through a little at a time. Checking an entry's
// Ed25519 signature costs ~0.1 ms here, and one message may carry MAX_ENTRIES_PER_MESSAGE of
// them: checked in one go inside the channel's message handler, a member that floods us with
// tens of thousands of its own (validly signed) entries stalls our event loop for seconds, and
// our other members declare us dead. So the signatures of a message are checked in slices of a
// few milliseconds, one slice per turn of the event loop, and the message is handed to the
// replica core only once all of them are checked (a delta's or snapshot's range claim holds
// only for the whole message, so a message is never split). Messages of one sender keep their
// order; senders with a backlog take turns.

import type { Entry, ReplicaMessage } from './wire.ts';

/** Time spent checking signatures per turn of the event loop. One check takes ~0.1 ms on the
 *  2 shared cores this runs on (108 µs measured), so ~100 checks a turn; heartbeats come every
 *  200 ms and a member is suspected after ~1 s of silence, so a 10 ms turn (plus one merge of at
 *  most MAX_ENTRIES_PER_MESSAGE already-checked entries, 15-50 ms) leaves them answered at once,
 *  while the yield between turns costs microseconds, nothing next to 10 ms of checks. */
export const TURN_BUDGET_MS = 10;

/** Entries of one sender we hold unchecked or unmerged. One owner's whole quota
 *  (OWNER_MAX_ENTRIES), so a member catching us up on a busy peer's state in deltas is not cut
 *  short; ~1.7 s of checks. Beyond it a message is dropped, which is safe: pushes are repaired
 *  by anti-entropy and deltas are sent again after the next digest exchange. */
export const MAX_BACKLOG_ENTRIES = 16_384;

/** Approximate bytes of messages of one sender we hold, so that few large entries cannot pile
 *  up either: 32 of the 1 MiB chunks a bulk transfer is cut into (MAX_MESSAGE_BYTES), or four
 *  of the largest frames the sync channel accepts. */
export const MAX_BACKLOG_BYTES = 32 * 1024 * 1024;

/** Bytes counted for a message besides its entries' keys, values and signatures, and for each
 *  row of a digest: field names, versions, JSON around them. */
const OVERHEAD_BYTES = 128;

type Check = (e: Entry) => boolean;

export interface InboxOptions {
  /** True if the entry is its owner's signature, false otherwise (never throws). */
  check: Check;
  /** True if the replica already holds exactly this entry: it is not checked again. */
  held(e: Entry): boolean;
  /** Hands a message over once all its entries are checked, with the outcome of each check. */
  apply(from: string, msg: ReplicaMessage, checked: ReadonlyMap<Entry, boolean>): void;
  /** A message dropped because its sender's backlog is full. */
  dropped(from: string, msg: ReplicaMessage): void;
  now?(): number;
}

interface Item {
  msg: ReplicaMessage;
  entries: readonly Entry[];
  /** Index of the next entry to check. */
  next: number;
  checked: Map<Entry, boolean>;
  bytes: number;
}

interface Backlog {
  items: Item[];
  entries: number;
  bytes: number;
  /** Resolved once the backlog falls to half its bounds: back-pressure for a reader that waits. */
  room?: { promise: Promise<void>; resolve(): void };
}

function weight(msg: ReplicaMessage): number {
  if (msg.t === 'digest') return OVERHEAD_BYTES * (1 + Object.keys(msg.digest).length);
  let n = OVERHEAD_BYTES;
  for (const e of msg.entries) n += OVERHEAD_BYTES + e.owner.length + e.key.length + e.sig.length + (e.value?.length ?? 0);
  return n;
}

export class ReplicaInbox {
  private readonly opts: InboxOptions;
  private readonly now: () => number;
  /** Senders with a backlog, in the order they take turns. */
  private readonly backlogs = new Map<string, Backlog>();
  private scheduled?: NodeJS.Immediate;
  private stopped = false;
  /** Most signatures checked in one turn of the event loop since start: what a peer's
   *  heartbeats may wait behind (for tests and metrics). */
  private maxCheckedPerTurn = 0;
  private checkedThisTurn = 0;

  constructor(opts: InboxOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Queues a message. Returns a promise while the sender's backlog is more than half full, which
   *  resolves when it has room again: a reader that waits for it before reading on stops the
   *  sender through the stream's flow control instead of having its messages dropped. */
  push(from: string, msg: ReplicaMessage): Promise<void> | undefined {
    if (this.stopped) return undefined;
    let b = this.backlogs.get(from);
    if (b === undefined) {
      b = { items: [], entries: 0, bytes: 0 };
      this.backlogs.set(from, b);
    }
    const entries = msg.t === 'digest' ? [] : msg.entries;
    const bytes = weight(msg);
    if (b.items.length > 0 && (b.entries + entries.length > MAX_BACKLOG_ENTRIES || b.bytes + bytes > MAX_BACKLOG_BYTES)) {
      this.opts.dropped(from, msg);
    } else {
      b.items.push({ msg, entries, next: 0, checked: new Map(), bytes });
      b.entries += entries.length;
      b.bytes += bytes;
      this.schedule();
    }
    if (b.entries * 2 <= MAX_BACKLOG_ENTRIES && b.bytes * 2 <= MAX_BACKLOG_BYTES) return undefined;
    if (b.room === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => { resolve = r; });
      b.room = { promise, resolve };
    }
    return b.room.promise;
  }

  /** Entries waiting to be checked or merged, all senders together (for tests and metrics). */
  backlog(): number {
    let n = 0;
    for (const b of this.backlogs.values()) n += b.entries;
    return n;
  }

  /** Most signatures checked in one turn of the event loop so far. */
  mostCheckedInOneTurn(): number {
    return this.maxCheckedPerTurn;
  }

  /** Forgets everything queued; later messages are ignored. */
  stop(): void {
    this.stopped = true;
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    for (const b of this.backlogs.values()) b.room?.resolve();
    this.backlogs.clear();
  }

  private schedule(): void {
    if (this.scheduled !== undefined || this.stopped || this.backlogs.size === 0) return;
    // setImmediate, not a microtask: the turn ends and I/O (heartbeats) is handled first.
    this.scheduled = setImmediate(() => {
      this.scheduled = undefined;
      this.turn();
      this.schedule();
    });
  }

  /** One turn: the sender first in line works through its backlog until the budget is spent,
   *  then goes to the back of the line; a sender whose backlog empties leaves the line. */
  private turn(): void {
    const deadline = this.now() + TURN_BUDGET_MS;
    this.checkedThisTurn = 0;
    while (!this.stopped && this.now() < deadline) {
      const first = this.backlogs.entries().next();
      if (first.done === true) return;
      const [from, b] = first.value;
      this.work(from, b, deadline);
      this.backlogs.delete(from);
      if (b.items.length > 0) this.backlogs.set(from, b);
      else b.room?.resolve();
    }
  }

  private work(from: string, b: Backlog, deadline: number): void {
    while (b.items.length > 0) {
      const item = b.items[0] as Item;
      for (; item.next < item.entries.length; item.next++) {
        if (this.now() >= deadline) return;
        const e = item.entries[item.next] as Entry;
        if (!this.opts.held(e)) {
          item.checked.set(e, this.opts.check(e));
          this.maxCheckedPerTurn = Math.max(this.maxCheckedPerTurn, ++this.checkedThisTurn);
        }
      }
      b.items.shift();
      b.entries -= item.entries.length;
      b.bytes -= item.bytes;
      if (b.room !== undefined && b.entries * 2 <= MAX_BACKLOG_ENTRIES && b.bytes * 2 <= MAX_BACKLOG_BYTES) {
        b.room.resolve();
        b.room = undefined;
      }
      this.opts.apply(from, item.msg, item.checked);
      if (this.stopped || this.now() >= deadline) return;
    }
  }
}
