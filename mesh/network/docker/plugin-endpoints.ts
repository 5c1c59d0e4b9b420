// The Docker plugin's endpoints, kept in the peer's store: Docker calls Leave and
// DeleteEndpoint on endpoints it made before the peer restarted, and the plugin must still
// know their veths then, or the host end stays behind with its route. Each endpoint is written
// before the plugin answers CreateEndpoint or Join and removed when DeleteEndpoint is done.
// Which stored endpoints are stale after a restart is decided here too, without I/O.

import { dockerPluginEndpointPrefix } from '../../keyspace.ts';

/** One endpoint of a weft Docker network on this host. */
export interface PluginEndpoint {
  networkId: string;
  /** The container's overlay address (no prefix length). */
  addr: string;
  /** The MAC the container's interface gets: ours, or the user's --mac-address. */
  mac: string;
  hostIf: string;
  containerIf: string;
  /** When CreateEndpoint was answered (ms since the epoch, this host's clock). */
  created: number;
  /** Docker's network namespace path while the endpoint is joined to a container. */
  sandboxKey?: string;
}

/** The part of the peer's Store (mesh/store.ts) the plugin uses. */
export interface PluginStore {
  put(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
  scan<T>(prefix: string): Promise<{ key: string; value: T }[]>;
}

/** Docker's endpoint and network ids are 64 hex digits. The id becomes part of a store key, so
 *  only characters that keep keys in one ordered range (no '\xff', no separators) pass. */
export const ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;

/** An endpoint Docker does not list may be one it is creating right now (CreateEndpoint is
 *  answered, Join not yet called): leave it this long. Docker joins within a second of
 *  creating; if it gives up it deletes the endpoint itself. */
export const STALE_GRACE_MS = 60_000;

/** Stored format; a record of another version is dropped at load with a logged reason. */
const VERSION = 1;

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const ADDR_RE = /^\d{1,3}(\.\d{1,3}){3}$/;

/** A stored record, checked: the store is ours, but a record from an older or damaged run must
 *  not put a wrong interface name into `ip link del`. Returns the reason when it is unusable. */
export function parseEndpoint(v: unknown): PluginEndpoint | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not an object';
  const r = v as Record<string, unknown>;
  if (r.v !== VERSION) return `version ${JSON.stringify(r.v)} is not ${VERSION}`;
  if (typeof r.networkId !== 'string' || !ID_RE.test(r.networkId)) return 'bad networkId';
  if (typeof r.addr !== 'string' || !ADDR_RE.test(r.addr)) return 'bad addr';
  if (typeof r.mac !== 'string' || !MAC_RE.test(r.mac)) return 'bad mac';
  if (typeof r.hostIf !== 'string' || !IFNAME_RE.test(r.hostIf)) return 'bad hostIf';
  if (typeof r.containerIf !== 'string' || !IFNAME_RE.test(r.containerIf)) return 'bad containerIf';
  if (typeof r.created !== 'number' || !Number.isFinite(r.created)) return 'bad created';
  if (r.sandboxKey !== undefined && typeof r.sandboxKey !== 'string') return 'bad sandboxKey';
  const ep: PluginEndpoint = { networkId: r.networkId, addr: r.addr, mac: r.mac, hostIf: r.hostIf, containerIf: r.containerIf, created: r.created };
  if (typeof r.sandboxKey === 'string') ep.sandboxKey = r.sandboxKey;
  return ep;
}

/** The stored endpoints of one plugin (its name scopes the keys: two peers' plugins on one
 *  machine have different names and different stores anyway). With no store, nothing is kept
 *  (the protocol tests, and a plugin whose peer gives it none). */
export class EndpointBook {
  private readonly store: PluginStore | undefined;
  private readonly prefix: string;

  constructor(store: PluginStore | undefined, pluginName: string) {
    this.store = store;
    this.prefix = dockerPluginEndpointPrefix(pluginName);
  }

  get persistent(): boolean {
    return this.store !== undefined;
  }

  /** Every usable stored endpoint; unusable records are deleted and reported. */
  async load(): Promise<{ endpoints: Map<string, PluginEndpoint>; dropped: { id: string; reason: string }[] }> {
    const endpoints = new Map<string, PluginEndpoint>();
    const dropped: { id: string; reason: string }[] = [];
    if (this.store === undefined) return { endpoints, dropped };
    for (const { key, value } of await this.store.scan<unknown>(this.prefix)) {
      const id = key.slice(this.prefix.length);
      const ep = ID_RE.test(id) ? parseEndpoint(value) : 'bad endpoint id';
      if (typeof ep === 'string') {
        dropped.push({ id: id.slice(0, 64), reason: ep });
        await this.store.del(key);
        continue;
      }
      endpoints.set(id, ep);
    }
    return { endpoints, dropped };
  }

  async save(id: string, ep: PluginEndpoint): Promise<void> {
    await this.store?.put(this.prefix + id, { v: VERSION, ...ep });
  }

  async remove(id: string): Promise<void> {
    await this.store?.del(this.prefix + id);
  }
}

/** Of the endpoints loaded at start, those Docker no longer has: it deleted them while the
 *  plugin was down (its calls failed) or before a reboot. Recently created, unjoined ones are
 *  spared (Docker may be between CreateEndpoint and Join). */
export function staleEndpoints(loaded: ReadonlyMap<string, PluginEndpoint>, dockerHas: ReadonlySet<string>, now: number, graceMs = STALE_GRACE_MS): string[] {
  const out: string[] = [];
  for (const [id, ep] of loaded) {
    if (dockerHas.has(id)) continue;
    if (ep.sandboxKey === undefined && now - ep.created < graceMs) continue;
    out.push(id);
  }
  return out.sort();
}
