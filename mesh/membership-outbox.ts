// What one call into the membership core sends. Records to disseminate are gathered by id
// during the call and turned into messages at its end, so each peer gets at most one 'update'
// per call, holding each record as it stands when the call returns (a suspicion refuted later
// in the same call is never sent).

import type { MembershipEvent, Output } from './membership.ts';
import { MAX_RECORDS, type MemberRecord, type MemberState, type MembershipMessage, type Tombstone } from './membership-wire.ts';

/** What the outbox needs to know of the table when it turns ids into messages. */
export interface OutboxView {
  selfId: string;
  /** Every known member and what we believe of it. */
  peers(): Iterable<{ id: string; state: MemberState }>;
  /** The current record for an id, its tombstone if forgotten, or nothing (also for a member
   *  we hold no signed claim of: what we cannot prove, we do not spread). */
  lookup(id: string): { record: MemberRecord } | { tombstone: Tombstone } | undefined;
}

export class Outbox {
  private readonly out: Output = { send: [], events: [], rejected: [] };
  /** Ids whose record goes to every member believed alive or suspect. */
  private readonly live = new Set<string>();
  /** Ids whose record goes to every member we might reach (alive, suspect, dead). */
  private readonly all = new Set<string>();
  private readonly direct = new Map<string, Set<string>>();

  send(to: string, msg: MembershipMessage): void {
    this.out.send.push({ to, msg });
  }

  event(e: MembershipEvent): void {
    this.out.events.push(e);
  }

  reject(from: string, reason: string): void {
    this.out.rejected.push({ from, reason });
  }

  toLive(id: string): void {
    this.live.add(id);
  }

  toAll(id: string): void {
    this.all.add(id);
  }

  to(peer: string, id: string): void {
    let ids = this.direct.get(peer);
    if (!ids) this.direct.set(peer, (ids = new Set()));
    ids.add(id);
  }

  finish(view: OutboxView): Output {
    if (this.live.size === 0 && this.all.size === 0 && this.direct.size === 0) return this.out;
    const byPeer = new Map<string, Set<string>>();
    const add = (to: string, ids: Iterable<string>) => {
      if (to === view.selfId) return;
      for (const id of ids) {
        let set = byPeer.get(to);
        if (!set) byPeer.set(to, (set = new Set()));
        set.add(id);
      }
    };
    for (const { id, state } of view.peers()) {
      if (state === 'alive' || state === 'suspect') add(id, this.live);
      if (state !== 'left') add(id, this.all);
    }
    for (const [to, ids] of this.direct) add(to, ids);
    for (const [to, ids] of byPeer) {
      const records: MemberRecord[] = [];
      const forgotten: Tombstone[] = [];
      for (const id of ids) {
        const found = view.lookup(id);
        if (found && 'record' in found) records.push(found.record);
        else if (found) forgotten.push(found.tombstone);
      }
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
