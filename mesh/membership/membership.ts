// Membership and failure detection: the pure core. The shell (libp2p transport) feeds it
// messages, connection changes and a tick with the current time, and carries out what it
// returns. No clock, timer, socket or randomness of its own, so a simulation can replay it.
//
// Protocol, in one paragraph: SWIM with Lifeguard. Each period a peer pings one member, in a
// shuffled round-robin (schedule.ts), and one member it holds dead every second (so
// a healed partition is noticed); every ping is answered. A ping unanswered within
// PROBE_TIMEOUT_MS is not a suspicion yet: we ping again and ask PROBE_HELPERS members to ping
// it for us (the link may be ours); only if neither we nor they hear it is it suspected, and the
// suspicion is gossiped. Each peer whose own probe fails tells a few others (`suspect`), and
// the suspicion timeout falls from its maximum to its minimum as such independent accusers
// add up (suspicion.ts: the maximum scales with log N). A suspect is pinged every
// period with the suspicion by its accusers (and once by a few holders that check it, and by
// those that lost their connection to it), so a live one refutes at once by raising its
// incarnation, and its refutation spreads by gossip; one still suspected
// when its timeout runs out, and not heard by us for SUSPECT_AFTER_MS, is declared dead. So the
// messages a peer sends and receives per period do not grow with the mesh. Changes (suspect,
// dead, refutations, tombstones) spread by gossip: each peer that learns one tells
// GOSSIP_FANOUT members at once and piggybacks it on its pings and acks a bounded number of
// times (broadcasts.ts), so a change costs each peer the same few sends whatever N.
// Records merge by the
// precedence in precedence.ts, so tables converge however messages are ordered;
// heartbeats carry a table digest and disagreeing peers swap full tables (anti-entropy).
// One exception, for accusations (suspect, dead) about a member we know: we do not take one
// while we hear the member ourselves, nor from a full table or a peer only just back from a
// cut (old news: see `believes`); we pass it to the accused instead, whose refutation then
// outranks it everywhere. So a peer cut off long enough to bury everyone cannot, on healing,
// bury the healthy peers in each other's tables.
// Silence counts only over a connection (`witness`): a peer probes, judges and answers helpers
// about a member once it holds a connection to it, lost one, or could not make one; until then
// the transport drops what it sends there, and a helper in that position abstains.
// Local health (Lifeguard): time during which our own event loop was stalled is not counted
// as anyone's silence, and after signs that we are the unhealthy one, our timeouts stretch.
// Records carry their subject's signed claim (claim.ts): a member can accuse another
// only at an incarnation that one signed, and cannot speak for it otherwise.

import { mulberry32 } from '../seeded-random.ts';
import {
  MAX_HEARD_AGO_MS,
  MAX_INCARNATION,
  type HeldState,
  type MemberInfo,
  type MemberRecord,
  type MemberState,
  type MembershipMessage,
  type Tombstone,
} from './wire.ts';
import { HEALTH_DECAY_MS, HEALTH_MAX, LocalHealth, STALL_GRACE_MS, STALL_THRESHOLD_MS } from './health.ts';
import type { Member, MembershipEvent, MembershipEventType } from './member.ts';
import { Outbox, type MembershipReady, type OutboxView } from './outbox.ts';
import { digestShare, fnv1a, outranks, RANK, rankOf } from './precedence.ts';
import { claimBytes, signedBySubject, type Signer } from './claim.ts';
import { pickTargets } from '../gossip-targets.ts';
import { Broadcasts } from './broadcasts.ts';
import { ProbeSchedule } from './schedule.ts';
import { SUSPICION_CONFIRMATIONS, suspicionBounds, suspicionTimeout } from './suspicion.ts';


/** The shell's tick period. Short enough that a deadline is acted on within 100 ms of passing,
 *  which is 5% of the 2 s detection budget; long enough to cost nothing on an idle peer. */
export const TICK_MS = 100;
/** The probe period: one member pinged per period. With N peers each pinging one, a member is
 *  pinged about twice a second, so a silent failure is noticed within ~0.5 s plus the probe
 *  timeout, and detection stays inside its 2 s median budget (a kill -9 resets connections and
 *  is probed at once, whatever the period). The cost is one ping and one ack sent and received
 *  per period, whatever N, and it is most of an idle peer's CPU: each message through libp2p
 *  (yamux, Noise, a socket write, a promise chain) costs ~0.4 ms here. At 200 ms an idle peer
 *  used 1.4-1.6 % of a core, so 100 peers saturated two cores at rest; 500 ms halves it.
 *  memberlist probes every second (its detection: 9-13 s measured here). */
export const HEARTBEAT_INTERVAL_MS = 500;
/** How often one member we believe dead is pinged (round-robin): rare enough to cost little
 *  over a day of dead hosts, frequent enough that a healed partition is noticed in seconds. */
export const DEAD_HEARTBEAT_INTERVAL_MS = 1000;
/** No member is declared dead by a peer that heard it directly within this (its accusers ping
 *  a suspect every period, so a live one is heard); also how long what a peer only just back from
 *  a cut says of others is taken as old news (see cutOff). */
export const SUSPECT_AFTER_MS = 1000;
/** A stall of our own at least this long may have let others suspect us (a probe timeout, the
 *  helpers' wait, and scheduling): we refute at once on waking rather than wait to hear it. */
const STALL_REFUTE_MS = 800;
/** A helper vouches for a member it heard within this window; otherwise it pings the member
 *  itself and answers from that (onProbeRequest), so a longer window would only let staler
 *  word stand in for a fresh ping. One probe period. */
export const VOUCH_WINDOW_MS = 500;
/** Helpers asked to ping a member that did not answer us (SWIM's k). Each helper path is four
 *  messages (request, ping, ack, answer), so at 15% loss one fails half the time: with five,
 *  plus our own second ping, a live member is suspected after about 1 in 500 probes even
 *  then; with three the simulations' heals at 15% loss saw healthy peers suspected. */
export const PROBE_HELPERS = 5;
/** How long a ping may go unanswered before the indirect probe, and how long we then wait for
 *  helpers (they wait 2/3 of it for the member). A round trip is a few ms on a LAN and up to
 *  100 ms on a loaded simulation; when every helper answered "not heard" we decide at once. */
export const PROBE_TIMEOUT_MS = 300;
/** A helper answers "not heard" after this share of the prober's wait, so its answer arrives
 *  before the prober gives up on it. */
const HELPER_WAIT_SHARE = 2 / 3;
// Local health (stall detection, Lifeguard penalty) has its constants in health.ts.

/** Members a change is sent to at once by each peer that originates or first learns it
 *  (SWIM's infection-style dissemination, memberlist's GossipNodes): every holder telling 3
 *  reaches N peers in about log3(N) hops of network latency, milliseconds rather than probe
 *  periods, at 3 sends per peer per change whatever N. What a lost message misses, the
 *  piggyback on pings (below) and the digest exchange repair. */
export const GOSSIP_FANOUT = 3;
/** News piggybacked on each ping and ack, at most this many bytes of records (~10): a ping
 *  stays one small frame, and a change is retransmitted a bounded number of times (see
 *  broadcasts.ts) on traffic that flows anyway. */
export const PIGGYBACK_MAX_BYTES = 4096;
/** Gossip rounds are at least this far apart (see finish): one tick, so a hop of a burst waits
 *  at most 100 ms, and a lone change none. */
const GOSSIP_ROUND_MIN_MS = 100;
/** What one immediate gossip message carries at most: the new change and older ones still
 *  being spread, in one frame. */
const GOSSIP_MAX_BYTES = 16_384;
/** Members each peer tells of its own failed probe of a suspect (Lifeguard's confirmations):
 *  with a accusers, each peer hears from about 6a/N of them, so a real failure, which every
 *  prober sees, brings the timeout to its minimum, and one or two accusers of a slow but live
 *  member mostly do not. Constant, so the cost per peer does not grow with N. */
export const CONFIRM_FANOUT = 6;
/** Peers, on average, that check a suspicion they only heard of with a ping of their own (see
 *  judge): twice the confirmations that bring its timeout to the minimum, so a real failure
 *  is confirmed within one probe timeout even with a few pings lost, whatever N. */
export const SUSPICION_CHECKERS = 2 * SUSPICION_CONFIRMATIONS;
/** Consecutive disagreeing digests from one peer before we push it our table: one may just
 *  race a broadcast still in flight; two (>= 200 ms apart) is a real divergence. */
export const SYNC_AFTER_MISMATCHES = 2;
/** At most one full-table push per peer per second: a table is up to ~256 KiB. */
export const SYNC_MIN_INTERVAL_MS = 1000;
/** Dead and left members are forgotten after a day, as Serf's reconnect/tombstone timeouts:
 *  long enough for an operator to see what happened, short enough for the table to stay small. */
export const REAP_AFTER_MS = 86_400_000;

export interface MembershipOptions extends Signer {
  tickMs: number;
  heartbeatIntervalMs: number;
  deadHeartbeatIntervalMs: number;
  suspectAfterMs: number;
  vouchWindowMs: number;
  probeHelpers: number;
  probeTimeoutMs: number;
  stallThresholdMs: number;
  stallGraceMs: number;
  healthMax: number;
  healthDecayMs: number;
  gossipFanout: number;
  syncAfterMismatches: number;
  syncMinIntervalMs: number;
  reapAfterMs: number;
  /** Uniform in [0, 1); used only to choose probe helpers and relay targets. */
  random: () => number;
}

interface Probe {
  /** Live-clock deadline (see `live`). */
  deadlineL: number;
  waiting: Set<string>;
  negatives: number;
  /** Helpers that never reached the member (see `witness`): an answer, but no evidence. */
  abstained: number;
  /** Started on a hint (a transport disconnect, an accusation we did not take as news)
   *  rather than on silence: needs a helper to confirm. */
  early: boolean;
}

/** A record as held: signed by its subject, or (sig null) known only from a seed or old disk. */
type Held = Omit<MemberRecord, 'sig'> & { sig: string | null };

interface Entry {
  rec: Held;
  stateSince: number;
  stateSinceL: number;
  lastHeard: number;
  /** Live-clock time of the last direct message (-Infinity: never). */
  heardL: number;
  /** Live-clock time of the latest evidence of life: direct, vouched, or a fresh alive record
   *  (a member we just learned of, or that just refuted, gets a full silence window). */
  evidenceL: number;
  /** Live-clock time we last saw it come back from dead or left (-Infinity: never). */
  returnedL: number;
  /** Live-clock time we lost our connection to it, or failed to make one (null: neither since
   *  we last held one, or ever). See `witness`. */
  linkLostL: number | null;
  earlyProbed: boolean;
  probe: Probe | null;
  lastHbSent: number;
  /** Live-clock time of our ping still unanswered (null: none). */
  pingL: number | null;
  /** Probers that asked us (a helper) to ping this member, and until when we wait. */
  relayFor: Set<string>;
  relayDeadlineL: number;
  /** Distinct peers we heard accuse it at its current suspicion. */
  accusers: Set<string>;
  /** We sent our own accusation of its current suspicion (see suspect). */
  confirmed: boolean;
  /** We decided whether to check its current suspicion ourselves (see judge). */
  checked: boolean;
  mismatches: number;
  lastSyncSent: number;
}

interface Grave {
  inc: number;
  expires: number;
  /** The signed record it replaced: shown to the member itself if it comes back below `inc`
   *  (restarted without its state), as proof that it must step over that life. */
  rec: MemberRecord | null;
}

function defaults(selfId: string): Omit<MembershipOptions, keyof Signer> {
  return {
    tickMs: TICK_MS,
    heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
    deadHeartbeatIntervalMs: DEAD_HEARTBEAT_INTERVAL_MS,
    suspectAfterMs: SUSPECT_AFTER_MS,
    vouchWindowMs: VOUCH_WINDOW_MS,
    probeHelpers: PROBE_HELPERS,
    probeTimeoutMs: PROBE_TIMEOUT_MS,
    stallThresholdMs: STALL_THRESHOLD_MS,
    stallGraceMs: STALL_GRACE_MS,
    healthMax: HEALTH_MAX,
    healthDecayMs: HEALTH_DECAY_MS,
    gossipFanout: GOSSIP_FANOUT,
    syncAfterMismatches: SYNC_AFTER_MISMATCHES,
    syncMinIntervalMs: SYNC_MIN_INTERVAL_MS,
    reapAfterMs: REAP_AFTER_MS,
    random: mulberry32(fnv1a(selfId)),
  };
}


function copyInfo(i: MemberInfo): MemberInfo {
  return { id: i.id, name: i.name, addrs: [...i.addrs], tags: [...i.tags], role: i.role };
}

function signedOnly(r: Held): MemberRecord | undefined {
  return r.sig === null ? undefined : { ...r, sig: r.sig };
}

function sameInfo(a: MemberInfo, b: MemberInfo): boolean {
  const same = (x: string[], y: string[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  return a.name === b.name && a.role === b.role && same(a.addrs, b.addrs) && same(a.tags, b.tags);
}

/** Every helper answered and one at least did not hear the member either: decide at once.
 *  Abstentions alone come back in one round trip, before the answer to our own second ping
 *  could: then the deadline decides. */
function answeredAgainst(probe: Probe): boolean {
  return probe.waiting.size === 0 && probe.negatives > 0;
}

function isLive(state: MemberState): boolean {
  return state === 'alive' || state === 'suspect';
}

function isAccusation(state: MemberState): boolean {
  return state === 'suspect' || state === 'dead';
}

export class Membership {
  readonly selfId: string;
  private info: MemberInfo;
  private inc: number;
  /** Our signature over our current claim (info and inc; left once we said goodbye). */
  private sig = '';
  private readonly startedAt: number;
  private leftAt: number | null = null;
  /** Started without a persisted incarnation: the first thing we hear about ourselves may be
   *  a previous life at our own incarnation, so we step over it once (see applySelf). */
  private unsure: boolean;
  private readonly o: MembershipOptions;
  private readonly table = new Map<string, Entry>();
  private readonly graves = new Map<string, Grave>();
  /** Peers the shell says we hold a connection to, members or not yet: a connection often
   *  comes before the record of the peer behind it (its first message is its table). */
  private readonly links = new Set<string>();
  private readonly health: LocalHealth;
  private readonly view: OutboxView;
  private sumCache: number | null = null;
  private readonly schedule: ProbeSchedule;
  private readonly deadSchedule: ProbeSchedule;
  private lastProbe = -Infinity;
  private lastDeadProbe = -Infinity;
  /** When the last gossip round went out, whether news waits for the next, and the time of the
   *  call being served (see finish). */
  private lastGossipRound = -Infinity;
  private gossipOwed = false;
  private callNow = 0;
  /** Changes being spread, by subject id (the record or tombstone is looked up when sent, so
   *  it is always the latest). */
  private readonly broadcasts = new Broadcasts<string>();
  /** The incarnation the last ready carried (see finish): the shell keeps its bound on disk
   *  ahead of it, and is told each time it rises. */
  private reportedInc: number;

  /** `opts` must bring the signer: `sign` as this peer, `verify` any member's signature. */
  constructor(self: MemberInfo, now: number, opts: Partial<MembershipOptions> & Signer, restored?: { inc: number; members: Member[] }) {
    this.selfId = self.id;
    this.info = copyInfo(self);
    this.o = { ...defaults(self.id), ...opts };
    this.startedAt = now;
    this.health = new LocalHealth(this.o, now);
    this.schedule = new ProbeSchedule(this.o.random);
    this.deadSchedule = new ProbeSchedule(this.o.random);
    this.view = {
      selfId: this.selfId,
      inc: () => this.inc,
      peers: () => [...this.table.values()].map((e) => ({ id: e.rec.id, state: e.rec.state })),
      lookup: (id) => {
        if (id === this.selfId) return { record: this.selfRecord() };
        const e = this.table.get(id);
        if (e) {
          const record = signedOnly(e.rec);
          return record ? { record } : undefined;
        }
        const g = this.graves.get(id);
        return g ? { tombstone: { id, inc: g.inc } } : undefined;
      },
    };
    // A restart is a new life: starting above the persisted incarnation makes our first
    // heartbeat outrank any suspicion or death verdict others hold about the previous one.
    // Without persisted state we start at 0 and learn (and refute) what others hold.
    this.inc = restored ? Math.min(MAX_INCARNATION, Math.max(0, restored.inc) + 1) : 0;
    this.unsure = !restored;
    this.reportedInc = this.inc;
    this.signSelf();
    for (const m of restored?.members ?? []) {
      if (m.id === this.selfId || this.table.has(m.id)) continue;
      // Claims are checked again: a disk written by an older version (no claim, or another
      // layout) must not make us gossip what others would reject. Such a member is kept
      // unsigned, for dialing, until it or a peer sends its claim.
      const sig = typeof m.sig === 'string' && signedBySubject(this.o.verify, { ...m, sig: m.sig }) ? m.sig : null;
      const e = this.insert({ ...copyInfo(m), inc: m.inc, state: m.state, sig }, now);
      e.lastHeard = m.lastHeard;
      // Keep the age of old verdicts so reaping still happens a day after death.
      if (!isLive(m.state) && m.stateSince <= now) e.stateSince = m.stateSince;
    }
  }

  self(): Member {
    const left = this.leftAt !== null;
    return {
      ...copyInfo(this.info),
      inc: this.inc,
      state: left ? 'left' : 'alive',
      sig: this.sig,
      stateSince: this.leftAt ?? this.startedAt,
      lastHeard: this.health.lastSeen,
    };
  }

  members(): Member[] {
    return [...this.table.values()].map(snapshot).sort(byId);
  }

  get(id: string): Member | undefined {
    const e = this.table.get(id);
    return e ? snapshot(e) : undefined;
  }

  /** Ids of the members in `state`, unsorted and uncopied: for callers on a hot path (each
   *  replicated push asks who is alive). */
  idsIn(state: MemberState): string[] {
    const out: string[] = [];
    for (const e of this.table.values()) if (e.rec.state === state) out.push(e.rec.id);
    return out;
  }

  wanted(): Member[] {
    return [...this.table.values()].filter((e) => e.rec.state !== 'left').map(snapshot).sort(byId);
  }

  receive(from: string, msg: MembershipMessage, now: number): MembershipReady {
    const p = this.begin(now);
    if (from === this.selfId) return this.finish(p);
    const L = this.live(now);
    const sender = this.table.get(from);
    if (sender) {
      // Any message is proof of life, and answers whatever question a probe was asking.
      sender.heardL = L;
      sender.evidenceL = Math.max(sender.evidenceL, L);
      sender.lastHeard = now;
      sender.probe = null;
      sender.pingL = null;
      if (sender.relayFor.size > 0) {
        for (const r of sender.relayFor) p.send(r, { t: 'probe-ack', target: from, heardAgoMs: 0, linked: true });
        sender.relayFor.clear();
      }
    }
    if (this.leftAt !== null) {
      // We said goodbye; tell whoever still heartbeats us, in case they missed it.
      if (msg.t === 'hb') p.to(from, this.selfId);
      return this.finish(p);
    }
    switch (msg.t) {
      case 'hb':
        // Piggybacked news first: the digest below is then compared with it taken in.
        if (msg.records || msg.forgotten) this.merge(from, 'update', msg.records ?? [], msg.forgotten ?? [], now, p);
        if (msg.ack !== true && sender) p.send(from, { ...this.ping(), ack: true });
        this.onHeartbeat(from, msg.inc, msg.sum, sender, now, p);
        break;
      case 'you':
        this.onYou(from, msg.inc, msg.state, now, p);
        break;
      case 'members':
      case 'update':
        this.merge(from, msg.t, msg.records, msg.forgotten, now, p);
        break;
      case 'probe-req':
        this.onProbeRequest(from, msg.target, L, p);
        break;
      case 'probe-ack':
        this.onProbeAck(from, msg, now, L, p);
        break;
      case 'suspect': {
        const t = this.table.get(msg.target);
        if (t && t.rec.state === 'suspect' && t.rec.inc === msg.inc && from !== msg.target) t.accusers.add(from);
        break;
      }
    }
    return this.finish(p);
  }

  tick(now: number): MembershipReady {
    const p = this.begin(now);
    if (this.leftAt !== null) return this.finish(p);
    this.health.decay(now);
    this.reap(now, p);
    const hb = this.ping();
    // Half a tick of slack: a tick that fires a few ms early must not push a probe to the
    // tick after, stretching the period by 50%.
    const slack = this.o.tickMs / 2;
    const L0 = this.live(now);
    for (const e of this.table.values()) {
      const id = e.rec.id;
      if (isLive(e.rec.state)) {
        this.schedule.add(id);
        this.deadSchedule.remove(id);
      } else {
        this.schedule.remove(id);
        if (e.rec.state === 'dead') this.deadSchedule.add(id);
        else this.deadSchedule.remove(id);
      }
      if (e.relayFor.size > 0 && L0 >= e.relayDeadlineL) {
        for (const r of e.relayFor) p.send(r, { t: 'probe-ack', target: id, heardAgoMs: null, linked: this.linked(e) });
        e.relayFor.clear();
      }
    }
    if (now - this.lastProbe >= this.o.heartbeatIntervalMs - slack) {
      this.lastProbe = now;
      const id = this.schedule.pick();
      const e = id === undefined ? undefined : this.table.get(id);
      // A member we never reached is skipped: the transport drops a ping it has no connection
      // for, and its silence would be ours (see `witness`).
      if (e && this.witness(e)) {
        p.send(e.rec.id, hb);
        e.lastHbSent = now;
        e.pingL ??= L0;
      }
    }
    if (now - this.lastDeadProbe >= this.o.deadHeartbeatIntervalMs - slack) {
      this.lastDeadProbe = now;
      const id = this.deadSchedule.pick();
      if (id !== undefined) p.send(id, hb);
    }
    if (this.health.judging(now)) {
      const L = this.live(now);
      for (const e of [...this.table.values()]) this.judge(e, now, L, p);
    }
    return this.finish(p);
  }

  connected(id: string, now: number): MembershipReady {
    const p = this.begin(now);
    if (id === this.selfId) return this.finish(p);
    this.links.add(id);
    const e = this.table.get(id);
    if (e) {
      e.linkLostL = null;
      e.earlyProbed = false;
    }
    // A new connection may be to a peer that knows nobody yet, or that was cut off from us:
    // give it everything we know, so it learns the peers of its peers. A member we hold alive
    // learned the table from whoever told us of it; a ping's digest finds any difference. (A
    // table to every member on every connection was N^2 records per join, N^3 to form a mesh.)
    if (this.leftAt !== null) p.to(id, this.selfId);
    else if (!e || !isLive(e.rec.state) || e.rec.sig === null) this.sendMembers(id, p);
    else {
      // Our own signed record still: it may know us only by a seed address, unsigned.
      p.to(id, this.selfId);
      p.send(id, this.ping());
    }
    return this.finish(p);
  }

  disconnected(id: string, now: number): MembershipReady {
    const p = this.begin(now);
    this.links.delete(id);
    const e = this.table.get(id);
    // Only a hint: connections drop for many reasons. The next tick asks helpers at once, and
    // only a helper that also lost the member turns the hint into a suspicion; death still
    // needs SUSPECT_AFTER_MS of silence, so a healthy peer that merely reconnects is safe.
    if (e) e.linkLostL = this.live(now);
    return this.finish(p);
  }

  /** The shell could not connect to `id` (refused, timed out): evidence, as a lost connection
   *  is, from then on (see `witness`). */
  unreachable(id: string, now: number): MembershipReady {
    const p = this.begin(now);
    const e = this.table.get(id);
    if (e && !this.linked(e) && e.linkLostL === null) e.linkLostL = this.live(now);
    return this.finish(p);
  }

  addSeed(info: MemberInfo, now: number): MembershipReady {
    const p = this.begin(now);
    if (info.id === this.selfId || this.table.has(info.id) || this.graves.has(info.id)) return this.finish(p);
    // Incarnation 0 is a guess that any record the member or its peers send will replace; it is
    // unsigned, so it is never gossiped and a guess never spreads.
    const e = this.insert({ ...copyInfo(info), inc: 0, state: 'alive', sig: null }, now);
    this.emit(p, 'joined', e, now);
    return this.finish(p);
  }

  updateSelf(patch: Partial<Pick<MemberInfo, 'name' | 'addrs' | 'tags' | 'role'>>, now: number): MembershipReady {
    const p = this.begin(now);
    if (this.leftAt !== null) return this.finish(p);
    this.info = copyInfo({ ...this.info, ...patch, id: this.selfId });
    // Info is only ever changed together with the incarnation, so that "newer" is decidable.
    this.raiseIncarnation(this.inc);
    p.toAll(this.selfId);
    return this.finish(p);
  }

  leave(now: number): MembershipReady {
    const p = this.begin(now);
    if (this.leftAt !== null) return this.finish(p);
    // Left at the current incarnation outranks alive, suspect and dead at it, so the goodbye
    // wins over any failure verdict racing it. No new incarnation: nothing to refute. Signed,
    // as only we may say we left.
    this.leftAt = now;
    this.signSelf();
    this.sumCache = null;
    // To every member at once, dead ones included: after this we send nothing more.
    p.toAll(this.selfId);
    return this.finish(p);
  }

  forget(id: string, now: number): MembershipReady {
    const p = this.begin(now);
    const e = this.table.get(id);
    if (id === this.selfId || (!e && !this.graves.has(id))) return this.finish(p);
    if (e) this.remove(e, e.rec.inc, now, p);
    // Gossip the tombstone: every peer drops the member and ignores records of that life.
    // A member forgotten while actually alive hears of it on its next heartbeat and refutes.
    p.gossip(id);
    return this.finish(p);
  }

  // ---- time ----------------------------------------------------------------------------

  private begin(now: number): Outbox {
    const p = new Outbox();
    this.callNow = now;
    const stalled = this.health.observe(now);
    // Others heard nothing from us during the stall and may already be suspecting us.
    // Refuting at once saves the round trip of waiting to hear of it.
    if (stalled >= STALL_REFUTE_MS && this.leftAt === null) {
      this.raiseIncarnation(this.inc);
      p.gossip(this.selfId);
    }
    return p;
  }

  /** Whether our own silence from `e` says anything about it: we hold a connection to it, or
   *  we lost one or failed to make one (a kill -9 resets every peer's connection; a host that is
   *  gone refuses or times out). A member we have not yet reached (a joiner whose dials, on a
   *  loaded host, take seconds; a table restored from disk) is neither probed nor judged by us:
   *  the transport drops what we send it, and counting that silence made a 30-peer start flap
   *  for a minute, every new member suspected by the members still dialing it. */
  private witness(e: Entry): boolean {
    return this.linked(e) || e.linkLostL !== null;
  }

  /** We hold a connection to it (the shell said `connected`, and no `disconnected` since). */
  private linked(e: Entry): boolean {
    return this.links.has(e.rec.id);
  }

  /** We held a connection to it and lost it, or could not make one: a kill -9's sign. */
  private lostLink(e: Entry): boolean {
    return !this.linked(e) && e.linkLostL !== null;
  }

  private live(now: number): number {
    return this.health.live(now);
  }

  /** Turns the call's news into sends: queued for piggybacking, and sent at once to a few
   *  live members; then every ping and ack of the call carries what is queued. */
  private finish(p: Outbox): MembershipReady {
    const news = p.news();
    const n = this.table.size + 1;
    for (const id of news) {
      const found = this.view.lookup(id);
      if (found) this.broadcasts.enqueue(id, id, JSON.stringify('record' in found ? found.record : found.tombstone).length);
    }
    if (news.length > 0) this.gossipOwed = true;
    // At most one round per GOSSIP_ROUND_MIN_MS: a lone change goes out at once, a burst (a
    // thousand peers joining) goes out in rounds that each carry what queued meanwhile, so a
    // peer sends g messages per round, not g per change it learns (memberlist gossips on a
    // timer for the same reason). What is owed goes out on the tick after the gap.
    if (this.gossipOwed && this.callNow - this.lastGossipRound >= GOSSIP_ROUND_MIN_MS) {
      this.gossipOwed = false;
      this.lastGossipRound = this.callNow;
      const live = [...this.table.values()].filter((e) => isLive(e.rec.state));
      for (const t of this.pick(live, this.o.gossipFanout)) {
        for (const id of this.broadcasts.take(GOSSIP_MAX_BYTES, n)) p.to(t.rec.id, id);
      }
    }
    const incRose = this.inc !== this.reportedInc;
    this.reportedInc = this.inc;
    // Every timer of ours (probe period, probe and relay deadlines, suspicions, the gossip round
    // owed) is checked on each tick, so the next one is wanted a tick period on; after our
    // goodbye nothing runs.
    const next = this.leftAt === null ? this.callNow + this.o.tickMs : undefined;
    return p.finish(this.view, () => this.broadcasts.take(PIGGYBACK_MAX_BYTES, n), incRose, next);
  }

  // ---- failure detection -----------------------------------------------------------------

  private judge(e: Entry, now: number, L: number, p: Outbox): void {
    const silence = L - e.evidenceL;
    const suspectAfter = this.o.suspectAfterMs * this.health.stretch();
    if (e.rec.state === 'alive') {
      // A lost connection is a hint: probe early, unless a probe is under way already.
      if (!this.advanceProbe(e, now, L, p) && this.lostLink(e) && !e.earlyProbed) {
        e.earlyProbed = true;
        this.startProbe(e, true, now, L, p);
      }
    } else if (e.rec.state === 'suspect') {
      // Lifeguard's buddy system, from the accusers only: a peer whose own probe failed pings
      // the suspect every period with the suspicion itself, so a live one refutes at once and
      // its answer keeps that peer's silence short. A peer that only adopted the suspicion
      // hears the refutation by gossip. When every holder pinged it, and probed it through
      // five helpers whenever a ping went unanswered, a suspicion cost the member that was
      // already slow ~7N messages a period and made every holder an accuser at once: on 2
      // starved cores a 40-peer mesh went on suspecting one member after another.
      if (e.confirmed && now - e.lastHbSent >= this.o.heartbeatIntervalMs - this.o.tickMs / 2) {
        e.lastHbSent = now;
        p.send(e.rec.id, this.ping());
        p.to(e.rec.id, e.rec.id);
        e.pingL ??= L;
      }
      // A peer whose own connection to it is gone too (a kill -9 resets every peer's at once)
      // checks it itself, and confirms unless it answers within the probe timeout. Without
      // this, a crash that every peer saw was confirmed only by the few whose own probes the
      // gossip did not overtake.
      // So does a few of the peers that only heard of the suspicion, chosen at random once per
      // suspicion (SUSPICION_CHECKERS of them on average): confirmations of a real failure
      // arrive within a probe timeout, and a live but slow member gets a bounded number of
      // pings, not one from every holder.
      if (!e.confirmed && !e.checked && !e.probe && e.pingL === null) {
        e.checked = true;
        const others = Math.max(1, this.table.size - 1);
        if (this.lostLink(e) || (this.linked(e) && this.o.random() < SUSPICION_CHECKERS / others)) {
          p.send(e.rec.id, this.ping());
          e.pingL = L;
        }
      }
      // Our own ping (the round-robin's or a buddy's) unanswered is an independent failed probe,
      // which confirms the suspicion (Lifeguard). No indirect round: it stands already.
      this.advanceProbe(e, now, L, p, false);
      // Death needs both: the suspicion went unrefuted, and we ourselves hear nothing. A peer
      // that adopted someone else's suspicion but still hears the member never kills it.
      const suspectedFor = L - e.stateSinceL;
      // As memberlist: no more confirmations are expected than there are other members who
      // could give one (N - 2), so in a mesh of three one is enough for the minimum.
      const n = this.table.size + 1;
      const timeout = suspicionTimeout(suspicionBounds(n), e.accusers.size, Math.min(SUSPICION_CONFIRMATIONS, n - 2));
      if (suspectedFor >= timeout * this.health.stretch() && silence >= suspectAfter) {
        this.setState(e, 'dead', now, p);
        p.gossip(e.rec.id);
        p.to(e.rec.id, e.rec.id);
      }
    }
  }

  /** Our own probe of `e`: concludes the indirect probe under way, or acts once our ping went
   *  unanswered: with `indirect`, asks helpers (an alive member); without, accuses it at once
   *  (a suspect). False if neither applies. */
  private advanceProbe(e: Entry, now: number, L: number, p: Outbox, indirect = true): boolean {
    if (e.probe) {
      if (answeredAgainst(e.probe) || L >= e.probe.deadlineL) this.concludeProbe(e, now, p);
      return true;
    }
    if (e.pingL !== null && L - e.pingL >= this.o.probeTimeoutMs * this.health.stretch()) {
      e.pingL = null;
      if (indirect) this.startProbe(e, false, now, L, p);
      else this.suspect(e, now, p);
      return true;
    }
    return false;
  }

  private startProbe(e: Entry, early: boolean, now: number, L: number, p: Outbox): void {
    // Helpers: members we hold alive and are connected to. With probing we hear a member only
    // when one of us probes it, so recent word from a helper cannot be asked for.
    const candidates = [...this.table.values()].filter((h) => h !== e && h.rec.state === 'alive' && this.linked(h));
    const helpers = this.pick(candidates, this.o.probeHelpers);
    if (helpers.length === 0) {
      if (early) return;
      // Nobody to ask (a 2-peer mesh, or we hear no one at all: perhaps we are cut off).
      this.health.bump(now);
      this.suspect(e, now, p);
      return;
    }
    e.probe = {
      deadlineL: L + this.o.probeTimeoutMs * this.health.stretch(),
      waiting: new Set(helpers.map((h) => h.rec.id)),
      negatives: 0,
      abstained: 0,
      early,
    };
    for (const h of helpers) p.send(h.rec.id, { t: 'probe-req', target: e.rec.id });
    // And ask it again ourselves, as memberlist does over TCP: one lost ping or ack alone must
    // not need three helper paths to fail as well to turn into a suspicion.
    p.send(e.rec.id, this.ping());
  }

  private concludeProbe(e: Entry, now: number, p: Outbox): void {
    const probe = e.probe;
    e.probe = null;
    if (!probe) return;
    if (probe.negatives === 0) {
      // An early probe is only a hint confirmed by others; without them, wait for silence.
      if (probe.early) return;
      // Not even one helper answered: the trouble may well be ours. (Helpers that abstained
      // did answer; our own failed probe then stands alone.)
      if (probe.abstained === 0) this.health.bump(now);
    }
    this.suspect(e, now, p);
  }

  private suspect(e: Entry, now: number, p: Outbox): void {
    // Our own failed probe: an independent accusation, sent once per suspicion to a few random
    // members, who count distinct accusers (Lifeguard's confirmations). A few, not all: with
    // many accusers (a real failure) each peer still hears from several, and the cost stays
    // bounded per peer whatever N.
    if (!e.confirmed) {
      e.confirmed = true;
      const confirm: MembershipMessage = { t: 'suspect', target: e.rec.id, inc: e.rec.inc };
      const others = [...this.table.values()].filter((o) => o !== e && o.rec.state === 'alive');
      for (const o of this.pick(others, CONFIRM_FANOUT)) p.send(o.rec.id, confirm);
    }
    if (e.rec.state !== 'alive') return;
    this.setState(e, 'suspect', now, p);
    p.gossip(e.rec.id);
    // The accused hears it from us directly, so it refutes at once if it is alive.
    p.to(e.rec.id, e.rec.id);
  }

  private onProbeRequest(from: string, target: string, L: number, p: Outbox): void {
    const t = this.table.get(target);
    let heardAgoMs: number | null = null;
    let linked = false;
    if (target === this.selfId) {
      heardAgoMs = 0;
      linked = true;
    } else if (!t || !this.witness(t)) {
      // We never reached it: we can neither vouch for it nor count its silence against it.
      p.send(from, { t: 'probe-ack', target, heardAgoMs: null, linked: false, abstain: true });
      return;
    } else {
      // Only direct evidence: answering from a vouch would let helpers vouch for each other
      // in a circle and keep a dead member alive.
      if (t.heardL > -Infinity) heardAgoMs = Math.min(MAX_HEARD_AGO_MS, Math.max(0, Math.round(L - t.heardL)));
      linked = this.linked(t);
      if (!(heardAgoMs !== null && heardAgoMs < this.o.vouchWindowMs && linked)) {
        // Not heard lately (with SWIM we hear a member only when someone probes it): ping it
        // and answer when it answers, or when our wait is over.
        t.relayFor.add(from);
        if (t.relayFor.size === 1) {
          t.relayDeadlineL = L + this.o.probeTimeoutMs * HELPER_WAIT_SHARE;
          p.send(target, this.ping());
        }
        return;
      }
    }
    p.send(from, { t: 'probe-ack', target, heardAgoMs, linked });
  }

  private onProbeAck(from: string, ack: Extract<MembershipMessage, { t: 'probe-ack' }>, now: number, L: number, p: Outbox): void {
    const { target, heardAgoMs, linked } = ack;
    const e = this.table.get(target);
    const probe = e?.probe;
    if (!e || !probe || !probe.waiting.delete(from)) return;
    if (ack.abstain) probe.abstained++;
    else if (heardAgoMs !== null && heardAgoMs < this.o.vouchWindowMs && linked) {
      // Someone hears it: the trouble is between us and it, not with it.
      e.evidenceL = Math.max(e.evidenceL, L - heardAgoMs);
      e.lastHeard = Math.max(e.lastHeard, now - heardAgoMs);
      e.probe = null;
      return;
    } else probe.negatives++;
    if (answeredAgainst(probe) && this.health.judging(now)) this.concludeProbe(e, now, p);
  }

  // ---- dissemination ---------------------------------------------------------------------

  private onHeartbeat(from: string, inc: number, sum: number, e: Entry | undefined, now: number, p: Outbox): void {
    if (!e) {
      // A peer we do not know, or forgot. Saying so makes it send its record, or refute the
      // forgetting with a new incarnation if it is alive after all.
      const g = this.graves.get(from);
      this.say(p, from, g ? g.inc : 0, g ? 'forgotten' : 'unknown');
      // It is below the life we forgot (restarted without its state). Our word is no reason for
      // it to step over that life, its own signature is: show it the record.
      if (g?.rec && g.inc > inc) p.send(from, { t: 'update', records: [g.rec], forgotten: [] });
      return;
    }
    // What we hold unsigned (a seed address) we ask its subject for: we cannot pass it on.
    if (e.rec.sig === null) this.say(p, from, 0, 'unknown');
    else if (inc !== e.rec.inc || e.rec.state !== 'alive') this.say(p, from, e.rec.inc, e.rec.state);
    // Likewise for a life it does not know of: the signed record, not just our word.
    if (inc < e.rec.inc) p.to(from, from);
    if (sum === this.digest()) {
      e.mismatches = 0;
    } else if (++e.mismatches >= this.o.syncAfterMismatches && now - e.lastSyncSent >= this.o.syncMinIntervalMs) {
      e.mismatches = 0;
      e.lastSyncSent = now;
      this.sendMembers(from, p);
    }
  }

  private say(p: Outbox, to: string, inc: number, state: HeldState): void {
    p.send(to, { t: 'you', inc, state });
  }

  private onYou(from: string, inc: number, state: HeldState, now: number, p: Outbox): void {
    if (state === 'unknown') p.to(from, this.selfId);
    // Above our incarnation an unsigned word proves nothing (anyone could push us to the bound,
    // where we could never refute again); an honest holder sends the signed record with it.
    else if (inc <= this.inc) this.applySelf(from, inc, rankOf(state), null, this.cutOff(from, now), now, p);
  }

  /** Someone holds (inc, rank) about us, and the record (info, our signature) if it sent one.
   *  We refute whatever could be about a life of ours it should not be: anything above alive
   *  at our incarnation; our incarnation with other info (a previous life, restarted from stale
   *  persisted state, with other addresses); or, right after a start without persisted state,
   *  anything at all at or above our incarnation (a previous life that got as far as we did).
   *  A record that would make us refute must bear our signature: a forgery must not move our
   *  incarnation (callers pass unsigned beliefs only up to our incarnation, where refuting is
   *  one step). A holder of an older life is updated. `old`: the belief is old news (see
   *  `believes`), no sign of how we answer now. */
  private applySelf(from: string, inc: number, rank: number, rec: MemberRecord | null, old: boolean, now: number, p: Outbox): void {
    const previousLife =
      outranks(inc, rank, this.inc, RANK.alive) ||
      (inc === this.inc && rec !== null && !sameInfo(rec, this.info)) ||
      (this.unsure && inc >= this.inc);
    if (previousLife && rec !== null && !signedBySubject(this.o.verify, rec)) {
      p.reject(from, forgeryReason(rec, this.inc, true));
      return;
    }
    this.unsure = false;
    if (previousLife) {
      // Only being suspected or declared dead in this life hints that we were slow to answer,
      // and only if that is news: a peer back from a cut holds us dead however well we answer.
      if (!old && inc === this.inc && (rank === RANK.suspect || rank === RANK.dead)) this.health.bump(now);
      this.refute(inc, p);
      p.to(from, this.selfId);
    } else if (inc < this.inc) {
      p.to(from, this.selfId);
    }
  }

  private refute(heldInc: number, p: Outbox): void {
    if (this.leftAt !== null) return;
    this.raiseIncarnation(heldInc);
    p.gossip(this.selfId);
  }

  private raiseIncarnation(atLeast: number): void {
    // Saturates at the bound, which only a life of ours could have signed: at one refutation
    // per accusation, 2^31 is out of reach.
    this.inc = Math.min(MAX_INCARNATION, Math.max(this.inc, atLeast) + 1);
    this.signSelf();
    this.sumCache = null;
  }

  /** Signs our claim as it now stands: at start, and whenever our incarnation, info or
   *  goodbye changes (refutation, updateSelf, leave), before anything is sent. */
  private signSelf(): void {
    this.sig = this.o.sign(claimBytes(this.info, this.inc, this.leftAt !== null ? 'left' : 'alive'));
  }

  private merge(from: string, t: 'members' | 'update', records: MemberRecord[], forgotten: Tombstone[], now: number, p: Outbox): void {
    const adopted: string[] = [];
    const standing = t === 'members' || this.cutOff(from, now);
    for (const r of records) if (this.applyRecord(from, r, standing, now, p)) adopted.push(r.id);
    for (const t of forgotten) if (this.applyTombstone(from, t, now, p)) adopted.push(t.id);
    if (adopted.length === 0) return;
    // What was news to us, we spread in turn (see finish).
    for (const id of adopted) p.gossip(id);
    // And make sure an accused member hears the accusation, so it can refute.
    for (const id of adopted) {
      const e = this.table.get(id);
      if (e && id !== from && (e.rec.state === 'suspect' || e.rec.state === 'dead')) p.to(id, id);
    }
  }

  /** `standing`: the record is the sender's standing belief, however old (a full table, or
   *  anything from a peer cut off from us, see `cutOff`), rather than news; see `believes`. */
  private applyRecord(from: string, r: MemberRecord, standing: boolean, now: number, p: Outbox): boolean {
    const rank = RANK[r.state];
    if (r.id === this.selfId) {
      this.applySelf(from, r.inc, rank, r, standing, now, p);
      return false;
    }
    const g = this.graves.get(r.id);
    if (g && !outranks(r.inc, rank, g.inc, RANK.forgotten)) return false;
    const e = this.table.get(r.id);
    // What we hold unsigned (a seed address, an old disk) gives way to anything its subject
    // signed; what we hold signed, only to what outranks it. What would change nothing is
    // dropped unchecked, so only news costs a signature check.
    if (e && e.rec.sig !== null && !outranks(r.inc, rank, e.rec.inc, RANK[e.rec.state])) return false;
    // The subject's signature over the record's info and incarnation bounds everything a
    // relaying member can say: an accusation only at an incarnation the subject signed (so it
    // can refute), 'left' only as the subject's own goodbye, info only as the subject gave it.
    if (!signedBySubject(this.o.verify, r)) {
      p.reject(from, forgeryReason(r, e?.rec.sig ? e.rec.inc : null));
      return false;
    }
    if (!e) {
      this.graves.delete(r.id);
      const added = this.insert(r, now);
      this.emit(p, isLive(r.state) ? 'joined' : r.state, added, now);
      return true;
    }
    if (isAccusation(r.state) && !this.believes(e, standing, now)) {
      // Only its subject can settle the matter for the accuser and whoever else holds it: by
      // refuting, at a higher incarnation, which outranks the accusation everywhere. So the
      // accused hears of it from us, as it would if we believed it (see merge), but as what
      // it is: a standing belief (a `members` message, here of one record), not news, so it
      // refutes without taking it for a sign that it answers slowly.
      if (r.id !== from) p.send(r.id, { t: 'members', records: [r], forgotten: [] });
      // A standing accusation of a member we have not heard for a while is a reason to ask
      // about it now, not to wait for SUSPECT_AFTER_MS: only a helper that does not hear it
      // either turns that into a suspicion, as after a lost connection.
      if (standing && e.rec.state === 'alive' && !e.probe && !this.wouldVouch(e, now) && this.health.judging(now)) {
        this.startProbe(e, true, now, this.live(now), p);
      }
      // What we do take is the claim: the subject's signature covers its being alive at r.inc
      // whatever anyone believes of that, and a higher incarnation brings its current info.
      r = { ...r, state: 'alive' };
      if (e.rec.sig !== null && !outranks(r.inc, RANK.alive, e.rec.inc, RANK[e.rec.state])) return false;
    }
    if (e.rec.sig === null && r.inc === e.rec.inc && r.state === e.rec.state && sameInfo(e.rec, r)) {
      // The claim of just what we held unsigned (a seed's guess, an old disk): no news to
      // relay, only now we can pass it on.
      e.rec = { ...e.rec, sig: r.sig };
      this.sumCache = null;
      return false;
    }
    const before = e.rec;
    e.rec = { ...copyInfo(r), inc: r.inc, state: r.state, sig: r.sig };
    e.probe = null;
    this.sumCache = null;
    if (r.state === 'alive' && r.inc > before.inc) e.evidenceL = Math.max(e.evidenceL, this.live(now));
    if (before.state !== r.state || before.inc !== r.inc) {
      e.accusers.clear();
      e.confirmed = false;
      e.checked = false;
    }
    if (before.state !== r.state) {
      e.stateSince = now;
      e.stateSinceL = this.live(now);
      const type = transition(before.state, r.state);
      if (type === 'rejoined') e.returnedL = this.live(now);
      if (type) this.emit(p, type, e, now);
    }
    if (!sameInfo(before, r)) this.emit(p, 'updated', e, now);
    return true;
  }

  /** Whether we take on a second-hand accusation (suspect or dead) of a member we know.
   *  - Not if we would vouch for it to a prober (heard it directly within VOUCH_WINDOW_MS,
   *    still connected): the accuser asked helpers and none vouched; we would have. Typically
   *    the accuser's view is old: a peer cut off long enough to bury everyone comes back with
   *    a table of verdicts about members we hear every heartbeat.
   *  - Not from a full table (`members`), nor from a peer cut off from us until just now (see
   *    `cutOff`): that is the sender's standing belief, as old as its view, not news.
   *    memberlist takes the deaths in a push/pull sync as suspicions; we take them as a reason
   *    to ask helpers about the member now (see applyRecord), and suspect it only if one of
   *    them does not hear it either: a member we have not heard for a while ourselves may well
   *    be answering everyone else.
   *  - News (an `update`) otherwise: it is how a detection spreads. Whoever missed the member's
   *    last heartbeats concludes first and the others are a heartbeat or two behind it; after
   *    a kill the connections reset, so nobody vouches. */
  private believes(e: Entry, standing: boolean, now: number): boolean {
    return !standing && !this.wouldVouch(e, now);
  }

  /** Whether what `from` says of others is old news: it was cut off from us (we hold it dead),
   *  so its view is as old as the cut (a healed host's transport may even deliver updates it
   *  queued during the cut, verdicts about peers that never left our sight). Likewise for a
   *  while after it came back: until it has had SUSPECT_AFTER_MS to hear the others again,
   *  any verdict of its own predates its return, and what it queued may still be arriving
   *  behind its refutation, by other paths. */
  private cutOff(from: string, now: number): boolean {
    const e = this.table.get(from);
    if (!e) return false;
    return !isLive(e.rec.state) || this.live(now) - e.returnedL < this.o.suspectAfterMs * this.health.stretch();
  }

  /** What a helper's vouch needs (onProbeAck): direct word within the window, and a link. */
  private wouldVouch(e: Entry, now: number): boolean {
    return this.linked(e) && this.live(now) - e.heardL < this.o.vouchWindowMs;
  }

  private applyTombstone(from: string, t: Tombstone, now: number, p: Outbox): boolean {
    // Forgetting is an operator's action on any one peer, so tombstones are not signed; their
    // incarnation is bounded by what the member signed instead, or a member forgotten far above
    // its own incarnation could never come back.
    if (t.id === this.selfId) {
      // Forgotten while alive: come back with a new life.
      // Above our incarnation it proves nothing (a grave's holder shows us the signed record of
      // a life we lost track of, see onHeartbeat), and with our state kept it cannot be true.
      if (t.inc <= this.inc) this.applySelf(from, t.inc, RANK.forgotten, null, false, now, p);
      else p.reject(from, `tombstone for this peer at incarnation ${t.inc}: above its own (${this.inc})`);
      return false;
    }
    // A tombstone only removes a record we hold. Keeping graves for ids we never knew would let
    // two peers hand an expiring grave back and forth for ever; a stale record that reaches us
    // later is removed by the next exchange with a peer that has the grave.
    const e = this.table.get(t.id);
    if (!e || !outranks(t.inc, RANK.forgotten, e.rec.inc, RANK[e.rec.state])) return false;
    if (t.inc > e.rec.inc) {
      const known = e.rec.sig !== null ? 'the highest incarnation it signed that we know' : 'the incarnation we hold';
      p.reject(from, `tombstone for ${t.id} at incarnation ${t.inc}: above ${known} (${e.rec.inc})`);
      return false;
    }
    this.remove(e, t.inc, now, p);
    return true;
  }

  private sendMembers(to: string, p: Outbox): void {
    const records = [this.selfRecord()];
    for (const e of this.table.values()) {
      const r = signedOnly(e.rec);
      if (r) records.push(r);
    }
    const forgotten = [...this.graves].map(([id, g]) => ({ id, inc: g.inc }));
    p.sendChunked(to, 'members', records, forgotten);
  }

  // ---- table -----------------------------------------------------------------------------

  private selfRecord(): MemberRecord {
    return { ...copyInfo(this.info), inc: this.inc, state: this.leftAt !== null ? 'left' : 'alive', sig: this.sig };
  }

  private insert(r: Held, now: number): Entry {
    const L = this.live(now);
    const e: Entry = {
      rec: { ...copyInfo(r), inc: r.inc, state: r.state, sig: r.sig },
      stateSince: now,
      stateSinceL: L,
      lastHeard: 0,
      heardL: -Infinity,
      evidenceL: L,
      returnedL: -Infinity,
      linkLostL: null,
      earlyProbed: false,
      probe: null,
      lastHbSent: -Infinity,
      pingL: null,
      relayFor: new Set(),
      relayDeadlineL: 0,
      accusers: new Set(),
      confirmed: false,
      checked: false,
      mismatches: 0,
      lastSyncSent: -Infinity,
    };
    this.table.set(r.id, e);
    this.sumCache = null;
    return e;
  }

  private remove(e: Entry, inc: number, now: number, p: Outbox): void {
    this.table.delete(e.rec.id);
    const g = this.graves.get(e.rec.id);
    this.graves.set(e.rec.id, { inc: Math.max(inc, g?.inc ?? 0), expires: now + this.o.reapAfterMs, rec: signedOnly(e.rec) ?? null });
    this.sumCache = null;
    this.emit(p, 'forgotten', e, now);
  }

  private setState(e: Entry, state: MemberState, now: number, p: Outbox): void {
    const before = e.rec.state;
    if (state !== before) {
      e.accusers.clear();
      e.confirmed = false;
      e.checked = false;
    }
    e.rec = { ...e.rec, state };
    e.stateSince = now;
    e.stateSinceL = this.live(now);
    e.probe = null;
    this.sumCache = null;
    const type = transition(before, state);
    if (type) this.emit(p, type, e, now);
  }

  private reap(now: number, p: Outbox): void {
    for (const [id, g] of this.graves) if (now >= g.expires) this.graves.delete(id);
    // No copy of the table per tick: one is made only when there is something to remove.
    let doomed: Entry[] | undefined;
    for (const e of this.table.values()) {
      if (!isLive(e.rec.state) && now - e.stateSince >= this.o.reapAfterMs) (doomed ??= []).push(e);
    }
    for (const e of doomed ?? []) this.remove(e, e.rec.inc, now, p);
  }

  /** A ping: our incarnation and table digest, answered by an `hb` with `ack`. */
  private ping(): { t: 'hb'; inc: number; sum: number } {
    return { t: 'hb', inc: this.inc, sum: this.digest() };
  }

  private digest(): number {
    if (this.sumCache === null) {
      const self = this.selfRecord();
      let sum = digestShare(self.id, self.inc, self.state);
      // Over what we would send: an unsigned entry that only we hold must not make two peers
      // push each other tables that cannot settle the difference.
      for (const e of this.table.values()) {
        if (e.rec.sig !== null) sum = (sum + digestShare(e.rec.id, e.rec.inc, e.rec.state)) >>> 0;
      }
      this.sumCache = sum;
    }
    return this.sumCache;
  }

  private emit(p: Outbox, type: MembershipEventType, e: Entry, now: number): void {
    p.event({ type, member: snapshot(e), at: now });
  }

  /** Up to k distinct items, uniformly, from our deterministic source. */
  private pick<T>(items: T[], k: number): T[] {
    return pickTargets(items, k, this.o.random);
  }
}

/** The event a state change is reported as; none for a change that is no news (suspect to
 *  suspect at a higher incarnation). */
function transition(from: MemberState, to: MemberState): MembershipEventType | null {
  if (from === to) return null;
  if (to === 'left' || to === 'dead') return to;
  if (from === 'dead' || from === 'left') return 'rejoined';
  return to === 'suspect' ? 'suspect' : 'alive';
}

function snapshot(e: Entry): Member {
  return { ...copyInfo(e.rec), inc: e.rec.inc, state: e.rec.state, sig: e.rec.sig, stateSince: e.stateSince, lastHeard: e.lastHeard };
}

/** Why a record whose signature is not its subject's is refused: one line for the log.
 *  `heldInc`: the highest incarnation of the subject's we know signed (ours, for `self`). */
function forgeryReason(r: MemberRecord, heldInc: number | null, self = false): string {
  const what = `${r.state} record for ${self ? 'this peer' : r.id} at incarnation ${r.inc}`;
  if (r.state === 'left') return `${what}: the goodbye is not signed by that member (only a member itself can leave)`;
  if (self) return `${what}: not signed by this peer${r.inc > (heldInc ?? 0) ? ` (its incarnation is ${heldInc})` : ''}`;
  const above = heldInc !== null && r.inc > heldInc ? ` (the highest incarnation it signed that we know is ${heldInc})` : '';
  return `${what}: not signed by that member${above}`;
}

function byId(a: Member, b: Member): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
