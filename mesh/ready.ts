// What a pure core gives back from every call, and the one order a shell carries it out in.
// After etcd-raft's Ready (raft/node.go): a call into a core (a message, a tick, an API call)
// changes its state and returns what the outside world must now see of that change. The shell
// writes what is to be persisted, then sends the messages, then reports the events: a message
// or an acknowledgement must never reach anyone before the state it follows from is as durable
// as its core requires, or a restart could contradict what others already acted on.
//
// Every core uses this shape: membership (mesh/membership), the replica (mesh/replication) and
// IPAM (mesh/ipam) now, and the Raft core of the scheduler next, whose ready fits it as etcd's
// does: persist = term, vote and new log entries; send = its messages; events = the entries
// committed, to apply (etcd's Advance is implicit: our cores move on when they return).

/** One message for one peer (a libp2p peer id). */
export interface Send<Msg> {
  to: string;
  msg: Msg;
}

/** Input the core refused (a forged record, a message from a removed peer), with who sent it
 *  and one line saying why. Nothing in the core's state changed for it. */
export interface Rejection {
  from: string;
  reason: string;
}

export interface Ready<Msg, Persist, Event> {
  /** What to write before any of `send` leaves or any of `events` is reported; undefined when
   *  nothing changed that is kept on disk. Each core's Persist type says what it holds, and its
   *  shell's persister how durable it must be before the rest goes out (see ReadyIo.persist). */
  persist: Persist | undefined;
  /** Messages, each for one peer, in the order the core decided them. */
  send: Send<Msg>[];
  /** What happened, for the peer and the user: changes to report, allocations to hand out,
   *  committed entries to apply. Reported after `send`. */
  events: Event[];
  /** Input refused, for the log and the metrics. */
  rejected: Rejection[];
  /** When the core next wants a tick, on the clock it was given (ms): the earliest time a
   *  timer of its own (a probe, an anti-entropy round, a retry) comes due. A tick earlier does
   *  nothing harmful; later, it delays what the core waits for. Undefined: no timer runs, only
   *  input can make it act. A time at or before the call's `now` means at once. */
  next: number | undefined;
}

/** How a shell carries a ready out: its disk, its channel, its listeners. */
export interface ReadyIo<Msg, Persist, Event> {
  /** Writes `p`. Returns the write's promise when what follows must wait until it is on disk,
   *  nothing when the state may be written behind (lost in a crash without harm). Which is
   *  which, per core:
   *  - IPAM: its whole state, synced and awaited before any message or allocation leaves. A
   *    restarted peer must never forget an allocation or a donation someone acted on.
   *  - replica, own entries (a write, or one re-issued at a fresh version): synced and awaited,
   *    so a restart never reuses a version its peers already hold.
   *  - replica, others' entries and deletions: written behind in batches. Anti-entropy
   *    fetches again whatever a crash lost.
   *  - membership, the member table: written behind. It is relearned from any member within a
   *    second of a restart.
   *  - membership, the incarnation: kept ahead, not awaited. The disk holds a bound renewed
   *    long before the incarnation reaches it (INCARNATION_RESERVE), so what is sent never
   *    outruns what a restart starts above.
   *  A rejected promise means nothing of the ready leaves: applyReady rejects with it. */
  persist(p: Persist): Promise<void> | void;
  send(to: string, msg: Msg): void;
  /** The ready's events, in order; called only when there are some. */
  events(events: readonly Event[]): void;
  /** The ready's rejections; called only when there are some (one call per ready, so a shell
   *  can log one line for a message full of forgeries). */
  rejected(rejections: readonly Rejection[]): void;
}

/** Carries out `ready` in order: persist, then (once that is durable, if the persister waits)
 *  send, then events, then rejections. Synchronous when the persister returns nothing, so a
 *  core whose state is all written behind sends in the same turn as it decided. When the
 *  write fails nothing is sent or reported, and the returned promise rejects with its error. */
export function applyReady<Msg, Persist, Event>(ready: Ready<Msg, Persist, Event>, io: ReadyIo<Msg, Persist, Event>): Promise<void> | void {
  const written = ready.persist === undefined ? undefined : io.persist(ready.persist);
  if (written === undefined) return release(ready, io);
  return written.then(() => release(ready, io));
}

function release<Msg, Persist, Event>(ready: Ready<Msg, Persist, Event>, io: ReadyIo<Msg, Persist, Event>): void {
  for (const { to, msg } of ready.send) io.send(to, msg);
  if (ready.events.length > 0) io.events(ready.events);
  if (ready.rejected.length > 0) io.rejected(ready.rejected);
}

/** Several readies of one core, oldest first, as one: for a shell that writes once for a batch
 *  of calls made while its previous write was under way (IPAM). `persist` folds their persists
 *  (undefined ones left out) into one; messages, events and rejections keep their order; the
 *  deadline is the newest ready's, which holds the core's latest state. */
export function mergeReadies<Msg, Persist, Event>(
  readies: readonly Ready<Msg, Persist, Event>[],
  persist: (ps: Persist[]) => Persist,
): Ready<Msg, Persist, Event> {
  const ps = readies.flatMap((r) => (r.persist === undefined ? [] : [r.persist]));
  return {
    persist: ps.length === 0 ? undefined : persist(ps),
    send: readies.flatMap((r) => r.send),
    events: readies.flatMap((r) => r.events),
    rejected: readies.flatMap((r) => r.rejected),
    next: readies.at(-1)?.next,
  };
}
