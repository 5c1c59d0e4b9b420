// The I/O shell around the membership core, beside the replica and IPAM shells: the control
// channel its messages travel on, the disk its incarnation and member table live on, and the
// peer's event log and liveness listeners it reports to. The core decides; this carries out
// its ready (applyReady, mesh/ready.ts): persist (written behind, nothing awaited), send,
// report.
import type { Connection, Libp2p } from '@libp2p/interface';
import { Channel } from '../transport/channel.ts';
import { EventLog } from '../events.ts';
import { errorText, type Logger } from '../log.ts';
import { MEMBERSHIP_PROTOCOL, parseMembershipMessage, type MemberInfo, type MembershipMessage, CONTROL_MAX_FRAME, CONTROL_MAX_QUEUE } from './wire.ts';
import { Membership } from './membership.ts';
import { type Member, type MembershipEvent } from './member.ts';
import { type MembershipPersist, type MembershipReady } from './outbox.ts';
import { type Signer } from './claim.ts';
import { MEMBERSHIP_MEMBER_PREFIX, MEMBERSHIP_SELF_INC_KEY } from '../keyspace.ts';
import type { PeerLiveness } from '../mesh-view.ts';
import { applyReady, type ReadyIo, type Rejection } from '../ready.ts';
import type { Store } from '../store.ts';
import { WriteBehind } from '../write-behind.ts';

/** Incarnations are reserved on disk this many at a time, and the disk holds the bound, not
 *  the incarnation: a restart starts above the bound, so above any incarnation this life
 *  signed, while a flapping peer refuting every second syncs the disk once per 64 refutations
 *  instead of on each (a synced write per refutation was a tenth of a peer's CPU in a 50-peer
 *  flap storm). */
export const INCARNATION_RESERVE = 64;
/** Member records are written in coalesced background batches, unsynced: the table is
 *  relearned from any member within a second of a restart, so a crash losing the last quarter
 *  second of it costs nothing, while one write per event costs a storm of joins dearly. */
const PERSIST_DEBOUNCE_MS = 250;

export type LivenessListener = (id: string, state: PeerLiveness | 'forgotten') => void;

export interface MembershipShellOptions {
  store: Store;
  log: Logger;
  /** Only admitted mesh members may open the control channel. */
  accept(conn: Connection): boolean;
  /** Every event, after it is logged and recorded (the peer keeps dial targets, the replica
   *  starts a repair exchange with a member that (re)appeared). */
  onEvent(e: MembershipEvent): void;
}

export class MembershipShell {
  readonly core: Membership;
  readonly events = new EventLog();
  private readonly o: MembershipShellOptions;
  private readonly log: Logger;
  private control?: Channel;
  /** The incarnation bound on disk (or being written): see INCARNATION_RESERVE. */
  private reservedInc: number;
  private readonly rows: WriteBehind;
  private readonly livenessListeners = new Set<LivenessListener>();
  private readonly io: ReadyIo<MembershipMessage, MembershipPersist, MembershipEvent> = {
    persist: (p) => this.persist(p),
    send: (to, msg) => this.control?.send(to, msg),
    events: (events) => {
      for (const e of events) this.onEvent(e);
    },
    rejected: (rejected) => this.onRejected(rejected),
  };

  private constructor(core: Membership, o: MembershipShellOptions, reservedInc: number) {
    this.core = core;
    this.o = o;
    this.log = o.log;
    this.reservedInc = reservedInc;
    this.rows = new WriteBehind({ store: o.store, log: o.log, what: 'members', delayMs: PERSIST_DEBOUNCE_MS });
  }

  /** The core, restored from disk: a restart is a new life above the persisted incarnation. */
  static async open(self: MemberInfo, signer: Signer, o: MembershipShellOptions): Promise<MembershipShell> {
    const restoredInc = (await o.store.get<number>(MEMBERSHIP_SELF_INC_KEY)) ?? 0;
    const restoredMembers = (await o.store.scan<Member>(MEMBERSHIP_MEMBER_PREFIX)).map((r) => r.value);
    const core = new Membership(self, Date.now(), signer, { inc: restoredInc, members: restoredMembers });
    const shell = new MembershipShell(core, o, restoredInc);
    // Reserve before anything is sent: the core's first incarnation is above the old bound.
    await shell.reserve(true);
    return shell;
  }

  attach(node: Libp2p): void {
    this.control = new Channel(node, {
      protocol: MEMBERSHIP_PROTOCOL,
      maxFrameBytes: CONTROL_MAX_FRAME,
      maxQueueBytes: CONTROL_MAX_QUEUE,
      onMessage: (from, msg) => this.onMessage(from, msg),
      accept: (conn) => this.o.accept(conn),
      onInbound: (from) => this.connected(from),
    }, this.log.child('control'));
  }

  async start(): Promise<void> {
    await this.control?.start();
  }

  async stop(): Promise<void> {
    await this.control?.stop();
    await this.rows.write(false);
  }

  get stats(): Channel['stats'] {
    return this.control?.stats ?? { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, rejected: 0 };
  }

  onLiveness(fn: LivenessListener): () => void {
    this.livenessListeners.add(fn);
    return () => this.livenessListeners.delete(fn);
  }

  tick(now: number): void {
    this.apply(this.core.tick(now));
  }

  connected(id: string): void {
    this.apply(this.core.connected(id, Date.now()));
  }

  /** Dials to `id` keep failing (the dialer's UNREACHABLE_AFTER_FAILURES): the core counts our
   *  silence from it as evidence from now on. */
  unreachable(id: string): void {
    this.apply(this.core.unreachable(id, Date.now()));
  }

  /** The connection to `id` is gone: its stream state goes, and the core takes it as a hint. */
  disconnected(id: string): void {
    this.control?.reset(id);
    this.apply(this.core.disconnected(id, Date.now()));
  }

  /** `weft forget`: the member goes from the table here and, by gossip, everywhere. */
  async forget(id: string): Promise<void> {
    this.apply(this.core.forget(id, Date.now()));
    await this.o.store.del(MEMBERSHIP_MEMBER_PREFIX + id);
  }

  leave(): void {
    this.apply(this.core.leave(Date.now()));
  }

  private onMessage(from: string, raw: unknown): void {
    const msg = parseMembershipMessage(raw);
    if (typeof msg === 'string') {
      this.log.warn('rejected control message', { peer: from, reason: msg });
      return;
    }
    this.apply(this.core.receive(from, msg, Date.now()));
  }

  /** Carries out what the core decided, in the one order (mesh/ready.ts). Nothing here waits
   *  for the disk (see persist), so it all happens in this turn. */
  private apply(ready: MembershipReady): void {
    void applyReady(ready, this.io);
  }

  /** Written behind, never awaited: member rows in a coalesced batch (relearned from any
   *  member within a second of a restart), the incarnation bound renewed well ahead (see
   *  reserve). Neither makes a message wait. */
  private persist(p: MembershipPersist): void {
    for (const [id, m] of p.members) this.rows.set(MEMBERSHIP_MEMBER_PREFIX + id, m ?? undefined);
    if (p.members.size > 0) this.rows.schedule();
    void this.reserve(false, p.inc);
  }

  private onRejected(rejected: readonly Rejection[]): void {
    const first = rejected[0] as Rejection;
    // One line per call (all from one sender): a member sending a table of forgeries must
    // not flood the log; the metric counts every record.
    const more = rejected.length - 1;
    this.log.warn('rejected membership record', { peer: first.from, reason: first.reason, more: more || undefined });
    this.stats.rejected += rejected.length;
  }

  /** Keeps the bound on disk ahead of our incarnation: renewed (synced) once half the
   *  reserve is used, so it is on disk long before the incarnation could reach it. */
  private async reserve(wait: boolean, inc = this.core.self().inc): Promise<void> {
    if (!wait && inc <= this.reservedInc - INCARNATION_RESERVE / 2) return;
    this.reservedInc = inc + INCARNATION_RESERVE;
    const write = this.o.store.put(MEMBERSHIP_SELF_INC_KEY, this.reservedInc).catch((err) => this.log.error('cannot persist incarnation', { err: errorText(err) }));
    if (wait) await write;
  }

  private onEvent(e: MembershipEvent): void {
    const m = e.member;
    const address = m.addrs[0];
    this.events.add({ type: e.type, peer: { id: m.id, name: m.name, address } }, new Date(e.at));
    const level = e.type === 'dead' || e.type === 'suspect' ? 'warn' : 'info';
    this.log[level](`peer ${e.type}`, { peer: m.id, name: m.name, addr: address, inc: m.inc });
    this.o.onEvent(e);
    const state: PeerLiveness | 'forgotten' = e.type === 'forgotten' ? 'forgotten' : m.state;
    for (const fn of this.livenessListeners) {
      try {
        fn(m.id, state);
      } catch (err) {
        this.log.error('liveness listener failed', { err: errorText(err) });
      }
    }
  }
}
