// The peer's DNS service: the server (server.ts) answering from the registry
// (registry-source.ts), and the writes of `weft dns add` / `weft dns remove`. The peer starts
// it with its MeshView and stops it; the API (api.ts) calls it.

import { compareIPv4 } from '../mesh/ipv4.ts';
import type { HostPort } from '../mesh/address.ts';
import type { MeshView } from '../mesh/mesh-view.ts';
import { logger, type Logger } from '../mesh/log.ts';
import { DEFAULT_DOMAIN, normalizeName } from './names.ts';
import { type DnsName } from './records.ts';
import { DnsInputError, type ExtraVote, extraKey, extraTarget, nextVoteAt } from './extra-votes.ts';
import { RegistryRecordSource } from './registry-source.ts';
import { DNS_EXTRA_PREFIX } from '../mesh/keyspace.ts';
import { DnsServer, type DnsStats, type DnsStatus } from './server.ts';
import type { UpstreamAddress } from './upstream-config.ts';
import { DEFAULT_TTL_S } from './zone.ts';

/** `--dns-listen` default: the host's own resolver address for the mesh's names. Not
 *  127.0.0.53/.54 (systemd-resolved's stub listeners) and not 127.0.0.1 (dnsmasq, libvirt
 *  and other local caches bind it); all of 127/8 is on `lo`, so this needs no setup. Point a
 *  host's resolver (or a systemd-resolved `DNS=127.0.0.153` with `Domains=~weft.local`) at it. */
export const DEFAULT_DNS_LISTEN: HostPort = { host: '127.0.0.153', port: 53 };
/** `--dns-ttl` default (zone.ts has the reason). */
export const DEFAULT_DNS_TTL = DEFAULT_TTL_S;
/** The DNS port on the bridge address, which containers get as their nameserver. */
export const BRIDGE_DNS_PORT = 53;

export interface DnsServiceOptions {
  view: MeshView;
  /** Addresses to answer on, UDP and TCP each (more with addListener()). */
  listen: readonly HostPort[];
  ttl?: number;
  /** Default: the nameservers of /etc/resolv.conf. */
  upstreams?: readonly UpstreamAddress[];
  domain?: string;
  /** UDP worker threads (server.ts); default 0. */
  workers?: number;
  log?: Logger;
  /** Wall clock for extra-record votes (tests). */
  now?: () => number;
  /** Passed to the server (tests). */
  random?: () => number;
  resolvConf?: string;
  /** Reverse ranges answered alone (default the container range). */
  reverse?: readonly string[];
}

export interface DnsServiceStatus extends DnsStatus {
  containers: { records: number; answered: number; invalid: number };
  extras: number;
  /** Names left out because DNS cannot carry them (a label with a dot or a space...). */
  skipped: number;
}

/** One extra record as `weft dns ls` shows it. */
export interface DnsListEntry {
  name: string;
  addrs: string[];
  /** SRV entries as `PORT/PROTO TARGET`. */
  srv: string[];
  /** The addresses that are extras (`weft dns add`), the rest are containers'. */
  extras: string[];
}

export class DnsService {
  readonly server: DnsServer;
  readonly source: RegistryRecordSource;
  readonly domain: string;
  private readonly view: MeshView;
  private readonly now: () => number;

  private constructor(server: DnsServer, source: RegistryRecordSource, view: MeshView, domain: string, now: () => number) {
    this.server = server;
    this.source = source;
    this.view = view;
    this.domain = domain;
    this.now = now;
  }

  /** Starts answering; rejects with one sentence (and nothing left open) if an address
   *  cannot be used. */
  static async start(o: DnsServiceOptions): Promise<DnsService> {
    // A peer serves the mesh's domain (weft launch has no flag for another: containers' search
    // domains are written with it); tests pass others.
    const domain = normalizeName(o.domain ?? DEFAULT_DOMAIN);
    const log = o.log ?? logger('dns');
    const source = new RegistryRecordSource(o.view, { domain, log });
    try {
      const server = await DnsServer.start({
        listen: o.listen,
        source,
        domain,
        ttl: o.ttl ?? DEFAULT_DNS_TTL,
        ...(o.upstreams ? { upstreams: o.upstreams } : {}),
        ...(o.workers !== undefined ? { workers: o.workers } : {}),
        ...(o.random ? { random: o.random } : {}),
        ...(o.resolvConf ? { resolvConf: o.resolvConf } : {}),
        ...(o.reverse ? { reverse: o.reverse } : {}),
      });
      return new DnsService(server, source, o.view, domain, o.now ?? Date.now);
    } catch (err) {
      source.close();
      throw err;
    }
  }

  /** Answers on one more address (the bridge address once the data plane is up). */
  addListener(l: HostPort): Promise<HostPort> {
    return this.server.addListener(l);
  }

  async stop(): Promise<void> {
    this.source.close();
    await this.server.stop();
  }

  status(): DnsServiceStatus {
    const c = this.source.index.counts();
    return {
      ...this.server.status(),
      containers: { records: c.containers, answered: c.answered, invalid: c.invalid },
      extras: c.extras,
      skipped: c.skipped,
    };
  }

  stats(): DnsStats {
    return this.server.stats();
  }

  /** Every name answered from the registry, sorted. */
  list(): DnsListEntry[] {
    const extras = new Map<string, string[]>();
    for (const e of this.source.index.extras()) extras.set(e.name, [...(extras.get(e.name) ?? []), e.addr]);
    const out: DnsListEntry[] = [];
    for (const [name, data] of this.source.current().names) out.push(entryOf(name, data, extras.get(name) ?? []));
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * `weft dns add NAME IP`: one more address at a name, on every peer. Resolves once the vote
   * is written here (and answered here); gossip carries it to the others. Throws a sentence
   * for a bad name or address.
   */
  async add(name: string, ip: string): Promise<{ name: string; ip: string; existed: boolean }> {
    const { fqdn, key } = extraTarget(name, ip, this.domain);
    const existed = this.source.index.extras().some((e) => e.name === fqdn && e.addr === ip);
    if (!existed) await this.vote(key, true);
    return { name: fqdn, ip, existed };
  }

  /**
   * `weft dns remove NAME [IP]`: removes one extra address, or all of a name's. Works for
   * extras added through any peer (see extra-votes.ts: a newer vote of ours). Throws a
   * sentence if there is nothing to remove.
   */
  async remove(name: string, ip?: string): Promise<{ name: string; removed: string[] }> {
    const { fqdn } = extraTarget(name, ip ?? '0.0.0.0', this.domain);
    const present = this.source.index.extras().filter((e) => e.name === fqdn && (ip === undefined || e.addr === ip)).map((e) => e.addr);
    if (present.length === 0) {
      const containerName = this.source.current().names.has(fqdn);
      if (ip !== undefined) throw new DnsInputError(`${fqdn} has no extra record for ${ip}${containerName ? ' (container names go away with their containers)' : ''}`);
      throw new DnsInputError(containerName ? `${fqdn} is a container's name, not an extra record (container names go away with their containers)` : `no extra record named ${fqdn}`);
    }
    for (const addr of present) await this.vote(extraKey(fqdn, addr), false);
    return { name: fqdn, removed: present.sort() };
  }

  private async vote(key: string, present: boolean): Promise<void> {
    const vote: ExtraVote = { v: 1, at: nextVoteAt(this.source.index.votesFor(key), this.now()), present };
    const text = JSON.stringify(vote);
    await this.view.put(key, text);
    // Our own write also comes back through onEntries (a repeat is ignored): answer it here
    // at once, so that a `weft dns lookup` right after `weft dns add` sees it.
    this.source.index.setExtra(this.view.self.id, key, text);
    this.source.flushNow();
  }
}

function entryOf(name: string, data: DnsName, extras: string[]): DnsListEntry {
  return {
    name,
    addrs: [...data.addrs].sort(compareIPv4),
    srv: (data.srv ?? []).map((s) => `${s.port}/${s.proto} ${s.target}`).sort(),
    extras: extras.sort(compareIPv4),
  };
}

