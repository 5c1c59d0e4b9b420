// weft as a Docker network driver and IPAM driver: the libnetwork remote-driver protocol
// (moby libnetwork/docs/remote.md, ipam.md) on a unix socket that dockerd finds by name in
// /run/docker/plugins. Every real action (allocating an address, making a veth, recording an
// endpoint) is a callback of the peer; this file only speaks the protocol and keeps the
// little state the protocol needs between calls (which endpoint has which veth, which
// address came from which allocation). The endpoints are kept in the peer's store
// (plugin-endpoints.ts), so Leave and DeleteEndpoint of endpoints made before a restart work.
//
// The socket is root-only by its location, yet what arrives on it is treated as input from
// anyone: bodies, time per request, requests in flight and connections are bounded, and every
// request gets one answer, `{"Err": ...}` when it cannot be served.
//
//   docker network create -d weft --ipam-driver weft weftnet
//   docker run --network weftnet ...
//
// The container side is routed, not bridged: the container's address is a /32 on `ethwe<n>`;
// it reaches the gateway (a link-local address on the host's bridge) on-link and the whole
// overlay range through it. So containers never ARP for each other, the host routes every
// packet (which the WireGuard data plane, an L3 device, needs), and no default route is
// imposed on a container that has other networks.
import { parseIPv4, formatIPv4 } from '../../ipv4.ts';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type stream from 'node:stream';
import { parseCidr, type Cidr } from '../../ipam/cidr.ts';
import { LogOnce } from '../../log-once.ts';
import { errorText, type Logger } from '../../log.ts';
import { dockerEndpointIds, type DockerNetworks } from './plugin-census.ts';
import { EndpointBook, ID_RE, staleEndpoints, type PluginEndpoint, type PluginStore } from './plugin-endpoints.ts';
import {
  MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_IN_FLIGHT, obj, objs, parseObject, PluginError, rawErrorReply, readBody, reply,
  REQUEST_TIMEOUT_MS, str, strMap,
} from './plugin-wire.ts';

/** Where dockerd looks for legacy plugin sockets (pkg/plugins discovery). It is machine-wide:
 *  dockerd's --exec-root does not move it, so several dockerds on one machine share it and
 *  each peer's plugin needs a name of its own. */
export const DEFAULT_PLUGIN_DIR = '/run/docker/plugins';

/** The prefix Docker gives the interface it moves into the container: ethwe0, ethwe1, ...
 *  (Weave Net's name, which users' scripts already know). */
export const CONTAINER_IF_PREFIX = 'ethwe';

/** libnetwork's labels and option keys (netlabel, ipamapi). */
const LABEL_GATEWAY = 'com.docker.network.gateway';
const REQUEST_ADDRESS_TYPE = 'RequestAddressType';

/** StaticRoute.RouteType values (libnetwork types.NEXTHOP / types.CONNECTED). */
const ROUTE_NEXTHOP = 0;
const ROUTE_CONNECTED = 1;

/** The pool weft answers when the user gives no --subnet. For a local-scope network with no
 *  preferred pool, dockerd checks the pool against the host's routes and, on overlap, asks
 *  again, forever (libnetwork requestPoolHelper: it releases the refused pools only when it
 *  returns, and an IPAM driver with one range returns the same pool every time). Every weft
 *  host routes the overlay range, so the real range would always overlap and
 *  `docker network create` would hang; 0.0.0.0/0 is the one pool that check skips
 *  (types.IsIPNetValid). An explicit --subnet equal to the range is not checked either. */
const ANY_POOL = '0.0.0.0/0';

/** The one address space weft offers; Docker only passes it back to us. */
const ADDRESS_SPACE = 'weft';

/** Docker's plugin names end up in a file name and in `docker network create -d NAME`. */
const NAME_RE = /^[A-Za-z0-9][\w.-]{0,63}$/;

export interface PluginBackend {
  /** Address space of the overlay, e.g. '10.32.0.0/12'. */
  range: string;
  /** Gateway the container routes the overlay through (a link-local address on the host's
   *  bridge, '169.254.53.1'). */
  gateway: string;
  mtu: number;
  /** Returns an IPv4 address in range; may take time (waits for space). */
  allocate(handle: string): Promise<string>;
  release(handle: string): Promise<void>;
  /** The handle an address was allocated under, from the allocator's own (persisted) state:
   *  lets ReleaseAddress work after a restart of the plugin, which forgets its own map. */
  handleOf?(addr: string): string | undefined;
  /** Makes a veth pair; the container end stays in the host namespace (Docker moves it). The
   *  veth must have the overlay MTU: Docker does not change it. */
  prepareVeth(addr: string): Promise<{ hostIf: string; containerIf: string; mac: string }>;
  removeVeth(hostIf: string): Promise<void>;
  /** The endpoint is now in a container (Join) / left it (Leave). sandboxKey is Docker's
   *  netns path. Also called when the plugin starts, for each stored endpoint that was joined
   *  before the restart (and whose container Docker still has). */
  joined(ep: { endpointId: string; networkId: string; addr: string; mac: string; sandboxKey: string }): Promise<void>;
  left(endpointId: string): Promise<void>;
}

export interface DockerPluginOptions {
  /** The driver name users give `docker network create -d NAME --ipam-driver NAME`. */
  name: string;
  /** Directory of the socket; default DEFAULT_PLUGIN_DIR. */
  dir?: string;
  backend: PluginBackend;
  log: Logger;
  /** Where endpoints are kept across restarts (the peer's Store). Without one they live only
   *  in memory, and a restarted plugin cannot serve endpoints made before. */
  store?: PluginStore;
  /** The dockerd this plugin serves, asked at start which stored endpoints it still has:
   *  the others (deleted while the plugin was down) lose their veth and address. Without it
   *  stored endpoints are kept until Docker deletes them. */
  docker?: DockerNetworks;
  /** Bounds, for tests; the defaults are plugin-wire.ts's constants. */
  limits?: Partial<PluginLimits>;
}

export interface PluginLimits {
  maxBodyBytes: number;
  requestTimeoutMs: number;
  maxInFlight: number;
  maxConnections: number;
}

/** How often Node looks for connections whose request is overdue (its default is 30 s, which
 *  would let a slow client hold a connection three times the timeout). */
const MAX_TIMEOUT_CHECK_MS = 1_000;

/** What a handler gets besides the request: whether dockerd is still waiting for the answer. */
interface Call {
  body: Record<string, unknown>;
  gone(): boolean;
}

type Handler = (call: Call) => Promise<unknown>;

/** The allocation handle of one Docker address request. Docker names no container or endpoint
 *  when it asks for an address, so each request gets a fresh handle, remembered by address
 *  until ReleaseAddress. The prefix tells the peer (and `weft ps`) who holds it. */
export function addressHandle(pluginName: string): string {
  return `docker:${pluginName}:${randomBytes(8).toString('hex')}`;
}

export class DockerPlugin {
  readonly name: string;
  readonly socketPath: string;
  private readonly backend: PluginBackend;
  private readonly log: Logger;
  private readonly range: Cidr;
  private readonly gateway: string;
  private readonly poolId: string;
  private readonly server: http.Server;
  private readonly handlers: Record<string, Handler>;
  /** Networks Docker created with this driver since the plugin started. Not enforced: after a
   *  restart dockerd does not create its networks again, yet their endpoints must work. */
  private readonly networks = new Set<string>();
  private readonly endpoints = new Map<string, PluginEndpoint>();
  /** Endpoint ids whose CreateEndpoint is under way: a second one for the same id is refused. */
  private readonly creating = new Set<string>();
  private readonly book: EndpointBook;
  private readonly docker: DockerNetworks | undefined;
  private readonly limits: PluginLimits;
  private readonly logOnce = new LogOnce();
  private inFlight = 0;
  /** Settles when the start-up comparison with dockerd's endpoints is done (tests wait on it). */
  reconciled: Promise<void> = Promise.resolve();
  /** Address -> allocation handle, for ReleaseAddress (which names only the address). */
  private readonly handles = new Map<string, string>();
  private closed = false;

  private constructor(opts: DockerPluginOptions, socketPath: string, range: Cidr, gateway: string) {
    this.name = opts.name;
    this.socketPath = socketPath;
    this.backend = opts.backend;
    this.log = opts.log;
    this.range = range;
    this.gateway = gateway;
    // Stable across restarts of the plugin: Docker keeps pool ids in its own store.
    this.poolId = `weft-${range.text}`;
    this.book = new EndpointBook(opts.store, opts.name);
    this.docker = opts.docker;
    this.limits = {
      maxBodyBytes: opts.limits?.maxBodyBytes ?? MAX_BODY_BYTES,
      requestTimeoutMs: opts.limits?.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
      maxInFlight: opts.limits?.maxInFlight ?? MAX_IN_FLIGHT,
      maxConnections: opts.limits?.maxConnections ?? MAX_CONNECTIONS,
    };
    this.handlers = this.makeHandlers();
    const t = this.limits.requestTimeoutMs;
    this.server = http.createServer(
      {
        // Headers must arrive within the timeout; the body has its own timer (readBody), which
        // answers in JSON; Node's whole-request timeout is the backstop behind it.
        headersTimeout: t,
        requestTimeout: 2 * t,
        connectionsCheckingInterval: Math.max(50, Math.min(MAX_TIMEOUT_CHECK_MS, Math.floor(t / 4))),
      },
      (req, res) => this.serve(req, res),
    );
    this.server.maxConnections = this.limits.maxConnections;
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => this.clientError(err, socket));
  }

  /** Validates the options, replaces a stale socket, and listens. Refuses to take over a
   *  socket that still answers (another peer, or another test, has that name). */
  static async start(opts: DockerPluginOptions): Promise<DockerPlugin> {
    if (!NAME_RE.test(opts.name)) {
      throw new Error(`docker plugin name ${JSON.stringify(opts.name)}: use up to 64 letters, digits, _ . - (it becomes a socket file name)`);
    }
    const range = parseCidr(opts.backend.range);
    if (typeof range === 'string') throw new Error(`docker plugin: ${range}`);
    const gw = parseIPv4(opts.backend.gateway);
    if (gw === undefined) throw new Error(`docker plugin: gateway "${opts.backend.gateway}" is not an IPv4 address`);
    if (gw >= range.base && gw < range.base + range.size) {
      throw new Error(`docker plugin: gateway ${opts.backend.gateway} is inside the container range ${range.text}; it must be outside (a link-local address)`);
    }
    const dir = opts.dir ?? DEFAULT_PLUGIN_DIR;
    fs.mkdirSync(dir, { recursive: true });
    const socketPath = path.join(dir, `${opts.name}.sock`);
    await removeStaleSocket(socketPath);
    const plugin = new DockerPlugin(opts, socketPath, range, formatIPv4(gw));
    // Before listening: Docker's first call may be the Leave of an endpoint made before.
    const loaded = await plugin.load();
    await new Promise<void>((resolve, reject) => {
      plugin.server.once('error', reject);
      plugin.server.listen(socketPath, () => {
        plugin.server.off('error', reject);
        resolve();
      });
    });
    plugin.server.on('error', (e) => plugin.log.error('docker plugin socket failed', { socket: socketPath, err: errorText(e) }));
    // dockerd runs as root; nobody else may drive the host's networking through this socket.
    fs.chmodSync(socketPath, 0o600);
    plugin.log.info('docker plugin listening', { name: opts.name, socket: socketPath, range: range.text, gateway: plugin.gateway, endpoints: loaded.size });
    // After listening: dockerd may be busy retrying calls to this very socket, and asking it
    // must not hold up the peer's start.
    plugin.reconciled = plugin.reconcile(loaded).catch((e) => plugin.log.warn('docker plugin could not check its stored endpoints against dockerd', { err: errorText(e) }));
    return plugin;
  }

  /** The stored endpoints, into memory; unusable records are dropped with a logged reason. */
  private async load(): Promise<Map<string, PluginEndpoint>> {
    const { endpoints, dropped } = await this.book.load();
    for (const d of dropped) this.log.warn('dropped an unusable stored docker endpoint', { endpoint: short(d.id), reason: d.reason });
    for (const [id, ep] of endpoints) this.endpoints.set(id, ep);
    return endpoints;
  }

  /** Stored endpoints Docker no longer has lose their veth and address; those it has and that
   *  were joined are announced to the backend again (it forgot them with the restart). */
  private async reconcile(loaded: ReadonlyMap<string, PluginEndpoint>): Promise<void> {
    if (loaded.size === 0) return;
    let has: Set<string>;
    if (this.docker === undefined) {
      has = new Set(loaded.keys());
    } else {
      try {
        has = await dockerEndpointIds(this.docker, this.name);
      } catch (e) {
        // dockerd starting after the peer cleans up its own stale endpoints, with calls to
        // this plugin, which now knows them: keeping them all is safe.
        this.log.warn('cannot ask dockerd which endpoints it still has; stored endpoints kept until Docker deletes them', { endpoints: loaded.size, err: errorText(e) });
        has = new Set(loaded.keys());
      }
    }
    for (const id of staleEndpoints(loaded, has, Date.now())) {
      if (this.closed) return;
      const ep = this.endpoints.get(id);
      // Docker may have deleted it through the socket meanwhile.
      if (ep !== loaded.get(id)) continue;
      await this.dropStale(id, ep as PluginEndpoint);
    }
    for (const [id, ep] of loaded) {
      if (this.closed || this.endpoints.get(id) !== ep || ep.sandboxKey === undefined) continue;
      await this.backend
        .joined({ endpointId: id, networkId: ep.networkId, addr: ep.addr, mac: ep.mac, sandboxKey: ep.sandboxKey })
        .catch((e) => this.log.warn('docker endpoint could not be announced again after the restart', { endpoint: short(id), err: errorText(e) }));
    }
  }

  /** An endpoint Docker deleted while the plugin could not hear it: its veth goes, and the
   *  address it held, which Docker's ReleaseAddress never reached. */
  private async dropStale(id: string, ep: PluginEndpoint): Promise<void> {
    try {
      await this.backend.removeVeth(ep.hostIf);
    } catch (e) {
      this.log.warn('cannot remove the veth of a docker endpoint Docker no longer has; kept for the next start', { endpoint: short(id), hostIf: ep.hostIf, err: errorText(e) });
      return;
    }
    const handle = this.handles.get(ep.addr) ?? this.backend.handleOf?.(ep.addr);
    if (handle !== undefined) {
      try {
        await this.backend.release(handle);
        this.handles.delete(ep.addr);
      } catch (e) {
        this.log.warn('cannot release the address of a docker endpoint Docker no longer has', { endpoint: short(id), addr: ep.addr, err: errorText(e) });
      }
    }
    if (ep.sandboxKey !== undefined) await this.backend.left(id).catch(() => undefined);
    await this.book.remove(id);
    if (this.endpoints.get(id) === ep) this.endpoints.delete(id);
    this.log.info('removed a docker endpoint Docker deleted while the plugin was down', { endpoint: short(id), addr: ep.addr, hostIf: ep.hostIf, released: handle !== undefined });
  }

  /** Stops serving and removes the socket file. Endpoints stay as they are: the containers
   *  keep running, and a restarted peer serves them again. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    // server.close() unlinks the socket; this covers a listener that never got that far.
    fs.rmSync(this.socketPath, { force: true });
    this.log.info('docker plugin stopped', { name: this.name });
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    // A throw out of a request listener would end the peer: nothing escapes this one.
    try {
      this.serveRequest(req, res);
    } catch (e) {
      this.log.error('docker plugin request failed unexpectedly', { err: errorText(e) });
      reply(res, 500, { Err: `weft's docker plugin failed: ${errorText(e)}`, Error: `weft's docker plugin failed: ${errorText(e)}` }, true);
    }
  }

  private serveRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    // Bounded: the method ends up in log lines and error messages.
    const method = ((req.url ?? '').replace(/^\/+/, '').split('?')[0] ?? '').slice(0, 80);
    const fail = (e: unknown, close = false): void => {
      // A backend failure (no space, a veth that would not come up) is an operation that
      // could not complete: `{"Err"}` with 200, so dockerd shows the backend's sentence as it
      // is ("remote: ..."); with an HTTP error it would prefix the method name.
      const status = e instanceof PluginError ? e.status : 200;
      const msg = errorText(e);
      // Said once a minute per kind: whoever can reach the socket cannot flood the log.
      const said = this.logOnce.shouldLog(`${method} ${status} ${msg}`, Date.now());
      if (said !== undefined) {
        const fields = { method, status, err: msg, ...(said > 0 ? { repeated: said } : {}) };
        if (status >= 400) this.log.warn('docker plugin request rejected', fields);
        else if (e instanceof PluginError) this.log.info('docker plugin request refused', fields);
        else this.log.warn('docker plugin backend failed', fields);
      }
      // Two spellings: the network driver's responses carry `Err`, the IPAM driver's `Error`
      // (libnetwork's ipams/remote/api), and dockerd ignores the one it does not read.
      reply(res, status, { Err: msg, Error: msg }, close);
    };
    if (req.method !== 'POST') {
      fail(new PluginError(`${req.method} is not supported: the plugin protocol is POST /<Interface>.<Method>`, 405), true);
      return;
    }
    const handler = Object.hasOwn(this.handlers, method) ? this.handlers[method] : undefined;
    if (handler === undefined) {
      // 404 tells dockerd the method is not implemented (remote.md), which it tolerates.
      fail(new PluginError(`weft's docker plugin does not implement ${method || '(empty method)'}`, 404), true);
      return;
    }
    if (this.inFlight >= this.limits.maxInFlight) {
      fail(new PluginError(`weft's docker plugin is busy with ${this.inFlight} requests; try again`, 503), true);
      return;
    }
    // Released when the handler is done, not when the caller goes: the work is still being done.
    this.inFlight++;
    this.log.debug('docker plugin request', { method });
    let bodyRead = false;
    readBody(req, this.limits.maxBodyBytes, this.limits.requestTimeoutMs)
      .then((b) => {
        bodyRead = true;
        return parseObject(b);
      })
      .then((body) => handler({ body, gone: () => res.destroyed || req.socket.destroyed }))
      .then((out) => reply(res, 200, out ?? {}))
      .catch((e: unknown) => fail(e, !bodyRead))
      .catch((e: unknown) => this.log.error('docker plugin could not answer', { method, err: errorText(e) }))
      .finally(() => this.inFlight--);
  }

  /** A connection whose bytes never became a request (not HTTP, headers too large or too
   *  slow): one JSON error and the connection closes, as Node would do without the JSON. */
  private clientError(err: NodeJS.ErrnoException, socket: stream.Duplex): void {
    const answering = (socket as { _httpMessage?: http.ServerResponse })._httpMessage?.headersSent === true;
    if (err.code === 'ECONNRESET' || !socket.writable || answering) {
      socket.destroy();
      return;
    }
    const [status, reason, msg] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', `the request did not arrive within ${this.limits.requestTimeoutMs / 1000} s`]
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'Request Header Fields Too Large', 'the request headers are too large']
          : [400, 'Bad Request', `the request is not HTTP the plugin protocol can read (${err.code ?? err.message})`];
    const said = this.logOnce.shouldLog(`client ${status}`, Date.now());
    if (said !== undefined) this.log.warn('docker plugin connection rejected', { status, err: msg, ...(said > 0 ? { repeated: said } : {}) });
    socket.end(rawErrorReply(status, reason, msg));
    // end() waits for the client; a client that never reads must not hold the socket.
    setTimeout(() => socket.destroy(), this.limits.requestTimeoutMs).unref();
  }

  private makeHandlers(): Record<string, Handler> {
    return {
      'Plugin.Activate': async () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }),

      'IpamDriver.GetCapabilities': async () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }),
      'IpamDriver.GetDefaultAddressSpaces': async () => ({
        LocalDefaultAddressSpace: ADDRESS_SPACE,
        GlobalDefaultAddressSpace: ADDRESS_SPACE,
      }),
      'IpamDriver.RequestPool': async ({ body }) => this.requestPool(body),
      'IpamDriver.ReleasePool': async ({ body }) => {
        this.checkPool(str(body, 'PoolID', true));
        return {};
      },
      'IpamDriver.RequestAddress': async (call) => this.requestAddress(call),
      'IpamDriver.ReleaseAddress': async ({ body }) => this.releaseAddress(body),

      // Scope "local": each dockerd keeps its own copy of the network (as with Weave Net).
      // "global" would make dockerd keep networks in a cluster store (swarm's, or the
      // --cluster-store KV that Docker removed in 23.0), which weft does not need: the mesh
      // already makes one address space of every host's copy. ConnectivityScope "global"
      // says the network still spans hosts, so swarm may attach services to it.
      'NetworkDriver.GetCapabilities': async () => ({ Scope: 'local', ConnectivityScope: 'global' }),
      'NetworkDriver.CreateNetwork': async ({ body }) => this.createNetwork(body),
      'NetworkDriver.DeleteNetwork': async ({ body }) => {
        const id = str(body, 'NetworkID', true);
        // Docker retries deletes after its own restarts; forgetting twice is fine.
        this.networks.delete(id);
        this.log.info('docker network deleted', { network: short(id) });
        return {};
      },
      // Only strings go back (remote.md: a map of strings): echoing any JSON would let a
      // caller make the peer encode whatever it sent, however deep.
      'NetworkDriver.AllocateNetwork': async ({ body }) => ({ Options: strMap(body, 'Options') }),
      'NetworkDriver.FreeNetwork': async () => ({}),
      'NetworkDriver.CreateEndpoint': async ({ body }) => this.createEndpoint(body),
      'NetworkDriver.EndpointOperInfo': async ({ body }) => {
        const ep = this.endpoint(body, 'EndpointOperInfo');
        return { Value: { addr: ep.addr, mac: ep.mac, hostIf: ep.hostIf, mtu: this.backend.mtu } };
      },
      'NetworkDriver.DeleteEndpoint': async ({ body }) => this.deleteEndpoint(body),
      'NetworkDriver.Join': async ({ body }) => this.join(body),
      'NetworkDriver.Leave': async ({ body }) => this.leave(body),
      // Node discovery (swarm's and the old cluster store's): the mesh has its own.
      'NetworkDriver.DiscoverNew': async () => ({}),
      'NetworkDriver.DiscoverDelete': async () => ({}),
      // Port publishing and outbound NAT are not the overlay's job.
      'NetworkDriver.ProgramExternalConnectivity': async () => ({}),
      'NetworkDriver.RevokeExternalConnectivity': async () => ({}),
    };
  }

  private requestPool(body: Record<string, unknown>): unknown {
    const pool = str(body, 'Pool');
    const subPool = str(body, 'SubPool');
    if (body.V6 === true) {
      throw new PluginError(`weft has no IPv6 addresses: create the network without --ipv6 (weft's range is ${this.range.text})`);
    }
    if (pool !== '' && canonical(pool) !== this.range.text) {
      throw new PluginError(`weft hands out addresses only from its range ${this.range.text}: leave --subnet out, or give --subnet ${this.range.text}`);
    }
    if (subPool !== '' && canonical(subPool) !== this.range.text) {
      throw new PluginError(`weft allocates from its whole range ${this.range.text}: leave --ip-range out`);
    }
    // ipam.md asks drivers to count pool references; weft's one pool is never freed, and
    // its id is the same after a restart, so there is nothing to count.
    return {
      PoolID: this.poolId,
      Pool: pool === '' ? ANY_POOL : this.range.text,
      // Giving the gateway here spares dockerd a RequestAddress for it (and a release on delete).
      Data: { [LABEL_GATEWAY]: `${this.gateway}/32` },
    };
  }

  private checkPool(poolId: string): void {
    if (poolId !== this.poolId) throw new PluginError(`address pool "${poolId}" is not weft's (weft's is "${this.poolId}")`);
  }

  private async requestAddress(call: Call): Promise<unknown> {
    const body = call.body;
    this.checkPool(str(body, 'PoolID', true));
    const wanted = str(body, 'Address');
    const options = strMap(body, 'Options');
    if (options[REQUEST_ADDRESS_TYPE] === LABEL_GATEWAY || wanted === this.gateway) {
      if (wanted !== '' && wanted !== this.gateway) {
        throw new PluginError(`the gateway of a weft network is ${this.gateway}: leave --gateway out`);
      }
      return { Address: `${this.gateway}/32`, Data: {} };
    }
    if (wanted !== '') {
      // Claiming a given address would bypass the mesh's reservations (a service's stable
      // address is desired state, held by the managers), so Docker's --ip and --aux-address
      // are refused rather than half-honoured.
      throw new PluginError(`weft chooses container addresses itself and cannot give ${wanted}: leave --ip and --aux-address out`);
    }
    const handle = addressHandle(this.name);
    const addr = await this.backend.allocate(handle);
    const n = parseIPv4(addr);
    if (n === undefined || n < this.range.base || n >= this.range.base + this.range.size) {
      await this.backend.release(handle).catch(() => undefined);
      throw new PluginError(`weft's allocator returned "${addr}", which is not in ${this.range.text}`);
    }
    if (call.gone()) {
      // dockerd gave up waiting (its plugin client times out); nobody will release this.
      await this.backend.release(handle).catch(() => undefined);
      throw new PluginError(`dockerd stopped waiting for an address; ${addr} was given back`);
    }
    this.handles.set(addr, handle);
    this.log.info('docker address allocated', { addr, handle });
    return { Address: `${addr}/32`, Data: {} };
  }

  private async releaseAddress(body: Record<string, unknown>): Promise<unknown> {
    this.checkPool(str(body, 'PoolID', true));
    const addr = str(body, 'Address', true);
    if (addr === this.gateway) return {};
    const handle = this.handles.get(addr) ?? this.backend.handleOf?.(addr);
    if (handle === undefined) {
      throw new PluginError(`weft's docker plugin did not hand out ${addr} (or was restarted since); nothing released`);
    }
    await this.backend.release(handle);
    this.handles.delete(addr);
    this.log.info('docker address released', { addr, handle });
    return {};
  }

  private createNetwork(body: Record<string, unknown>): unknown {
    const id = str(body, 'NetworkID', true);
    if (objs(body, 'IPv6Data').length > 0) {
      throw new PluginError(`weft has no IPv6 addresses: create the network without --ipv6`);
    }
    const v4 = objs(body, 'IPv4Data');
    const pools = v4.map((d) => str(d, 'Pool'));
    const pool = pools.length === 1 ? canonical(pools[0] as string) : '';
    // Docker's own IPAM could hand out addresses of weft's range that weft never allocated
    // (two containers, one address): only pools of weft's address space are accepted.
    const spaces = v4.map((d) => str(d, 'AddressSpace'));
    if ((pool !== this.range.text && pool !== ANY_POOL) || spaces.some((sp) => sp !== ADDRESS_SPACE)) {
      throw new PluginError(
        `a network with driver ${this.name} needs addresses from weft's allocator (range ${this.range.text}), not ${pools.join(', ') || 'none'}: add --ipam-driver ${this.name}`,
      );
    }
    this.networks.add(id);
    this.log.info('docker network created', { network: short(id) });
    return {};
  }

  private async createEndpoint(body: Record<string, unknown>): Promise<unknown> {
    const networkId = dockerId(body, 'NetworkID');
    const id = dockerId(body, 'EndpointID');
    const iface = obj(body, 'Interface');
    const cidr = str(iface, 'Address');
    const dockerMac = str(iface, 'MacAddress');
    if (dockerMac !== '' && !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(dockerMac)) throw new PluginError(`"${dockerMac.slice(0, 40)}" is not a MAC address`, 400);
    if (str(iface, 'AddressIPv6') !== '') throw new PluginError('weft has no IPv6 addresses: leave --ip6 out');
    if (cidr === '') throw new PluginError(`endpoint ${short(id)} has no IPv4 address: create the network with --ipam-driver ${this.name}`);
    const addr = cidr.split('/')[0] as string;
    const n = parseIPv4(addr);
    if (n === undefined || n < this.range.base || n >= this.range.base + this.range.size) {
      throw new PluginError(`endpoint address ${cidr} is outside weft's range ${this.range.text}: create the network with --ipam-driver ${this.name}`);
    }
    if (this.endpoints.has(id) || this.creating.has(id)) throw new PluginError(`endpoint ${short(id)} exists already`);
    if (!this.handles.has(addr) && this.backend.handleOf?.(addr) === undefined) {
      throw new PluginError(`${addr} was not allocated by weft: create the network with --ipam-driver ${this.name}`);
    }
    const user = [...this.endpoints.entries()].find(([, e]) => e.addr === addr);
    if (user !== undefined) throw new PluginError(`${addr} belongs to endpoint ${short(user[0])} already`);
    if (!this.networks.has(networkId)) this.log.info('docker endpoint on a network created before this plugin started', { network: short(networkId) });
    this.creating.add(id);
    try {
      // The veth is made now rather than at Join: Docker wants the endpoint's MAC in this
      // reply, and the veth's is the one the container keeps (unless the user gave one, which
      // Docker then sets on the interface itself when it moves it).
      const veth = await this.backend.prepareVeth(addr);
      const ep: PluginEndpoint = { networkId, addr, mac: dockerMac || veth.mac, hostIf: veth.hostIf, containerIf: veth.containerIf, created: Date.now() };
      try {
        // Stored before Docker hears of it: whatever Docker learns, a restarted plugin knows.
        await this.book.save(id, ep);
      } catch (e) {
        await this.backend.removeVeth(veth.hostIf).catch(() => undefined);
        throw new Error(`cannot record endpoint ${short(id)} in the peer's store: ${errorText(e)}`);
      }
      this.endpoints.set(id, ep);
    } finally {
      this.creating.delete(id);
    }
    const { mac, hostIf } = this.endpoints.get(id) as PluginEndpoint;
    this.log.info('docker endpoint created', { endpoint: short(id), network: short(networkId), addr, mac, hostIf });
    // remote.md: when Docker sent an Interface, answering with one again is an error, so
    // the MAC goes back only when Docker had none.
    return { Interface: dockerMac === '' ? { MacAddress: mac } : {} };
  }

  private async deleteEndpoint(body: Record<string, unknown>): Promise<unknown> {
    const id = dockerId(body, 'EndpointID');
    const ep = this.endpoint(body, 'DeleteEndpoint');
    // After Leave, Docker has moved the container end back and renamed it; deleting either
    // end of a veth removes both.
    const removed = await this.backend.removeVeth(ep.hostIf).then(() => undefined, (e: unknown) => e);
    // Forgotten even when the veth would not go: Docker forgets the endpoint whatever we answer
    // and then releases its address, and a veth left behind is replaced when the address is
    // used again (the veth's name comes from it).
    await this.book.remove(id);
    if (this.endpoints.get(id) === ep) this.endpoints.delete(id);
    if (removed !== undefined) throw removed;
    this.log.info('docker endpoint deleted', { endpoint: short(id), addr: ep.addr });
    return {};
  }

  private async join(body: Record<string, unknown>): Promise<unknown> {
    const endpointId = dockerId(body, 'EndpointID');
    const ep = this.endpoint(body, 'Join');
    const sandboxKey = str(body, 'SandboxKey', true);
    const networkId = ep.networkId;
    const joined: PluginEndpoint = { ...ep, sandboxKey };
    await this.book.save(endpointId, joined);
    if (this.endpoints.get(endpointId) === ep) this.endpoints.set(endpointId, joined);
    await this.backend.joined({ endpointId, networkId, addr: ep.addr, mac: ep.mac, sandboxKey });
    this.log.info('docker endpoint joined a container', { endpoint: short(endpointId), addr: ep.addr, sandbox: sandboxKey });
    return {
      InterfaceName: { SrcName: ep.containerIf, DstPrefix: CONTAINER_IF_PREFIX },
      // No Gateway and no 0.0.0.0/0 route: the container keeps the default route of its
      // other networks. (With no other network, Docker adds its docker_gwbridge for one.)
      StaticRoutes: [
        { Destination: `${this.gateway}/32`, RouteType: ROUTE_CONNECTED },
        { Destination: this.range.text, RouteType: ROUTE_NEXTHOP, NextHop: this.gateway },
      ],
    };
  }

  private async leave(body: Record<string, unknown>): Promise<unknown> {
    const id = dockerId(body, 'EndpointID');
    const ep = this.endpoint(body, 'Leave');
    await this.backend.left(id);
    if (ep.sandboxKey !== undefined && this.endpoints.get(id) === ep) {
      const { sandboxKey: _, ...left } = ep;
      await this.book.save(id, left);
      this.endpoints.set(id, left);
    }
    this.log.info('docker endpoint left its container', { endpoint: short(id), addr: ep.addr });
    return {};
  }

  /** The endpoint a call names. A NetworkID, when given, must be the endpoint's own. */
  private endpoint(body: Record<string, unknown>, method: string): PluginEndpoint {
    const id = dockerId(body, 'EndpointID');
    const networkId = str(body, 'NetworkID');
    const ep = this.endpoints.get(id);
    if (ep === undefined) throw new PluginError(`${method}: weft knows no endpoint ${short(id)}`);
    if (networkId !== '' && networkId !== ep.networkId) {
      throw new PluginError(`${method}: endpoint ${short(id)} is on network ${short(ep.networkId)}, not ${short(networkId)}`);
    }
    return ep;
  }
}

/** "10.32.0.0/12" for any spelling Docker may send ("10.32.0.0/12", "10.32.1.2/12"). */
function canonical(cidr: string): string {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(cidr.trim());
  const a = m === null ? undefined : parseIPv4(m[1] as string);
  const p = m === null ? NaN : Number(m[2]);
  if (a === undefined || !(p >= 0 && p <= 32)) return cidr;
  const size = 2 ** (32 - p);
  return `${formatIPv4(a - (a % size))}/${p}`;
}

/** A required id field: Docker's are 64 hex digits; anything that could not be one is a 400
 *  (endpoint ids become store keys). */
function dockerId(body: Record<string, unknown>, key: string): string {
  const v = str(body, key, true);
  if (!ID_RE.test(v)) throw new PluginError(`"${key}" is not a Docker id (letters, digits, _ . -, at most 128)`, 400);
  return v;
}

/** Docker's ids are 64 hex digits; 12 is what `docker ps` shows. */
function short(id: string): string {
  return id.slice(0, 12);
}

/** Removes a socket file nobody answers on; refuses one that answers, or a file that is not
 *  a socket (we never delete what we did not make). */
async function removeStaleSocket(p: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${p} exists and is not a socket: remove it, or choose another plugin name`);
  const live = await new Promise<boolean>((resolve) => {
    const s = net.connect(p);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new Error(`another process serves the docker plugin socket ${p}: stop it, or give this peer another plugin name`);
  fs.rmSync(p, { force: true });
}
