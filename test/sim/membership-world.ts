// A simulated mesh of Membership cores: SimNetwork carries their messages (as JSON text, decoded
// with the real parser on delivery), a simulated clock ticks each peer every 100 ms at its own
// phase, and a toy dialer plays the shell's part of connecting to whatever `wanted()` lists.
// Each peer signs with a fake identity of its own (membership-signer.ts).

import { Membership, TICK_MS, type MembershipOptions } from '../../mesh/membership/membership.ts';
import { parseMembershipMessage, type MemberInfo, type MembershipMessage } from '../../mesh/membership/wire.ts';
import { type Member, type MembershipEvent } from '../../mesh/membership/member.ts';
import { type MembershipReady } from '../../mesh/membership/outbox.ts';
import { fakeSigner } from './membership-signer.ts';
import { received, sent, WireEncoder, type Wire } from './membership-wire-share.ts';
import { SimNetwork, type Envelope } from './network.ts';
import { Rng } from './rng.ts';

/** Messages are delivered at this granularity: fine against 1–50 ms delays and 100 ms ticks. */
const SUB_STEP_MS = 10;

export interface WorldOptions {
  seed: number;
  n: number;
  loss?: number;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** How long a dial takes to become a connection: 0 (default) connects on the dialer's next
   *  round; seconds model a loaded host, where each dial is a handshake waiting for a CPU. */
  dialDelayMs?: number;
  opts?: Partial<MembershipOptions>;
}

export interface SeenEvent extends MembershipEvent {
  observer: string;
}

export interface SeenRejection {
  observer: string;
  from: string;
  reason: string;
}

interface SimNode {
  info: MemberInfo;
  m: Membership;
  nextTick: number;
  down: boolean;
  stalledUntil: number;
  /** Messages that reached a stalled peer's socket and wait to be read. */
  backlog: Envelope<Wire>[];
  /** When a stall ends: deliver the backlog before the late tick (true) or after it. */
  backlogFirst: boolean;
  random: () => number;
}

export class World {
  readonly rng: Rng;
  readonly net: SimNetwork<Wire>;
  readonly nodes = new Map<string, SimNode>();
  readonly ids: string[];
  readonly events: SeenEvent[] = [];
  /** Every record or tombstone a peer refused; honest gossip among peers that keep their state
   *  produces none. */
  readonly rejected: SeenRejection[] = [];
  /** Called for every event as it happens, for invariants that must hold at every instant. */
  onEvent: (e: SeenEvent) => void = () => {};
  private readonly links = new Set<string>();
  /** Per peer, members it may want and has no link to: what the dialer visits each round,
   *  instead of every peer's whole `wanted()` list, which is N^2 snapshots and sorts per 100 ms
   *  and made N = 1,000 take hours. A superset, checked against the core when visited: every
   *  member that enters a core's table, or comes back from left, does so with an event (see
   *  `apply`), and every dropped link puts both ends back here. */
  private readonly unlinked = new Map<string, Set<string>>();
  /** Per peer, such members the network does not reach now (a cut, a crash): set aside until
   *  the network changes (`partition`, `heal`, `restart`), so a long cut costs no round a scan. */
  private readonly unreachable = new Map<string, Set<string>>();
  /** The observer `allAlive` last found not seeing everyone alive: its next sweep starts there. */
  private notAlive: string | undefined;
  /** Messages sent across a cut that carries them (see `partition`), to deliver on healing. */
  private carried: { from: string; to: string; wire: Wire }[] = [];
  private readonly carrying = new Set<string>();
  /** Dials under way (see `dialDelayMs`): pair -> when it connects. */
  private readonly dialing = new Map<string, number>();
  private readonly dialDelayMs: number;
  private readonly opts: Partial<MembershipOptions>;
  private readonly wires = new WireEncoder();
  messages = 0;
  bytes = 0;
  /** Messages dropped because their sender had no connection to the receiver. */
  linkless = 0;

  constructor(o: WorldOptions) {
    this.rng = new Rng(o.seed);
    this.net = new SimNetwork<Wire>(new Rng(o.seed * 7919 + 1), {
      loss: o.loss ?? 0,
      minDelayMs: o.minDelayMs ?? 1,
      maxDelayMs: o.maxDelayMs ?? 50,
    });
    this.opts = o.opts ?? {};
    this.dialDelayMs = o.dialDelayMs ?? 0;
    this.ids = Array.from({ length: o.n }, (_, i) => `n${i}`);
    for (const id of this.ids) {
      const info: MemberInfo = { id, name: `host-${id}`, addrs: [`/ip4/10.0.0.${this.ids.indexOf(id) + 1}/tcp/6783`], tags: [], role: 'worker' };
      const nodeRng = new Rng(o.seed * 31 + this.ids.indexOf(id) + 1);
      const random = () => nodeRng.next();
      this.unlinked.set(id, new Set());
      this.unreachable.set(id, new Set());
      this.nodes.set(id, {
        info,
        m: new Membership(info, 0, { ...this.opts, random, ...fakeSigner(id) }),
        nextTick: this.rng.int(TICK_MS / SUB_STEP_MS) * SUB_STEP_MS,
        down: false,
        stalledUntil: -1,
        backlog: [],
        backlogFirst: true,
        random,
      });
    }
    // Everyone is told of the first peer, as `weft launch --peers` would.
    const first = this.node(this.ids[0]!);
    for (const id of this.ids.slice(1)) this.apply(id, this.node(id).m.addSeed(first.info, 0));
  }

  get now(): number {
    return this.net.now;
  }

  node(id: string): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  m(id: string): Membership {
    return this.node(id).m;
  }

  /** The peers that are running (not crashed); stalled ones count as running. */
  up(): string[] {
    return this.ids.filter((id) => !this.node(id).down);
  }

  view(observer: string, subject: string): Member | undefined {
    return this.m(observer).get(subject);
  }

  /** Every running peer sees every other running peer alive. The sweep starts at the observer
   *  that failed last time and wraps around: while a mesh converges that one usually still
   *  fails, so a run waiting for this costs one row per step rather than up to N^2 lookups;
   *  true still means every pair was checked by this call. */
  allAlive(among = this.up()): boolean {
    const start = Math.max(0, this.notAlive === undefined ? 0 : among.indexOf(this.notAlive));
    for (let k = 0; k < among.length; k++) {
      const a = among[(start + k) % among.length]!;
      if (!among.every((b) => a === b || this.view(a, b)?.state === 'alive')) {
        this.notAlive = a;
        return false;
      }
    }
    return true;
  }

  /** Advances simulated time by `ms`, calling `check` after every 100 ms step. */
  run(ms: number, check: () => void = () => {}): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.step();
      check();
    }
  }

  /** Runs until `done()` holds (checked every step); returns the time it took, or throws. */
  runUntil(done: () => boolean, maxMs: number, check: () => void = () => {}): number {
    const start = this.now;
    while (!done()) {
      if (this.now - start >= maxMs) throw new Error(`condition not reached within ${maxMs} ms (t=${this.now})`);
      this.step();
      check();
    }
    return this.now - start;
  }

  /** 100 ms of simulated time, in sub-steps that deliver messages when they are due. */
  step(): void {
    for (let k = 0; k < TICK_MS / SUB_STEP_MS; k++) this.subStep();
  }

  /** Advances by `ms` (rounded up to 10 ms) without invariant checks: to put an event at a
   *  random point between ticks. */
  nudge(ms: number): void {
    for (let t = 0; t < ms; t += SUB_STEP_MS) this.subStep();
  }

  private subStep(): void {
    const now = this.now + SUB_STEP_MS;
    if (now % TICK_MS === 0) {
      this.wires.sweep(now);
      this.dial();
    }
    for (const env of this.net.advance(now)) {
      const n = this.node(env.to);
      if (n.down) continue;
      if (now < n.stalledUntil) n.backlog.push(env);
      else this.deliver(env, now);
    }
    for (const id of this.ids) {
      const n = this.node(id);
      if (n.down || now < n.stalledUntil) continue;
      const late = n.backlog.length > 0 || n.nextTick <= now;
      if (n.backlog.length > 0 && n.backlogFirst) this.flushBacklog(n, now);
      if (n.nextTick <= now) {
        this.apply(id, n.m.tick(now));
        // A late tick is one tick: a stalled timer does not fire for every period it missed.
        while (n.nextTick <= now) n.nextTick += TICK_MS;
      }
      if (late && n.backlog.length > 0) this.flushBacklog(n, now);
    }
  }

  private flushBacklog(n: SimNode, now: number): void {
    const burst = n.backlog;
    n.backlog = [];
    for (const env of burst) this.deliver(env, now);
  }

  private deliver(env: Envelope<Wire>, now: number): void {
    const msg = parseMembershipMessage(received(env.msg));
    // Everything a core sends must pass its own decoder, or real peers would drop it.
    if (typeof msg === 'string') throw new Error(`${env.from} sent ${env.to} a message the decoder rejects: ${msg}: ${env.msg.text.slice(0, 200)}`);
    this.apply(env.to, this.m(env.to).receive(env.from, msg, now));
  }

  apply(id: string, out: MembershipReady): void {
    for (const { to, msg } of out.send) {
      const wire = this.wires.encode(id, msg, this.now);
      this.messages++;
      this.bytes += wire.text.length;
      if (!this.nodes.has(to)) continue;
      if (this.carrying.has(pair(id, to)) && !this.net.connected(id, to)) this.carried.push({ from: id, to, wire });
      // As the shell's channel: without a connection, a message is dropped (it never dials).
      else if (this.links.has(pair(id, to))) this.send(id, to, wire);
      else this.linkless++;
    }
    for (const e of out.events) {
      // Any change to a member may be one to what the core wants (see `unlinked`).
      if (!this.links.has(pair(id, e.member.id))) this.unlinked.get(id)?.add(e.member.id);
      const seen = { ...e, observer: id };
      this.events.push(seen);
      this.onEvent(seen);
    }
    for (const r of out.rejected) this.rejected.push({ ...r, observer: id });
  }

  private send(from: string, to: string, wire: Wire): void {
    const queued = this.net.inFlight;
    this.net.send(from, to, wire);
    if (this.net.inFlight > queued) sent(wire);
  }

  /** Member `from` sends `msg` as it is to `to` (default: every other running peer), through
   *  the real decoder, delivered now and never lost: how a hostile member's forgery arrives.
   *  What the receivers do about it travels the simulated network as usual. */
  forge(from: string, msg: MembershipMessage, to: string[] = this.up().filter((id) => id !== from)): void {
    for (const t of to) this.deliver({ from, to: t, msg: { text: JSON.stringify(msg), pending: 1 }, deliverAt: this.now }, this.now);
  }

  /** The shell's dialer: connect to every wanted member not yet connected, if reachable.
   *  Peers in `ids` order and each one's members by id, as `wanted()` lists them: the order of
   *  the `connected` calls decides what is sent when, so it is that of a full scan. */
  private dial(): void {
    for (const a of this.ids) {
      const na = this.node(a);
      const todo = this.unlinked.get(a)!;
      if (na.down || this.now < na.stalledUntil || todo.size === 0) continue;
      // `connected` changes no core's table, so what a wants is the same all round.
      for (const b of [...todo].sort(byString)) {
        const w = na.m.get(b);
        if (!w || w.state === 'left' || !this.nodes.has(b) || this.links.has(pair(a, b))) {
          todo.delete(b);
        } else if (!this.net.connected(a, b)) {
          todo.delete(b);
          this.unreachable.get(a)!.add(b);
          this.dialing.delete(pair(a, b));
          // Refused, or timed out: the shell tells the core (the same call either way).
          this.apply(a, na.m.unreachable(b, this.now));
        } else if (this.now >= this.node(b).stalledUntil && this.connectsNow(a, b)) {
          this.link(a, b);
          this.apply(a, na.m.connected(b, this.now));
          this.apply(b, this.m(b).connected(a, this.now));
        }
      }
    }
  }

  /** Whether a dial from `a` to `b` (reachable) completes now; starts it if not under way. */
  private connectsNow(a: string, b: string): boolean {
    if (this.dialDelayMs === 0) return true;
    const key = pair(a, b);
    const at = this.dialing.get(key);
    if (at === undefined) {
      this.dialing.set(key, this.now + this.dialDelayMs);
      return false;
    }
    if (this.now < at) return false;
    this.dialing.delete(key);
    return true;
  }

  private link(a: string, b: string): void {
    this.links.add(pair(a, b));
    this.unlinked.get(a)!.delete(b);
    this.unlinked.get(b)!.delete(a);
  }

  /** The network changed: whatever was out of reach may be dialled again. */
  private retryUnreachable(): void {
    for (const [id, away] of this.unreachable) {
      const todo = this.unlinked.get(id)!;
      for (const b of away) todo.add(b);
      away.clear();
    }
  }

  private dropLinks(pred: (a: string, b: string) => boolean, notify: boolean): void {
    for (const key of [...this.links]) {
      const [a, b] = key.split('|') as [string, string];
      if (!pred(a, b)) continue;
      this.links.delete(key);
      this.unlinked.get(a)!.add(b);
      this.unlinked.get(b)!.add(a);
      if (!notify) continue;
      for (const [x, y] of [[a, b], [b, a]] as const) {
        if (!this.node(x).down) this.apply(x, this.m(x).disconnected(y, this.now));
      }
    }
  }

  /** Kills a peer. `rst`: its host's kernel resets its connections (kill -9), so the others'
   *  transports report a disconnect; otherwise the host is cut off and simply goes silent. */
  crash(id: string, rst = false): void {
    this.net.crash(id);
    this.node(id).down = true;
    this.node(id).backlog = [];
    this.dropLinks((a, b) => a === id || b === id, rst);
  }

  /** Resets the connections of `id` (to `peer` only, if given) without anything crashing:
   *  both ends hear `disconnected`, and the dialer reconnects on its next round. */
  resetLinks(id: string, peer?: string): void {
    this.dropLinks((a, b) => (a === id && (!peer || b === peer)) || (b === id && (!peer || a === peer)), true);
  }

  /** Starts a crashed peer again with a fresh core, as a restarted process would. */
  restart(id: string, restored?: { inc: number; members: Member[] }): void {
    const n = this.node(id);
    const first = this.node(this.ids[0] === id ? this.ids[1]! : this.ids[0]!);
    n.m = new Membership(n.info, this.now, { ...this.opts, random: n.random, ...fakeSigner(id) }, restored);
    n.down = false;
    n.nextTick = this.now + TICK_MS;
    this.net.restart(id);
    // A restored table comes with no events: the dialer takes it from the core. (Its links all
    // went with the crash.)
    this.unlinked.set(id, new Set(n.m.wanted().map((w) => w.id)));
    this.unreachable.set(id, new Set());
    this.retryUnreachable();
    if (!restored) this.apply(id, n.m.addSeed(first.info, this.now));
  }

  /** Cuts the network into groups; connections across the cut die silently and are
   *  re-dialled (and re-announced with `connected`) once the cut heals. `carry`: what the
   *  peers send each other over those connections during the cut is delivered when it heals,
   *  as a TCP connection that outlives a silent cut retransmits its send buffer: old news
   *  arriving as if new. */
  partition(groups: string[][], o: { carry?: boolean } = {}): void {
    this.net.partition(groups);
    if (o.carry) for (const key of this.links) if (!this.net.connected(...(key.split('|') as [string, string]))) this.carrying.add(key);
    this.dropLinks((a, b) => !this.net.connected(a, b), false);
    this.retryUnreachable();
  }

  heal(): void {
    this.net.heal();
    this.retryUnreachable();
    const carried = this.carried;
    this.carried = [];
    this.carrying.clear();
    for (const { from, to, wire } of carried) if (!this.node(from).down) this.send(from, to, wire);
  }

  /** Freezes a peer's event loop for `ms`: it neither ticks nor reads; messages queue up. */
  stall(id: string, ms: number, backlogFirst = true): void {
    const n = this.node(id);
    n.stalledUntil = this.now + ms;
    n.backlogFirst = backlogFirst;
  }
}

/** The order `Membership.wanted()` sorts members in. */
function byString(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function pair(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
