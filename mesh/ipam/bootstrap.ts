// Bootstrapping the IPAM ring: single-decree Paxos over the value "which peers share the range
// first". Only peers with no ring take part; a peer that has one answers with it instead
// (ipam.ts), so a peer joining a running mesh never waits for a vote.
//
// Why consensus and not "the lowest id I can see creates the ring": two groups that start apart
// (a partition, a typo in --peers) would each create a ring, each hand out 10.32.0.1, and no
// merge can undo that once containers use the addresses. A majority of the peers expected at
// launch cannot be split in two, so at most one ring is ever created; a lone peer (expected 1)
// is its own majority and bootstraps at once, inside its first allocation. The cost: a fresh
// mesh told to expect N peers waits until a majority of them is up, and says so in status.
//
// Liveness: a peer proposes only while it wants space. Ballots are (round, proposer id); a
// proposer that is refused retries after a delay that grows with its rank among the live peers
// (lowest id first) plus jitter, so duels end within a round or two.

import { fnv1a64 } from './hash.ts';

/** A phase with no quorum of answers by then is abandoned and retried: a round trip on a LAN
 *  takes milliseconds, so a second means peers are missing or messages lost. */
export const BOOTSTRAP_PHASE_TIMEOUT_MS = 1000;
/** Base retry delay after a refused or timed-out ballot, multiplied by 1 + rank: long enough for
 *  the lower-ranked proposer's two round trips to finish first. */
export const BOOTSTRAP_RETRY_MS = 200;

export type Ballot = [round: number, proposer: string];

/** The decided value: the members that share the range at first, and the ballot that first
 *  proposed it (so that two independently decided rings never have the same genesis). */
export interface GenesisValue {
  members: string[];
  by: Ballot;
}

export interface Accepted {
  b: Ballot;
  value: GenesisValue;
}

/** What an acceptor must keep across restarts: its promise and what it accepted. */
export interface AcceptorState {
  promised: Ballot | null;
  accepted: Accepted | null;
}

export type BootstrapMessage =
  | { t: 'prepare'; b: Ballot }
  | { t: 'promise'; b: Ballot; acc: Accepted | null }
  | { t: 'accept'; b: Ballot; value: GenesisValue }
  | { t: 'accepted'; b: Ballot }
  | { t: 'nack'; b: Ballot; promised: Ballot };

export interface BootstrapStep {
  send: { to: string; msg: BootstrapMessage }[];
  /** The decided value, once a quorum accepted it. */
  chosen: GenesisValue | null;
  /** The acceptor state changed: persist before sending. */
  persist: boolean;
}

export function cmpBallot(a: Ballot, b: Ballot): number {
  if (a[0] !== b[0]) return a[0] - b[0];
  return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

/** The ring's genesis id: the same for everyone who learns the same decision. */
export function genesisId(v: GenesisValue): string {
  return fnv1a64(JSON.stringify([v.by, [...v.members].sort()]));
}

export function quorumOf(expectedPeers: number): number {
  return Math.floor(expectedPeers / 2) + 1;
}

function step(): BootstrapStep {
  return { send: [], chosen: null, persist: false };
}

export class Bootstrap {
  readonly self: string;
  /** Majority of the expected peers: the least any ballot needs. */
  readonly quorum: number;
  readonly expected: number;
  /** The current ballot's quorum: a majority of the expected peers or of the live ones, whichever
   *  is larger. More live peers than expected means the count given at launch was too small;
   *  a larger quorum still intersects every smaller one's majority, so this only adds safety. */
  private ballotQuorum: number;
  acceptor: AcceptorState;
  /** Set while this peer needs a ring (an allocation waits); only then does it propose. */
  want = false;
  private phase: 'idle' | 'prepare' | 'accept' | 'done' = 'idle';
  private ballot: Ballot | null = null;
  private readonly promises = new Map<string, Accepted | null>();
  private readonly accepts = new Set<string>();
  private value: GenesisValue | null = null;
  private deadline = 0;
  private nextTry = -Infinity;
  private maxRound = 0;
  /** Peers that answered our latest ballot, for status. */
  private heard = new Set<string>();
  /** Peers the current ballot's prepare went to; peers that come alive during it get it too. */
  private readonly contacted = new Set<string>();

  constructor(self: string, expectedPeers: number, acceptor?: AcceptorState) {
    if (!Number.isSafeInteger(expectedPeers) || expectedPeers < 1) throw new RangeError('ipam: expected peers must be a positive integer');
    this.self = self;
    this.expected = expectedPeers;
    this.quorum = quorumOf(expectedPeers);
    this.ballotQuorum = this.quorum;
    this.acceptor = acceptor ?? { promised: null, accepted: null };
  }

  /** For status: how far the current attempt got. */
  progress(): { quorum: number; agreed: string[] } {
    return { quorum: this.ballotQuorum, agreed: [...this.heard].sort() };
  }

  /** When a tick next has work for time's sake: the current phase's deadline, or the retry
   *  after a refused or timed-out ballot; Infinity while this peer does not propose. */
  nextDeadline(): number {
    if (!this.want) return Infinity;
    if (this.phase === 'prepare' || this.phase === 'accept') return this.deadline;
    return this.phase === 'idle' ? this.nextTry : Infinity;
  }

  tick(now: number, live: readonly string[], random: () => number): BootstrapStep {
    const out = step();
    if (!this.want || this.phase === 'done') return out;
    if ((this.phase === 'prepare' || this.phase === 'accept') && now >= this.deadline) {
      this.phase = 'idle';
      this.nextTry = now + this.backoff(live, random);
    }
    if (this.phase === 'idle' && now >= this.nextTry) this.start(now, live, out);
    else if (this.phase === 'prepare' && this.ballot !== null) {
      const b = this.ballot;
      for (const p of live) if (p !== this.self && !this.contacted.has(p)) (this.contacted.add(p), out.send.push({ to: p, msg: { t: 'prepare', b } }));
    }
    return out;
  }

  receive(from: string, msg: BootstrapMessage, now: number, live: readonly string[], random: () => number): BootstrapStep {
    const out = step();
    switch (msg.t) {
      case 'prepare':
        out.send.push({ to: from, msg: this.onPrepare(msg.b, out) });
        break;
      case 'accept':
        out.send.push({ to: from, msg: this.onAccept(msg.b, msg.value, out) });
        break;
      case 'promise':
        if (this.phase === 'prepare' && this.ballot !== null && cmpBallot(msg.b, this.ballot) === 0) {
          this.promises.set(from, msg.acc);
          this.heard.add(from);
          this.afterPromise(now, out);
        }
        break;
      case 'accepted':
        if (this.phase === 'accept' && this.ballot !== null && cmpBallot(msg.b, this.ballot) === 0) {
          this.accepts.add(from);
          this.afterAccepted(out);
        }
        break;
      case 'nack':
        if (this.ballot !== null && cmpBallot(msg.b, this.ballot) === 0 && (this.phase === 'prepare' || this.phase === 'accept')) {
          this.maxRound = Math.max(this.maxRound, msg.promised[0]);
          this.phase = 'idle';
          this.nextTry = now + this.backoff(live, random);
        }
        break;
    }
    return out;
  }

  /** A ring arrived from elsewhere: stop proposing. */
  settled(): void {
    this.phase = 'done';
    this.want = false;
  }

  private backoff(live: readonly string[], random: () => number): number {
    const rank = live.filter((p) => p < this.self).length;
    return BOOTSTRAP_RETRY_MS * (1 + rank) + Math.floor(random() * BOOTSTRAP_RETRY_MS);
  }

  private start(now: number, live: readonly string[], out: BootstrapStep): void {
    const a = this.acceptor;
    const round = Math.max(this.maxRound, a.promised?.[0] ?? 0, a.accepted?.b[0] ?? 0) + 1;
    this.maxRound = round;
    const b: Ballot = [round, this.self];
    this.ballot = b;
    this.ballotQuorum = Math.max(this.quorum, quorumOf(new Set([...live, this.self]).size));
    this.phase = 'prepare';
    this.promises.clear();
    this.accepts.clear();
    this.heard = new Set([this.self]);
    this.value = null;
    this.deadline = now + BOOTSTRAP_PHASE_TIMEOUT_MS;
    const mine = this.onPrepare(b, out);
    if (mine.t === 'promise') this.promises.set(this.self, mine.acc);
    this.contacted.clear();
    for (const p of live) if (p !== this.self) (this.contacted.add(p), out.send.push({ to: p, msg: { t: 'prepare', b } }));
    this.afterPromise(now, out);
  }

  private afterPromise(now: number, out: BootstrapStep): void {
    if (this.phase !== 'prepare' || this.promises.size < this.ballotQuorum || this.ballot === null) return;
    let best: Accepted | null = null;
    for (const acc of this.promises.values()) if (acc !== null && (best === null || cmpBallot(acc.b, best.b) > 0)) best = acc;
    const value: GenesisValue = best?.value ?? { members: [...this.promises.keys()].sort(), by: this.ballot };
    this.value = value;
    this.phase = 'accept';
    this.deadline = now + BOOTSTRAP_PHASE_TIMEOUT_MS;
    const b = this.ballot;
    if (this.onAccept(b, value, out).t === 'accepted') this.accepts.add(this.self);
    for (const p of this.promises.keys()) if (p !== this.self) out.send.push({ to: p, msg: { t: 'accept', b, value } });
    this.afterAccepted(out);
  }

  private afterAccepted(out: BootstrapStep): void {
    if (this.phase !== 'accept' || this.accepts.size < this.ballotQuorum || this.value === null) return;
    this.phase = 'done';
    this.want = false;
    out.chosen = this.value;
  }

  private onPrepare(b: Ballot, out: BootstrapStep): BootstrapMessage {
    const a = this.acceptor;
    if (a.promised !== null && cmpBallot(b, a.promised) < 0) return { t: 'nack', b, promised: a.promised };
    if (a.promised === null || cmpBallot(b, a.promised) > 0) {
      a.promised = b;
      out.persist = true;
    }
    return { t: 'promise', b, acc: a.accepted };
  }

  private onAccept(b: Ballot, value: GenesisValue, out: BootstrapStep): BootstrapMessage {
    const a = this.acceptor;
    if (a.promised !== null && cmpBallot(b, a.promised) < 0) return { t: 'nack', b, promised: a.promised };
    a.promised = b;
    a.accepted = { b, value };
    out.persist = true;
    return { t: 'accepted', b };
  }
}
