// The DNS records of the mesh, from the replicated registry: the container records every peer
// publishes for its own containers (mesh/endpoint.ts), filtered by state, health and the
// liveness of the peer that owns them, plus the extra records of `weft dns add`. The pure
// part decides what is answered (`registryInputs`, and `RegistryIndex`, which keeps the same
// answer incrementally); `RegistryRecordSource` is the thin shell that feeds it a MeshView's
// events and tells the DNS server which names changed.
//
// Extras and removal. An extra is one address at one name, at key `dns/extra/<fqdn>/<ip>`.
// Entries are owner-signed, so a peer cannot delete another's entry: instead every peer that
// adds or removes an extra writes its own entry at that key, a vote `{at, present}`, and the
// vote with the highest `at` (then the highest owner id) across owners decides. `at` is the
// writer's clock, but never less than one more than the newest vote it has seen for that key,
// so a removal issued after seeing an add wins whatever the clocks say (a Lamport-style
// register); only two writes made without seeing each other are ordered by wall clock.
// Extras do not depend on the liveness of the peer that wrote them: they are mesh-wide
// configuration, and stay while that peer's entries stay (until it is removed from the mesh).

import type { Entry } from '../mesh/replication/wire.ts';
import type { MeshView, PeerLiveness } from '../mesh/mesh-view.ts';
import { CONTAINER_PREFIX, type ContainerEndpoint, parseContainerEndpoint, preferEndpoint } from '../mesh/endpoint.ts';
import { errorText, logger, type Logger } from '../mesh/log.ts';
import { LogOnce } from '../mesh/log-once.ts';
import { isIPv4 } from 'node:net';
import { DEFAULT_DOMAIN, normalizeName, qualify } from './names.ts';
import {
  type BuiltRecords,
  type ContainerRecord,
  type DnsName,
  type DnsRecordSet,
  type DnsRecordSource,
  type DnsSrv,
  type ExtraRecord,
  type NameContribution,
  type RecordInputs,
  containerNames,
  extraNames,
  identityFromLabels,
  sameDnsName,
} from './records.ts';

/** Replicated keys of `weft dns add` votes: `dns/extra/<fqdn>/<ipv4>`. */
export const EXTRA_PREFIX = 'dns/extra/';
/** Changes arriving within this time are applied as one update. Gossip delivers a burst
 *  (a redeployed service, a dead peer's containers) over a few messages a few ms apart; 5 ms
 *  merges them into one zone update at no visible cost to propagation (gossip takes tens). */
export const REBUILD_DEBOUNCE_MS = 5;
/** Under sustained churn, updates are applied at most this often. Each one costs the answering
 *  thread about 0.5 ms on cold caches (bench/dns.ts with WEFT_BENCH_TRACE=1: change, flush and
 *  zone update, plus the garbage it leaves); ten a second applied one by one delay enough
 *  answers to move p99 at 5,000 qps 3x, four batches a second do not (measured: p99 with churn
 *  0.66 ms against 0.22 ms without; batched, 0.24 against 0.22). An isolated change, after a
 *  quiet spell, still goes out after REBUILD_DEBOUNCE_MS. */
export const MIN_UPDATE_INTERVAL_MS = 250;

// ---- Pure: what is answered --------------------------------------------------------------

export type Liveness = (peerId: string) => PeerLiveness | undefined;

/**
 * Whether a container record is answered. Running, on a peer not proven dead or gone
 * ('suspect' and unknown still answer: not proven dead), and healthy or without a health
 * check. 'starting' is not answered: like Docker swarm's routing mesh, a container whose
 * health check has not passed yet gets no traffic (its names give NXDOMAIN, cached 1 TTL).
 */
export function isAnswered(ep: ContainerEndpoint, owner: string, liveness: Liveness): boolean {
  if (ep.state !== 'running') return false;
  if (ep.health !== 'healthy' && ep.health !== 'none') return false;
  const l = liveness(owner);
  return l !== 'dead' && l !== 'left';
}

/** A registry record as the names it answers: weft or Compose labels give stack, service and
 *  name (identityFromLabels), plus hostname, aliases and exposed ports. */
export function containerRecordOf(ep: ContainerEndpoint): ContainerRecord {
  const id = identityFromLabels(ep.name, ep.labels);
  return {
    ...id,
    addrs: [ep.addr],
    ...(ep.hostname ? { hostname: ep.hostname } : {}),
    ...(ep.aliases?.length ? { aliases: ep.aliases } : {}),
    ...(ep.ports?.length ? { ports: ep.ports } : {}),
  };
}

/** A container record decoded from an entry, or why it is not one. The owner must be the
 *  peer the record names: only a host's own peer may say what runs on it. */
export function endpointOf(owner: string, value: string): ContainerEndpoint | string {
  const ep = parseContainerEndpoint(value);
  if (typeof ep === 'string') return ep;
  if (ep.peer !== owner) return `names peer ${ep.peer} but is signed by ${owner}`;
  return ep;
}

/** Of the answered records claiming one address, the one answered (endpoint.ts's rule:
 *  running first, then the newest; equal ones by owner, so every peer chooses alike). */
export function winnerOf<T extends { owner: string; ep: ContainerEndpoint }>(claims: Iterable<T>): T | undefined {
  let best: T | undefined;
  for (const c of claims) {
    if (!best) best = c;
    else if (c.ep.since === best.ep.since && c.ep.state === best.ep.state) best = c.owner > best.owner || (c.owner === best.owner && c.ep.id > best.ep.id) ? c : best;
    else best = preferEndpoint(best.ep, c.ep) === c.ep ? c : best;
  }
  return best;
}

/** One peer's say on one extra record. */
export interface ExtraVote {
  v: 1;
  /** Milliseconds since the epoch, raised past every vote seen for the key (see the top). */
  at: number;
  present: boolean;
}

export function extraKey(fqdn: string, ip: string): string {
  return `${EXTRA_PREFIX}${fqdn}/${ip}`;
}

/** `dns/extra/db.weft.local/10.0.0.5` → name and address, or undefined if malformed. */
export function parseExtraKey(key: string): ExtraRecord | undefined {
  if (!key.startsWith(EXTRA_PREFIX)) return undefined;
  const rest = key.slice(EXTRA_PREFIX.length);
  const slash = rest.lastIndexOf('/');
  if (slash <= 0) return undefined;
  const name = rest.slice(0, slash);
  const addr = rest.slice(slash + 1);
  if (!isIPv4(addr)) return undefined;
  try {
    if (normalizeName(name) !== name || name === '') return undefined;
  } catch {
    return undefined;
  }
  return { name, addr };
}

export function parseExtraVote(text: string): ExtraVote | undefined {
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    if (typeof v !== 'object' || v === null || v.v !== 1) return undefined;
    if (typeof v.at !== 'number' || !Number.isSafeInteger(v.at) || v.at < 0 || typeof v.present !== 'boolean') return undefined;
    return { v: 1, at: v.at, present: v.present };
  } catch {
    return undefined;
  }
}

/** The deciding vote: the highest `at`, then the highest owner id. */
export function decidingVote(votes: Iterable<readonly [owner: string, vote: ExtraVote]>): readonly [string, ExtraVote] | undefined {
  let best: readonly [string, ExtraVote] | undefined;
  for (const v of votes) if (!best || v[1].at > best[1].at || (v[1].at === best[1].at && v[0] > best[0])) best = v;
  return best;
}

/** The `at` of a new vote: the clock, but after every vote already seen for the key. */
export function nextVoteAt(votes: Iterable<ExtraVote>, now: number): number {
  let at = Math.floor(now);
  for (const v of votes) if (v.at >= at) at = v.at + 1;
  return at;
}

export interface RegistryInputs {
  inputs: RecordInputs;
  /** Entries that are not valid records, with the reason. */
  invalid: { owner: string; key: string; reason: string }[];
}

/**
 * The record inputs for the registry's entries as they are now: container records under
 * `container/`, extra votes under `dns/extra/`, and what membership believes of each owner.
 * Pure; `RegistryIndex` keeps the same result up to date change by change.
 */
export function registryInputs(containers: readonly Entry[], extras: readonly Entry[], liveness: Liveness): RegistryInputs {
  const invalid: RegistryInputs['invalid'] = [];
  const claims = new Map<string, { owner: string; ep: ContainerEndpoint }[]>();
  for (const e of containers) {
    if (e.value === null || !e.key.startsWith(CONTAINER_PREFIX)) continue;
    const ep = endpointOf(e.owner, e.value);
    if (typeof ep === 'string') {
      invalid.push({ owner: e.owner, key: e.key, reason: ep });
      continue;
    }
    if (!isAnswered(ep, e.owner, liveness)) continue;
    let list = claims.get(ep.addr);
    if (!list) claims.set(ep.addr, (list = []));
    list.push({ owner: e.owner, ep });
  }
  const records: ContainerRecord[] = [];
  for (const list of claims.values()) records.push(containerRecordOf(winnerOf(list)!.ep));

  const votes = new Map<string, [string, ExtraVote][]>();
  for (const e of extras) {
    if (e.value === null) continue;
    const vote = parseExtraVote(e.value);
    if (!parseExtraKey(e.key) || !vote) {
      invalid.push({ owner: e.owner, key: e.key, reason: 'not an extra record' });
      continue;
    }
    let list = votes.get(e.key);
    if (!list) votes.set(e.key, (list = []));
    list.push([e.owner, vote]);
  }
  const extraRecords: ExtraRecord[] = [];
  for (const [key, list] of votes) if (decidingVote(list)![1].present) extraRecords.push(parseExtraKey(key)!);
  return { inputs: { containers: records, extras: extraRecords }, invalid };
}

// ---- Pure: the same, incrementally ---------------------------------------------------------

interface Unit {
  owner: string;
  key: string;
  text: string;
  ep: ContainerEndpoint | undefined;
}

/**
 * The record set of the registry, kept up to date one change at a time: a change costs the
 * names of the records it touches (and at a service name, one pass over its containers),
 * whatever the size of the registry. Feed it entries and liveness changes, then `flush()`
 * to apply them: it returns the names whose data changed. Pure: no I/O, no clock.
 */
export class RegistryIndex {
  /** The live record set: updated in place by flush(), unchanged names keep their objects. */
  readonly names = new Map<string, DnsName>();
  private readonly domain: string;
  private readonly liveness: Liveness;
  private readonly units = new Map<string, Unit>();
  private readonly byOwner = new Map<string, Set<string>>();
  /** Answered units claiming each address, and the one answered. */
  private readonly claims = new Map<string, Set<string>>();
  private readonly winners = new Map<string, string>();
  private readonly votes = new Map<string, Map<string, ExtraVote>>();
  private readonly presentExtras = new Set<string>();
  private readonly contributions = new Map<string, NameContribution[]>();
  private readonly atName = new Map<string, Map<string, NameContribution>>();
  private readonly skippedBy = new Map<string, BuiltRecords['skipped']>();
  private readonly invalidBy = new Map<string, string>();
  private readonly dirtyAddrs = new Set<string>();
  private readonly dirtyNames = new Set<string>();

  constructor(domain: string = DEFAULT_DOMAIN, liveness: Liveness = () => 'alive') {
    this.domain = normalizeName(domain);
    this.liveness = liveness;
  }

  /** A container entry (value null: deleted). */
  setContainer(owner: string, key: string, value: string | null): void {
    const id = `${owner}\n${key}`;
    const old = this.units.get(id);
    if (old?.text === value) return;
    if (old) {
      if (old.ep) this.unclaim(id, old.ep.addr);
      this.units.delete(id);
      this.invalidBy.delete(id);
    }
    if (value === null) {
      const set = this.byOwner.get(owner);
      set?.delete(id);
      if (set?.size === 0) this.byOwner.delete(owner);
      return;
    }
    const ep = endpointOf(owner, value);
    const unit: Unit = { owner, key, text: value, ep: typeof ep === 'string' ? undefined : ep };
    if (typeof ep === 'string') this.invalidBy.set(id, ep);
    this.units.set(id, unit);
    let set = this.byOwner.get(owner);
    if (!set) this.byOwner.set(owner, (set = new Set()));
    set.add(id);
    if (unit.ep) this.claimIfAnswered(id, unit);
  }

  /** An extra vote entry (value null: deleted). */
  setExtra(owner: string, key: string, value: string | null): void {
    const rec = parseExtraKey(key);
    if (!rec) return;
    const vote = value === null ? undefined : parseExtraVote(value);
    let votes = this.votes.get(key);
    if (vote) {
      if (!votes) this.votes.set(key, (votes = new Map()));
      votes.set(owner, vote);
    } else if (votes) {
      votes.delete(owner);
      if (votes.size === 0) this.votes.delete(key);
    }
    const present = votes?.size ? decidingVote(votes)![1].present : false;
    if (present === this.presentExtras.has(key)) return;
    if (present) this.presentExtras.add(key);
    else this.presentExtras.delete(key);
    this.contribute(`x\n${key}`, present ? extraNames(rec, this.domain) : undefined);
  }

  /** Membership changed its mind about a peer: its records are answered again, or not. */
  ownerChanged(owner: string): void {
    for (const id of this.byOwner.get(owner) ?? []) {
      const unit = this.units.get(id)!;
      if (!unit.ep) continue;
      this.unclaim(id, unit.ep.addr);
      this.claimIfAnswered(id, unit);
    }
  }

  /** Applies what was fed since the last flush; returns the names whose data changed. */
  flush(): string[] {
    for (const addr of this.dirtyAddrs) {
      const ids = this.claims.get(addr);
      const winnerId = ids ? winnerOf([...ids].map((id) => ({ id, owner: this.units.get(id)!.owner, ep: this.units.get(id)!.ep! })))!.id : undefined;
      // Contributions are per address (a unit that moved is the winner of its new address
      // and no longer of its old one, in whichever order the two are visited).
      if (winnerId === undefined) {
        this.winners.delete(addr);
        this.skippedBy.delete(addr);
        this.contribute(`c\n${addr}`, undefined);
        continue;
      }
      this.winners.set(addr, winnerId);
      const skipped: BuiltRecords['skipped'] = [];
      this.contribute(`c\n${addr}`, containerNames(containerRecordOf(this.units.get(winnerId)!.ep!), this.domain, skipped));
      if (skipped.length) this.skippedBy.set(addr, skipped);
      else this.skippedBy.delete(addr);
    }
    this.dirtyAddrs.clear();

    const changed: string[] = [];
    for (const name of this.dirtyNames) {
      const at = this.atName.get(name);
      const old = this.names.get(name);
      if (!at) {
        if (old) {
          this.names.delete(name);
          changed.push(name);
        }
        continue;
      }
      const addrs = new Set<string>();
      const srv: DnsSrv[] = [];
      for (const c of at.values()) {
        for (const a of c.addrs) addrs.add(a);
        for (const s of c.srv) srv.push(s);
      }
      const next: DnsName = srv.length ? { addrs: [...addrs], srv } : { addrs: [...addrs] };
      if (old && sameDnsName(old, next)) continue;
      this.names.set(name, next);
      changed.push(name);
    }
    this.dirtyNames.clear();
    return changed;
  }

  /** Extra records in force (`weft dns ls`, `weft dns remove NAME`). */
  extras(): ExtraRecord[] {
    return [...this.presentExtras].map((k) => parseExtraKey(k)!);
  }

  /** The votes held for one extra key (to place a new vote after them). */
  votesFor(key: string): ExtraVote[] {
    return [...(this.votes.get(key)?.values() ?? [])];
  }

  /** Container records answered now, by name → sources, for `weft dns ls`. */
  answeredContainers(): ContainerEndpoint[] {
    return [...this.winners.values()].map((id) => this.units.get(id)!.ep!);
  }

  counts(): { containers: number; answered: number; extras: number; invalid: number; skipped: number } {
    let skipped = 0;
    for (const s of this.skippedBy.values()) skipped += s.length;
    return { containers: this.units.size, answered: this.winners.size, extras: this.presentExtras.size, invalid: this.invalidBy.size, skipped };
  }

  invalid(): { owner: string; key: string; reason: string }[] {
    return [...this.invalidBy].map(([id, reason]) => {
      const u = this.units.get(id)!;
      return { owner: u.owner, key: u.key, reason };
    });
  }

  private claimIfAnswered(id: string, unit: Unit): void {
    if (!isAnswered(unit.ep!, unit.owner, this.liveness)) return;
    let set = this.claims.get(unit.ep!.addr);
    if (!set) this.claims.set(unit.ep!.addr, (set = new Set()));
    set.add(id);
    this.dirtyAddrs.add(unit.ep!.addr);
  }

  private unclaim(id: string, addr: string): void {
    const set = this.claims.get(addr);
    if (!set?.delete(id)) return;
    if (set.size === 0) this.claims.delete(addr);
    this.dirtyAddrs.add(addr);
  }

  private contribute(id: string, list: NameContribution[] | undefined): void {
    for (const c of this.contributions.get(id) ?? []) {
      const at = this.atName.get(c.name)!;
      at.delete(id);
      if (at.size === 0) this.atName.delete(c.name);
      this.dirtyNames.add(c.name);
    }
    if (!list?.length) {
      this.contributions.delete(id);
      return;
    }
    this.contributions.set(id, list);
    for (const c of list) {
      let at = this.atName.get(c.name);
      if (!at) this.atName.set(c.name, (at = new Map()));
      at.set(id, c);
      this.dirtyNames.add(c.name);
    }
  }
}

// ---- Shell: a MeshView's events into the index ---------------------------------------------

export interface RegistrySourceOptions {
  domain?: string;
  debounceMs?: number;
  /** Least time between two updates under sustained changes (default MIN_UPDATE_INTERVAL_MS). */
  minIntervalMs?: number;
  log?: Logger;
}

/**
 * A DnsRecordSource over a MeshView. `current()` is live: its map is updated in place, and
 * every notification names the names that changed (the server then reads just those; see
 * dns/README.md). Call `close()` to unsubscribe from the view.
 */
export class RegistryRecordSource implements DnsRecordSource {
  readonly index: RegistryIndex;
  private readonly set: DnsRecordSet;
  private readonly listeners = new Set<(changed?: readonly string[]) => void>();
  private readonly unsubscribe: (() => void)[] = [];
  private readonly debounceMs: number;
  private readonly minIntervalMs: number;
  private lastFlush = -Infinity;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private readonly failures = new LogOnce();
  private reportedInvalid = 0;
  private closed = false;

  constructor(view: MeshView, opts: RegistrySourceOptions = {}) {
    this.debounceMs = opts.debounceMs ?? REBUILD_DEBOUNCE_MS;
    this.minIntervalMs = opts.minIntervalMs ?? MIN_UPDATE_INTERVAL_MS;
    this.log = opts.log ?? logger('dns');
    this.index = new RegistryIndex(opts.domain ?? DEFAULT_DOMAIN, (id) => view.liveness(id));
    this.set = { names: this.index.names };
    // Subscribe first, then read: a change that lands in between is applied twice, which is
    // harmless (setContainer ignores a value it already holds).
    // These run inside the mesh's gossip and membership handlers: an entry we cannot use is
    // logged and skipped, never thrown back at them.
    this.unsubscribe.push(view.onEntries((changes) => {
      for (const c of changes) {
        try {
          this.feed(c.owner, c.key, c.value);
        } catch (err) {
          this.failed(`entry ${c.key.slice(0, 200)}`, err);
        }
      }
      this.schedule();
    }));
    this.unsubscribe.push(view.onLiveness((id) => {
      try {
        this.index.ownerChanged(id);
      } catch (err) {
        this.failed(`liveness of ${id}`, err);
      }
      this.schedule();
    }));
    for (const e of view.entries(CONTAINER_PREFIX)) this.index.setContainer(e.owner, e.key, e.value);
    for (const e of view.entries(EXTRA_PREFIX)) this.index.setExtra(e.owner, e.key, e.value);
    this.index.flush();
    this.reportInvalid();
  }

  current(): DnsRecordSet {
    return this.set;
  }

  subscribe(onChange: (changed?: readonly string[]) => void): () => void {
    this.listeners.add(onChange);
    return () => this.listeners.delete(onChange);
  }

  /** Applies pending changes now (tests, and `weft dns add` answering at once). */
  flushNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    this.lastFlush = Date.now();
    let changed: string[];
    try {
      changed = this.index.flush();
    } catch (err) {
      this.log.error('DNS records from the registry could not be updated', { error: errorText(err) });
      return;
    }
    try {
      this.reportInvalid();
    } catch (err) {
      this.failed('reporting invalid records', err);
    }
    if (changed.length === 0) return;
    for (const l of [...this.listeners]) {
      try {
        l(changed);
      } catch (err) {
        this.failed('a DNS record listener', err);
      }
    }
  }

  /** Said once a minute per kind: entries come from other peers. */
  private failed(what: string, err: unknown): void {
    const n = this.failures.shouldLog(what.split(' ')[0] ?? what, Date.now());
    if (n !== undefined) this.log.error('DNS records: skipped what could not be applied', { what, error: errorText(err), ...(n ? { repeats: n } : {}) });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const u of this.unsubscribe) u();
  }

  private feed(owner: string, key: string, value: string | null): void {
    if (key.startsWith(CONTAINER_PREFIX)) this.index.setContainer(owner, key, value);
    else if (key.startsWith(EXTRA_PREFIX)) this.index.setExtra(owner, key, value);
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    const now = Date.now();
    const at = Math.max(now + this.debounceMs, this.lastFlush + this.minIntervalMs);
    this.timer = setTimeout(() => this.flushNow(), at - now);
  }

  private reportInvalid(): void {
    const invalid = this.index.counts().invalid;
    if (invalid > this.reportedInvalid) {
      const first = this.index.invalid()[0]!;
      this.log.warn('container records not answered in DNS: not valid', { count: invalid, first: `${first.key} from ${first.owner}: ${first.reason}` });
    }
    this.reportedInvalid = invalid;
  }
}

/** A name or address a user gave that cannot be a record; the message is for them. */
export class DnsInputError extends Error {}

/** For `weft dns add`: the qualified name and the vote key; throws a DnsInputError. */
export function extraTarget(name: string, ip: string, domain: string): { fqdn: string; key: string } {
  if (!isIPv4(ip)) throw new DnsInputError(`"${ip}" is not an IPv4 address (the mesh's DNS answers IPv4 only)`);
  let fqdn: string;
  try {
    fqdn = qualify(name, domain);
  } catch (err) {
    throw new DnsInputError(errorText(err));
  }
  if (fqdn === '') throw new DnsInputError('the root cannot hold records');
  return { fqdn, key: extraKey(fqdn, ip) };
}
