// Record sets into zones, incrementally. The builder remembers the names it applied and the
// indexes that tie records together (who holds an address, who contributes to an SRV set,
// which names lie below a level), so that a change touches only what depends on it: a
// container moving costs its own A records, two PTR sets and the SRV sets that list it,
// microseconds whatever the size of the registry. A change of many names builds a fresh
// zone instead, in slices (the generator yields), and swaps it in when done.
// Pure: no I/O, no clock, no randomness.

import { parseIPv4 } from '../mesh/ipv4.ts';
import { DEFAULT_DOMAIN, isNormalName, normalizeName } from './names.ts';
import { type DnsName, type DnsRecordSet, type DnsSrv, sameDnsName } from './records.ts';
import {
  DEFAULT_REVERSE,
  DEFAULT_TTL_S,
  type RRSet,
  type Zone,
  type ZoneNode,
  type ZoneOptions,
  aRRSet,
  emptyZone,
  newNode,
  nxdomainSoa,
  ptrRRSet,
  reverseOf,
  setSerial,
  srvRRSet,
  textToKey,
} from './zone.ts';

/** Units of work (names, SRV sets, addresses) between two yields of a sliced build: some
 *  20 µs, so that a query never waits long behind one. */
export const BUILD_STEP = 32;
/** A change of more names than this share of the zone (and at least MIN_FRESH) is built as
 *  a fresh zone in slices; fewer are applied in place at once (atomic for queries). */
export const FRESH_SHARE = 0.25;
const MIN_FRESH = 256;

/** One DNS name's place in the indexes. */
interface Meta {
  /** Raw names (case variants) in the record set that normalize to this one. */
  named: number;
  /** Live names strictly below this one in the domain (it exists while any does). */
  below: number;
  /** Whether the name exists as far as the ancestors' counts know. */
  live: boolean;
}

class State {
  readonly zone: Zone;
  readonly nodes: Map<string, ZoneNode>;
  readonly domainKey: string;
  /** What was applied, raw name → data, and raw name → normalized name (valid ones). */
  readonly entries = new Map<string, DnsName>();
  readonly normOf = new Map<string, string>();
  readonly rawsOf = new Map<string, Set<string>>();
  /** Normalized name → its sorted, unique addresses (its A records). */
  readonly addrsOf = new Map<string, number[]>();
  readonly holders = new Map<number, Set<string>>();
  /** Normalized name → SRV owner → the entries it contributes there. */
  readonly srvOf = new Map<string, Map<string, DnsSrv[]>>();
  readonly contributors = new Map<string, Set<string>>();
  /** SRV target → owners listing it (their glue carries its addresses), and back. */
  readonly ownersOfTarget = new Map<string, Set<string>>();
  readonly targetsOf = new Map<string, Set<string>>();
  readonly meta = new Map<string, Meta>();
  readonly skippedBy = new Map<string, { name: string; reason: string }[]>();

  constructor(options: ZoneOptions) {
    this.zone = emptyZone(options);
    this.nodes = this.zone.nodes as Map<string, ZoneNode>;
    this.domainKey = this.zone.domainKey;
    this.meta.set(this.domainKey, { named: 0, below: 0, live: true });
  }
}

/** Keeps a zone equal to the last record set given, at the least cost per change. */
export class ZoneBuilder {
  private readonly options: ZoneOptions;
  private state: State;
  private building: Map<string, DnsName> | undefined;

  constructor(options: ZoneOptions = {}) {
    this.options = { ...options, domain: options.domain ?? DEFAULT_DOMAIN, ttl: options.ttl ?? DEFAULT_TTL_S, reverse: options.reverse ?? DEFAULT_REVERSE };
    this.state = new State(this.options);
  }

  /** The zone as of the last finished update. */
  get zone(): Zone {
    return this.state.zone;
  }

  /** A copy of the record set applied last, or being applied by a fresh build in progress:
   *  what a new worker thread starts from (the next patch is relative to it). */
  applied(): Map<string, DnsName> {
    return new Map(this.building ?? this.state.entries);
  }

  /** Raw names whose data differ between the last applied set and `set` (added, removed or
   *  changed; objects compared by identity, then by content). */
  changedSince(set: DnsRecordSet): string[] {
    const out: string[] = [];
    const entries = this.state.entries;
    for (const [raw, data] of set.names) {
      const old = entries.get(raw);
      if (old !== data && (old === undefined || !sameDnsName(old, data))) out.push(raw);
    }
    if (entries.size + out.length > set.names.size) {
      for (const raw of entries.keys()) if (!set.names.has(raw)) out.push(raw);
    }
    return out;
  }

  /**
   * Brings the zone to `set` (`changed`: the raw names that differ, if the caller knows).
   * Few changes are applied to the current zone in place without yielding; many build a
   * fresh zone across yields, which replaces the current one when the generator returns.
   */
  *update(set: DnsRecordSet, serial: number, changed?: readonly string[]): Generator<void, Zone, void> {
    const diff = changed ?? this.changedSince(set);
    const fresh = diff.length > Math.max(MIN_FRESH, FRESH_SHARE * this.state.entries.size);
    if (!fresh) {
      const steps = apply(this.state, diff.map((raw) => [raw, set.names.get(raw)] as const));
      while (!steps.next().done); // atomic: no query sees half of it
      setSerial(this.state.zone, serial);
      return this.state.zone;
    }
    const next = new State(this.options);
    const entries = [...set.names];
    this.building = new Map(entries);
    try {
      yield* apply(next, entries);
    } finally {
      this.building = undefined;
    }
    setSerial(next.zone, serial);
    this.state = next;
    return next.zone;
  }
}

/** A zone for `set` built at once (tests, tools, the first zone of a server). */
export function buildZone(set: DnsRecordSet, options: ZoneOptions = {}): Zone {
  const steps = buildZoneSteps(set, options);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** The same build in slices: yields every BUILD_STEP units of work. */
export function buildZoneSteps(set: DnsRecordSet, options: ZoneOptions = {}): Generator<void, Zone, void> {
  const state = new State(options);
  return (function* () {
    yield* apply(state, [...set.names]);
    setSerial(state.zone, options.serial ?? 1);
    return state.zone;
  })();
}

// ---- Applying changes -------------------------------------------------------------------
//
// One pass of `apply` runs in phases, each working through what the one before marked: the
// raw names given decide which DNS names changed; those names decide which addresses and SRV
// sets changed; those give A, SRV and PTR records; and every node touched is then checked for
// whether it still exists. Each unit of work in any phase counts towards the next yield, so a
// large pass is sliced evenly whatever its mix.

/** What a pass has marked for its later phases, and how much work it has done. */
interface Pass {
  /** Normalized names whose raw names changed (from phase 1). */
  readonly dirtyNames: Set<string>;
  /** SRV owners whose entries or glue may have changed (from phase 2). */
  readonly dirtyOwners: Set<string>;
  /** Addresses whose holders changed: their PTR sets (from phase 2). */
  readonly dirtyAddrs: Set<number>;
  /** Node keys whose records or naming changed: their existence (from phases 2–4). */
  readonly touched: Set<string>;
  skippedChanged: boolean;
  /** Units of work so far, to yield every BUILD_STEP. */
  work: number;
}

function* apply(s: State, changes: Iterable<readonly [string, DnsName | undefined]>): Generator<void, void, void> {
  const p: Pass = { dirtyNames: new Set(), dirtyOwners: new Set(), dirtyAddrs: new Set(), touched: new Set(), skippedChanged: false, work: 0 };
  yield* sliced(p, changes, ([raw, data]) => placeRawName(s, p, raw, data));
  yield* sliced(p, p.dirtyNames, (norm) => applyName(s, p, norm));
  yield* sliced(p, p.dirtyOwners, (owner) => applySrvSet(s, p, owner));
  yield* sliced(p, p.dirtyAddrs, (addr) => applyPtr(s, p, addr));
  yield* sliced(p, p.touched, (key) => settleExistence(s, key));
  if (p.skippedChanged) (s.zone as { skipped: Zone['skipped'] }).skipped = [...s.skippedBy.values()].flat();
}

/** Runs `step` on each item, yielding every BUILD_STEP units of the pass's work. */
function* sliced<T>(p: Pass, items: Iterable<T>, step: (item: T) => void): Generator<void, void, void> {
  for (const item of items) {
    if (++p.work % BUILD_STEP === 0) yield;
    step(item);
  }
}

/** Phase 1, per raw name given: which normalized name it belongs to now (if any), and what
 *  of its data cannot be served (reported in the zone's `skipped`, the rest still is). */
function placeRawName(s: State, p: Pass, raw: string, data: DnsName | undefined): void {
  const oldNorm = s.normOf.get(raw);
  if (oldNorm !== undefined) {
    const raws = s.rawsOf.get(oldNorm)!;
    raws.delete(raw);
    if (raws.size === 0) s.rawsOf.delete(oldNorm);
    s.normOf.delete(raw);
    p.dirtyNames.add(oldNorm);
  }
  s.entries.delete(raw);
  if (s.skippedBy.delete(raw)) p.skippedChanged = true;
  if (!data) return;
  s.entries.set(raw, data);
  const reasons: { name: string; reason: string }[] = [];
  let norm: string | undefined;
  try {
    norm = isNormalName(raw) ? raw : normalizeName(raw);
    if (norm === '') throw new Error('the root cannot hold records');
  } catch (err) {
    reasons.push({ name: raw, reason: (err as Error).message });
    norm = undefined;
  }
  if (norm !== undefined) {
    for (const a of data.addrs) if (parseIPv4(a) === undefined) reasons.push({ name: raw, reason: `"${a}" is not an IPv4 address` });
    for (const e of data.srv ?? []) {
      const why = srvProblem(e);
      if (why) reasons.push({ name: raw, reason: `SRV ${e.service ?? e.port}/${e.proto}: ${why}` });
    }
    s.normOf.set(raw, norm);
    let raws = s.rawsOf.get(norm);
    if (!raws) s.rawsOf.set(norm, (raws = new Set()));
    raws.add(raw);
    p.dirtyNames.add(norm);
  }
  if (reasons.length) {
    s.skippedBy.set(raw, reasons);
    p.skippedChanged = true;
  }
}

/** Phase 2, per changed name: the union of its raw names' data becomes its A records, its
 *  count of raw names (a named name exists even without records), and the SRV entries it
 *  contributes to its owners; what changed marks addresses and SRV owners for phases 3–4. */
function applyName(s: State, p: Pass, norm: string): void {
  const raws = s.rawsOf.get(norm);
  const key = textToKey(norm);
  const { addrs, contrib } = gatherName(s, norm, raws);
  setAddresses(s, p, norm, key, addrs);
  const m = metaOf(s, key);
  if (m.named !== (raws?.size ?? 0)) {
    m.named = raws?.size ?? 0;
    node(s, key); // a name in the set exists, even without records
  }
  p.touched.add(key);
  setContributions(s, p, norm, contrib);
}

/** A name's sorted, unique addresses and its SRV entries by owner (the name itself,
 *  `_PORT._PROTO.` and `_NAME._PROTO.` below it), from the raw names that make it up. */
function gatherName(s: State, norm: string, raws: ReadonlySet<string> | undefined): { addrs: number[]; contrib: Map<string, DnsSrv[]> } {
  const addrSet = new Set<number>();
  const contrib = new Map<string, DnsSrv[]>();
  for (const raw of raws ?? []) {
    const data = s.entries.get(raw)!;
    for (const a of data.addrs) {
      const n = parseIPv4(a);
      if (n !== undefined) addrSet.add(n);
    }
    for (const e of data.srv ?? []) {
      if (srvProblem(e)) continue;
      const entry = { ...e, target: isNormalName(e.target) ? e.target : normalizeName(e.target) };
      const owners = [norm, `_${e.port}._${e.proto}.${norm}`];
      if (e.service) owners.push(`_${e.service}._${e.proto}.${norm}`);
      for (const o of owners) {
        let owner: string;
        try {
          owner = isNormalName(o) ? o : normalizeName(o);
        } catch {
          continue; // `_PORT._PROTO.` made a long name too long: only that owner is lost
        }
        let list = contrib.get(owner);
        if (!list) contrib.set(owner, (list = []));
        list.push(entry);
      }
    }
  }
  return { addrs: [...addrSet].sort((x, y) => x - y), contrib };
}

/** A name's A records, if its addresses changed: the holders of each address (for PTR) and
 *  the SRV sets that carry this name's addresses as glue follow. */
function setAddresses(s: State, p: Pass, norm: string, key: string, addrs: number[]): void {
  const old = s.addrsOf.get(norm) ?? [];
  if (sameNumbers(old, addrs)) return;
  for (const a of old) {
    const h = s.holders.get(a)!;
    h.delete(norm);
    if (h.size === 0) s.holders.delete(a);
    p.dirtyAddrs.add(a);
  }
  for (const a of addrs) {
    let h = s.holders.get(a);
    if (!h) s.holders.set(a, (h = new Set()));
    h.add(norm);
    p.dirtyAddrs.add(a);
  }
  if (addrs.length) s.addrsOf.set(norm, addrs);
  else s.addrsOf.delete(norm);
  setRRSet(s, key, 'a', addrs.length ? aRRSet(s.zone.ttl, addrs) : undefined);
  for (const owner of s.ownersOfTarget.get(norm) ?? []) p.dirtyOwners.add(owner);
}

/** The SRV owners a name contributes to now, in place of those it did: every owner it
 *  contributed to before or does now is marked for phase 3. */
function setContributions(s: State, p: Pass, norm: string, contrib: Map<string, DnsSrv[]>): void {
  const oldContrib = s.srvOf.get(norm);
  for (const owner of oldContrib?.keys() ?? []) {
    if (!contrib.has(owner)) {
      const c = s.contributors.get(owner)!;
      c.delete(norm);
      if (c.size === 0) s.contributors.delete(owner);
    }
    p.dirtyOwners.add(owner);
  }
  for (const owner of contrib.keys()) {
    let c = s.contributors.get(owner);
    if (!c) s.contributors.set(owner, (c = new Set()));
    c.add(norm);
    p.dirtyOwners.add(owner);
  }
  if (contrib.size) s.srvOf.set(norm, contrib);
  else s.srvOf.delete(norm);
}

/** Phase 3, per marked owner: its SRV set from every name contributing to it (duplicates
 *  merged, in a fixed order), with its targets' addresses as glue; which targets it lists is
 *  remembered, so that a target's new addresses mark it again. */
function applySrvSet(s: State, p: Pass, owner: string): void {
  const unique = new Map<string, DnsSrv>();
  for (const norm of s.contributors.get(owner) ?? []) {
    for (const e of s.srvOf.get(norm)?.get(owner) ?? []) unique.set(`${e.priority ?? 0}/${e.weight ?? ''}/${e.port}/${e.target}`, e);
  }
  const entries = [...unique.values()].sort((x, y) => (x.target < y.target ? -1 : x.target > y.target ? 1 : x.port - y.port));
  for (const t of s.targetsOf.get(owner) ?? []) {
    const o = s.ownersOfTarget.get(t)!;
    o.delete(owner);
    if (o.size === 0) s.ownersOfTarget.delete(t);
  }
  const targets = new Set(entries.map((e) => e.target));
  for (const t of targets) {
    let o = s.ownersOfTarget.get(t);
    if (!o) s.ownersOfTarget.set(t, (o = new Set()));
    o.add(owner);
  }
  if (targets.size) s.targetsOf.set(owner, targets);
  else s.targetsOf.delete(owner);
  const key = textToKey(owner);
  setRRSet(s, key, 'srv', entries.length ? srvRRSet(s.zone.ttl, owner, entries, (t) => s.addrsOf.get(t) ?? []) : undefined);
  p.touched.add(key);
}

/** Phase 4, per marked address: its PTR set names the names that hold it alone (its
 *  containers), else all that hold it. */
function applyPtr(s: State, p: Pass, addr: number): void {
  const rev = reverseOf(s.zone, addr);
  const h = s.holders.get(addr);
  let rrset: RRSet | undefined;
  if (h && h.size) {
    const all = [...h];
    const alone = all.filter((n) => s.addrsOf.get(n)!.length === 1);
    rrset = ptrRRSet(s.zone.ttl, (alone.length ? alone : all).sort());
  }
  setRRSet(s, rev.key, 'ptr', rrset, rev.negative);
  p.touched.add(rev.key);
}

/** Phase 5, per touched node: a name exists while it holds records, is named, or has names
 *  below it; levels above names in the domain exist as empty non-terminals (RFC 8020). A
 *  name that starts or stops existing changes the count of every level above it. */
function settleExistence(s: State, key: string): void {
  const m = s.meta.get(key);
  if (!m) return;
  const live = isLive(s, key, m);
  if (live !== m.live) {
    m.live = live;
    if (key !== s.domainKey && key.endsWith(s.domainKey)) countBelow(s, key, live ? 1 : -1);
  }
  forgetIfGone(s, key, m);
}

/** Adds `delta` to the live names below each level between `key` and the domain, creating
 *  the levels as empty non-terminals and forgetting those left with nothing. */
function countBelow(s: State, key: string, delta: 1 | -1): void {
  let k = key;
  for (;;) {
    k = k.slice(k.charCodeAt(0) + 1);
    if (k === s.domainKey) break;
    const am = metaOf(s, k);
    node(s, k);
    am.below += delta;
    if (am.below === 0) forgetIfGone(s, k, am);
  }
}

function srvProblem(e: DnsSrv): string | undefined {
  if (!Number.isInteger(e.port) || e.port < 0 || e.port > 65535) return `port ${e.port} is out of range`;
  if (e.proto !== 'tcp' && e.proto !== 'udp') return `protocol "${e.proto}" is not tcp or udp`;
  try {
    if (!isNormalName(e.target)) normalizeName(e.target);
    if (e.service && !isNormalName(`_${e.service}`)) normalizeName(`_${e.service}`);
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function metaOf(s: State, key: string): Meta {
  let m = s.meta.get(key);
  if (!m) s.meta.set(key, (m = { named: 0, below: 0, live: false }));
  return m;
}

/** The node at `key`, created (with the SOA its negative answers carry) if missing. */
function node(s: State, key: string, negative?: Buffer): ZoneNode {
  let n = s.nodes.get(key);
  if (n) return n;
  n = newNode(negative ?? (key.endsWith(s.domainKey) ? nxdomainSoa(s.zone, key.length - s.domainKey.length, true) : undefined));
  s.nodes.set(key, n);
  metaOf(s, key);
  return n;
}

function setRRSet(s: State, key: string, type: 'a' | 'srv' | 'ptr', rrset: RRSet | undefined, negative?: Buffer): void {
  const n = rrset ? node(s, key, negative) : s.nodes.get(key);
  if (!n) return;
  const zone = s.zone as { records: number };
  zone.records += (rrset?.count ?? 0) - (n[type]?.count ?? 0);
  n[type] = rrset;
}

function isLive(s: State, key: string, m: Meta): boolean {
  if (key === s.domainKey) return true;
  const n = s.nodes.get(key);
  return m.named > 0 || (n !== undefined && (n.a !== undefined || n.srv !== undefined || n.ptr !== undefined));
}

/** Removes a name that neither exists itself nor has names below it. A name whose own
 *  change is still to be counted (`live` true, but nothing left) waits for its turn. */
function forgetIfGone(s: State, key: string, m: Meta): void {
  if (key === s.domainKey || m.live || m.below > 0 || isLive(s, key, m)) return;
  s.nodes.delete(key);
  s.meta.delete(key);
}
