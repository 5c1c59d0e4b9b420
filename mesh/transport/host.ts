// The peer's libp2p host: TCP on the listen address, Noise and yamux, and admission in front
// of both (only holders of the mesh secret, or of a valid API token for the API, get in). The
// choices that differ from libp2p's defaults are here with their reasons; peer.ts only asks
// for a host.

import { createLibp2p } from 'libp2p';
import { tcp, type TCPSocketOptions } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Libp2p, PrivateKey } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { hostPortOf, type HostPort } from '../address.ts';
import { INBOUND_CONNECTIONS_PER_SECOND, MAX_PENDING_INBOUND, meshAdmission } from '../admission/admission.ts';
import type { validTokenKey } from '../admission/api-token.ts';
import { LogOnce } from '../log-once.ts';
import { logger } from '../log.ts';

/** A mesh connection with no traffic for this long is closed. Membership's pings are what
 *  keeps a pair's connection busy (at N = 100 a pair exchanges one every ~25 s on average,
 *  with the replica's anti-entropy besides), so libp2p's 2 minutes would close a few quiet
 *  pairs of a large mesh every minute, each then re-admitted with a handshake; 10 minutes
 *  closes none at the sizes a full mesh is meant for, and still reclaims a connection to a
 *  host that vanished without a reset. */
const SOCKET_INACTIVITY_TIMEOUT_MS = 10 * 60_000;
/** A full mesh of 1,000 peers (999 connections, ~100 kB and one fd each, measured by
 *  bench/connections.ts) with room for API clients and crossed dials; past this the bound
 *  guards memory (~200 MB of connections). */
const MAX_CONNECTIONS = 2048;

export interface MeshHostOptions {
  privateKey: PrivateKey;
  listen: HostPort;
  meshKey: Uint8Array;
  /** The public key of a valid API token by id (read when a token connects; the replica that
   *  holds them opens after the host exists). */
  apiTokenKey: (id: string) => ReturnType<typeof validTokenKey>;
  /** Called with each admitted connection and the credential it proved. */
  onAdmitted: (connection: object, credential: string) => void;
  /** Counts refused connections (for the metrics). */
  onRejected: () => void;
}

/** A host that is not started yet (the peer starts it once every protocol is registered). */
export async function createMeshHost(o: MeshHostOptions): Promise<Libp2p> {
  const log = logger('admission');
  const once = new LogOnce();
  return createLibp2p({
    privateKey: o.privateKey,
    addresses: { listen: [`/ip4/${o.listen.host}/tcp/${o.listen.port}`] },
    // Outgoing connections leave from the address we listen on, when that is one address:
    // admission bounds handshakes per remote address (admission.ts), and peers sharing a
    // host's default source address (several peers on 127.0.1.x, all dialing from
    // 127.0.0.1) would otherwise share one bound. Node passes localAddress to connect().
    transports: [tcp({
      inboundSocketInactivityTimeout: SOCKET_INACTIVITY_TIMEOUT_MS,
      outboundSocketInactivityTimeout: SOCKET_INACTIVITY_TIMEOUT_MS,
      ...(o.listen.host === '0.0.0.0' ? {} : { dialOpts: { localAddress: o.listen.host } as TCPSocketOptions }),
    })],
    connectionEncrypters: [noise()],
    // No yamux keep-alive: a ping on every connection every 30 s from each side is, at
    // N = 50, ~13 frames a second through Noise and admission's cipher per peer (about a
    // tenth of an idle peer's CPU at N = 30, measured), to learn what membership's probes
    // already tell.
    streamMuxers: [yamux({ enableKeepAlive: false })],
    connectionProtector: meshAdmission({
      key: o.meshKey,
      apiTokenKey: (id) => o.apiTokenKey(id),
      onAdmitted: ({ connection, credential }) => o.onAdmitted(connection, credential),
      onRejected: ({ remoteAddr, direction, reason }) => {
        o.onRejected();
        const host = hostPortOf(multiaddr(remoteAddr))?.split(':')[0] ?? remoteAddr;
        const repeats = once.shouldLog(`${direction}/${host}/${reason}`, Date.now());
        if (repeats === undefined) return;
        const what = direction === 'inbound' ? `refused a connection from ${host}` : `cannot join ${hostPortOf(multiaddr(remoteAddr)) ?? remoteAddr}`;
        const hint = reason === 'wrong mesh password' ? (direction === 'inbound' ? ' (that host has another mesh password)' : ' (check --password-file)') : '';
        log.warn(`${what}: ${reason}${hint}`, { addr: remoteAddr, reason, repeats: repeats || undefined });
      },
    }),
    connectionManager: {
      maxConnections: MAX_CONNECTIONS,
      // libp2p's default of 10 pending inbound connections lets ten silent sockets lock
      // every member out; admission bounds what one address may hold (MAX_PENDING_PER_HOST),
      // so the mesh-wide bound only guards memory.
      maxIncomingPendingConnections: MAX_PENDING_INBOUND,
      // Per address per second; a member reconnects a few times at most, a scan of many
      // ports from one address is what this is for.
      inboundConnectionThreshold: INBOUND_CONNECTIONS_PER_SECOND,
    },
    // Failure detection is membership's job, with refutation; libp2p's own monitor aborts
    // a connection whose ping takes 5 s, which a saturated link on loaded cores can do.
    connectionMonitor: { enabled: false },
    start: false,
  });
}
