import type { HostPort } from './address.ts';
import type { Role } from './membership.ts';

/** Everything a peer is started with; `weft launch` builds it from flags and environment. */
export interface PeerConfig {
  dataDir: string;
  listen: HostPort;
  /** The address other peers dial; defaults to the listen address, or the host's first
   *  non-loopback IPv4 address when listening on 0.0.0.0. */
  advertise?: HostPort;
  /** Bootstrap peers, `ip:port`. */
  peers: string[];
  name: string;
  tags: string[];
  role: Role;
  /** The 32-byte key derived from the mesh password (or carried by a join token). */
  meshKey: Uint8Array;
  dataplane: boolean;
  /** Prometheus endpoint; null turns it off. */
  metricsListen: HostPort | null;
}
