// The container data plane on one host: the bridge containers plug into, the tunnel device to
// the other hosts (wireguard-go in encrypted mode, kernel VXLAN in fast mode), the routes,
// peers, fdb and neighbours that gossip asks for, and the firewall that keeps outsiders out.
//
// A thin shell around plan.ts: it observes the kernel, asks the plan what to change, and runs
// the commands, one operation at a time. Everything it makes lives in the kernel (and in the
// wireguard-go daemon, in its own session), so it outlives this process: start() adopts it.
import { parseIPv4 } from '../../ipv4.ts';
import path from 'node:path';
import type { DataplaneRecord } from '../../endpoint.ts';
import { parseCidr, type Cidr } from '../../ipam/cidr.ts';
import { errorText, type Logger } from '../../log.ts';
import { batch, CommandError, missingTools, SerialQueue, Shell } from './exec.ts';
import { firewallRules, missingJumps } from './firewall.ts';
import { overlayMtu, underlayInterface } from './mtu.ts';
import { chainHooks, chainNames, checkIfName, DEFAULT_BRIDGE, DEFAULT_CONTAINER_IF, GATEWAY, hostIfName, preparedIfName, randomMac, vxlanIfName, wgIfName } from './names.ts';
import { checkHandshakes, nextDue, weReinitiate, type PendingHandshake } from './handshake.ts';
import { parseFdb, parseHandshakes, parseHostRoutes, parseLink, parseNeigh, parseWgDump, remoteState } from './observe.ts';
import { DEFAULT_VXLAN_PORT, DEFAULT_WG_PORT, desiredRemote, isEmpty, planRemote, reinitiateArgs, type Mode, type RemoteState, type Self, type View } from './plan.ts';
import { ALREADY_GONE, containerSide, hostSide, removal } from './veth.ts';
import { ensureBridge } from './bridge.ts';
import { resetHost } from './reset.ts';
import { ensureWireguard, loadOrCreateKey, type WgKey } from './wireguard.ts';
import { ensureVxlan } from './vxlan.ts';


export interface DataplaneConfig {
  mode: Mode;
  /** The overlay range, e.g. 10.32.0.0/12: everything in it goes into the overlay or nowhere. */
  range: string;
  /** This host's underlay address: where the other hosts send our overlay packets. */
  underlay: string;
  /** Where the WireGuard key is kept (and wireguard-go's log). */
  dataDir: string;
  /** Makes the tunnel device's name ("wg<suffix>", "vx<suffix>") unique on the machine:
   *  wireguard-go's control sockets are shared by all network namespaces. ≤ 13 characters. */
  suffix: string;
  bridge?: string;
  wgPort?: number;
  vxlanPort?: number;
  log: Logger;
  /** Run the host side inside this network namespace (a path such as /var/run/netns/h1)
   *  instead of ours: tests and benchmarks simulate several hosts from one process. */
  netns?: string;
}

export type SyncView = View;

/** After a reconciliation failed, the next try comes this long after, doubling up to the
 *  maximum while it keeps failing. Without it the routes would stay wrong until the next
 *  gossip change, which may never come (a quiet mesh). A transient failure (a busy
 *  wireguard-go socket, the xtables lock held by dockerd) clears within a second. */
export const RECONCILE_RETRY_MS = 1_000;
/** A failure that persists (a tool removed, a broken kernel) is tried and logged twice a
 *  minute, not flooded. */
export const RECONCILE_RETRY_MAX_MS = 30_000;

const TOOLS = ['ip', 'bridge', 'iptables', 'iptables-restore', 'sysctl'];
const WG_TOOLS = ['wg', 'wireguard-go'];

export class Dataplane {
  readonly gateway = GATEWAY;
  readonly mtu: number;
  readonly mode: Mode;
  readonly bridge: string;
  /** The tunnel device: wg<suffix> or vx<suffix>. */
  readonly device: string;
  private readonly c: DataplaneConfig;
  private readonly range: Cidr;
  private readonly shell: Shell;
  private readonly key: WgKey | undefined;
  private readonly vxlanMac: string | undefined;
  private readonly queue = new SerialQueue();
  private readonly chains: { forward: string; input: string; output: string };
  /** Addresses attached here (host routes on the bridge). */
  private readonly local = new Set<string>();
  private exposed: string | undefined;
  /** What the kernel holds for the remote side; undefined = unknown, observe before diffing. */
  private applied: RemoteState | undefined;
  /** What the installed rules were made from (VXLAN peers, exposed address); skip if unchanged. */
  private firewallKey: string | undefined;
  /** The VXLAN peers last installed (fast mode), for reinstalling when the exposed address changes. */
  private firewallPeers: readonly string[] = [];
  private view: View | undefined;
  private stopped = false;
  /** Peers added lately whose first handshake we must see complete (handshake.ts). */
  private pendingHandshakes = new Map<string, PendingHandshake>();
  private handshakeTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = RECONCILE_RETRY_MS;

  private constructor(c: DataplaneConfig, range: Cidr, mtu: number, shell: Shell, key: WgKey | undefined, vxlanMac: string | undefined) {
    this.c = c;
    this.mode = c.mode;
    this.range = range;
    this.mtu = mtu;
    this.shell = shell;
    this.key = key;
    this.vxlanMac = vxlanMac;
    this.bridge = c.bridge ?? DEFAULT_BRIDGE;
    this.device = c.mode === 'encrypted' ? wgIfName(c.suffix) : vxlanIfName(c.suffix);
    this.chains = chainNames(this.bridge);
  }

  /** Creates the host's data plane, or adopts the one a previous run left (running containers
   *  keep working). Throws one sentence if we are not root or a tool is missing. */
  static async start(c: DataplaneConfig): Promise<Dataplane> {
    if (process.getuid?.() !== 0) throw new Error('the container data plane needs root (or run the peer with --no-dataplane)');
    const missing = missingTools([...TOOLS, ...(c.mode === 'encrypted' ? WG_TOOLS : []), ...(c.netns !== undefined ? ['nsenter'] : [])]);
    if (missing.length > 0) throw new Error(`the container data plane needs ${missing.join(', ')} on PATH (install iproute2, iptables${c.mode === 'encrypted' ? ', wireguard-tools and wireguard-go' : ''})`);
    const range = parseCidr(c.range);
    if (typeof range === 'string') throw new Error(range);
    if (parseIPv4(c.underlay) === undefined) throw new Error(`underlay address "${c.underlay}" is not an IPv4 address`);
    const bridge = checkIfName(c.bridge ?? DEFAULT_BRIDGE);
    const dev = c.mode === 'encrypted' ? wgIfName(c.suffix) : vxlanIfName(c.suffix);
    const shell = new Shell(c.netns);
    const underIf = underlayInterface(await shell.run(['ip', '-j', '-4', 'addr', 'show']), c.underlay);
    if (underIf === undefined) throw new Error(`underlay address ${c.underlay} is not on any interface of this host (check --advertise or the host's addresses)`);
    const mtu = overlayMtu(c.mode, underIf.mtu);
    const wgPort = c.wgPort ?? DEFAULT_WG_PORT;
    const vxPort = c.vxlanPort ?? DEFAULT_VXLAN_PORT;
    const key = c.mode === 'encrypted' ? loadOrCreateKey(c.dataDir) : undefined;

    await ensureBridge(shell, bridge, mtu, range.text);
    // The other mode's device, from a run in the other mode, would keep routes and a port.
    const other = c.mode === 'encrypted' ? vxlanIfName(c.suffix) : wgIfName(c.suffix);
    if ((await shell.tryRun(['ip', 'link', 'del', 'dev', other])).code === 0) c.log.info('removed the other mode\'s device', { dev: other });
    let vxlanMac: string | undefined;
    if (key !== undefined) await ensureWireguard(shell, dev, key, wgPort, mtu, path.join(c.dataDir, `wireguard-go-${dev}.log`), c.log);
    else vxlanMac = await ensureVxlan(shell, dev, c.underlay, vxPort, mtu, c.log);
    const dp = new Dataplane(c, range, mtu, shell, key, vxlanMac);
    await dp.observeLocal();
    dp.applied = await dp.observeRemote();
    // Until the first sync, the VXLAN port stays open to the peers already in the fdb: a
    // restart must not cut running containers off.
    await dp.installFirewall([...new Set([...dp.applied.fdb.values()].map((e) => e.dst))].sort());
    c.log.info('data plane ready', { mode: c.mode, bridge, dev: dp.device, mtu, underlay: c.underlay, containers: dp.local.size, remote: dp.applied.routes.size });
    return dp;
  }

  /** What this host publishes about its data plane. */
  record(): DataplaneRecord {
    const r: DataplaneRecord = { v: 1, mode: this.mode, endpoint: this.c.underlay };
    if (this.key !== undefined) {
      r.wgPublicKey = this.key.publicKey;
      r.wgPort = this.c.wgPort ?? DEFAULT_WG_PORT;
    }
    if (this.vxlanMac !== undefined) {
      r.vxlanMac = this.vxlanMac;
      r.vxlanPort = this.c.vxlanPort ?? DEFAULT_VXLAN_PORT;
    }
    if (this.exposed !== undefined) r.exposed = this.exposed;
    return r;
  }

  /** Plugs the container whose network namespace is `netns` (a path: /proc/PID/ns/net or
   *  /var/run/netns/NAME) into the overlay with address `addr`. Returns its interface's MAC. */
  attach(netns: string, addr: string, opts: { ifName?: string } = {}): Promise<{ mac: string; hostIf: string }> {
    this.checkAddr(addr);
    const ifName = checkIfName(opts.ifName ?? DEFAULT_CONTAINER_IF);
    // The path goes into `ip -batch` lines, which split on whitespace.
    if (!/^\/[^\s]+$/.test(netns)) return Promise.reject(new Error(`"${netns}" is not a network namespace path (e.g. /proc/PID/ns/net)`));
    return this.serial(async () => {
      const spec = { addr, hostIf: hostIfName(addr), peerIf: ifName, mac: randomMac(), mtu: this.mtu, bridge: this.bridge, netns };
      try {
        await this.addVeth(spec);
      } catch (e) {
        throw new Error(`cannot attach ${addr} to ${netns}: ${errorText(e)}`);
      }
      try {
        await this.shell.runIn(netns, ['ip', '-batch', '-'], batch(containerSide(ifName, addr, this.range.text)));
      } catch (e) {
        await this.removeLines(removal(spec.hostIf, addr, this.bridge));
        throw new Error(`cannot configure ${ifName} in ${netns}: ${errorText(e)}`);
      }
      await this.localAdded(addr);
      return { mac: spec.mac, hostIf: spec.hostIf };
    });
  }

  /** Unplugs the container with `addr` (its interface goes with the veth pair). Idempotent. */
  detach(addr: string): Promise<void> {
    this.checkAddr(addr);
    return this.serial(async () => {
      await this.removeLines(removal(hostIfName(addr), addr, this.bridge));
      await this.localRemoved(addr);
    });
  }

  /** For Docker's remote driver: a veth pair whose container end stays in the host namespace
   *  (Docker moves and renames it), the host end on the bridge, the host route in place. */
  prepareVeth(addr: string): Promise<{ hostIf: string; containerIf: string; mac: string }> {
    this.checkAddr(addr);
    return this.serial(async () => {
      const spec = { addr, hostIf: hostIfName(addr), peerIf: preparedIfName(addr), mac: randomMac(), mtu: this.mtu, bridge: this.bridge };
      await this.addVeth(spec);
      await this.localAdded(addr);
      return { hostIf: spec.hostIf, containerIf: spec.peerIf, mac: spec.mac };
    });
  }

  /** Undoes prepareVeth (or attach) by the host end's name. Idempotent. */
  removeVeth(hostIf: string): Promise<void> {
    const m = /^vw([0-9a-f]{8})$/.exec(hostIf);
    if (m === null) return Promise.reject(new Error(`"${hostIf}" is not a weft veth (vw + 8 hex digits)`));
    const n = parseInt(m[1] as string, 16);
    const addr = [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
    return this.detach(addr);
  }

  /** Reconciles the remote side (routes, WireGuard peers, fdb and neighbours, the VXLAN port's
   *  firewall) to exactly `view`. Runs no command when nothing changed. */
  sync(view: View): Promise<void> {
    return this.serial(async () => {
      this.view = view;
      try {
        await this.reconcile();
      } catch (e) {
        this.scheduleRetry();
        throw e;
      }
    });
  }

  /** Gives the host overlay address `addr`: its own traffic into the overlay carries it, and
   *  the record publishes it so the other hosts route it back. */
  expose(addr: string): Promise<void> {
    this.checkAddr(addr);
    return this.serial(async () => {
      if (this.local.has(addr)) throw new Error(`cannot expose ${addr}: a container here has it`);
      if (this.exposed === addr) return;
      const old = this.exposed;
      await this.shell.run(['ip', 'addr', 'replace', `${addr}/32`, 'dev', this.bridge]);
      this.exposed = addr;
      await this.installFirewall();
      await this.reconcile();
      if (old !== undefined) await this.removeLines([`addr del ${old}/32 dev ${this.bridge}`]);
    });
  }

  /** Takes the exposed address away again. */
  hide(): Promise<void> {
    return this.serial(async () => {
      const old = this.exposed;
      if (old === undefined) return;
      this.exposed = undefined;
      // Routes first (without src): the kernel deletes routes whose source address goes away.
      await this.reconcile();
      await this.installFirewall();
      await this.removeLines([`addr del ${old}/32 dev ${this.bridge}`]);
    });
  }

  /** Removes everything the data plane made on this host (the key file stays). */
  reset(): Promise<void> {
    return this.serial(async () => {
      this.stopped = true;
      this.clearTimers();
      await resetHost(this.shell, { bridge: this.bridge, suffix: this.c.suffix, range: this.range.text, log: this.c.log });
      this.local.clear();
      this.applied = undefined;
    });
  }

  /** Stops using the kernel; everything made stays and keeps forwarding. */
  stop(): void {
    this.stopped = true;
    this.clearTimers();
  }

  /** Addresses attached here, for the caller's checks. */
  localAddresses(): string[] {
    return [...this.local].sort();
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    return this.queue.run(() => {
      if (this.stopped) return Promise.reject(new Error('the data plane was stopped'));
      return task();
    });
  }

  private checkAddr(addr: string): void {
    const n = parseIPv4(addr);
    if (n === undefined || n < this.range.base || n >= this.range.base + this.range.size) throw new Error(`${addr} is not an address in the overlay range ${this.range.text}`);
  }

  private async addVeth(spec: Parameters<typeof hostSide>[0]): Promise<void> {
    const r = await this.shell.tryRun(['ip', '-batch', '-'], batch(hostSide(spec)));
    if (r.code === 0) return;
    if (!/File exists/.test(r.stderr)) throw new CommandError(this.shell.wrap(['ip', '-batch', '-']), r);
    // A pair left by an attach whose detach never came (the peer crashed): replace it.
    this.c.log.info('replacing a stale veth', { hostIf: spec.hostIf, addr: spec.addr });
    await this.removeLines(removal(spec.hostIf, spec.addr, this.bridge));
    await this.shell.run(['ip', '-batch', '-'], batch(hostSide(spec)));
  }

  /** Runs removal lines, tolerating what is already gone. */
  private async removeLines(lines: string[]): Promise<void> {
    const r = await this.shell.tryRun(['ip', '-force', '-batch', '-'], batch(lines));
    if (r.code === 0) return;
    const errors = r.stderr.split('\n').filter((l) => l.trim() !== '' && !ALREADY_GONE.test(l) && !/^Command failed/.test(l));
    if (errors.length > 0) throw new CommandError(this.shell.wrap(['ip', '-force', '-batch', '-']), r);
  }

  private async localAdded(addr: string): Promise<void> {
    this.local.add(addr);
    // The host route replaced a remote route to the same address, if there was one.
    this.applied?.routes.delete(addr);
    await this.reconcileAfterLocalChange();
  }

  private async localRemoved(addr: string): Promise<void> {
    this.local.delete(addr);
    // The address may live elsewhere now: route it there at once.
    await this.reconcileAfterLocalChange();
  }

  /** The local change is done and stays done: a remote side that cannot be reconciled now (a
   *  bad record from a member, a slow `wg`) must not fail the attach, or the caller would free
   *  an address a container still uses. The next sync tries again. */
  private async reconcileAfterLocalChange(): Promise<void> {
    if (this.view === undefined) return;
    try {
      await this.reconcile();
    } catch (e) {
      this.applied = undefined;
      this.c.log.error('cannot bring the remote routes up to date; retrying', { err: errorText(e), inMs: this.retryMs });
      this.scheduleRetry();
    }
  }

  /** Tries the reconciliation again later (RECONCILE_RETRY_MS), until one succeeds. */
  private scheduleRetry(): void {
    if (this.retryTimer !== undefined || this.stopped) return;
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RECONCILE_RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.serial(() => this.reconcile()).then(
        () => this.c.log.info('data plane reconciled after an earlier failure'),
        (e) => {
          if (this.stopped) return;
          this.c.log.warn('data plane reconciliation failed again', { err: errorText(e), retryInMs: this.retryMs });
          this.scheduleRetry();
        },
      );
    }, delay);
    this.retryTimer.unref();
  }

  private clearTimers(): void {
    clearTimeout(this.retryTimer);
    clearTimeout(this.handshakeTimer);
    this.retryTimer = undefined;
    this.handshakeTimer = undefined;
    this.pendingHandshakes.clear();
  }

  /** Remembers the WireGuard peers this reconciliation added (those we re-initiate with) to
   *  check their first handshake, and forgets the removed ones. */
  private trackNewPeers(before: RemoteState, after: RemoteState): void {
    const ours = this.key?.publicKey;
    if (ours === undefined) return;
    const now = Date.now();
    for (const key of after.wgPeers.keys()) {
      if (!before.wgPeers.has(key) && weReinitiate(ours, key)) this.pendingHandshakes.set(key, { since: now, checks: 0 });
    }
    for (const key of this.pendingHandshakes.keys()) if (!after.wgPeers.has(key)) this.pendingHandshakes.delete(key);
    this.scheduleHandshakeCheck();
  }

  private scheduleHandshakeCheck(): void {
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    const at = nextDue(this.pendingHandshakes);
    if (at === undefined || this.stopped) return;
    this.handshakeTimer = setTimeout(() => {
      this.handshakeTimer = undefined;
      this.serial(() => this.reinitiateStuckPeers()).catch((e) => {
        if (!this.stopped) this.c.log.warn('cannot check the WireGuard handshakes; leaving the retries to WireGuard', { err: errorText(e) });
      });
    }, Math.max(0, at - Date.now()));
    this.handshakeTimer.unref();
  }

  /** Re-initiates with the new peers that have no handshake yet (handshake.ts). */
  private async reinitiateStuckPeers(): Promise<void> {
    if (this.pendingHandshakes.size === 0) return;
    let handshakes: Map<string, number>;
    try {
      handshakes = parseHandshakes(await this.shell.run(['wg', 'show', this.device, 'dump']));
    } catch (e) {
      this.pendingHandshakes.clear();
      throw e;
    }
    const r = checkHandshakes(Date.now(), this.pendingHandshakes, handshakes);
    this.pendingHandshakes = r.pending;
    const args = this.applied === undefined ? undefined : reinitiateArgs(this.device, r.reinitiate, this.applied.wgPeers);
    try {
      if (args !== undefined) {
        this.c.log.info('no WireGuard handshake yet with a new peer; initiating again', { peers: r.reinitiate.map((k) => k.slice(0, 8)).join(',') });
        await this.shell.run(['wg', ...args]);
      }
    } catch (e) {
      // The peers' configuration is unknown now: read it again before the next diff.
      this.applied = undefined;
      throw e;
    } finally {
      this.scheduleHandshakeCheck();
    }
  }

  private self(): Self {
    const local = new Set(this.local);
    if (this.exposed !== undefined) local.add(this.exposed);
    return { mode: this.mode, underlay: this.c.underlay, wgPublicKey: this.key?.publicKey, vxlanMac: this.vxlanMac, range: this.range, local, exposed: this.exposed };
  }

  /** One diff-and-apply. A failed command means our belief about the kernel was wrong (or it
   *  changed under us): observe the truth and try once more before giving up. */
  private async reconcile(): Promise<void> {
    const desired = desiredRemote(this.view ?? { hosts: new Map(), remote: [] }, this.self());
    for (const s of desired.skipped) this.c.log.debug('not routed', { why: s });
    for (let attempt = 1; ; attempt++) {
      this.applied ??= await this.observeRemote();
      const before = this.applied;
      const cmds = planRemote(before, desired.state, this.device);
      try {
        if (!isEmpty(cmds)) {
          if (cmds.wg !== undefined) await this.shell.run(['wg', ...cmds.wg]);
          if (cmds.bridge.length > 0) await this.shell.run(['bridge', '-force', '-batch', '-'], batch(cmds.bridge));
          if (cmds.ip.length > 0) await this.shell.run(['ip', '-force', '-batch', '-'], batch(cmds.ip));
          this.c.log.debug('data plane synced', { wg: cmds.wg === undefined ? 0 : 1, bridge: cmds.bridge.length, ip: cmds.ip.length });
        }
        this.applied = desired.state;
        this.trackNewPeers(before, desired.state);
        if (this.mode === 'fast') await this.installFirewall(desired.underlays);
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
        this.retryMs = RECONCILE_RETRY_MS;
        return;
      } catch (e) {
        this.applied = undefined;
        if (attempt >= 2) throw e;
        this.c.log.warn('data plane reconciliation failed; re-reading the kernel state', { err: errorText(e) });
      }
    }
  }

  private async installFirewall(peers: readonly string[] = this.firewallPeers): Promise<void> {
    const key = `${peers.join(',')} ${this.exposed ?? ''}`;
    if (this.firewallKey === key) return;
    const vxlan = this.mode === 'fast' ? { port: this.c.vxlanPort ?? DEFAULT_VXLAN_PORT, peers } : undefined;
    const exposed = this.exposed !== undefined ? { exposed: this.exposed } : {};
    await this.shell.run(['iptables-restore', '-w', '--noflush'], firewallRules({ ...this.chains, bridge: this.bridge, tunnel: this.device, range: this.range.text, ...exposed, vxlan }));
    // At the top: ahead of Docker's FORWARD rules and its policy DROP.
    for (const [hook, chain] of missingJumps(await this.shell.run(['iptables', '-w', '-S']), chainHooks(this.bridge))) {
      await this.shell.run(['iptables', '-w', '-I', hook, '1', '-j', chain]);
    }
    this.firewallKey = key;
    this.firewallPeers = peers;
  }

  /** Local containers and the exposed address, from the bridge's routes and addresses. */
  private async observeLocal(): Promise<void> {
    for (const addr of parseHostRoutes(await this.shell.run(['ip', '-j', 'route', 'show', 'dev', this.bridge])).keys()) this.local.add(addr);
    const link = parseLink(await this.shell.run(['ip', '-j', 'addr', 'show', 'dev', this.bridge]));
    this.exposed = link?.addrs.find((a) => a !== GATEWAY);
  }

  private async observeRemote(): Promise<RemoteState> {
    const routes = parseHostRoutes(await this.shell.run(['ip', '-j', 'route', 'show', 'dev', this.device]));
    if (this.mode === 'encrypted') {
      return remoteState({ routes, wgPeers: parseWgDump(await this.shell.run(['wg', 'show', this.device, 'dump'])).peers });
    }
    return remoteState({
      routes,
      neigh: parseNeigh(await this.shell.run(['ip', '-j', 'neigh', 'show', 'dev', this.device])),
      fdb: parseFdb(await this.shell.run(['bridge', '-j', 'fdb', 'show', 'dev', this.device]), this.c.vxlanPort ?? DEFAULT_VXLAN_PORT),
    });
  }
}
