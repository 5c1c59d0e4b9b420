// What a peer is started with, fully resolved, and every default with its reason: the one place
// defaults are filled in. `weft launch` (cli/launch-options.ts, one table of its flags) builds
// a PeerConfig with peerConfig() from flags, environment and files; tests build theirs the
// same way. Nothing downstream fills in a default of its own.

import { MESH_PORT, type HostPort } from './address.ts';
import type { Role } from './membership/wire.ts';
import { DEFAULT_IPAM_RANGE } from './ipam/cidr.ts';

export type DataplaneMode = 'encrypted' | 'fast';

/** Where a host's peer keeps its identity, replica and API socket: FHS's place for state. */
export const DEFAULT_DATA_DIR = '/var/lib/weft';
/** Every interface, on Weave Net's port: a host is reached on whichever address routes. */
export const DEFAULT_LISTEN: HostPort = { host: '0.0.0.0', port: MESH_PORT };
/** Any peer may be made a manager when the mesh needs one (swarm and Consul ask the operator
 *  to choose; a mesh of identical hosts should not have to). */
export const DEFAULT_ROLE: Role = 'auto';
/** Encrypted between hosts unless the operator says the underlay is trusted: an overlay that
 *  leaks container traffic by default is the worse mistake. */
export const DEFAULT_DATAPLANE_MODE: DataplaneMode = 'encrypted';
/** The Docker plugin's name: what users type in `docker network create -d weft`. */
export const DEFAULT_PLUGIN_NAME = 'weft';
/** Weave Net's metrics port, on loopback: metrics are for the host's own scraper. */
export const DEFAULT_METRICS_LISTEN: HostPort = { host: '127.0.0.1', port: 6782 };

export interface PeerConfig {
  dataDir: string;
  listen: HostPort;
  /** The address other peers dial; undefined: the listen address, or the host's first
   *  non-loopback IPv4 address when listening on 0.0.0.0 (decided at start). */
  advertise?: HostPort;
  /** Bootstrap peers, `ip:port`. */
  peers: string[];
  name: string;
  tags: string[];
  role: Role;
  /** The 32-byte key derived from the mesh password (or carried by a join token). */
  meshKey: Uint8Array;
  dataplane: boolean;
  dataplaneMode: DataplaneMode;
  /** The container address space (`--ipalloc-range`), canonical CIDR, the same on every peer. */
  ipallocRange: string;
  /** Peers whose majority decides the first IPAM ring (`--ipalloc-init consensus=N`). */
  ipallocInit: number;
  /** The dockerd to watch; undefined: dockerode's own default (DOCKER_HOST, else the
   *  standard socket), decided where the client is made. */
  dockerHost?: string;
  /** Name of the Docker network/IPAM plugin; null turns the plugin off. */
  pluginName: string | null;
  /** Prometheus endpoint; null turns it off. */
  metricsListen: HostPort | null;
}

/** What has no default. */
export type PeerConfigRequired = Pick<PeerConfig, 'dataDir' | 'listen' | 'name' | 'meshKey'>;

/** A complete config from what has no default and whatever else is given. */
export function peerConfig(given: PeerConfigRequired & Partial<PeerConfig>): PeerConfig {
  const peers = given.peers ?? [];
  return {
    peers,
    tags: [],
    role: DEFAULT_ROLE,
    dataplane: true,
    dataplaneMode: DEFAULT_DATAPLANE_MODE,
    ipallocRange: DEFAULT_IPAM_RANGE,
    // A lone peer bootstraps at once; peers started together, each naming the others, need
    // a majority of all of them (the README's design notes on IPAM).
    ipallocInit: 1 + peers.length,
    pluginName: DEFAULT_PLUGIN_NAME,
    metricsListen: DEFAULT_METRICS_LISTEN,
    ...given,
  };
}
