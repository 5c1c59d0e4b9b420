// The control plane on one peer, composed: the Raft node on its mesh channel, the announcement
// of this peer's part in gossip (observed state: who leads, seen by every peer, so a worker
// knows where to send a write), the founding of the first cluster, and on the leader the
// autopilot that chooses the managers. Composed beside the peer (cli/launch.ts), never in it.

import type { Connection, Libp2p } from '@libp2p/interface';
import { Channel } from '../../mesh/transport/channel.ts';
import { MANAGER_STATE_KEY } from '../../mesh/keyspace.ts';
import type { Logger } from '../../mesh/log.ts';
import type { MeshView } from '../../mesh/mesh-view.ts';
import type { Store } from '../../mesh/store.ts';
import { decide, type Candidate, type PeerRole } from './autopilot.ts';
import { RaftNode } from './raft-node.ts';
import type { NodeStatus } from './node-types.ts';
import { MANAGER_MAX_FRAME_BYTES, MANAGER_MAX_QUEUE_BYTES, MANAGER_PROTOCOL } from './wire.ts';

/** Three voters survive one failure, the usual choice (swarm, Consul, etcd). */
export const DEFAULT_MANAGERS = 3;
/** How often the autopilot and the announcement run: membership changes are rare and slow
 *  (a learner catches up over seconds), so once a second is prompt enough and costs nothing. */
const ROUND_MS = 1000;
/** A founding peer waits this long before it makes a cluster of its own: long enough to hear,
 *  from the peers it remembers, of a cluster that already exists (gossip converges in a
 *  second or two), so that a peer whose data was lost does not found a second one. */
const FOUNDING_WAIT_MS = 3000;

export interface ManagersOptions {
  node: Libp2p;
  store: Store;
  view: MeshView;
  /** Whether a connection is a mesh member's (API-token clients may not use the channel). */
  accept(conn: Connection): boolean;
  role: PeerRole;
  managers: number;
  graceMs: number;
  /** Whether this peer may found a cluster: it was launched with no peers to join. */
  mayFound: boolean;
  log: Logger;
  onFatal(err: unknown): void;
}

/** What each peer announces in gossip under MANAGER_STATE_KEY. */
interface Announcement {
  role: NodeStatus['role'];
  leader: string | null;
  term: number;
}

export class Managers {
  readonly raft: RaftNode;
  private readonly channel: Channel;
  private readonly o: ManagersOptions;
  private timer?: NodeJS.Timeout;
  private readonly startedAt = Date.now();
  private announced = '';
  /** When each peer was first seen not alive, for the grace period (this leader's clock). */
  private readonly downSince = new Map<string, number>();
  private lastDecision = '';
  /** Leaders seen elected, for /metrics. */
  leaderChanges = 0;

  private constructor(o: ManagersOptions, raft: RaftNode, channel: Channel) {
    this.o = o;
    this.raft = raft;
    this.channel = channel;
  }

  static async start(o: ManagersOptions): Promise<Managers> {
    let channel: Channel | undefined;
    const raft = await RaftNode.open(o.view.self.id, o.store, {
      send: (to, m) => channel?.send(to, m),
      onFatal: o.onFatal,
      log: o.log,
    });
    channel = new Channel(o.node, {
      protocol: MANAGER_PROTOCOL,
      maxFrameBytes: MANAGER_MAX_FRAME_BYTES,
      maxQueueBytes: MANAGER_MAX_QUEUE_BYTES,
      onMessage: (from, msg) => raft.onMessage(from, msg),
      accept: (conn) => o.accept(conn),
    }, o.log);
    const m = new Managers(o, raft, channel);
    raft.leaderHint = () => m.announcedLeader();
    raft.knownPeer = (id) => o.view.members().some((p) => p.id === id);
    raft.onEvent((e) => {
      if (e.type === 'leader-elected') m.leaderChanges++;
    });
    o.node.addEventListener('peer:disconnect', (evt) => {
      const id = evt.detail.toString();
      channel.reset(id);
      raft.connectionClosed(id);
    });
    await channel.start();
    raft.start();
    m.timer = setInterval(() => void m.round().catch((err) => o.log.warn('manager round failed', { err: String(err) })), ROUND_MS);
    m.timer.unref?.();
    return m;
  }

  /** Hands leadership over if this peer leads: a planned stop must not cost an election
   *  timeout, and the writes waiting meanwhile wait for it, so it goes before anything else
   *  of a stop. Logs what it could not do; never throws. */
  async handOver(): Promise<void> {
    if (this.raft.isLeader() && this.raft.successor()) {
      try {
        const t = await this.raft.transfer();
        this.o.log.info('handed leadership over before stopping', { to: t.to });
      } catch (err) {
        this.o.log.warn('could not hand leadership over before stopping', { err: String(err) });
      }
    }
  }

  /** Hands leadership over (handOver), then stops. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.handOver();
    await this.raft.flushed();
    this.raft.stop();
    await this.channel.stop();
  }

  status(): NodeStatus {
    return this.raft.status();
  }

  private async round(): Promise<void> {
    const now = Date.now();
    await this.announce();
    if (!this.raft.hasState()) return this.maybeFound(now);
    for (const p of this.o.view.members()) {
      if (p.state === 'alive') this.downSince.delete(p.id);
      else if (!this.downSince.has(p.id)) this.downSince.set(p.id, now);
    }
    if (this.raft.isLeader()) await this.autopilot(now);
  }

  /** This peer's part, in gossip, when it changes (not per commit: the registry is for
   *  observed state that changes rarely). */
  private async announce(): Promise<void> {
    const s = this.raft.status();
    const a: Announcement = { role: s.role, leader: s.leader, term: s.term };
    const text = JSON.stringify(a);
    if (text === this.announced) return;
    this.announced = text;
    await this.o.view.put(MANAGER_STATE_KEY, s.role === 'none' && !this.raft.hasState() ? null : text);
  }

  /** The leader of the newest term any peer announces: where a peer that is not a manager
   *  sends its writes. */
  announcedLeader(): string | undefined {
    let best: Announcement | undefined;
    for (const e of this.o.view.entries(MANAGER_STATE_KEY)) {
      if (e.key !== MANAGER_STATE_KEY || e.value === null) continue;
      try {
        const a = JSON.parse(e.value) as Announcement;
        if (typeof a.leader === 'string' && Number.isSafeInteger(a.term) && (!best || a.term > best.term)) best = a;
      } catch { /* a malformed announcement names no leader */ }
    }
    return best?.leader ?? undefined;
  }

  /** A peer launched with nobody to join, holding no Raft state, founds the cluster once it
   *  has waited to hear of an existing one and heard none. */
  private async maybeFound(now: number): Promise<void> {
    if (!this.o.mayFound || this.o.role === 'worker' || now - this.startedAt < FOUNDING_WAIT_MS) return;
    const others = this.o.view.entries(MANAGER_STATE_KEY).filter((e) => e.owner !== this.o.view.self.id && e.value !== null);
    if (others.length > 0) return;
    await this.raft.bootstrap();
  }

  private async autopilot(now: number): Promise<void> {
    const roles = new Map(this.raft.state.list('node-role').map((o) => [o.name, o.spec as 'manager' | 'worker']));
    const peers: Candidate[] = this.o.view.members().map((p) => ({
      id: p.id, role: p.role, alive: p.state === 'alive',
      ...(roles.has(p.id) ? { override: roles.get(p.id) } : {}),
      ...(this.downSince.has(p.id) ? { downSince: this.downSince.get(p.id) } : {}),
    }));
    const s = this.raft.status();
    const d = decide({
      self: this.raft.self, conf: { voters: s.voters, learners: s.learners }, peers,
      target: this.o.managers, graceMs: this.o.graceMs, now, lastIndex: this.raft.lastIndex(),
      match: (id) => this.raft.progressOf(id).match,
    });
    if (!d) return;
    if ('transfer' in d) {
      this.o.log.info('autopilot: handing leadership over', { why: d.why });
      await this.raft.transfer().catch((err) => this.o.log.warn('autopilot: transfer failed', { err: String(err) }));
      return;
    }
    const refused = this.raft.changeMembership(d.change);
    const line = `${d.change.type} ${d.change.id}: ${refused ?? d.why}`;
    if (line !== this.lastDecision) this.o.log.info(refused ? 'autopilot: change not made' : 'autopilot: membership change', { change: d.change.type, peer: d.change.id, why: refused ?? d.why });
    this.lastDecision = line;
  }

  /** The id of the member named `ref` by id, name or address. */
  resolvePeer(ref: string): string | undefined {
    return this.o.view.members().find((m) => m.id === ref || m.name === ref || m.address === ref || m.address.split(':')[0] === ref)?.id;
  }

  /** Names and addresses of members by id, for display (one read of the member table). */
  names(): Map<string, { name: string; address: string }> {
    return new Map(this.o.view.members().map((m) => [m.id, { name: m.name, address: m.address }]));
  }

  nameOf(id: string): { name: string; address: string } | undefined {
    return this.names().get(id);
  }
}
