// IPAM, the pure core: who owns which part of the container range, and which addresses this peer
// has handed out. Messages, ticks and API calls in; state, messages and completed allocations out.
// No clock, timer, socket or randomness of its own (ARCHITECTURE.md, principle 1).
//
// The model, in one paragraph. The range is cut into ranges owned by peers (ring.ts, a CRDT
// gossiped whole as its own message type). A peer allocates only from what its own view says it
// owns, so allocation is local and needs no message. A peer that runs out asks the peer with the
// most free space, which gives it half of its largest free run by writing the new owner into its
// ring and gossiping it. The first ring is decided by a majority of the peers expected at launch
// (bootstrap.ts); a dead peer's space is taken over through a removal record that must be
// acknowledged by every other known peer first (removal.ts). Reservations tie an identity
// to an address across hosts (reservations.ts).
//
// Why ownership is never shared: a peer believes it owns a range only if (a) it created the ring
// that gave it, (b) the owner gave it (the owner's view already shows the new owner, so the giver
// stopped believing before anyone else started), or (c) it is the settled heir of a removed peer.
// Versions only grow, so a peer never goes back to an older owner; tokens are only inserted by the
// owner of the range they cut, and rings travel whole, so an owner always knows where its range
// ends. Allocations happen only inside a believed range, and a range is given away only where
// nothing is allocated. The shell keeps this across crashes by persisting export() before it
// sends anything or acknowledges an allocation (IpamReady.persist, mesh/ready.ts).
//
// The shell must run this core on every peer, also on peers that never host a container: they
// vote in the bootstrap and acknowledge removals, and a peer that never answers holds both up.
//
// Why the ring is its own message type and not entries in mesh/replication/replica.ts: replica entries are
// per-writer and arrive independently and out of order, but a transfer is only safe if whoever
// learns it also learns the splits made before it (otherwise the new owner of [a, c) would not
// know that [b, c) was already given away); tokens change writer at every transfer; and a removed
// peer's replicated entries are dropped wholesale (Replica.dropOwner), erasing history the ring
// still needs. A whole ring is small (tens of KiB for a hundred peers), which is what Weave sends.

import { formatIPv4 } from '../ipv4.ts';
import type { Ready } from '../ready.ts';
import { mulberry32 } from '../seeded-random.ts';
import { Bootstrap, type BootstrapMessage, type BootstrapStep, type GenesisValue, genesisId } from './bootstrap.ts';
import { type Cidr, DEFAULT_IPAM_RANGE, parseCidr } from './cidr.ts';
import { fnv1a64 } from './hash.ts';
import { Removals } from './removal.ts';
import { MAX_IDENTITY_LENGTH, Reservations, type ReservationWire } from './reservations.ts';
import { MAX_TOKENS, Ring } from './ring.ts';
import { type Allocation, Space } from './space.ts';
import {
  type IpamMessage,
  type IpamSnapshot,
  MAX_HANDLE_LENGTH,
  MAX_ID_LENGTH,
  MAX_RES_PER_MESSAGE,
  type StateMessage,
  type WantMessage,
  parseIpamSnapshot,
} from './wire.ts';


/** Anti-entropy period: one full state to one random live peer. Same as replication's (ANTI_ENTROPY_MS), so a
 *  healed partition converges within a few seconds, at one ring (~tens of KiB) per second. */
export const GOSSIP_INTERVAL_MS = 1000;
/** A request for space unanswered this long is sent to the next-best peer. A donation is one
 *  round trip (milliseconds on a LAN); half a second covers a loaded peer without leaving a
 *  container waiting long when its first choice is gone. */
export const WANT_RETRY_MS = 500;

export interface PeerView {
  /** Peers membership believes alive (suspect ones included: not yet proven dead). */
  live: ReadonlySet<string>;
  /** Every peer membership knows of, whatever its state (dead ones included), except forgotten
   *  ones: a removal waits for each of them to acknowledge (removal.ts). A dead peer that
   *  will never come back holds a removal up until it is removed too, or, if it owns no space,
   *  forgotten (`weft forget`). */
  known: ReadonlySet<string>;
}

export interface IpamOptions {
  /** This peer's id (the libp2p peer id in the shell). */
  self: string;
  /** The container range, the same on every peer (default DEFAULT_IPAM_RANGE). */
  range?: string;
  /** Peers expected to start together when the mesh is new (`--ipalloc-init consensus=N`,
   *  default 1 + the number of --peers given at launch); a majority of them decides the first
   *  ring. Never matters once a ring exists. See bootstrap.ts. */
  expectedPeers?: number;
  /** Uniform in [0, 1): picks gossip targets and bootstrap jitter (default: seeded by `self`). */
  random?: () => number;
}

export type IpamEvent =
  | { type: 'ring-created'; members: string[] }
  | { type: 'ring-adopted'; from: string }
  | { type: 'donated'; to: string; first: string; size: number }
  | { type: 'peer-removed'; dead: string; heir: string; tokens: number }
  /** This peer was removed by rmpeer elsewhere: it must stop using its addresses. */
  | { type: 'evicted'; by: string[] }
  /** Something a correct mesh never produces (two rings met, a token owned twice, an allocation
   *  outside owned space): log it as an error, with the detail. */
  | { type: 'conflict'; detail: string }
  /** An allocation that was pending is done: hand the address to the container. */
  | { type: 'allocated'; handle: string; addr: string }
  /** A pending allocation that will never be done (this peer was removed). */
  | { type: 'allocation-refused'; handle: string; reason: string };

/** IPAM's state is one record, written whole: 'state' asks the shell to write export() as it
 *  stands when the write is made, synced, BEFORE any of the ready's messages or allocations
 *  leave. That state includes the ready's decisions (and perhaps later ones: persisting newer
 *  state before releasing older decisions keeps the order). This is what keeps addresses
 *  unique across kill -9: a restarted peer never forgets an allocation or a donation that
 *  someone else may already have acted on. */
export type IpamPersist = 'state';

export type IpamReady = Ready<IpamMessage, IpamPersist, IpamEvent>;

export type AllocateResult =
  | { status: 'allocated'; addr: string; out: IpamReady }
  /** Waiting for space, a ring, or a reserved address; done later, as an 'allocated' event. */
  | { status: 'pending'; reason: string; out: IpamReady }
  | { status: 'refused'; reason: string; out: IpamReady };

export interface AllocateOptions {
  /** The container's identity; its reserved address, or a new one reserved for it. */
  identity?: string;
  /** If the identity's reserved address is owned by a peer that stays unreachable this long,
   *  allocate a new address and move the reservation to it (default: wait until that peer is
   *  back or removed, so the identity never changes address). */
  fallbackAfterMs?: number;
}

export interface RemovalStatus {
  dead: string;
  heir: string | null;
  /** Peers whose acknowledgement the removal still waits for (empty once done). */
  waitingFor: string[];
}

export interface IpamStatus {
  range: string;
  state: 'ready' | 'bootstrapping' | 'evicted';
  /** One line for `weft status ipam`. */
  message: string;
  /** Allocatable addresses in the range (network and broadcast excluded). */
  size: number;
  owned: number;
  free: number;
  inUse: number;
  /** Addresses owned here and reserved for an identity, not in use. Counted in `free`. */
  reserved: number;
  /** Addresses owned by peers not in the live set. */
  unreachable: number;
  peers: number;
  tokens: number;
  pending: number;
  removals: RemovalStatus[];
}

interface Pending {
  identity: string | null;
  since: number;
  fallbackAfterMs: number | undefined;
  lastAsk: number;
  reason: string;
}

const EMPTY_VIEW: PeerView = { live: new Set(), known: new Set() };

export class Ipam {
  readonly self: string;
  readonly cidr: Cidr;
  private readonly random: () => number;
  private readonly boot: Bootstrap;
  private ring: Ring | null = null;
  private readonly removals: Removals;
  private readonly reservations = new Reservations();
  private readonly space: Space;
  private readonly hints = new Map<string, { free: number; seq: number }>();
  private hintSeq: number;
  private readonly pending = new Map<string, Pending>();
  private view: PeerView = EMPTY_VIEW;
  private lastGossip = -Infinity;
  private lastWant: { to: string; at: number } | null = null;
  /** The earliest time a waiting allocation is retried for time's sake (see nextDeadline). */
  private retryAt = Infinity;
  private readonly asked = new Map<string, number>();
  /** Own state changed by our own decision: broadcast it at the end of the call. */
  private dirty = false;
  private ringChanged = false;
  private resOut: ReservationWire[] = [];
  private evictedReported = false;

  constructor(opts: IpamOptions, snap?: IpamSnapshot) {
    if (typeof opts.self !== 'string' || opts.self.length === 0 || opts.self.length > MAX_ID_LENGTH) throw new RangeError('ipam: bad peer id');
    const cidr = parseCidr(opts.range ?? DEFAULT_IPAM_RANGE);
    if (typeof cidr === 'string') throw new RangeError(`ipam: ${cidr}`);
    this.self = opts.self;
    this.cidr = cidr;
    this.random = opts.random ?? mulberry32(Number.parseInt(fnv1a64(opts.self).slice(0, 8), 16));
    this.space = new Space(cidr.size);
    this.removals = new Removals();
    this.hintSeq = 0;
    if (snap === undefined) {
      this.boot = new Bootstrap(this.self, opts.expectedPeers ?? 1);
      return;
    }
    if (snap.self !== this.self) throw new Error(`ipam: stored state belongs to peer ${snap.self}, not ${this.self} (wrong data directory?)`);
    if (snap.range !== cidr.text) {
      throw new Error(`ipam: stored state is for range ${snap.range} but this peer was launched with ${cidr.text}; relaunch with --ipalloc-range ${snap.range}`);
    }
    this.boot = new Bootstrap(this.self, opts.expectedPeers ?? snap.expectedPeers, snap.acceptor);
    if (snap.ring !== null) {
      const ring = Ring.fromWire(cidr.size, snap.ring);
      if (typeof ring === 'string') throw new Error(`ipam: stored ring is corrupt: ${ring}`);
      this.ring = ring;
      this.boot.settled();
    }
    this.removals.merge(snap.removed);
    this.reservations.merge(snap.reservations);
    for (const [handle, off, identity] of snap.allocations) this.space.add(handle, off, identity);
    this.hintSeq = snap.hintSeq + 1;
    this.ringChanged = true;
    this.refreshSpace([]);
  }

  /** Rebuilds the core from what export() returned (already JSON-decoded). */
  static restore(raw: unknown, opts: IpamOptions): Ipam {
    const snap = parseIpamSnapshot(raw);
    if (typeof snap === 'string') throw new Error(`ipam: stored state is corrupt: ${snap}`);
    return new Ipam(opts, snap);
  }

  export(): IpamSnapshot {
    return {
      v: 1,
      self: this.self,
      range: this.cidr.text,
      expectedPeers: this.boot.expected,
      ring: this.ring?.toWire() ?? null,
      removed: this.removals.toWire(),
      reservations: this.reservations.all(),
      allocations: this.space.all().map((a) => [a.handle, a.off, a.identity]),
      acceptor: { promised: this.boot.acceptor.promised, accepted: this.boot.acceptor.accepted },
      hintSeq: this.hintSeq,
    };
  }

  // ---- inputs -------------------------------------------------------------------------------

  /** Call every membership tick (100 ms) with membership's current view. */
  tick(now: number, view: PeerView): IpamReady {
    this.view = view;
    const out = this.output(now);
    if (this.evicted()) return this.finish(now, out);
    if (this.ring === null && this.boot.want) this.applyBoot(this.boot.tick(now, this.liveList(), this.random), out);
    if (now - this.lastGossip >= GOSSIP_INTERVAL_MS) {
      this.lastGossip = now;
      if (this.ring !== null || this.removals.size > 0) {
        const targets = this.liveList().filter((p) => p !== this.self);
        if (targets.length > 0) {
          const to = targets[Math.floor(this.random() * targets.length)] as string;
          out.send.push({ to, msg: this.stateMessage(false) });
        }
      }
    }
    return this.finish(now, out);
  }

  /** A message from peer `from`, validated by parseIpamMessage. */
  receive(from: string, msg: IpamMessage, now: number): IpamReady {
    const out = this.output(now);
    if (from === this.self) return out;
    if (msg.range !== this.cidr.text) {
      out.rejected.push({
        from,
        reason: `peer uses IPAM range ${msg.range} and this peer ${this.cidr.text}: launch every peer with the same --ipalloc-range`,
      });
      return out;
    }
    if (this.removals.has(from)) {
      // Once we acked its removal, nothing it says may reach us (removal.ts).
      out.rejected.push({ from, reason: 'message from a peer removed by rmpeer; ignored' });
      return out;
    }
    switch (msg.t) {
      case 'state':
        this.onState(from, msg, out);
        break;
      case 'res':
        this.mergeReservations(msg.items, out);
        break;
      case 'want':
        this.onWant(from, msg, out);
        break;
      case 'boot':
        this.onBoot(from, msg.m, now, out);
        break;
    }
    return this.finish(now, out);
  }

  /** Allocates an address for `handle` (a container id). Idempotent: the same handle gets the
   *  same address. With an identity, the address reserved for it, wherever it was last used. */
  allocate(handle: string, now: number, opts: AllocateOptions = {}): AllocateResult {
    const out = this.output(now);
    const identity = opts.identity ?? null;
    if (typeof handle !== 'string' || handle.length === 0 || handle.length > MAX_HANDLE_LENGTH) {
      return { status: 'refused', reason: `container handle must be 1-${MAX_HANDLE_LENGTH} characters`, out };
    }
    if (identity !== null && (identity.length === 0 || identity.length > MAX_IDENTITY_LENGTH)) {
      return { status: 'refused', reason: `identity must be 1-${MAX_IDENTITY_LENGTH} characters`, out };
    }
    if (this.evicted()) return { status: 'refused', reason: this.evictedReason(), out };
    const have = this.space.byHandleGet(handle);
    if (have !== undefined) return { status: 'allocated', addr: this.addr(have.off), out };
    if (!this.pending.has(handle)) {
      this.pending.set(handle, { identity, since: now, fallbackAfterMs: opts.fallbackAfterMs, lastAsk: -Infinity, reason: 'queued' });
    }
    this.finish(now, out);
    const i = out.events.findIndex((e) => e.type === 'allocated' && e.handle === handle);
    if (i >= 0) {
      const [done] = out.events.splice(i, 1);
      return { status: 'allocated', addr: (done as { addr: string }).addr, out };
    }
    const p = this.pending.get(handle);
    if (p === undefined) {
      const r = out.events.find((e) => e.type === 'allocation-refused' && e.handle === handle);
      return { status: 'refused', reason: r?.type === 'allocation-refused' ? r.reason : 'refused', out };
    }
    return { status: 'pending', reason: p.reason, out };
  }

  /** Frees a handle's address (or cancels its pending allocation). Its reservation stays. */
  release(handle: string, now: number): { addr: string | null; out: IpamReady } {
    const out = this.output(now);
    let addr: string | null = null;
    if (this.pending.delete(handle)) return { addr, out: this.finish(now, out) };
    const a = this.space.remove(handle);
    if (a !== undefined) {
      addr = this.addr(a.off);
      out.persist = 'state';
    }
    return { addr, out: this.finish(now, out) };
  }

  /** Forgets an identity's reservation everywhere (its service was deleted). */
  unreserve(identity: string, now: number): IpamReady {
    const out = this.output(now);
    if (this.reservations.get(identity) !== undefined) {
      this.resOut.push(this.reservations.set(identity, null, this.self));
      out.persist = 'state';
    }
    return this.finish(now, out);
  }

  /** `weft rmpeer`: starts taking over the space of `dead`, which must be gone for good. The
   *  takeover completes (here or at a lower-id claimer) once every known peer acknowledged. */
  rmpeer(dead: string, now: number): { status: 'started' | 'done' | 'refused'; reason: string; out: IpamReady } {
    const out = this.output(now);
    if (this.evicted()) return { status: 'refused', reason: this.evictedReason(), out };
    if (this.ring === null) return { status: 'refused', reason: 'this peer has no IPAM ring yet, so there is no space to take over', out };
    if (dead === this.self) return { status: 'refused', reason: 'a peer cannot remove itself; use weft reset to hand its space to others', out };
    if (this.view.live.has(dead)) {
      return { status: 'refused', reason: `peer ${dead} is alive: rmpeer only takes the space of a peer that is gone for good (stop it, or wait until it is seen dead)`, out };
    }
    if (!this.view.known.has(dead) && !this.ring.owners().has(dead) && !this.removals.has(dead)) {
      return { status: 'refused', reason: `no peer ${dead} is known to this peer or owns address space`, out };
    }
    const heir = this.removals.heirOf(dead);
    if (heir !== null) return { status: 'done', reason: `peer ${dead} was already removed; ${heir} took its space`, out };
    if (this.removals.claim(dead, this.self)) {
      this.dirty = true;
      out.persist = 'state';
    }
    this.finish(now, out);
    const h = this.removals.heirOf(dead);
    if (h !== null) return { status: 'done', reason: `removed ${dead}; ${h} took its space`, out };
    const waiting = this.removalStatus(dead).waitingFor;
    const until =
      waiting.length === 0
        ? ''
        : ` once ${waiting.join(', ')} ${waiting.length === 1 ? 'has' : 'have'} acknowledged (peers that are down or cut off must come back, or be removed too)`;
    return { status: 'started', reason: `removing ${dead}: ${this.removals.winner(dead) ?? 'nobody'} takes its space${until}`, out };
  }

  /** `weft reset`: gives every range this peer owns to the live peers, so the space is not lost
   *  with it. Only the owner gives away (a plain donation), and only when nothing here is in use
   *  or waiting, so no address can end up with two holders. */
  handOff(now: number): { status: 'done' | 'refused'; reason: string; out: IpamReady } {
    const out = this.output(now);
    if (this.evicted() || this.ring === null) return { status: 'done', reason: 'this peer owns no address space', out };
    if (this.space.inUse() > 0 || this.pending.size > 0) {
      return { status: 'refused', reason: `${this.space.inUse()} address(es) still in use here: detach the containers first`, out };
    }
    const others = this.liveList().filter((p) => p !== this.self).sort();
    if (others.length === 0) return { status: 'refused', reason: 'no live peer to hand the address space to: it stays with this peer', out };
    let i = 0;
    let given = 0;
    for (const [start, end] of [...this.space.mine()]) {
      this.give(others[i++ % others.length] as string, start, end, out);
      given += end - start;
    }
    // Everyone hears of it at once, not at the next anti-entropy round.
    for (const p of others) out.send.push({ to: p, msg: this.stateMessage(false) });
    this.finish(now, out);
    return { status: 'done', reason: `handed ${given} addresses to ${others.length} peer(s)`, out };
  }

  // ---- queries ------------------------------------------------------------------------------

  lookup(handle: string): string | undefined {
    const a = this.space.byHandleGet(handle);
    return a === undefined ? undefined : this.addr(a.off);
  }

  allocations(): { handle: string; addr: string; identity: string | null }[] {
    return this.space.all().map((a) => ({ handle: a.handle, addr: this.addr(a.off), identity: a.identity }));
  }

  /** The address reserved for an identity, if any. */
  reservation(identity: string): string | undefined {
    const off = this.reservations.get(identity);
    return off === undefined ? undefined : this.addr(off);
  }

  /** The address reserved for `identity` when it lies in space owned by another peer that is
   *  not live: the owner cannot hand it over, and a container fenced by the scheduler (its task
   *  has an epoch; of two copies the newer wins) may use it without the owner. Nobody else is
   *  ever given it: every owner, this one's successor after `weft rmpeer` included, keeps a
   *  reserved address for its identity. Undefined when the owner is this peer or live (then
   *  allocate() gets it, moving it here). */
  borrowable(identity: string): string | undefined {
    const off = this.reservations.get(identity);
    if (off === undefined || this.ring === null || !this.space.allocatable(off)) return undefined;
    const owner = this.ring.ownerOf(off);
    if (owner === undefined || owner === this.self || this.view.live.has(owner)) return undefined;
    return this.addr(off);
  }

  /** Ranges this peer believes it owns, as absolute addresses [first, end), for routes and tests. */
  ownedRanges(): Array<[number, number]> {
    if (this.evicted()) return [];
    return this.space.mine().map(([s, e]) => [this.cidr.base + s, this.cidr.base + e]);
  }

  /** Peers whose removal (rmpeer) has settled: gone for good. Cheaper than status(). */
  removedPeers(): string[] {
    return this.removals.ids().filter((d) => this.removals.heirOf(d) !== null);
  }

    hasRing(): boolean {
    return this.ring !== null;
  }

  /** A checksum of the ring, removals and reservations: equal on peers that converged. */
  stateHash(): string {
    return `${this.hash()}/${this.reservations.hash()}`;
  }

  isPending(handle: string): boolean {
    return this.pending.has(handle);
  }

  status(view: PeerView = this.view): IpamStatus {
    const size = Math.max(0, this.cidr.size - 2);
    const removals = this.removals.ids().map((d) => this.removalStatus(d, view));
    const base = { range: this.cidr.text, size, pending: this.pending.size, removals };
    if (this.evicted()) {
      return { ...base, state: 'evicted', message: this.evictedReason(), owned: 0, free: 0, inUse: this.space.inUse(), reserved: 0, unreachable: 0, peers: 0, tokens: 0 };
    }
    if (this.ring === null) {
      const { quorum, agreed } = this.boot.progress();
      const message = this.boot.want
        ? `no address space yet: waiting for ${quorum} of the ${this.boot.expected} peers expected at launch to agree on the first ring (agreed so far: ${agreed.join(', ') || 'none'}); start more of them, or relaunch with a smaller --ipalloc-init consensus count if they will never come`
        : 'no address space yet: the ring is created at the first allocation, or learnt from any peer that has it';
      return { ...base, state: 'bootstrapping', message, owned: 0, free: 0, inUse: this.space.inUse(), reserved: 0, unreachable: 0, peers: 0, tokens: 0 };
    }
    const owned = this.space.owned();
    const inUse = this.space.inUse();
    let reserved = 0;
    for (const off of this.reservations.addresses()) if (this.space.contains(off) && this.space.at(off) === undefined && this.space.allocatable(off)) reserved++;
    let unreachable = 0;
    const sizes = this.ring.sizes();
    for (const [peer, n] of sizes) if (peer !== this.self && !view.live.has(peer)) unreachable += n;
    const waiting = removals.filter((r) => r.heir === null);
    const message =
      waiting.length > 0
        ? `removing ${waiting.map((r) => `${r.dead} (waiting for ${r.waitingFor.join(', ') || 'the heir'})`).join('; ')}`
        : this.pending.size > 0
          ? `${this.pending.size} allocation(s) waiting: ${[...this.pending.values()][0]?.reason}`
          : 'ready';
    return { ...base, state: 'ready', message, owned, free: owned - inUse, inUse, reserved, unreachable, peers: sizes.size, tokens: this.ring.length };
  }

  // ---- message handling ---------------------------------------------------------------------

  private onState(from: string, msg: StateMessage, out: IpamReady): void {
    // An answer from the peer we asked for space: if it gave none, ask the next one now.
    if (this.lastWant?.to === from) this.lastWant = null;
    if (msg.ring !== null) {
      const theirs = Ring.fromWire(this.cidr.size, msg.ring);
      if (typeof theirs === 'string') {
        out.rejected.push({ from, reason: `bad ring: ${theirs}` });
        return;
      }
      if (this.ring === null) {
        this.ring = theirs;
        this.boot.settled();
        this.ringChanged = true;
        out.persist = 'state';
        out.events.push({ type: 'ring-adopted', from });
      } else if (theirs.genesis !== this.ring.genesis) {
        out.events.push({
          type: 'conflict',
          detail: `peer ${from} has an IPAM ring created independently of ours (genesis ${theirs.genesis}, ours ${this.ring.genesis}): the mesh was started in separate groups with a --ipalloc-init consensus count smaller than the number of peers that started; addresses may be duplicated between the groups. Reset the peers of one group (weft reset) so they rejoin this ring`,
        });
        return;
      } else {
        const m = this.ring.merge(theirs);
        for (const c of m.conflicts) out.events.push({ type: 'conflict', detail: `ring merge with ${from}: ${c}` });
        if (m.changed) {
          this.ringChanged = true;
          out.persist = 'state';
        }
      }
    }
    const rm = this.removals.merge(msg.removed);
    if (rm.changed) out.persist = 'state';
    for (const [peer, free, seq] of msg.hints) {
      if (peer === this.self) continue;
      const cur = this.hints.get(peer);
      if (peer === from || cur === undefined || seq > cur.seq) this.hints.set(peer, { free, seq });
    }
    const replyState = msg.reply !== true && (this.hash() !== msg.hash || this.reservations.hash() !== msg.resHash);
    if (replyState) out.send.push({ to: from, msg: this.stateMessage(true) });
    if (this.reservations.hash() !== msg.resHash) for (const m of this.resMessages(this.reservations.all())) out.send.push({ to: from, msg: m });
  }

  private mergeReservations(items: readonly ReservationWire[], out: IpamReady): void {
    const ok = items.filter(([, addr]) => addr === null || this.space.allocatable(addr));
    if (this.reservations.merge(ok).length > 0) out.persist = 'state';
  }

  private onWant(from: string, msg: WantMessage, out: IpamReady): void {
    if (this.evicted()) return;
    if (this.ring === null) {
      // Not yet: answering at once lets the asker try the next peer instead of waiting.
      out.send.push({ to: from, msg: this.stateMessage(true) });
      return;
    }
    this.refreshSpace(out.events);
    if (msg.addr !== undefined) {
      const off = msg.addr;
      if (
        this.space.allocatable(off) &&
        this.space.contains(off) &&
        this.space.at(off) === undefined &&
        !this.reservations.reservedForOther(off, msg.identity) &&
        !this.pendingFor(msg.identity)
      ) {
        this.give(from, off, off + 1, out);
      }
    } else {
      const run = this.space.largestFreeRun(this.reservations.addresses());
      // Space goes only to peers membership knows as live: whoever holds the mesh key could
      // otherwise mint identities and drain the range, each asking for half of what is left.
      // A joiner asks again (WANT_RETRY_MS) once membership has seen it, a heartbeat later.
      if (run !== undefined && this.view.live.has(from) && this.freeForOthers() > this.pendingFresh()) {
        const n = Math.max(1, Math.floor((run[1] - run[0]) / 2));
        // The range's broadcast offset is never allocated; handing it along saves a token.
        const end = run[1] === this.cidr.size - 1 && this.space.contains(this.cidr.size - 1) ? this.cidr.size : run[1];
        this.give(from, run[1] - n, end, out);
      }
    }
    this.updateHint();
    out.send.push({ to: from, msg: this.stateMessage(false) });
  }

  private give(to: string, start: number, end: number, out: IpamReady): void {
    const ring = this.ring as Ring;
    if (ring.length + ring.splitsFor(start, end) > MAX_TOKENS) {
      out.events.push({ type: 'conflict', detail: `cannot give space to ${to}: the ring is at its limit of ${MAX_TOKENS} tokens` });
      return;
    }
    ring.give(this.self, to, start, end);
    this.ringChanged = true;
    this.dirty = true;
    out.persist = 'state';
    this.refreshSpace(out.events);
    out.events.push({ type: 'donated', to, first: this.addr(start), size: end - start });
  }

  private onBoot(from: string, m: BootstrapMessage, now: number, out: IpamReady): void {
    if (this.ring !== null) {
      // The decision is made: answer any bootstrap message with the ring itself.
      out.send.push({ to: from, msg: this.stateMessage(false) });
      return;
    }
    this.applyBoot(this.boot.receive(from, m, now, this.liveList(), this.random), out);
  }

  private applyBoot(step: BootstrapStep, out: IpamReady): void {
    if (step.persist) out.persist = 'state';
    for (const s of step.send) out.send.push({ to: s.to, msg: { t: 'boot', v: 1, range: this.cidr.text, m: s.msg } });
    if (step.chosen !== null && this.ring === null) this.createRing(step.chosen, out);
  }

  private createRing(value: GenesisValue, out: IpamReady): void {
    this.ring = Ring.create(this.cidr.size, genesisId(value), value.members);
    this.boot.settled();
    this.ringChanged = true;
    this.dirty = true;
    out.persist = 'state';
    out.events.push({ type: 'ring-created', members: [...value.members].sort() });
  }

  // ---- the end of every call ----------------------------------------------------------------

  private finish(now: number, out: IpamReady): IpamReady {
    if (this.evicted()) {
      if (!this.evictedReported) {
        this.evictedReported = true;
        out.events.push({ type: 'evicted', by: this.removals.claimers(this.self) });
      }
      for (const handle of this.pending.keys()) out.events.push({ type: 'allocation-refused', handle, reason: this.evictedReason() });
      this.pending.clear();
      out.next = undefined;
      return out;
    }
    this.ackRemovals();
    this.settleRemovals(out);
    this.refreshSpace(out.events);
    this.servePending(now, out);
    if (this.dirty) {
      this.dirty = false;
      out.persist = 'state';
      this.updateHint();
      const already = new Set(out.send.filter((s) => s.msg.t === 'state').map((s) => s.to));
      const msg = this.stateMessage(false);
      for (const to of this.liveList()) if (to !== this.self && !already.has(to)) out.send.push({ to, msg });
    }
    if (this.resOut.length > 0) {
      const msgs = this.resMessages(this.resOut);
      this.resOut = [];
      out.persist = 'state';
      for (const to of this.liveList()) if (to !== this.self) for (const m of msgs) out.send.push({ to, msg: m });
    }
    out.next = this.nextDeadline(now);
    return out;
  }

  /** An empty ready, carrying the deadline as it stands (a call that returns before `finish`
   *  changed nothing that moves it). */
  private output(now: number): IpamReady {
    return { persist: undefined, send: [], events: [], rejected: [], next: this.nextDeadline(now) };
  }

  /** When a tick next has work for time's sake (Ready.next): the anti-entropy round while there
   *  is anything to gossip, the bootstrap's deadline while it proposes, and the retries of
   *  allocations waiting on a timer (servePending notes the earliest). Waits on input (a
   *  donation, a peer coming back, a release) need no tick. */
  private nextDeadline(now: number): number | undefined {
    if (this.evicted()) return undefined;
    let next = this.ring !== null || this.removals.size > 0 ? this.lastGossip + GOSSIP_INTERVAL_MS : Infinity;
    if (this.ring === null) next = Math.min(next, this.boot.nextDeadline());
    if (this.pending.size > 0) next = Math.min(next, this.retryAt);
    return next === Infinity ? undefined : Math.max(next, now);
  }

  private ackRemovals(): void {
    for (const dead of this.removals.pending()) {
      if (dead !== this.self && this.removals.ack(dead, this.self)) this.dirty = true;
    }
  }

  /** Peers whose acknowledgement a removal of `dead` waits for. */
  private requiredAcks(dead: string, view: PeerView = this.view): string[] {
    const need = new Set<string>(view.known);
    for (const p of this.ring?.owners() ?? []) need.add(p);
    for (const p of this.removals.claimers(dead)) need.add(p);
    for (const p of this.removals.acks(dead)) need.add(p);
    const acks = this.removals.acks(dead);
    return [...need].filter((p) => p !== this.self && p !== dead && !this.removals.has(p) && !acks.has(p)).sort();
  }

  private removalStatus(dead: string, view: PeerView = this.view): RemovalStatus {
    const heir = this.removals.heirOf(dead);
    return { dead, heir, waitingFor: heir === null ? this.requiredAcks(dead, view) : [] };
  }

  private settleRemovals(out: IpamReady): void {
    if (this.ring === null) return;
    for (const dead of this.removals.pending()) {
      if (dead === this.self || this.removals.winner(dead) !== this.self) continue;
      if (this.requiredAcks(dead).length > 0) continue;
      const n = this.ring.takeOver(dead, this.self);
      this.removals.done(dead, this.self);
      this.ringChanged = true;
      this.dirty = true;
      out.persist = 'state';
      out.events.push({ type: 'peer-removed', dead, heir: this.self, tokens: n });
    }
  }

  private refreshSpace(events: IpamEvent[]): void {
    if (!this.ringChanged && this.ring !== null) return;
    this.ringChanged = false;
    if (this.ring === null) return;
    this.space.setRanges(this.ring.rangesOf(this.self));
    for (const a of this.space.all()) {
      if (!this.space.contains(a.off)) {
        events.push({ type: 'conflict', detail: `address ${this.addr(a.off)} of ${a.handle} is allocated here but the ring says ${this.ring.ownerOf(a.off)} owns it` });
      }
    }
  }

  private servePending(now: number, out: IpamReady): void {
    this.retryAt = Infinity;
    if (this.pending.size === 0) return;
    if (this.ring === null) {
      this.boot.want = true;
      this.applyBoot(this.boot.tick(now, this.liveList(), this.random), out);
      this.refreshSpace(out.events);
      if (this.ring === null) {
        const { quorum, agreed } = this.boot.progress();
        for (const p of this.pending.values()) p.reason = `waiting for the IPAM ring: ${agreed.length} of the ${quorum} peers needed have agreed (expected at launch: ${this.boot.expected})`;
        return;
      }
    }
    let needSpace = false;
    for (const [handle, p] of this.pending) {
      const off = this.trySatisfy(p, now, out);
      if (off === 'space') needSpace = true;
      else if (off !== undefined) {
        this.pending.delete(handle);
        this.space.add(handle, off, p.identity);
        out.persist = 'state';
        out.events.push({ type: 'allocated', handle, addr: this.addr(off) });
      }
    }
    if (needSpace) this.askForSpace(now, out);
  }

  /** An offset for a pending allocation, 'space' if it needs space from others, or undefined if
   *  it waits for something else (p.reason says what). */
  private trySatisfy(p: Pending, now: number, out: IpamReady): number | 'space' | undefined {
    const ring = this.ring as Ring;
    if (p.identity !== null) {
      const r = this.reservations.get(p.identity);
      if (r !== undefined && this.space.allocatable(r)) {
        const owner = ring.ownerOf(r);
        if (owner === this.self) {
          const holder = this.space.at(r);
          if (holder === undefined) return r;
          if (holder.identity === p.identity) {
            p.reason = `${this.addr(r)}, reserved for ${p.identity}, is still used here by ${holder.handle}`;
            return undefined;
          }
          // Two partitions reserved the same address for different identities: take a new one.
        } else {
          const overdue = p.fallbackAfterMs !== undefined && now - p.since >= p.fallbackAfterMs && !this.view.live.has(owner);
          if (!overdue) {
            if (this.view.live.has(owner) && now - p.lastAsk >= WANT_RETRY_MS) {
              p.lastAsk = now;
              out.send.push({ to: owner, msg: { t: 'want', v: 1, range: this.cidr.text, addr: r, identity: p.identity } });
            }
            if (this.view.live.has(owner)) this.retryAt = Math.min(this.retryAt, p.lastAsk + WANT_RETRY_MS);
            else if (p.fallbackAfterMs !== undefined) this.retryAt = Math.min(this.retryAt, p.since + p.fallbackAfterMs);
            p.reason = this.view.live.has(owner)
              ? `asked ${owner} for ${this.addr(r)}, reserved for ${p.identity}`
              : `${this.addr(r)}, reserved for ${p.identity}, is in space owned by unreachable peer ${owner} (back soon, or weft rmpeer)`;
            return undefined;
          }
        }
      }
    }
    const identity = p.identity ?? undefined;
    const off = this.space.next((o) => this.reservations.reservedForOther(o, identity));
    if (off === undefined) {
      p.reason = 'this peer has no free addresses; asking other peers for space';
      return 'space';
    }
    if (p.identity !== null) this.resOut.push(this.reservations.set(p.identity, off, this.self));
    return off;
  }

  private askForSpace(now: number, out: IpamReady): void {
    if (this.lastWant !== null && now - this.lastWant.at < WANT_RETRY_MS) {
      this.retryAt = Math.min(this.retryAt, this.lastWant.at + WANT_RETRY_MS);
      return;
    }
    const ring = this.ring as Ring;
    const sizes = ring.sizes();
    const candidates = this.liveList().filter((p) => p !== this.self && !this.removals.has(p));
    if (candidates.length === 0) {
      for (const p of this.pending.values()) if (p.reason.startsWith('this peer has no free')) p.reason = 'this peer has no free addresses and no live peer to ask for space';
      return;
    }
    const score = (p: string) => this.hints.get(p)?.free ?? sizes.get(p) ?? 0;
    // Best hint first; among peers asked recently, the least recently asked first.
    const ranked = candidates.sort((a, b) => {
      const ra = now - (this.asked.get(a) ?? -Infinity) < 4 * WANT_RETRY_MS ? 1 : 0;
      const rb = now - (this.asked.get(b) ?? -Infinity) < 4 * WANT_RETRY_MS ? 1 : 0;
      return ra - rb || score(b) - score(a) || (a < b ? -1 : 1);
    });
    const to = ranked[0] as string;
    this.asked.set(to, now);
    this.lastWant = { to, at: now };
    this.retryAt = Math.min(this.retryAt, now + WANT_RETRY_MS);
    out.send.push({ to, msg: { t: 'want', v: 1, range: this.cidr.text } });
  }

  // ---- helpers ------------------------------------------------------------------------------

  private evicted(): boolean {
    return this.removals.has(this.self);
  }

  private evictedReason(): string {
    const by = this.removals.claimers(this.self);
    return `this peer was removed from the IPAM ring by weft rmpeer${by.length > 0 ? ` (on ${by.join(', ')})` : ''}: its addresses may be in use elsewhere; run weft reset on this host before it serves containers again`;
  }

  private pendingFor(identity: string | undefined): boolean {
    if (identity === undefined) return false;
    for (const p of this.pending.values()) if (p.identity === identity) return true;
    return false;
  }

  private pendingFresh(): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.identity === null || this.reservations.get(p.identity) === undefined) n++;
    return n;
  }

  /** Free addresses here that another peer could use: not allocated, not reserved. */
  private freeForOthers(): number {
    let reservedIdle = 0;
    for (const off of this.reservations.addresses()) if (this.space.contains(off) && this.space.allocatable(off) && this.space.at(off) === undefined) reservedIdle++;
    return Math.max(0, this.space.owned() - this.space.inUse() - reservedIdle);
  }

  private updateHint(): void {
    const free = this.ring === null ? 0 : this.freeForOthers();
    if (this.hints.get(this.self)?.free !== free) this.hints.set(this.self, { free, seq: ++this.hintSeq });
  }

  private hash(): string {
    return fnv1a64(`${this.ring?.hash() ?? '-'}|${this.removals.canonical()}`);
  }

  private stateMessage(reply: boolean): StateMessage {
    this.updateHint();
    const hints: Array<[string, number, number]> = [...this.hints.entries()].filter(([p]) => !this.removals.has(p)).map(([p, h]) => [p, h.free, h.seq]);
    const msg: StateMessage = {
      t: 'state',
      v: 1,
      range: this.cidr.text,
      ring: this.ring?.toWire() ?? null,
      removed: this.removals.toWire(),
      hints,
      hash: this.hash(),
      resHash: this.reservations.hash(),
    };
    if (reply) msg.reply = true;
    return msg;
  }

  private resMessages(items: ReservationWire[]): IpamMessage[] {
    const out: IpamMessage[] = [];
    for (let i = 0; i < items.length; i += MAX_RES_PER_MESSAGE) {
      out.push({ t: 'res', v: 1, range: this.cidr.text, items: items.slice(i, i + MAX_RES_PER_MESSAGE) });
    }
    if (out.length === 0) out.push({ t: 'res', v: 1, range: this.cidr.text, items: [] });
    return out;
  }

  private liveList(): string[] {
    return [...this.view.live].sort();
  }

  private addr(off: number): string {
    return formatIPv4(this.cidr.base + off);
  }
}

export type { Allocation };
