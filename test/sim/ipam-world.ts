// A simulated mesh of IPAM cores for test/sim/ipam.test.ts: a seeded lossy, partitionable network
// with a clock, a simulated disk per peer (the shell's persist-before-send discipline), crash and
// restart from disk, peers killed for good and removed with rmpeer, and an oracle of every address
// handed to a container. The invariants are checked after every delivered message and every step.

import { formatIPv4 } from '../../mesh/ipv4.ts';
import { type IpamEvent, type IpamReady, Ipam, type PeerView } from '../../mesh/ipam/ipam.ts';
import { type IpamMessage, type IpamSnapshot, MAX_IPAM_MESSAGE_BYTES, parseIpamMessage } from '../../mesh/ipam/wire.ts';
import { TICK_MS } from '../../mesh/membership/membership.ts';
import type { Rejection } from '../../mesh/ready.ts';
import { SimNetwork } from './network.ts';
import { Rng } from './rng.ts';

/** The shell ticks the core with membership's tick. */
export { TICK_MS };
/** Network processing granularity (messages take 1-20 ms). */
const STEP_MS = 5;
/** A killed peer's messages sent this recently may still arrive after its death... */
const GHOST_WINDOW_MS = 300;
/** ...up to this much later: longer than detection plus a prompt rmpeer takes. */
const GHOST_DELAY_MS = 8000;

export function peerId(i: number): string {
  return `p${String(i).padStart(2, '0')}`;
}

export interface IpamWorldOptions {
  seed: number;
  peers: number;
  range?: string;
  /** --ipalloc-init consensus count each peer is launched with (default: all peers). */
  expectedPeers?: number;
  loss?: number;
  /** Peers that exist from the start; the others join later with join(). Default: all. */
  started?: number;
  /** Invariants after every delivered message, only after every tick, or never (a test of a
   *  misconfiguration this design does not make safe). */
  check?: 'message' | 'tick' | 'off';
}

interface Host {
  id: string;
  core: Ipam | null;
  /** What the shell wrote to disk last: export() as JSON text, as LevelDB would hold it. */
  disk: string | null;
  /** The operator removed it (rmpeer): its disk no longer counts, its containers are gone. */
  removed: boolean;
  /** Killed for good: never restarted unless a test says so. */
  gone: boolean;
  started: boolean;
}

interface Held {
  peer: string;
  handle: string;
  identity: string | null;
}

export class IpamWorld {
  readonly rng: Rng;
  readonly net: SimNetwork<string>;
  readonly ids: string[];
  readonly hosts = new Map<string, Host>();
  /** Every address currently handed to a container, by absolute address: the ground truth. */
  readonly held = new Map<number, Held>();
  /** Handles the shell asked for and has not released: allocated (address) or pending (null). */
  readonly handles = new Map<string, { peer: string; addr: number | null; identity: string | null }>();
  readonly events: Array<{ peer: string; at: number; e: IpamEvent }> = [];
  /** Every message a peer refused, with the reason. */
  readonly rejected: Array<{ peer: string; at: number; r: Rejection }> = [];
  readonly opts: Required<Omit<IpamWorldOptions, 'started'>> & { started: number };
  delivered = 0;
  checks = 0;
  restarts = 0;
  maxMessageBytes = 0;
  private nextTick = 0;
  /** Per peer, after a tick: the view it was given and the deadline its ready named. Cleared by
   *  any other input (see apply). A tick before that deadline, with no input since and the same
   *  view, must find nothing to do: otherwise a shell that ticks by the deadline would miss it. */
  private readonly quiet = new Map<string, { view: string; next: number | undefined }>();
  /** Ticks checked that way, for the tests to show the check ran. */
  quietTicks = 0;
  private readonly beliefCache = new Map<string, Array<[number, number]>>();
  /** Peers each peer's membership has heard of (kept across its crashes, as on disk). */
  private readonly knows = new Map<string, Set<string>>();
  /** Each peer's messages of the last GHOST_WINDOW_MS, and a dead peer's messages still to
   *  arrive late (see kill). */
  private readonly recent = new Map<string, Array<{ to: string; text: string; at: number }>>();
  private ghosts: Array<{ from: string; to: string; text: string; at: number }> = [];
  ghostsDelivered = 0;
  /** A test's hook: messages it returns true for are held back instead of sent. */
  hold: ((from: string, to: string, msg: IpamMessage) => boolean) | null = null;
  readonly held_: Array<{ from: string; to: string; text: string }> = [];
  /** Conflict events some tests provoke on purpose (a removed peer coming back). */
  allowConflictsFrom = new Set<string>();

  constructor(opts: IpamWorldOptions) {
    this.opts = {
      range: '10.32.0.0/22',
      expectedPeers: opts.peers,
      loss: 0,
      check: 'message',
      started: opts.peers,
      ...opts,
    };
    this.rng = new Rng(opts.seed);
    this.net = new SimNetwork<string>(new Rng(opts.seed ^ 0x5eed), { loss: this.opts.loss });
    this.ids = Array.from({ length: opts.peers }, (_, i) => peerId(i));
    for (const [i, id] of this.ids.entries()) {
      this.hosts.set(id, { id, core: null, disk: null, removed: false, gone: false, started: false });
      if (i < this.opts.started) this.start(id);
      else this.net.crash(id);
    }
  }

  get now(): number {
    return this.net.now;
  }

  host(id: string): Host {
    const h = this.hosts.get(id);
    if (h === undefined) throw new Error(`no peer ${id}`);
    return h;
  }

  core(id: string): Ipam {
    const c = this.host(id).core;
    if (c === null) throw new Error(`peer ${id} is down`);
    return c;
  }

  private makeCore(id: string, disk: string | null): Ipam {
    const opts = { self: id, range: this.opts.range, expectedPeers: this.opts.expectedPeers, random: () => this.rng.next() };
    return disk === null ? new Ipam(opts) : Ipam.restore(JSON.parse(disk), opts);
  }

  private start(id: string): void {
    const h = this.host(id);
    h.core = this.makeCore(id, null);
    this.quiet.delete(id);
    h.started = true;
    this.persist(h);
  }

  /** A peer that was not running starts now (fresh). */
  join(id: string): void {
    const h = this.host(id);
    if (h.started) throw new Error(`${id} already started`);
    this.net.restart(id);
    this.start(id);
  }

  up(): string[] {
    return this.ids.filter((id) => this.hosts.get(id)?.core != null);
  }

  /** Membership's view from `id`: live = peers it can reach now; known = peers it has heard of,
   *  directly or through others (membership gossips every record, dead ones included), which
   *  spreads only among peers that can reach each other. */
  view(id: string): PeerView {
    const live = new Set<string>();
    for (const h of this.hosts.values()) {
      if (h.id !== id && h.core !== null && this.net.connected(id, h.id)) live.add(h.id);
    }
    const known = new Set(this.knows.get(id) ?? []);
    known.delete(id);
    return { live, known };
  }

  /** Spreads membership knowledge within each group of peers that can reach each other. */
  private spreadKnowledge(): void {
    const seen = new Set<string>();
    for (const id of this.up()) {
      if (seen.has(id)) continue;
      const group = this.up().filter((o) => o === id || this.net.connected(id, o));
      const union = new Set<string>(group);
      for (const g of group) for (const k of this.knows.get(g) ?? []) union.add(k);
      for (const g of group) {
        seen.add(g);
        this.knows.set(g, new Set(union));
      }
    }
  }

  private persist(h: Host): void {
    if (h.core === null) return;
    h.disk = JSON.stringify(h.core.export());
    this.beliefCache.delete(h.id);
  }

  /** What the shell does with a ready (applyReady): persist first, then send, then report
   *  allocations and the other events. */
  private apply(id: string, out: IpamReady): void {
    this.quiet.delete(id);
    const h = this.host(id);
    if (out.persist !== undefined) this.persist(h);
    for (const s of out.send) {
      const text = JSON.stringify(s.msg);
      if (this.hold?.(id, s.to, s.msg) === true) {
        this.held_.push({ from: id, to: s.to, text });
        continue;
      }
      this.maxMessageBytes = Math.max(this.maxMessageBytes, text.length);
      if (text.length > MAX_IPAM_MESSAGE_BYTES) throw new Error(`${id}: message of ${text.length} bytes exceeds the frame limit`);
      this.net.send(id, s.to, text);
      const r = this.recent.get(id) ?? [];
      r.push({ to: s.to, text, at: this.now });
      while (r.length > 0 && (r[0] as { at: number }).at < this.now - GHOST_WINDOW_MS) r.shift();
      this.recent.set(id, r);
    }
    for (const e of out.events) {
      if (e.type === 'allocated') {
        this.handedOut(id, e.handle, e.addr);
        continue;
      }
      if (e.type === 'allocation-refused') {
        const known = this.handles.get(e.handle);
        if (known !== undefined && known.peer === id && known.addr === null) this.handles.delete(e.handle);
        continue;
      }
      this.events.push({ peer: id, at: this.now, e });
      if (e.type === 'conflict' && !this.allowConflictsFrom.has(id)) throw new Error(`t=${this.now} ${id}: conflict: ${e.detail}`);
    }
    for (const r of out.rejected) this.rejected.push({ peer: id, at: this.now, r });
  }

  private handedOut(peer: string, handle: string, addrText: string): void {
    const addr = addrNum(addrText);
    const mine = this.handles.get(handle);
    if (mine === undefined || mine.peer !== peer) throw new Error(`${peer} allocated ${addrText} for unknown handle ${handle}`);
    if (mine.addr !== null) {
      if (mine.addr !== addr) throw new Error(`${handle} got a second address ${addrText}`);
      return;
    }
    const other = this.held.get(addr);
    if (other !== undefined && this.opts.check !== 'off') {
      throw new Error(`t=${this.now}: ${addrText} handed out twice: to ${other.handle} on ${other.peer} and to ${handle} on ${peer}`);
    }
    this.held.set(addr, { peer, handle, identity: mine.identity });
    mine.addr = addr;
  }

  // ---- the shell's API calls --------------------------------------------------------------

  allocate(peer: string, handle: string, identity?: string, fallbackAfterMs?: number): 'allocated' | 'pending' | 'refused' {
    const core = this.core(peer);
    if (this.handles.has(handle)) throw new Error(`handle ${handle} reused`);
    this.handles.set(handle, { peer, addr: null, identity: identity ?? null });
    const res = core.allocate(handle, this.now, { identity, fallbackAfterMs });
    this.apply(peer, res.out);
    if (res.status === 'allocated') this.handedOut(peer, handle, res.addr);
    if (res.status === 'refused') this.handles.delete(handle);
    this.check();
    return res.status;
  }

  release(handle: string): void {
    const h = this.handles.get(handle);
    if (h === undefined) return;
    const core = this.host(h.peer).core;
    if (core === null) throw new Error(`release of ${handle} on down peer ${h.peer}`);
    const res = core.release(handle, this.now);
    this.handles.delete(handle);
    if (h.addr !== null) {
      if (res.addr === null || addrNum(res.addr) !== h.addr) throw new Error(`release of ${handle} freed ${res.addr}, not ${formatIPv4(h.addr)}`);
      this.held.delete(h.addr);
    }
    // The same call may hand the freed address to an allocation that waited for one.
    this.apply(h.peer, res.out);
    this.check();
  }

  handOff(id: string): string {
    const res = this.core(id).handOff(this.now);
    this.apply(id, res.out);
    this.check();
    return res.status;
  }

  rmpeer(by: string, dead: string): string {
    const res = this.core(by).rmpeer(dead, this.now);
    this.apply(by, res.out);
    if (res.status !== 'refused') this.markRemoved(dead);
    this.check();
    return res.status;
  }

  /** The operator's rmpeer asserts the peer and its containers are gone for good. */
  private markRemoved(dead: string): void {
    const h = this.host(dead);
    h.removed = true;
    for (const [addr, held] of [...this.held]) if (held.peer === dead) this.held.delete(addr);
    for (const [handle, x] of [...this.handles]) if (x.peer === dead) this.handles.delete(handle);
  }

  /** kill -9: memory is lost, the disk stays; containers keep running (and keep addresses). */
  crash(id: string): void {
    const h = this.host(id);
    if (h.core === null) return;
    this.net.crash(id);
    h.core = null;
    // Allocations the shell never acknowledged die with it; the container runtime retries.
    for (const [handle, x] of [...this.handles]) if (x.peer === id && x.addr === null) this.handles.delete(handle);
  }

  /** Killed for good (the host is gone). With `ghosts`, some of what it sent in its last
   *  GHOST_WINDOW_MS arrives again up to GHOST_DELAY_MS later, as bytes buffered at a stalled
   *  receiver or retransmitted on a lossy path would: a removal must not be undone by them. */
  kill(id: string, ghosts = false): void {
    if (ghosts) {
      for (const m of this.recent.get(id) ?? []) {
        if (this.rng.chance(0.5)) this.ghosts.push({ from: id, to: m.to, text: m.text, at: this.now + this.rng.int(GHOST_DELAY_MS) });
      }
      this.ghosts.sort((a, b) => a.at - b.at);
    }
    this.crash(id);
    this.host(id).gone = true;
  }

  restart(id: string): void {
    const h = this.host(id);
    if (h.core !== null) return;
    h.core = this.makeCore(id, h.disk);
    this.quiet.delete(id);
    this.restarts++;
    this.net.restart(id);
    h.gone = false;
    // Every address the shell acknowledged before the crash is still allocated after it.
    if (!h.removed) {
      const restored = new Map(h.core.allocations().map((a) => [a.handle, addrNum(a.addr)]));
      for (const [addr, held] of this.held) {
        if (held.peer === id && restored.get(held.handle) !== addr) throw new Error(`${id} lost allocation ${held.handle} ${formatIPv4(addr)} across restart`);
      }
    }
  }

  /** Delivers the messages `hold` kept back, now, whatever has happened since. */
  deliverHeld(): number {
    const msgs = this.held_.splice(0);
    for (const m of msgs) {
      const core = this.host(m.to).core;
      if (core === null) continue;
      const msg = parseIpamMessage(JSON.parse(m.text));
      if (typeof msg === 'string') throw new Error(`invalid held message: ${msg}`);
      this.apply(m.to, core.receive(m.from, msg, this.now));
      this.check();
    }
    return msgs.length;
  }

  partition(groups: string[][]): void {
    this.net.partition(groups);
  }

  heal(): void {
    this.net.heal();
  }

  // ---- time ---------------------------------------------------------------------------------

  /** Runs the network and ticks for `ms` simulated milliseconds. */
  run(ms: number): void {
    const until = this.now + ms;
    while (this.now < until) {
      const t = Math.min(until, this.now + STEP_MS);
      const due = this.net.advance(t);
      while (this.ghosts.length > 0 && (this.ghosts[0] as { at: number }).at <= t) {
        const g = this.ghosts.shift() as { from: string; to: string; text: string };
        this.ghostsDelivered++;
        due.push({ from: g.from, to: g.to, msg: g.text, deliverAt: t });
      }
      for (const env of due) {
        const core = this.host(env.to).core;
        if (core === null) continue;
        const msg = parseIpamMessage(JSON.parse(env.msg));
        if (typeof msg === 'string') throw new Error(`invalid message from ${env.from}: ${msg}`);
        this.delivered++;
        this.apply(env.to, core.receive(env.from, msg as IpamMessage, this.now));
        if (this.opts.check === 'message') this.check();
      }
      if (this.now >= this.nextTick) {
        this.nextTick = this.now + TICK_MS;
        this.spreadKnowledge();
        for (const id of this.up()) this.tick(id);
        this.check();
      }
    }
  }

  private tick(id: string): void {
    const view = this.view(id);
    const key = JSON.stringify([[...view.live].sort(), [...view.known].sort()]);
    const before = this.quiet.get(id);
    const ready = this.core(id).tick(this.now, view);
    if (before !== undefined && before.view === key && (before.next === undefined || this.now < before.next)) {
      this.quietTicks++;
      if (ready.persist !== undefined || ready.send.length > 0 || ready.events.length > 0 || ready.rejected.length > 0) {
        throw new Error(`t=${this.now} ${id}: a tick before its deadline (${before.next}), with no input since, did something: ${JSON.stringify({ ...ready, send: ready.send.map((x) => x.msg.t) })}`);
      }
    }
    this.apply(id, ready);
    this.quiet.set(id, { view: key, next: ready.next });
  }

  /** Runs until `done` holds or `limitMs` passes; returns the simulated time it took. */
  runUntil(done: () => boolean, limitMs: number): number {
    const start = this.now;
    while (!done()) {
      if (this.now - start >= limitMs) return Infinity;
      this.run(TICK_MS);
    }
    return this.now - start;
  }

  // ---- invariants ---------------------------------------------------------------------------

  /** The ranges a peer believes it owns: from memory if up, from its disk if down (it will
   *  restart with that belief). Removed peers no longer count. */
  beliefs(id: string): Array<[number, number]> {
    const h = this.host(id);
    if (h.removed || !h.started) return [];
    if (h.core !== null) return h.core.ownedRanges();
    let b = this.beliefCache.get(id);
    if (b === undefined) {
      b = h.disk === null ? [] : this.makeCore(id, h.disk).ownedRanges();
      this.beliefCache.set(id, b);
    }
    return b;
  }

  /** No address owned by two peers; every handed-out address inside its peer's own ranges. */
  check(): void {
    if (this.opts.check === 'off') return;
    this.checks++;
    const all: Array<[number, number, string]> = [];
    const byPeer = new Map<string, Array<[number, number]>>();
    for (const id of this.ids) {
      const b = this.beliefs(id);
      byPeer.set(id, b);
      for (const [s, e] of b) all.push([s, e, id]);
    }
    all.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < all.length; i++) {
      const prev = all[i - 1] as [number, number, string];
      const cur = all[i] as [number, number, string];
      if (cur[0] < prev[1]) {
        throw new Error(`t=${this.now}: ${formatIPv4(cur[0])} is owned by both ${prev[2]} and ${cur[2]}`);
      }
    }
    for (const [addr, held] of this.held) {
      const ranges = byPeer.get(held.peer) ?? [];
      if (!ranges.some(([s, e]) => addr >= s && addr < e)) {
        throw new Error(`t=${this.now}: ${formatIPv4(addr)} (${held.handle}) is in use on ${held.peer} but ${held.peer} does not own it`);
      }
    }
  }

  /** Hashes of ring, removals and reservations on every up, non-removed peer. */
  hashes(): Map<string, string> {
    const out = new Map<string, string>();
    for (const id of this.up()) if (!this.host(id).removed) out.set(id, this.core(id).stateHash());
    return out;
  }

  converged(): boolean {
    const hs = [...this.hashes().values()];
    return hs.length > 0 && hs.every((h) => h === hs[0]) && this.up().every((id) => this.core(id).hasRing());
  }

  eventsOf(type: IpamEvent['type']): Array<{ peer: string; at: number; e: IpamEvent }> {
    return this.events.filter((x) => x.e.type === type);
  }

  /** The snapshot on a peer's disk (decoded). */
  diskOf(id: string): IpamSnapshot | null {
    const d = this.host(id).disk;
    return d === null ? null : (JSON.parse(d) as IpamSnapshot);
  }
}

export function addrNum(s: string): number {
  const p = s.split('.').map(Number);
  return (((p[0] as number) * 256 + (p[1] as number)) * 256 + (p[2] as number)) * 256 + (p[3] as number);
}
