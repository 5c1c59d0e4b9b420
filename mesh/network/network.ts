// The container network of one host: the data plane (bridge, WireGuard or VXLAN), addresses
// from IPAM, Docker containers attached by label or by hand, and the registry records that tell
// every other host where each container is. This is the shell that composes them; the
// decisions (who to route where, which record wins) live in small pure functions.

import { MESH_DOMAIN, stackOf } from '../naming.ts';
import { ATTACH_PREFIX, EXPOSE_KEY, CONTAINER_PREFIX, DATAPLANE_PREFIX, DNS_RESOLVER_PREFIX } from '../keyspace.ts';
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type Docker from 'dockerode';
import { Dataplane } from './dataplane/dataplane.ts';
import { Shell } from './dataplane/exec.ts';
import { containerRecords, listContainers } from '../container-list.ts';
import { parseDataplaneRecord, preferEndpoint, type ContainerEndpoint, type DataplaneRecord } from '../endpoint.ts';
import { containerInfo, resolvConf, type ContainerInfo } from './docker/container-info.ts';
import { ContainerResolvers } from './docker/container-resolvers.ts';
import { DockerEvents, dockerClient, type ContainerEvent } from './docker/events.ts';
import { DockerPlugin } from './docker/plugin.ts';
import type { IpamShell } from '../ipam/shell.ts';
import { errorText, type Logger } from '../log.ts';
import type { MeshView, PeerLiveness } from '../mesh-view.ts';
import type { Store } from '../store.ts';

/** Docker's own networks: none has names for its embedded resolver to answer. */
const DOCKER_BUILTIN_NETWORKS = new Set(['bridge', 'host', 'none']);

/** The file and search stack of a container's resolver, when Docker gave it a file. */
function resolverFile(info: ContainerInfo): { path: string; name: string; stack?: string } | undefined {
  if (!info.resolvConfPath) return undefined;
  const stack = stackOf(info.labels);
  return { path: info.resolvConfPath, name: info.name, ...(stack ? { stack } : {}) };
}

/** A stopped container keeps its address this long in case it is restarted (Weave Net holds
 *  30 s): a restart policy brings it back within seconds, and its peers' caches stay right. */
export const DIE_HOLD_MS = 30_000;
/** How far ahead of our clock a record's `since` may be: hosts' clocks differ a little. */
const MAX_CLOCK_SKEW_MS = 60_000;
const EXPOSE_HANDLE = 'weft:expose';
/** The IPAM handle of the overlay address this peer's DNS answers other hosts' containers on. */
const DNS_HANDLE = 'weft:dns';
/** A peer's DNS offered to other hosts' containers as their second resolver:
 *  `dns/resolver/<peer id>` → `{"v":1,"addr":"10.32.x.y"}`, port 53 (resolv.conf cannot name
 *  another). Written once the DNS answers there, withdrawn by reset. Every host routes the
 *  address to its peer like a container's. */
/** While IPAM cannot give the host its overlay address yet (a mesh still forming): retry. */
const DNS_OFFER_RETRY_MS = 5_000;

/** What this peer remembers of a container it attached (kept across restarts). */
interface Attachment {
  id: string;
  addr: string;
  mac: string;
  /** Attached by `weft attach` rather than by label: re-attached after restarts too. */
  manual: boolean;
  since: number;
  /** The container's process when attached: the same pid means the same network namespace,
   *  so the interface is still there (a peer restart must not touch it). */
  pid: number;
}

export interface NetworkOptions {
  mode: 'encrypted' | 'fast';
  range: string;
  underlay: string;
  dataDir: string;
  dockerHost?: string;
  /** Docker network/IPAM plugin name; null: no plugin. */
  pluginName?: string | null;
  view: MeshView;
  ipam: IpamShell;
  store: Store;
  log: Logger;
}

/** The remote routes the data plane must hold, from the registry: every address whose
 *  preferred record (running first, then newest) is on another host. Liveness is not
 *  consulted: a peer restarting or cut off does not stop its containers, so their routes stay
 *  until their records go. */
export function remoteRoutes(self: string, containers: readonly ContainerEndpoint[], hosts: ReadonlyMap<string, DataplaneRecord>, resolvers: readonly { peer: string; addr: string }[] = []): { addr: string; peer: string }[] {
  const best = new Map<string, ContainerEndpoint>();
  for (const c of containers) {
    const cur = best.get(c.addr);
    best.set(c.addr, cur ? preferEndpoint(cur, c) : c);
  }
  const out: { addr: string; peer: string }[] = [];
  for (const c of best.values()) if (c.peer !== self && hosts.has(c.peer)) out.push({ addr: c.addr, peer: c.peer });
  for (const [peer, h] of hosts) if (peer !== self && h.exposed && !best.has(h.exposed)) out.push({ addr: h.exposed, peer });
  // Other peers' DNS addresses (their second-resolver offers), where no container claims them.
  for (const r of resolvers) if (r.peer !== self && hosts.has(r.peer) && !best.has(r.addr)) out.push({ addr: r.addr, peer: r.peer });
  return out.sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
}

/** The DNS a peer offers, from its registry record; undefined if the record is not one. */
export function parseResolverOffer(text: string): string | undefined {
  try {
    const r = JSON.parse(text) as { v?: unknown; addr?: unknown };
    return r && r.v === 1 && typeof r.addr === 'string' && isIPv4(r.addr) ? r.addr : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The second resolver for this host's containers: the DNS of another peer that is alive,
 * reached through the overlay while our own peer restarts. Each host picks by rendezvous hash
 * of its id and the candidate's, so the hosts spread over the candidates and a host's choice
 * changes only when its chosen peer goes (or a peer whose hash beats it comes). With no peer
 * alive, `previous` stays if it is still offered by a peer that has not left: just after our
 * own restart every peer is briefly suspect, and a second resolver that may be down costs a
 * lookup nothing while the first answers, where none would cost everything if the first fails.
 */
export function chooseFallbackResolver(self: string, offers: readonly { peer: string; addr: string }[], liveness: (id: string) => PeerLiveness | undefined, previous?: string): string | undefined {
  let best: { rank: string; addr: string } | undefined;
  for (const o of offers) {
    if (o.peer === self || liveness(o.peer) !== 'alive') continue;
    const rank = createHash('sha256').update(`${self}/${o.peer}`).digest('hex');
    if (!best || rank < best.rank) best = { rank, addr: o.addr };
  }
  if (best) return best.addr;
  return offers.find((o) => o.addr === previous && o.peer !== self && liveness(o.peer) !== 'left')?.addr;
}

/** Two peers publishing one WireGuard key or VXLAN MAC (a copied data dir, or a member
 *  impersonating another) would overwrite each other's tunnel on every host: both are left
 *  out, so the conflict is seen and nobody's traffic is silently redirected. */
export function dropSharedKeys(hosts: Map<string, DataplaneRecord>, report: (peer: string, what: string) => void): void {
  const owners = new Map<string, string[]>();
  for (const [peer, h] of hosts) {
    for (const k of [h.wgPublicKey && `key ${h.wgPublicKey}`, h.vxlanMac && `mac ${h.vxlanMac}`]) {
      if (k) owners.set(k, [...(owners.get(k) ?? []), peer]);
    }
  }
  for (const [what, peers] of owners) {
    if (peers.length < 2) continue;
    for (const p of peers) {
      hosts.delete(p);
      report(p, what);
    }
  }
}

export class Network {
  readonly dataplane: Dataplane;
  private readonly o: NetworkOptions;
  private readonly docker: Docker;
  private readonly events: DockerEvents;
  private readonly attached = new Map<string, Attachment>();
  private readonly holds = new Map<string, NodeJS.Timeout>();
  /** One chain of work per container, so start/die/destroy/attach never interleave. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private syncQueued = false;
  private syncing: Promise<void> = Promise.resolve();
  private readonly unsubscribe: () => void;
  private readonly unsubscribeLiveness: () => void;
  private exposed?: string;
  /** Set by offerDns: how to make the DNS answer on an address. */
  private dnsOffer?: { listen: (addr: string) => Promise<void>; offering?: string; running: boolean };
  /** Another host's DNS, second in our containers' resolv.conf. */
  private fallbackDns?: string;
  /** The resolv.conf files weft points at the peer (rewritten when the second resolver changes). */
  private readonly resolvers: ContainerResolvers;
  /** Plugin containers left on Docker's resolver, each said once in the log. */
  private readonly ownResolver = new Set<string>();
  private fallbackQueued = false;
  /** For the DNS address on lo (the data plane owns the bridge and tunnel, not lo). */
  private readonly shell = new Shell();
  private stopped = false;
  private plugin?: DockerPlugin;
  /** Plugin endpoints joined to a container: endpoint id -> address and MAC. */
  private readonly pluginEndpoints = new Map<string, { addr: string; mac: string; container?: string }>();

  private constructor(o: NetworkOptions, dataplane: Dataplane) {
    this.o = o;
    this.dataplane = dataplane;
    this.docker = dockerClient(o.dockerHost);
    this.events = new DockerEvents(this.docker, {
      log: o.log.child('docker'),
      onEvent: (e) => this.onDockerEvent(e),
      onConnected: () => void this.resync(),
    });
    this.unsubscribe = o.view.onEntries((changes) => {
      if (changes.some((c) => c.key.startsWith(CONTAINER_PREFIX) || c.key.startsWith(DATAPLANE_PREFIX) || c.key.startsWith(DNS_RESOLVER_PREFIX))) this.scheduleSync();
      if (changes.some((c) => c.key.startsWith(DNS_RESOLVER_PREFIX))) this.scheduleFallbackCheck();
    });
    this.unsubscribeLiveness = o.view.onLiveness(() => this.scheduleFallbackCheck());
    this.fallbackDns = this.currentFallback();
    this.resolvers = new ContainerResolvers({
      store: o.store, log: o.log,
      text: (stack) => resolvConf(this.dnsAddress, MESH_DOMAIN, stack, this.fallbackDns),
    });
  }

  static async start(o: NetworkOptions): Promise<Network> {
    const suffix = createHash('sha256').update(o.view.self.id).digest('hex').slice(0, 8);
    const dataplane = await Dataplane.start({ mode: o.mode, range: o.range, underlay: o.underlay, dataDir: o.dataDir, suffix, log: o.log.child('dataplane') });
    const net = new Network(o, dataplane);
    for (const { value } of await o.store.scan<Attachment>(ATTACH_PREFIX)) net.attached.set(value.id, value);
    net.exposed = await o.store.get<string>(EXPOSE_KEY);
    if (net.exposed) await dataplane.expose(net.exposed);
    await net.publishDataplane();
    net.scheduleSync();
    if (o.pluginName) await net.startPlugin(o.pluginName);
    net.events.start();
    return net;
  }

  /** The libnetwork remote driver: `docker network create -d NAME --ipam-driver NAME weft`. */
  private async startPlugin(name: string): Promise<void> {
    const dp = this.dataplane;
    const prefix = `docker:${name}:`;
    this.plugin = await DockerPlugin.start({
      name,
      log: this.o.log.child('plugin'),
      store: this.o.store, docker: this.docker,
      backend: {
        range: this.o.range,
        gateway: dp.gateway,
        mtu: dp.mtu,
        allocate: (handle) => this.o.ipam.allocate(handle),
        release: async (handle) => void (await this.o.ipam.release(handle)),
        handleOf: (addr) => this.o.ipam.core.allocations().find((a) => a.addr === addr && a.handle.startsWith(prefix))?.handle,
        prepareVeth: (addr) => dp.prepareVeth(addr),
        removeVeth: (hostIf) => dp.removeVeth(hostIf),
        joined: async (ep) => {
          this.pluginEndpoints.set(ep.endpointId, { addr: ep.addr, mac: ep.mac });
        },
        left: async (endpointId) => {
          const ep = this.pluginEndpoints.get(endpointId);
          this.pluginEndpoints.delete(endpointId);
          if (ep?.container) {
            await this.o.view.put(CONTAINER_PREFIX + ep.container, null);
            // Not awaited: Docker waits on this Leave, and what runs before it on the container's
            // chain may be waiting on Docker.
            const id = ep.container;
            void this.serial(id, () => this.resolvers.release(id)).catch(() => undefined);
          }
        },
      },
    });
  }

  /** A container that started on (or was connected to) a weft Docker network: publish it like
   *  an attached one (the driver is told no container name, so it is found by its endpoint id
   *  here), and point its resolver at the peer, as an attached one's. */
  private async publishPluginContainer(id: string): Promise<void> {
    if (this.pluginEndpoints.size === 0) return;
    // Gone already (a disconnect as it is removed): nothing to publish.
    const raw: any = await this.docker.getContainer(id).inspect().catch(() => undefined);
    if (!raw) return;
    const networks = Object.entries<any>(raw?.NetworkSettings?.Networks ?? {});
    const ours = networks.find(([, n]) => this.pluginEndpoints.has(n?.EndpointID));
    if (!ours) return;
    const ep = this.pluginEndpoints.get(ours[1].EndpointID)!;
    ep.container = id;
    const info = containerInfo(raw);
    const rec = this.record(info, { id, addr: ep.addr, mac: ep.mac, manual: false, since: Date.now(), pid: info.pid }, 'running');
    await this.o.view.put(CONTAINER_PREFIX + id, JSON.stringify(rec));
    const others = networks.filter(([name, n]) => !this.pluginEndpoints.has(n?.EndpointID) && !DOCKER_BUILTIN_NETWORKS.has(name)).map(([name]) => name);
    if (others.length === 0) {
      this.ownResolver.delete(id);
      await this.setResolver(info);
      return;
    }
    // Also on another user-defined network, whose names only Docker's resolver knows: taking
    // that away would break what works; the container keeps Docker's and says why once.
    await this.resolvers.release(id);
    if (!this.ownResolver.has(id)) this.o.log.info("container keeps Docker's resolver: it is also on another Docker network, whose names only Docker knows", { container: info.name, networks: others.join(',') });
    this.ownResolver.add(id);
  }

  get dnsAddress(): string {
    return this.dataplane.gateway;
  }

  // ---- attachment -----------------------------------------------------------------------------

  /** `weft attach`: attaches a running container (by name or id) and returns its record. */
  attach(ref: string): Promise<ContainerEndpoint> {
    return this.inspect(ref).then((info) => this.serial(info.id, () => this.doAttach(info, true)));
  }

  /** `weft detach`: takes a container off the overlay and frees its address. */
  async detach(ref: string): Promise<{ id: string; addr: string }> {
    // An exact id, or a prefix that names one attachment only; anything else asks dockerd.
    const matches = [...this.attached.values()].filter((a) => a.id === ref || (ref.length >= 4 && a.id.startsWith(ref)));
    const id = matches.length === 1 ? (matches[0] as Attachment).id : (await this.inspect(ref)).id;
    return this.serial(id, async () => {
      const a = this.attached.get(id);
      if (!a) throw new Error(`container ${ref} is not attached to weft`);
      await this.forgetContainer(id);
      return { id, addr: a.addr };
    });
  }

  /** Every container record in the registry (all hosts), or only this host's. Containers of a
   *  peer removed by rmpeer are gone for good and left out; those of a peer that is down are
   *  shown with state `unknown` (they may well be running). */
  ps(local: boolean): ContainerEndpoint[] {
    return listContainers(this.o.view, this.o.ipam.removedPeers(), local);
  }

  private containerRecords(): ContainerEndpoint[] {
    return containerRecords(this.o.view, this.o.ipam.removedPeers());
  }

  /** Whether this peer holds a registry record for container `id`. */
  private ownsRecord(id: string): boolean {
    const key = CONTAINER_PREFIX + id;
    return this.o.view.entries(key).some((e) => e.owner === this.o.view.self.id && e.key === key);
  }

  private async inspect(ref: string): Promise<ContainerInfo> {
    try {
      return containerInfo(await this.docker.getContainer(ref).inspect());
    } catch (err) {
      const text = errorText(err);
      if (/no such container|404/i.test(text)) throw new Error(`no container "${ref}" on this host's dockerd`);
      throw new Error(`cannot reach dockerd: ${text}`);
    }
  }

  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    const tail = next.catch(() => undefined);
    this.chains.set(id, tail);
    void tail.then(() => {
      if (this.chains.get(id) === tail) this.chains.delete(id);
    });
    return next;
  }

  private async doAttach(info: ContainerInfo, manual: boolean): Promise<ContainerEndpoint> {
    if (!info.running || info.pid <= 0) throw new Error(`container ${info.name} is not running`);
    if (info.networkMode === 'host' || info.networkMode.startsWith('container:')) {
      throw new Error(`container ${info.name} shares ${info.networkMode === 'host' ? "the host's" : 'another container\'s'} network namespace (--network ${info.networkMode}): weft attaches only containers with their own`);
    }
    this.cancelHold(info.id);
    const prior = this.attached.get(info.id);
    // Same pid and our veth still there: the same namespace, still plugged in (a pid alone
    // could repeat after a reboot, with a fresh bridge and no veth).
    if (prior && prior.pid === info.pid && this.dataplane.localAddresses().includes(prior.addr)) {
      // Already attached in this namespace (a peer restart, a repeated attach): leave the
      // interface alone so traffic is not interrupted; only say again that it runs.
      const rec = this.record(info, prior, 'running');
      await this.o.view.put(CONTAINER_PREFIX + info.id, JSON.stringify(rec));
      // The second resolver may have changed while we were down; until the peers are known
      // again (just after our restart) the file keeps the one it has.
      if (this.fallbackDns !== undefined) await this.setResolver(info);
      else this.rememberResolver(info);
      return rec;
    }
    // A scheduled container whose reserved address is in a dead peer's space takes it without
    // that peer (its task moved here because the peer died; the epoch fences the old copy).
    const borrowed = info.fenced && info.identity ? this.o.ipam.borrowable(info.identity) : undefined;
    if (borrowed) this.o.log.info('taking a reserved address from space of an unreachable peer', { container: info.name, addr: borrowed, identity: info.identity });
    const addr = borrowed ?? await this.o.ipam.allocate(info.id, info.identity);
    let mac: string;
    try {
      ({ mac } = await this.dataplane.attach(`/proc/${info.pid}/ns/net`, addr));
    } catch (err) {
      // The container went away while we attached it (or the kernel refused): the address
      // must not stay allocated to nothing.
      if (!prior) await this.o.ipam.release(info.id);
      throw err;
    }
    await this.setResolver(info);
    const a: Attachment = { id: info.id, addr, mac, manual: manual || (prior?.manual ?? false), since: Date.now(), pid: info.pid };
    this.attached.set(info.id, a);
    await this.o.store.put(ATTACH_PREFIX + info.id, a);
    const rec = this.record(info, a, 'running');
    await this.o.view.put(CONTAINER_PREFIX + info.id, JSON.stringify(rec));
    this.o.log.info('attached container', { container: info.name, id: info.id.slice(0, 12), addr, identity: info.identity });
    return rec;
  }

  /** Points the container's resolv.conf at our DNS, and another host's second. */
  private async setResolver(info: ContainerInfo): Promise<void> {
    const f = resolverFile(info);
    if (f) await this.resolvers.point(info.id, f);
  }

  private rememberResolver(info: ContainerInfo): void {
    const f = resolverFile(info);
    if (f) this.resolvers.remember(info.id, f);
  }

  // ---- the second resolver ------------------------------------------------------------------

  /** Every peer's DNS offer in the registry (peers removed by rmpeer left out). */
  private resolverOffers(): { peer: string; addr: string }[] {
    const offers: { peer: string; addr: string }[] = [];
    const removed = new Set(this.o.ipam.removedPeers());
    for (const e of this.o.view.entries(DNS_RESOLVER_PREFIX)) {
      if (e.value === null || e.key !== DNS_RESOLVER_PREFIX + e.owner || removed.has(e.owner)) continue;
      const addr = parseResolverOffer(e.value);
      if (addr) offers.push({ peer: e.owner, addr });
    }
    return offers;
  }

  /** Our pick among the live peers' offers. */
  private currentFallback(): string | undefined {
    return chooseFallbackResolver(this.o.view.self.id, this.resolverOffers(), (id) => this.o.view.liveness(id), this.fallbackDns);
  }

  private scheduleFallbackCheck(): void {
    if (this.fallbackQueued || this.stopped) return;
    this.fallbackQueued = true;
    setImmediate(() => {
      this.fallbackQueued = false;
      if (this.stopped) return;
      const next = this.currentFallback();
      if (next === this.fallbackDns) return;
      this.o.log.info('second resolver for containers', { was: this.fallbackDns ?? 'none', now: next ?? 'none' });
      this.fallbackDns = next;
      for (const id of this.resolvers.ids()) {
        void this.serial(id, () => this.resolvers.write(id)).catch(() => undefined);
      }
    });
  }

  /**
   * Offers this peer's DNS to the containers of other hosts as their second resolver, for
   * while their own peer restarts. The DNS gets an overlay address of its own (from IPAM, kept
   * across restarts), put on `lo` with host scope: it receives what other hosts route to it,
   * but the host never uses it as the source of its own traffic, so the host stays as
   * unexposed as it was (unlike `weft expose`). `listen` makes the DNS answer there; then the
   * offer is published and every host routes the address here. Runs in the background until
   * it succeeds (IPAM may not be ready yet).
   */
  offerDns(listen: (addr: string) => Promise<void>): void {
    this.dnsOffer = { listen, running: false };
    void this.ensureDnsOffer();
  }

  private async ensureDnsOffer(): Promise<void> {
    const offer = this.dnsOffer;
    if (!offer || offer.running) return;
    offer.running = true;
    try {
      for (let attempt = 1; !this.stopped && this.dnsOffer === offer; attempt++) {
        try {
          const addr = await this.o.ipam.allocate(DNS_HANDLE, `dns/${this.o.view.self.id}`);
          if (offer.offering !== addr) {
            await this.shell.run(['ip', 'addr', 'replace', `${addr}/32`, 'dev', 'lo', 'scope', 'host']);
            await offer.listen(addr);
            await this.o.view.put(DNS_RESOLVER_PREFIX + this.o.view.self.id, JSON.stringify({ v: 1, addr }));
            offer.offering = addr;
            this.o.log.info('DNS offered to other hosts\' containers', { addr });
          }
          return;
        } catch (err) {
          if (attempt === 1 || attempt % 12 === 0) this.o.log.warn('cannot offer DNS to other hosts yet; retrying', { err: errorText(err) });
          await new Promise((r) => setTimeout(r, DNS_OFFER_RETRY_MS).unref());
        }
      }
    } finally {
      offer.running = false;
    }
  }

  /** Takes the offer back (`weft reset`): the record, the address on lo, the allocation. */
  private async withdrawDnsOffer(): Promise<void> {
    this.dnsOffer = undefined;
    const key = DNS_RESOLVER_PREFIX + this.o.view.self.id;
    if (this.o.view.entries(key).some((e) => e.owner === this.o.view.self.id && e.key === key && e.value !== null)) await this.o.view.put(key, null);
    const addr = this.o.ipam.lookup(DNS_HANDLE);
    if (addr === undefined) return;
    await this.shell.run(['ip', 'addr', 'del', `${addr}/32`, 'dev', 'lo']).catch(() => undefined); // not there: fine
    await this.o.ipam.release(DNS_HANDLE);
  }

  private record(info: ContainerInfo, a: Attachment, state: 'running' | 'stopped'): ContainerEndpoint {
    return {
      v: 1, id: info.id, name: info.name.slice(0, 253), ...(info.hostname ? { hostname: info.hostname.slice(0, 253) } : {}),
      ...(info.aliases.length ? { aliases: info.aliases } : {}),
      addr: a.addr, mac: a.mac, peer: this.o.view.self.id, host: this.o.view.self.name,
      state, health: info.health, labels: info.labels, ...(info.ports.length ? { ports: info.ports } : {}), since: a.since,
    };
  }

  /** Off the overlay for good: route, address, registry record, stored attachment. */
  private async forgetContainer(id: string): Promise<void> {
    this.cancelHold(id);
    const a = this.attached.get(id);
    this.attached.delete(id);
    this.ownResolver.delete(id);
    await this.resolvers.release(id);
    if (a) await this.dataplane.detach(a.addr).catch((err) => this.o.log.warn('cannot detach', { id, err: errorText(err) }));
    await this.o.ipam.release(id);
    await this.o.store.del(ATTACH_PREFIX + id);
    if (this.ownsRecord(id)) await this.o.view.put(CONTAINER_PREFIX + id, null);
    if (a) this.o.log.info('released container address', { id: id.slice(0, 12), addr: a.addr });
  }

  private cancelHold(id: string): void {
    const t = this.holds.get(id);
    if (t) clearTimeout(t);
    this.holds.delete(id);
  }

  private onDockerEvent(e: ContainerEvent): void {
    if (this.stopped) return;
    void this.serial(e.id, async () => {
      switch (e.type) {
        case 'start': {
          const info = await this.inspect(e.id);
          if (info.wantsAttach || this.attached.get(e.id)?.manual) await this.doAttach(info, false);
          else await this.publishPluginContainer(e.id);
          break;
        }
        case 'network': {
          if (!this.attached.has(e.id)) await this.publishPluginContainer(e.id);
          break;
        }
        case 'die': {
          const a = this.attached.get(e.id);
          if (!a) break;
          const info = await this.inspect(e.id).catch(() => undefined);
          // A stale or synthetic die (the container already runs again) changes nothing.
          if (info?.running) break;
          if (info) await this.o.view.put(CONTAINER_PREFIX + e.id, JSON.stringify(this.record(info, a, 'stopped')));
          this.cancelHold(e.id);
          const hold = setTimeout(() => void this.serial(e.id, async () => {
            if (this.holds.get(e.id) === hold) await this.forgetContainer(e.id);
          }), DIE_HOLD_MS);
          this.holds.set(e.id, hold);
          break;
        }
        case 'destroy': {
          // Also when the attach never finished (an address may be allocated to it), and for a
          // plugin container whose record outlived the plugin's memory of it.
          if (this.attached.has(e.id) || this.o.ipam.lookup(e.id) !== undefined || this.ownsRecord(e.id)) await this.forgetContainer(e.id);
          break;
        }
        case 'health': {
          const a = this.attached.get(e.id);
          if (!a) break;
          const info = await this.inspect(e.id);
          await this.o.view.put(CONTAINER_PREFIX + e.id, JSON.stringify(this.record(info, a, info.running ? 'running' : 'stopped')));
          break;
        }
      }
    }).catch((err) => this.o.log.warn('docker event not handled', { event: e.type, id: e.id.slice(0, 12), err: errorText(err) }));
  }

  /** After (re)connecting to dockerd: events were missed, so compare what runs with what we
   *  hold. Containers that ran on while the peer was down keep their addresses. */
  private async resync(): Promise<void> {
    let list: Docker.ContainerInfo[];
    try {
      list = await this.docker.listContainers({ all: true });
    } catch (err) {
      this.o.log.warn('cannot list containers', { err: errorText(err) });
      return;
    }
    const present = new Map(list.map((c) => [c.Id, c]));
    for (const id of [...this.attached.keys()]) {
      const c = present.get(id);
      if (!c) await this.serial(id, () => this.forgetContainer(id)).catch(() => undefined);
      // Paused containers still run (and unpausing sends no start): only these are stopped.
      else if (c.State === 'exited' || c.State === 'dead' || c.State === 'created') this.onDockerEvent({ type: 'die', id });
    }
    // Allocations and records of containers that no longer exist (a crash between allocating
    // and recording; a plugin container whose Leave came while the peer was down) go.
    const gone = new Set<string>();
    for (const a of this.o.ipam.core.allocations()) if (/^[0-9a-f]{64}$/.test(a.handle)) gone.add(a.handle);
    for (const e of this.o.view.entries(CONTAINER_PREFIX)) if (e.owner === this.o.view.self.id && e.value !== null) gone.add(e.key.slice(CONTAINER_PREFIX.length));
    for (const id of gone) {
      if (present.has(id) || this.attached.has(id)) continue;
      await this.serial(id, async () => {
        // Checked again in turn: the container may have started since the list was taken.
        if (this.attached.has(id) || (await this.docker.getContainer(id).inspect().then(() => true, () => false))) return;
        await this.forgetContainer(id);
      }).catch(() => undefined);
    }
    for (const c of list) {
      if (c.State !== 'running') continue;
      // Plugin containers too: a restarted peer learns their endpoints back, not whose they are.
      if (this.attached.has(c.Id) || this.pluginEndpoints.size > 0 || /^(true|yes|1)$/i.test(c.Labels?.['weft.attach'] ?? '')) this.onDockerEvent({ type: 'start', id: c.Id });
    }
  }

  // ---- host address, reset ------------------------------------------------------------------

  /** `weft expose`: the host gets an overlay address (the same one each time, while kept). */
  async expose(): Promise<string> {
    const addr = await this.o.ipam.allocate(EXPOSE_HANDLE, `host/${this.o.view.self.id}`);
    await this.dataplane.expose(addr);
    this.exposed = addr;
    await this.o.store.put(EXPOSE_KEY, addr);
    await this.publishDataplane();
    return addr;
  }

  async hide(): Promise<string | null> {
    const addr = this.exposed ?? null;
    await this.dataplane.hide();
    this.exposed = undefined;
    await this.o.store.del(EXPOSE_KEY);
    await this.o.ipam.release(EXPOSE_HANDLE);
    await this.publishDataplane();
    return addr;
  }

  /** `weft reset`: takes every container off, frees their addresses, removes the bridge and
   *  devices, and withdraws this host's records. */
  async reset(): Promise<{ containers: number; ipam: string }> {
    this.events.stop();
    this.unsubscribe();
    await this.plugin?.close();
    this.plugin = undefined;
    const ids = [...this.attached.keys()];
    // Other hosts must stop listing our DNS before its address goes.
    await this.withdrawDnsOffer();
    for (const id of ids) await this.serial(id, () => this.forgetContainer(id)).catch(() => undefined);
    // Containers on a weft Docker network leave the registry and get Docker's resolver back
    // (the network goes with the plugin; Docker's settings weft never touched).
    for (const ep of this.pluginEndpoints.values()) if (ep.container && this.ownsRecord(ep.container)) await this.o.view.put(CONTAINER_PREFIX + ep.container, null);
    for (const id of this.resolvers.ids()) await this.serial(id, () => this.resolvers.release(id)).catch(() => undefined);
    if (this.exposed) await this.hide();
    await this.dataplane.reset();
    await this.o.view.put(DATAPLANE_PREFIX + this.o.view.self.id, null);
    const ipam = await this.o.ipam.handOff();
    return { containers: ids.length, ipam: ipam.reason };
  }

  // ---- routes from gossip -------------------------------------------------------------------

  private async publishDataplane(): Promise<void> {
    const rec = { ...this.dataplane.record(), ...(this.exposed ? { exposed: this.exposed } : {}) };
    const key = DATAPLANE_PREFIX + this.o.view.self.id;
    const cur = this.o.view.entries(key).find((e) => e.owner === this.o.view.self.id && e.key === key);
    const text = JSON.stringify(rec);
    if (cur?.value !== text) await this.o.view.put(key, text);
  }

  private scheduleSync(): void {
    if (this.syncQueued || this.stopped) return;
    this.syncQueued = true;
    // Coalesce a burst of gossip into one reconciliation, but start at once: this delay is part
    // of every container's time-to-reachable on other hosts.
    setImmediate(() => {
      this.syncQueued = false;
      this.syncing = this.syncing.then(() => this.sync()).catch((err) => this.o.log.error('data plane sync failed', { err: errorText(err) }));
    });
  }

  private async sync(): Promise<void> {
    const hosts = new Map<string, DataplaneRecord>();
    for (const e of this.o.view.entries(DATAPLANE_PREFIX)) {
      if (e.value === null || e.key !== DATAPLANE_PREFIX + e.owner) continue;
      const r = parseDataplaneRecord(e.value);
      if (typeof r === 'string') {
        this.o.log.warn('ignored a data plane record', { peer: e.owner, reason: r });
        continue;
      }
      hosts.set(e.owner, r);
    }
    dropSharedKeys(hosts, (peer, what) => this.o.log.warn('ignored a data plane record that claims another peer\'s key or MAC', { peer, what }));
    for (const id of this.o.ipam.removedPeers()) hosts.delete(id);
    // A record from the future would win every address conflict (preferEndpoint): clamp it.
    const latest = Date.now() + MAX_CLOCK_SKEW_MS;
    const containers = this.containerRecords().map((c) => (c.since > latest ? { ...c, since: latest } : c));
    await this.dataplane.sync({ hosts, remote: remoteRoutes(this.o.view.self.id, containers, hosts, this.resolverOffers()) });
  }

  /** Stops watching; the kernel state and attached containers stay as they are. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.events.stop();
    this.unsubscribe();
    this.unsubscribeLiveness();
    await this.plugin?.close();
    for (const t of this.holds.values()) clearTimeout(t);
    this.holds.clear();
    await this.syncing;
    this.dataplane.stop();
  }
}
