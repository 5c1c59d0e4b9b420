// Which of a ready's messages a shell may send before the ready's write is on disk: a leader's
// appends (Raft thesis §10.2.1), so that a commit waits for the leader's fsync and a
// follower's at once rather than one after the other. Safe because a leader counts itself
// towards commitment only once its shell says the entries are written (Raft.appended): an
// entry a crash loses from the leader was never counted on its strength. Only appends of the
// term on disk: one of a term not yet durable could outlive a crash that forgets the term,
// and with it the vote given in that term. (The term and the vote are written together.)

import type { RaftMessage, RaftReady } from './types.ts';

/** `onDisk`: the hard state the last completed write left (not one still being written). */
export function earlySends(ready: RaftReady, onDisk: { term: number }): RaftMessage[] {
  return ready.send.map((s) => s.msg).filter((m) => m.type === 'app' && m.term === onDisk.term);
}
