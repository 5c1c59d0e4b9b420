// What one call into the membership core gives back: its ready (mesh/ready.ts). Records to
// disseminate are gathered by id during the call and turned into messages at its end, so each
// peer gets at most one 'update' per call, holding each record as it stands when the call
// returns (a suspicion refuted later in the same call is never sent). News to spread by gossip
// is handed back to the core (`news`), which queues it and chooses where it goes; pings and acks
// carry what the core's queue gives them (`finish`). What changed of a member is what the shell
// writes (`persist`), as the events report it.

import type { Ready } from '../ready.ts';
import type { Member, MembershipEvent } from './member.ts';
import { MAX_RECORDS, type MemberRecord, type MemberState, type MembershipMessage, type Tombstone } from './wire.ts';

/** What membership keeps on disk, as one call changed it. Both parts are written behind (see
 *  ReadyIo.persist): the table is relearned from any member within a second of a restart, and
 *  the shell keeps a bound on the incarnation on disk well ahead of it. */
export interface MembershipPersist {
  /** Our incarnation now: the shell's bound on disk must stay above it (a restart starts above
   *  the bound, so above anything this life signed). */
  inc: number;
  /** Members whose record changed, as they now stand; null: forgotten, its row goes (so it does
   *  not come back from our own disk at the next restart). */
  members: Map<string, Member | null>;
}

export type MembershipReady = Ready<MembershipMessage, MembershipPersist, MembershipEvent>;

/** What the outbox needs to know of the table when it turns ids into messages. */
export interface OutboxView {
  selfId: string;
  /** Our incarnation now. */
  inc(): number;
  /** Every known member and what we believe of it. */
  peers(): Iterable<{ id: string; state: MemberState }>;
  /** The current record for an id, its tombstone if forgotten, or nothing (also for a member
   *  we hold no signed claim of: what we cannot prove, we do not spread). */
  lookup(id: string): { record: MemberRecord } | { tombstone: Tombstone } | undefined;
}

export class Outbox {
  private readonly out: MembershipReady = { persist: undefined, send: [], events: [], rejected: [], next: undefined };
  /** Rows to write: each member's record as of its last event in the call. */
  private readonly rows = new Map<string, Member | null>();
  /** Ids whose record the core spreads by gossip. */
  private readonly gossiped = new Set<string>();
  /** Ids whose record goes to every member we might reach (alive, suspect, dead). */
  private readonly all = new Set<string>();
  private readonly direct = new Map<string, Set<string>>();

  send(to: string, msg: MembershipMessage): void {
    this.out.send.push({ to, msg });
  }

  event(e: MembershipEvent): void {
    this.out.events.push(e);
    this.rows.set(e.member.id, e.type === 'forgotten' ? null : e.member);
  }

  reject(from: string, reason: string): void {
    this.out.rejected.push({ from, reason });
  }

  /** News: the core queues it for piggybacking and sends it to a few members at once. */
  gossip(id: string): void {
    this.gossiped.add(id);
  }

  news(): string[] {
    return [...this.gossiped];
  }

  toAll(id: string): void {
    this.all.add(id);
  }

  to(peer: string, id: string): void {
    let ids = this.direct.get(peer);
    if (!ids) this.direct.set(peer, (ids = new Set()));
    ids.add(id);
  }

  /** `piggyback`: ids of the records (or tombstones) to attach to one outgoing ping or ack.
   *  `incRose`: our incarnation rose in the call; `next`: the core's next deadline. */
  finish(view: OutboxView, piggyback: () => string[], incRose: boolean, next: number | undefined): MembershipReady {
    this.out.next = next;
    if (incRose || this.rows.size > 0) this.out.persist = { inc: view.inc(), members: this.rows };
    for (const s of this.out.send) {
      if (s.msg.t !== 'hb') continue;
      const { records, forgotten } = resolve(view, piggyback());
      if (records.length > 0 || forgotten.length > 0) s.msg = { ...s.msg, ...(records.length ? { records } : {}), ...(forgotten.length ? { forgotten } : {}) };
    }
    if (this.all.size === 0 && this.direct.size === 0) return this.out;
    const byPeer = new Map<string, Set<string>>();
    const add = (to: string, ids: Iterable<string>) => {
      if (to === view.selfId) return;
      for (const id of ids) {
        let set = byPeer.get(to);
        if (!set) byPeer.set(to, (set = new Set()));
        set.add(id);
      }
    };
    if (this.all.size > 0) for (const { id, state } of view.peers()) if (state !== 'left') add(id, this.all);
    for (const [to, ids] of this.direct) add(to, ids);
    for (const [to, ids] of byPeer) {
      const { records, forgotten } = resolve(view, ids);
      this.sendChunked(to, 'update', records, forgotten);
    }
    return this.out;
  }

  /** Splits lists to the decoder's bound; a mesh of ~50 peers always fits in one message. */
  sendChunked(to: string, t: 'members' | 'update', records: MemberRecord[], forgotten: Tombstone[]): void {
    for (let i = 0; i < Math.max(records.length, forgotten.length); i += MAX_RECORDS) {
      this.send(to, { t, records: records.slice(i, i + MAX_RECORDS), forgotten: forgotten.slice(i, i + MAX_RECORDS) });
    }
  }
}

/** The records and tombstones for `ids` as they stand now; ids we hold no proof of are left out. */
function resolve(view: OutboxView, ids: Iterable<string>): { records: MemberRecord[]; forgotten: Tombstone[] } {
  const records: MemberRecord[] = [];
  const forgotten: Tombstone[] = [];
  for (const id of ids) {
    const found = view.lookup(id);
    if (found && 'record' in found) records.push(found.record);
    else if (found) forgotten.push(found.tombstone);
  }
  return { records, forgotten };
}
