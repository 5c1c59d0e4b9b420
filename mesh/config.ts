import type { HostPort } from './address.ts';
import type { Role } from './membership/membership.ts';

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
  /** `encrypted` (WireGuard, the default) or `fast` (VXLAN, for trusted underlays). */
  dataplaneMode?: 'encrypted' | 'fast';
  /** The container address space (`--ipalloc-range`), the same on every peer. */
  ipallocRange?: string;
  /** Peers whose majority decides the first IPAM ring (`--ipalloc-init consensus=N`); default
   *  1 + the number of --peers. */
  ipallocInit?: number;
  /** The dockerd to watch (`--docker-host`); default DOCKER_HOST, else the standard socket. */
  dockerHost?: string;
  /** Name of the Docker network/IPAM plugin (`--plugin-name`); null turns the plugin off. */
  pluginName?: string | null;
  /** The mesh DNS on a host address (`--dns-listen`, UDP and TCP); null: none. It also answers
   *  on the bridge's gateway address once the data plane is up. */
  dnsListen?: HostPort | null;
  dnsTtl?: number;
  /** `--dns-upstream`; default the nameservers of /etc/resolv.conf. */
  dnsUpstreams?: HostPort[];
  /** Prometheus endpoint; null turns it off. */
  metricsListen: HostPort | null;
}
