// The registry's records of observed state that the data plane, DNS and `weft ps` share: one
// record per attached container, written by the peer of the host it runs on, and one record
// per peer's data plane (its WireGuard key and underlay endpoint, its VXLAN MAC). They live in
// the replicated space (mesh/replication/replica.ts) as owner-signed entries under
// CONTAINER_PREFIX and DATAPLANE_PREFIX (keyspace.ts), so only a host's own peer can say what
// runs on it, and a dead peer's records are recognisable by their owner.

/** Bounds for decoding records that came over gossip (signed by a member, but still bounded:
 *  a buggy or hostile member must not make the others allocate without limit). */
const MAX_NAME = 253;
const MAX_LABELS = 128;
const MAX_LABEL_TEXT = 4096;
const MAX_ALIASES = 32;
const MAX_PORTS = 64;

export type ContainerState = 'running' | 'stopped';
export type ContainerHealth = 'healthy' | 'unhealthy' | 'starting' | 'none';

export interface ContainerPort {
  port: number;
  proto: 'tcp' | 'udp';
  name?: string;
}

/** A container attached to the overlay, as its host's peer publishes it. */
export interface ContainerEndpoint {
  v: 1;
  /** Docker's full container id (or the plugin's endpoint id for a plugin-attached container
   *  whose container id is not known yet). */
  id: string;
  /** Docker name without the leading slash. */
  name: string;
  hostname?: string;
  aliases?: string[];
  /** Overlay IPv4 address and the MAC of the container's interface. */
  addr: string;
  mac: string;
  /** The peer that hosts it: its id (also the entry's owner) and name. */
  peer: string;
  host: string;
  state: ContainerState;
  health: ContainerHealth;
  labels: Record<string, string>;
  ports?: ContainerPort[];
  /** When this record's container was (re)attached, ms since the epoch. When a moved container's
   *  old record is still around (held after `die`), the newest `since` wins. */
  since: number;
}

/** A peer's data plane, as it publishes it. */
export interface DataplaneRecord {
  v: 1;
  mode: 'encrypted' | 'fast';
  /** The underlay address other hosts send overlay packets to. */
  endpoint: string;
  /** WireGuard public key (base64), when mode is 'encrypted'. */
  wgPublicKey?: string;
  wgPort?: number;
  /** MAC of the host's VXLAN device, when mode is 'fast'. */
  vxlanMac?: string;
  vxlanPort?: number;
  /** The host's own overlay address while exposed (`weft expose`). */
  exposed?: string;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const WG_KEY = /^[A-Za-z0-9+/]{43}=$/;

/** What `wg` itself accepts: 32 bytes in canonical base64 (the last character's low bits
 *  zero). A key that only looks right would make every host's `wg set` fail. */
function isWgKey(k: string): boolean {
  if (!WG_KEY.test(k)) return false;
  const bytes = Buffer.from(k, 'base64');
  return bytes.length === 32 && bytes.toString('base64') === k;
}

/** A MAC the kernel takes for an fdb entry: unicast (low bit of the first octet clear), not zero. */
function isUnicastMac(mac: string): boolean {
  return MAC.test(mac) && (Number.parseInt(mac.slice(0, 2), 16) & 1) === 0 && mac !== '00:00:00:00:00:00';
}

function isStr(v: unknown, max = MAX_NAME): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= max;
}

function isPort(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) > 0 && (v as number) < 65536;
}

/** Decodes a container record from its replicated value; a string says why it is not one. */
/** The JSON object of a version-1 record, or why the text is not one. */
function versioned(text: string): Record<string, unknown> | string {
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof r !== 'object' || r === null || (r as Record<string, unknown>).v !== 1) return 'unknown version';
  return r as Record<string, unknown>;
}

export function parseContainerEndpoint(text: string): ContainerEndpoint | string {
  const r = versioned(text);
  if (typeof r === 'string') return r;
  if (!isStr(r.id) || !isStr(r.name) || !isStr(r.peer) || !isStr(r.host)) return 'missing id, name, peer or host';
  if (typeof r.addr !== 'string' || !IPV4.test(r.addr)) return 'bad address';
  if (typeof r.mac !== 'string' || !MAC.test(r.mac)) return 'bad MAC';
  if (r.state !== 'running' && r.state !== 'stopped') return 'bad state';
  if (!['healthy', 'unhealthy', 'starting', 'none'].includes(r.health as string)) return 'bad health';
  if (r.hostname !== undefined && !isStr(r.hostname)) return 'bad hostname';
  if (r.aliases !== undefined && !(Array.isArray(r.aliases) && r.aliases.length <= MAX_ALIASES && r.aliases.every((a) => isStr(a)))) return 'bad aliases';
  if (typeof r.labels !== 'object' || r.labels === null || Array.isArray(r.labels)) return 'bad labels';
  const labels = Object.entries(r.labels as Record<string, unknown>);
  if (labels.length > MAX_LABELS || !labels.every(([k, v]) => k.length <= MAX_NAME && typeof v === 'string' && v.length <= MAX_LABEL_TEXT)) return 'bad labels';
  if (r.ports !== undefined) {
    if (!Array.isArray(r.ports) || r.ports.length > MAX_PORTS) return 'bad ports';
    for (const p of r.ports as Record<string, unknown>[]) {
      if (typeof p !== 'object' || p === null || !isPort(p.port) || (p.proto !== 'tcp' && p.proto !== 'udp') || (p.name !== undefined && !isStr(p.name, 63))) return 'bad ports';
    }
  }
  if (typeof r.since !== 'number' || !Number.isFinite(r.since)) return 'bad since';
  return r as unknown as ContainerEndpoint;
}

/** Decodes a data plane record; a string says why it is not one. */
export function parseDataplaneRecord(text: string): DataplaneRecord | string {
  const r = versioned(text);
  if (typeof r === 'string') return r;
  if (r.mode !== 'encrypted' && r.mode !== 'fast') return 'bad mode';
  if (typeof r.endpoint !== 'string' || !IPV4.test(r.endpoint)) return 'bad endpoint';
  if (r.wgPublicKey !== undefined && !(typeof r.wgPublicKey === 'string' && isWgKey(r.wgPublicKey))) return 'bad WireGuard key';
  if (r.vxlanMac !== undefined && !(typeof r.vxlanMac === 'string' && isUnicastMac(r.vxlanMac))) return 'bad VXLAN MAC';
  if (r.wgPort !== undefined && !isPort(r.wgPort)) return 'bad WireGuard port';
  if (r.vxlanPort !== undefined && !isPort(r.vxlanPort)) return 'bad VXLAN port';
  if (r.exposed !== undefined && !(typeof r.exposed === 'string' && IPV4.test(r.exposed))) return 'bad exposed address';
  if (r.mode === 'encrypted' && r.wgPublicKey === undefined) return 'encrypted mode without a WireGuard key';
  if (r.mode === 'fast' && r.vxlanMac === undefined) return 'fast mode without a VXLAN MAC';
  return r as unknown as DataplaneRecord;
}

/** Of several records claiming one address (a moved container whose old record is held after
 *  `die`), the one to route and answer: running before stopped, then the newest. */
export function preferEndpoint(a: ContainerEndpoint, b: ContainerEndpoint): ContainerEndpoint {
  if (a.state !== b.state) return a.state === 'running' ? a : b;
  return b.since > a.since ? b : a;
}
