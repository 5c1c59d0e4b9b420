import type { Connection, Libp2p } from '@libp2p/interface';
import { networkInterfaces } from 'node:os';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { validTokenKey } from './admission/api-token.ts';
import { ApiTokens } from './admission/tokens.ts';
import { formatHostPort, hostPortOf, type HostPort } from './address.ts';
import type { PeerConfig } from './config.ts';
import { Dialer } from './transport/dialer.ts';
import { DialTargets } from './transport/dial-targets.ts';
import { createMeshHost } from './transport/host.ts';
import type { EventLog } from './events.ts';
import { loadIdentity, verifySignature, type Identity } from './admission/identity.ts';
import { errorText, logger, type Logger } from './log.ts';
import { TICK_MS, type Membership } from './membership/membership.ts';
import { type MembershipEvent } from './membership/member.ts';
import { MembershipShell } from './membership/shell.ts';
import { Metrics } from './metrics.ts';
import { registerPeerMetrics } from './peer-metrics.ts';
import { ReplicaShell } from './replication/shell.ts';
import { SYNC_MAX_FRAME, SYNC_MAX_QUEUE, SYNC_PROTOCOL } from './replication/wire.ts';
import { IpamShell } from './ipam/shell.ts';
import type { MeshView, PeerLiveness } from './mesh-view.ts';
import type { Network } from './network/network.ts';
import { checkRangeAgainstRoutes } from './network/route-overlap.ts';
import { Store } from './store.ts';


/** How often the dialer is given the whole member table (see tick). */
const WANTED_REFRESH_MS = 1000;

/** One weft peer, composed: identity, the libp2p host with admission, and the membership,
 *  replication and IPAM shells, API tokens, metrics, and the container network when asked. */
export class Peer {
  readonly config: PeerConfig;
  readonly identity: Identity;
  readonly node: Libp2p;
  readonly store: Store;
  /** The membership core (read it here; the shell drives it). */
  readonly membership: Membership;
  readonly replica: ReplicaShell;
  readonly ipam: IpamShell;
  /** The container network; absent with --no-dataplane. */
  network?: Network;
  readonly metrics = new Metrics();
  readonly startedAt = Date.now();
  readonly advertise: HostPort;
  private readonly members: MembershipShell;
  /** API tokens and the credential each admitted connection proved. */
  readonly tokens: ApiTokens;
  private readonly dialer: Dialer;
  private readonly targets: DialTargets;
  private readonly log: Logger;
  private timer?: NodeJS.Timeout;
  private lastWantedAt = -Infinity;
  private metricsServer?: Server;
  private stopping = false;
  readonly rejectedAdmissions: { count: number };

  private constructor(init: {
    config: PeerConfig; identity: Identity; node: Libp2p; store: Store; members: MembershipShell;
    advertise: HostPort; log: Logger; replica: ReplicaShell; ipam: IpamShell; rejectedAdmissions: { count: number };
    credentials: WeakMap<object, string>;
  }) {
    this.tokens = new ApiTokens({ replica: init.replica, node: init.node, credentials: init.credentials });
    this.rejectedAdmissions = init.rejectedAdmissions;
    this.config = init.config;
    this.identity = init.identity;
    this.node = init.node;
    this.store = init.store;
    this.members = init.members;
    this.membership = init.members.core;
    this.advertise = init.advertise;
    this.log = init.log;
    this.replica = init.replica;
    this.ipam = init.ipam;
    this.members.attach(this.node);
    this.dialer = new Dialer(this.node, {
      log: this.log.child('dial'),
      selfAddrs: [formatHostPort(this.advertise), formatHostPort(this.config.listen)],
      onConnected: (_addr, id) => this.members.connected(id),
      onFailed: (_addr, id) => this.members.unreachable(id),
    });
    this.targets = new DialTargets(this.dialer, this.store);
  }

  static async start(config: PeerConfig): Promise<Peer> {
    const log = logger('peer');
    await privateDataDir(config.dataDir, log);
    const store = await Store.open(join(config.dataDir, 'db'));
    let node: Libp2p | undefined;
    try {
      const identity = await loadIdentity(store);
      const advertise = config.advertise ?? defaultAdvertise(config.listen);
      // Bound once the peer exists: members' events feed its dial targets and the replica.
      let onMemberEvent: (e: MembershipEvent) => void = () => undefined;
      let isMember: (conn: Connection) => boolean = () => false;
      const members = await MembershipShell.open(
        { id: identity.id, name: config.name, addrs: [formatHostPort(advertise)], tags: config.tags, role: config.role },
        // Gossiped records carry their subject's signed claim: no member can speak for another.
        { sign: (bytes) => identity.sign(bytes), verify: verifySignature },
        { store, log, accept: (conn) => isMember(conn), onEvent: (e) => onMemberEvent(e) },
      );
      // Bound once the replica is open: API tokens live in the replicated space.
      let tokenKey: (id: string) => ReturnType<typeof validTokenKey> = () => undefined;
      const credentials = new WeakMap<object, string>();
      const rejectedAdmissions = { count: 0 };
      node = await createMeshHost({
        privateKey: identity.libp2pKey, listen: config.listen, meshKey: config.meshKey,
        apiTokenKey: (id) => tokenKey(id),
        onAdmitted: (connection, credential) => credentials.set(connection, credential),
        onRejected: () => rejectedAdmissions.count++,
      });
      const replica = await ReplicaShell.open({ store, identity, verify: verifySignature, log: log.child('replica') });
      tokenKey = (id) => validTokenKey((key) => replica.lookup(key), id);
      const ipam = await IpamShell.open({
        store, self: identity.id, range: config.ipallocRange,
        expectedPeers: config.ipallocInit, log: log.child('ipam'),
      });
      const peer = new Peer({ config, identity, node, store, members, advertise, log, replica, ipam, rejectedAdmissions, credentials });
      onMemberEvent = (e) => peer.onMemberEvent(e);
      isMember = (conn) => peer.tokens.isMember(conn);
      try {
        await peer.run();
      } catch (err) {
        peer.halt();
        throw err;
      }
      return peer;
    } catch (err) {
      await Promise.resolve(node?.stop()).catch(() => undefined);
      await store.close().catch(() => undefined);
      throw err;
    }
  }

  private async run(): Promise<void> {
    try {
      await this.node.start();
    } catch (err) {
      const text = errorText(err);
      if (/EADDRINUSE/.test(text)) {
        throw new Error(`the mesh address ${formatHostPort(this.config.listen)} is in use (is another weft peer running? stop it or choose another --listen)`);
      }
      if (/EADDRNOTAVAIL/.test(text)) {
        throw new Error(`cannot listen on ${formatHostPort(this.config.listen)}: no interface has that address (check --listen)`);
      }
      throw err;
    }
    await this.members.start();
    this.replica.attach(this.node, {
      protocol: SYNC_PROTOCOL,
      maxFrameBytes: SYNC_MAX_FRAME,
      maxQueueBytes: SYNC_MAX_QUEUE,
      alive: () => this.membership.idsIn('alive'),
      accept: (conn) => this.tokens.isMember(conn),
    });
    await this.replica.start();
    this.ipam.attach(this.node, (conn) => this.tokens.isMember(conn));
    await this.ipam.start();
    this.node.addEventListener('peer:disconnect', (evt) => {
      const id = evt.detail.toString();
      this.replica.reset(id);
      this.ipam.reset(id);
      this.members.disconnected(id);
      this.dialer.wake();
    });
    await this.targets.restore(this.config.peers, Date.now());
    if (this.config.dataplane) {
      const range = this.config.ipallocRange;
      await checkRangeAgainstRoutes(range);
      // Loaded only here: the Docker client and its dependencies cost a mesh-only peer
      // (--no-dataplane) ~15 MB of memory it never uses.
      const { Network } = await import('./network/network.ts');
      this.network = await Network.start({
        mode: this.config.dataplaneMode, range, underlay: this.advertise.host, dataDir: this.config.dataDir,
        dockerHost: this.config.dockerHost, pluginName: this.config.pluginName, view: this.view(), ipam: this.ipam, store: this.store, log: this.log.child('network'),
      });
    }
    this.registerMetrics();
    if (this.config.metricsListen) {
      this.metricsServer = await this.metrics.serve(this.config.metricsListen.host, this.config.metricsListen.port);
    }
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.log.info('peer started', {
      id: this.identity.id, name: this.config.name, listen: formatHostPort(this.config.listen),
      advertise: formatHostPort(this.advertise), peers: this.config.peers.join(',') || undefined,
    });
  }

  private tick(): void {
    const now = Date.now();
    this.members.tick(now);
    // Members' addresses reach the dialer as they are learned (onMemberEvent); this pass
    // catches what was restored from disk, and costs a sort of the table, so not every tick.
    if (now - this.lastWantedAt >= WANTED_REFRESH_MS) {
      this.lastWantedAt = now;
      for (const m of this.membership.wanted()) {
        for (const addr of m.addrs) this.dialer.add(addr, now, m.id);
      }
    }
    this.dialer.tick(now);
    this.replica.tick(now);
    this.ipam.tick(now, this.ipamView());
  }

  /** IPAM's view: live = not proven dead (suspects included); known = every member not
   *  forgotten, whatever its state, since a removal must wait for each of them. */
  private ipamView(): { live: Set<string>; known: Set<string> } {
    const live = new Set<string>([this.identity.id]);
    const known = new Set<string>([this.identity.id]);
    // Every tick: states only, not the sorted copies of every record that members() makes.
    for (const state of ['alive', 'suspect', 'dead', 'left'] as const) {
      for (const id of this.membership.idsIn(state)) {
        known.add(id);
        if (state === 'alive' || state === 'suspect') live.add(id);
      }
    }
    return { live, known };
  }

  /** What subsystems (DNS, data plane, Docker attachment) see of the mesh. */
  view(): MeshView {
    return {
      self: { id: this.identity.id, name: this.config.name },
      entries: (prefix) => this.replica.lookup(prefix, true),
      onEntries: (fn) => this.replica.onChange(fn),
      liveness: (id) => this.liveness(id),
      onLiveness: (fn) => this.members.onLiveness(fn),
      put: (key, value) => this.replica.put(key, value),
      members: () => [
        { id: this.identity.id, name: this.config.name, address: formatHostPort(this.advertise), role: this.config.role, state: 'alive' as const, tags: [...this.config.tags] },
        ...this.membership.members().map((m) => ({ id: m.id, name: m.name, address: m.addrs[0] ?? '', role: m.role, state: m.state, tags: m.tags })),
      ],
    };
  }

  liveness(id: string): PeerLiveness | undefined {
    if (id === this.identity.id) return 'alive';
    // A lookup, not a scan: DNS and the network ask this per container.
    return this.membership.get(id)?.state;
  }

  /** The peer's log of membership events (`weft events`). */
  get events(): EventLog {
    return this.members.events;
  }

  /** What the peer itself does on a membership event, after the shell logged and stored it. */
  private onMemberEvent(e: MembershipEvent): void {
    if (e.type === 'joined' || e.type === 'rejoined' || e.type === 'updated') this.targets.learned(e.member.addrs, e.at, e.member.id);
    this.replica.onMember(e);
  }

  /** `weft connect`: dial now and keep the address across restarts. */
  connect(addr: string): Promise<string> {
    return this.targets.connect(addr);
  }

  /** `weft forget`: stop dialing an address (and forget the member behind it). */
  async forget(what: string): Promise<{ addrs: string[]; member?: string }> {
    const member = this.membership.members().find((m) => m.id === what || m.name === what || m.addrs.includes(what));
    const addrs = new Set<string>(member ? member.addrs : []);
    if (this.targets.has(what)) addrs.add(what);
    if (!member && addrs.size === 0) throw new Error(`no peer or address "${what}" is known here (see weft peers)`);
    await this.targets.remove(addrs);
    if (member) {
      await this.members.forget(member.id);
      await this.node.hangUp(this.node.getConnections().find((c) => c.remotePeer.toString() === member.id)?.remotePeer ?? this.node.peerId).catch(() => undefined);
    }
    return { addrs: [...addrs], member: member?.id };
  }

  connectedPeers(): Set<string> {
    return new Set(this.node.getConnections().filter((c) => c.status === 'open').map((c) => c.remotePeer.toString()));
  }

  dialTargets(): ReturnType<Dialer['list']> {
    return this.dialer.list();
  }

  listenAddrs(): string[] {
    return this.node.getMultiaddrs().map((ma) => hostPortOf(ma) ?? ma.toString());
  }

  private registerMetrics(): void {
    registerPeerMetrics(this.metrics, {
      connections: () => this.node.getConnections().length,
      members: () => this.membership.members(),
      channels: { control: () => this.members.stats, sync: () => this.replica.stats(), ipam: () => this.ipam.stats() },
      rejectedAdmissions: () => this.rejectedAdmissions.count,
      ipam: this.ipam,
      replica: this.replica,
    });
  }

  /** Stops the timers of a peer whose start failed half-way (start() closes the rest). */
  private halt(): void {
    clearInterval(this.timer);
    void this.metricsServer?.close();
    void this.replica.stop();
    void this.ipam.stop();
    void this.network?.stop();
  }

  /** Graceful stop: tell the mesh we are leaving, then close everything. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.timer);
    try {
      this.members.leave();
      // Give the leave notice a moment to be flushed before the connections close.
      await new Promise((r) => setTimeout(r, 200));
    } catch (err) {
      this.log.warn('leave notice failed', { err: errorText(err) });
    }
    await this.network?.stop();
    await this.members.stop();
    await this.replica.stop();
    await this.ipam.stop();
    await Promise.resolve(this.node.stop()).catch(() => undefined);
    await new Promise<void>((r) => (this.metricsServer ? this.metricsServer.close(() => r()) : r()));
    await this.replica.flush();
    await this.ipam.flush();
    await this.store.close();
    this.log.info('peer stopped');
  }
}

/** The data dir holds the peer's identity key and its replica: only its owner may read it.
 *  mkdir's mode applies only to a directory it creates, so an existing one that others can
 *  read (made by hand, or by an older weft) is closed and the fix logged, naming the dir. */
export async function privateDataDir(dir: string, log: Logger): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const mode = (await stat(dir)).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  await chmod(dir, mode & 0o700);
  log.warn(`data dir ${dir} was readable by others (mode ${mode.toString(8)}): changed to ${(mode & 0o700).toString(8)}`, { dir });
}

/** Listening on 0.0.0.0 says nothing about where others can reach us: pick the first
 *  non-internal IPv4 address, as Weave Net does for its default route's interface. */
function defaultAdvertise(listen: HostPort): HostPort {
  if (listen.host !== '0.0.0.0') return listen;
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family === 'IPv4' && !a.internal) return { host: a.address, port: listen.port };
    }
  }
  return { host: '127.0.0.1', port: listen.port };
}
