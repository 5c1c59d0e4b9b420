// Bringing your own node, composed on a peer: the API methods that make install commands (and
// user data), the installs and their tokens (install-token.ts), the bundle (bundle.ts), and the
// HTTPS listener that serves them to new hosts (install-http.ts).
//
// The listener is off until an install command is made and closes again once no token is live
// and a grace period has passed: a peer that never hands out install commands opens no port for
// them, and one that did keeps it open only while a command may still be run (and a little
// longer, so that a late or repeated run hears why it failed). It listens on the mesh's own
// listen address, port 6785: a new host that can reach the mesh port can reach this one too,
// unless a firewall names ports one by one (then open 6785/tcp between the hosts, as 6783).
// Each time it opens it makes a new TLS key; the commands carry its pin.

import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { encodeJoinToken } from '../../mesh/admission/join-token.ts';
import { formatHostPort, type HostPort } from '../../mesh/address.ts';
import { UserError } from '../../mesh/api/request.ts';
import type { MethodTable } from '../../mesh/api/table.ts';
import type { PeerConfig } from '../../mesh/config.ts';
import { errorText, type Logger } from '../../mesh/log.ts';
import { isUp, type MeshView } from '../../mesh/mesh-view.ts';
import type { Metrics } from '../../mesh/metrics.ts';
import * as api from './api-contract.ts';
import { BundleBuilder, type Bundle } from './bundle.ts';
import { installHandler, type InstallHttpStats } from './install-http.ts';
import { INSTALL_PORT } from './install-port.ts';
import { installScript, oneLiner } from './install-script.ts';
import { INSTALL_TOKEN_BYTES, InstallTokens, type InstallGrant } from './install-token.ts';
import { RequestBudget } from './request-budget.ts';
import { selfSignedIdentity } from './tls-identity.ts';

/** How long the listener stays open after the last token ended: long enough for someone who
 *  runs a command twice, or a minute late, to read why it no longer works. */
export const LINGER_MS = 10 * 60_000;
/** How often tokens are checked for expiry and the listener for closing. */
const SWEEP_MS = 5000;
/** A TLS handshake and the request headers come at once from curl; a client that takes longer
 *  is holding a socket open for nothing. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
const HEADERS_TIMEOUT_MS = 10_000;
/** A download may be slow, but a connection silent this long is dead. */
const IDLE_TIMEOUT_MS = 60_000;
/** Request headers are a few hundred bytes from curl. */
const MAX_HEADER_BYTES = 8192;
/** Connections at once: a few installs of three requests each, with room. */
const MAX_CONNECTIONS = 64;
/** Addresses in a join token besides the serving peer's: enough that the new peer finds the
 *  mesh while this one restarts (it learns every member once it has joined). */
const MAX_EXTRA_BOOTSTRAP = 7;

/** What the install service needs of the peer (mesh/peer.ts's Peer has all of it). */
export interface InstallPeer {
  readonly config: Pick<PeerConfig, 'dataDir' | 'meshKey' | 'listen' | 'name'>;
  readonly advertise: HostPort;
  readonly metrics: Metrics;
  view(): MeshView;
}

export interface InstallServerOptions {
  /** Where the listener binds; default the mesh's listen address on INSTALL_PORT. */
  listen?: HostPort;
  /** Default LINGER_MS. */
  lingerMs?: number;
}

/** An install made for one node: its token, and what a command or script for it needs. */
export interface MintedInstall {
  token: string;
  id: string;
  expiresAt: number;
  url: string;
  pin: string;
  bundle: Bundle;
}

export interface InstallService {
  /** Makes an install (and opens the listener). `command`: its token is a command token, for
   *  the one-liner (oneLiner()); `user-data`: a session token for a script that embeds the join
   *  token (installScript() with joinToken, as cloud user data is), good for the bundle only. */
  mint(o: { name?: string; tags: readonly string[]; dataplane: boolean; expiresMs: number; form: 'command' | 'user-data' }): Promise<MintedInstall>;
  /** A cloud node's user data: the install script with the join token in it (mint's
   *  `user-data` form), for a node of this name and tags. */
  userData(o: { name?: string; tags: readonly string[]; dataplane: boolean; expiresMs: number }): Promise<string>;
  /** The listener's `https://host:port` while it is open. */
  readonly url: string | undefined;
  stop(): Promise<void>;
}

interface Listening {
  server: Server;
  url: string;
  pin: string;
}

export function startInstallServer(peer: InstallPeer, methods: MethodTable, log: Logger, options: InstallServerOptions = {}): InstallService {
  const tokens = new InstallTokens();
  const budget = new RequestBudget();
  const builder = new BundleBuilder({ dir: `${peer.config.dataDir}/install`, log });
  const bind = options.listen ?? { host: peer.config.listen.host, port: INSTALL_PORT };
  const lingerMs = options.lingerMs ?? LINGER_MS;
  let listening: Listening | undefined;
  let opening: Promise<Listening> | undefined;
  let sweeper: NodeJS.Timeout | undefined;
  let idleSince: number | undefined;
  let lastBundle: string | undefined;
  let stopped = false;
  const origin = `weft peer ${peer.config.name} (${formatHostPort(peer.advertise)})`;

  const newToken = () => randomBytes(INSTALL_TOKEN_BYTES).toString('base64url');
  const script = (session: string, grant: InstallGrant): string => {
    const l = listening as Listening;
    return installScript({
      source: { url: l.url, pin: l.pin, installToken: session }, bundle: grant.bundle,
      ...(grant.name !== undefined ? { name: grant.name } : {}), tags: grant.tags, dataplane: grant.dataplane, origin,
    });
  };
  const joinToken = (): string => {
    const self = formatHostPort(peer.advertise);
    const others = peer.view().members()
      .filter((m) => m.state === 'alive' && m.id !== peer.view().self.id && m.address && m.address !== self)
      .map((m) => m.address).slice(0, MAX_EXTRA_BOOTSTRAP);
    return encodeJoinToken({ key: peer.config.meshKey, peers: [self, ...others] });
  };
  const http = installHandler({ tokens, budget, now: () => Date.now(), newToken, script, joinToken, log });
  registerMetrics(peer.metrics, http.stats);

  const close = async (why: string): Promise<void> => {
    const l = listening;
    listening = undefined;
    if (sweeper) clearInterval(sweeper);
    sweeper = undefined;
    if (!l) return;
    l.server.closeAllConnections();
    await new Promise<void>((resolve) => l.server.close(() => resolve()));
    log.info('install listener closed', { url: l.url, why });
  };

  const sweep = () => {
    const now = Date.now();
    const live = tokens.sweep(now);
    if (live > 0 || http.stats.downloading > 0) {
      idleSince = undefined;
      return;
    }
    idleSince ??= now;
    if (now - idleSince >= lingerMs) {
      idleSince = undefined;
      void close('no install is outstanding').catch((err: unknown) => log.warn('cannot close the install listener', { err: errorText(err) }));
      void builder.prune(new Set(lastBundle ? [lastBundle] : [])).catch(() => undefined);
    }
  };

  const open = async (): Promise<Listening> => {
    if (listening) return listening;
    opening ??= (async () => {
      const identity = selfSignedIdentity(new Date());
      const server = createServer({
        key: identity.key, cert: identity.cert, minVersion: 'TLSv1.2', handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
        maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: HEADERS_TIMEOUT_MS, keepAliveTimeout: 0,
      }, http.handle);
      server.maxConnections = MAX_CONNECTIONS;
      server.setTimeout(IDLE_TIMEOUT_MS, (sock) => sock.destroy());
      server.on('tlsClientError', () => undefined); // a scanner's junk: nothing to say per socket
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) => reject(new UserError(err.code === 'EADDRINUSE'
          ? `cannot serve install commands on ${formatHostPort(bind)}: the port is in use (free it, or start the install service on another port)`
          : `cannot serve install commands on ${formatHostPort(bind)}: ${err.message}`)));
        server.listen(bind.port, bind.host, () => resolve());
      });
      server.on('error', (err) => log.warn('install listener error', { err: errorText(err) }));
      const l: Listening = { server, url: `https://${peer.advertise.host}:${bind.port}`, pin: identity.pin };
      listening = l;
      sweeper = setInterval(sweep, SWEEP_MS);
      sweeper.unref();
      log.info('install listener open', { listen: formatHostPort(bind), url: l.url, pin: l.pin });
      return l;
    })().finally(() => {
      opening = undefined;
    });
    return opening;
  };

  const service: InstallService = {
    get url() {
      return listening?.url;
    },
    async userData(o) {
      const m = await service.mint({ ...o, form: 'user-data' });
      log.warn('install user data made: it holds a join token', { token: m.id, name: o.name });
      return installScript({
        source: { url: m.url, pin: m.pin, installToken: m.token }, bundle: m.bundle,
        ...(o.name !== undefined ? { name: o.name } : {}), tags: o.tags, dataplane: o.dataplane, joinToken: joinToken(), origin,
      });
    },
    async mint(o) {
      if (stopped) throw new UserError('the peer is stopping');
      const host = peer.advertise.host;
      if (host.startsWith('127.') || host === '0.0.0.0') {
        throw new UserError(`this peer advertises ${host}, which no other host can reach: launch it with --advertise IP (or --listen IP) to make install commands`);
      }
      const now = Date.now();
      if (o.name !== undefined) {
        const taken = peer.view().members().find((m) => m.name === o.name && isUp(m.state));
        if (taken) throw new UserError(`a peer named ${o.name} is in the mesh already (${taken.address}): choose another --name`);
        const pending = tokens.list(now).find((t) => t.state === 'live' && t.name === o.name);
        if (pending) throw new UserError(`an install command for ${o.name} is outstanding (token ${pending.id}): run it, or revoke it with weft node install-revoke ${pending.id}`);
      }
      const bundle = await builder.get();
      lastBundle = bundle.path;
      const l = await open();
      const token = newToken();
      const expiresAt = now + o.expiresMs;
      const command = o.form === 'command';
      const grant: InstallGrant = { ...(o.name !== undefined ? { name: o.name } : {}), tags: [...o.tags], dataplane: o.dataplane, join: command, bundle };
      // User data is the script itself: its token is a session's, with no script to fetch first.
      const { id } = command ? tokens.issue(token, grant, expiresAt, now) : tokens.issueSession(token, grant, expiresAt, now);
      idleSince = undefined;
      void builder.prune(new Set([...tokens.bundlesInUse(), bundle.path])).catch(() => undefined);
      log.info('install made', { token: id, form: o.form, name: o.name, tags: o.tags.join(',') || undefined, dataplane: o.dataplane, expires: new Date(expiresAt).toISOString() });
      return { token, id, expiresAt, url: l.url, pin: l.pin, bundle };
    },
    async stop() {
      stopped = true;
      await close('the peer is stopping');
    },
  };

  const user = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      throw err instanceof UserError ? err : new UserError(errorText(err));
    }
  };
  methods.register(api.nodeInstallScript, (p) => user(async () => {
    const tags = p.tags ?? [];
    const dataplane = p.dataplane ?? true;
    const asUserData = p.userData === true;
    const m = await service.mint({
      ...(p.name !== undefined ? { name: p.name } : {}), tags, dataplane, expiresMs: (p.expiresSeconds ?? api.DEFAULT_EXPIRES_S) * 1000,
      form: asUserData ? 'user-data' : 'command',
    });
    const userData = asUserData
      ? installScript({
        source: { url: m.url, pin: m.pin, installToken: m.token }, bundle: m.bundle,
        ...(p.name !== undefined ? { name: p.name } : {}), tags, dataplane, joinToken: joinToken(), origin,
      })
      : null;
    if (userData) log.warn('install user data made: it holds a join token', { token: m.id, name: p.name });
    return {
      command: asUserData ? null : oneLiner({ url: m.url, pin: m.pin, installToken: m.token }), userData, url: m.url, pin: m.pin,
      token: { id: m.id, expiresAt: new Date(m.expiresAt).toISOString() }, bundle: { sha256: m.bundle.sha256, bytes: m.bundle.bytes },
      name: p.name ?? null, tags: [...tags], dataplane,
    };
  }));
  methods.register(api.nodeInstallTokens, () => tokens.list(Date.now()));
  methods.register(api.nodeInstallRevoke, ({ id }) => {
    if (!tokens.revoke(id, Date.now())) throw new UserError(`no live install token ${id} (see weft node install-tokens)`);
    log.info('install token revoked', { token: id });
    return { id, revoked: true as const };
  });
  return service;
}

function registerMetrics(m: Metrics, s: InstallHttpStats): void {
  m.counter('weft_install_requests_total', 'Requests the install listener answered, by what they got.', () => [
    { labels: { outcome: 'script' }, value: s.scripts },
    { labels: { outcome: 'bundle' }, value: s.bundles },
    { labels: { outcome: 'join' }, value: s.joins },
    { labels: { outcome: 'refused' }, value: s.refused },
  ]);
  m.gauge('weft_install_downloads', 'Bundle downloads in progress.', () => s.downloading);
}
