// What the DNS server answers for, independent of where it comes from. The peer feeds it from
// the replicated registry (running, healthy containers on live peers, plus `weft dns add`
// extras); tests and benchmarks feed it directly. The server only reads a snapshot and
// listens for "something changed".

import { LINKS_LABEL } from '../mesh/naming.ts';
import { DEFAULT_DOMAIN, isLabel, isNormalName, normalizeName, qualify } from './names.ts';


/** One SRV record's data at a name: a port on a target host. */
export interface DnsSrv {
  /** Symbolic port name, so that `_NAME._PROTO.owner` also answers (e.g. `http`). The port
   *  number always works as a name: `_80._tcp.web.shop.weft.local`. */
  service?: string;
  proto: 'tcp' | 'udp';
  port: number;
  /** A fully qualified name, normally a per-container name in the same zone. */
  target: string;
  /** RFC 2782; default 0 and 0: every target equally preferred. */
  priority?: number;
  weight?: number;
}

/** The data at one name. */
export interface DnsName {
  /** IPv4 addresses (the overlay is IPv4 only). Order does not matter: answers are shuffled. */
  addrs: readonly string[];
  /** Answered as SRV at this name, and per port at `_PORT._PROTO.name` / `_SERVICE._PROTO.name`. */
  srv?: readonly DnsSrv[];
}

/** Whether two names hold the same data, in the same order. */
export function sameDnsName(a: DnsName, b: DnsName): boolean {
  if (a.addrs.length !== b.addrs.length || (a.srv?.length ?? 0) !== (b.srv?.length ?? 0)) return false;
  for (let i = 0; i < a.addrs.length; i++) if (a.addrs[i] !== b.addrs[i]) return false;
  for (let i = 0; i < (a.srv?.length ?? 0); i++) {
    const x = a.srv![i]!;
    const y = b.srv![i]!;
    if (x.port !== y.port || x.proto !== y.proto || x.target !== y.target || x.service !== y.service || x.priority !== y.priority || x.weight !== y.weight) return false;
  }
  return true;
}

/**
 * Every name the server answers from its own data. Keys are fully qualified names in any
 * case, with or without the trailing dot; names may lie outside the mesh domain (extras such
 * as `db.example.com`), in which case only those exact names are answered locally. PTR
 * records are derived: every address points back to the names that hold it alone (its
 * per-container names), or to all its names if none does.
 *
 * Treat a set and its DnsName objects as immutable: a change is a new set. Keeping the same
 * DnsName object for a name that did not change lets the server skip it cheaply (it compares
 * objects first, then contents).
 */
export interface DnsRecordSet {
  readonly names: ReadonlyMap<string, DnsName>;
}

/** A source of record sets: the current snapshot, and a signal when it changes. The server
 *  updates its precomputed answers from `current()` after a change (once per burst). */
export interface DnsRecordSource {
  current(): DnsRecordSet;
  /** Calls `onChange` after each change, with the (raw) names whose data changed if the
   *  source knows them: then an update costs only those names. Without them the server
   *  compares the whole set with the last one (about 0.1 µs a name). Returns the
   *  unsubscribe function. */
  subscribe(onChange: (changed?: readonly string[]) => void): () => void;
}

export const EMPTY_RECORD_SET: DnsRecordSet = { names: new Map() };

/** A record source held in memory: `set()` replaces the snapshot and notifies. */
export class MemoryRecordSource implements DnsRecordSource {
  private snapshot: DnsRecordSet;
  private readonly listeners = new Set<(changed?: readonly string[]) => void>();

  constructor(initial: DnsRecordSet = EMPTY_RECORD_SET) {
    this.snapshot = initial;
  }

  current(): DnsRecordSet {
    return this.snapshot;
  }

  /** Replaces the snapshot; `changed` lists the names that differ, if known. */
  set(next: DnsRecordSet, changed?: readonly string[]): void {
    this.snapshot = next;
    for (const l of [...this.listeners]) l(changed);
  }

  subscribe(onChange: (changed?: readonly string[]) => void): () => void {
    this.listeners.add(onChange);
    return () => this.listeners.delete(onChange);
  }
}

// ---- Building a record set from containers, services, stacks and extras -----------------

/** A container that should be answered: running, on a live peer, passing its health check.
 *  Filtering is the caller's job; everything given here is served. */
export interface ContainerRecord {
  /** The container's short name as it should resolve (`web-1`; for Compose, service and
   *  container number, not the project-prefixed Docker name). */
  name: string;
  addrs: readonly string[];
  stack?: string;
  service?: string;
  hostname?: string;
  aliases?: readonly string[];
  /** Exposed ports: SRV at the container's name and at its service's name. */
  ports?: readonly { port: number; proto: 'tcp' | 'udp'; name?: string }[];
}

/** `weft dns add NAME IP`: one address at one name (repeat for more). A single label is
 *  relative to the domain; anything with a dot is taken as written. */
export interface ExtraRecord {
  name: string;
  addr: string;
}

export interface RecordInputs {
  containers: readonly ContainerRecord[];
  extras?: readonly ExtraRecord[];
  /** Containers declaring dynamic links (see LinkerRecord). Not filtered like `containers`:
   *  a linker declares while it runs on a peer not proven dead, healthy or not. */
  linkers?: readonly LinkerRecord[];
}

export interface BuiltRecords {
  set: DnsRecordSet;
  /** Inputs that could not become names (a name with characters DNS cannot carry). */
  skipped: { input: string; reason: string }[];
}

/** What one input (a container, an extra) puts at one name; a name's data is the union of
 *  its contributions. Record sources that keep an index by input (dns/registry-index.ts)
 *  use these to change only the names of the inputs that changed. */
export interface NameContribution {
  /** Normalized FQDN. */
  name: string;
  addrs: readonly string[];
  srv: readonly DnsSrv[];
}

/** The names one container contributes to (see buildRecordSet); names DNS cannot carry are
 *  left out and reported in `skipped`. */
export function containerNames(c: ContainerRecord, domain: string = DEFAULT_DOMAIN, skipped: BuiltRecords['skipped'] = []): NameContribution[] {
  const zoneOf = (stack: string | undefined) => (stack ? `${stack}.${domain}` : domain);
  const fqdn = (label: string, stack: string | undefined): string | undefined => {
    const text = `${label}.${zoneOf(stack)}`.toLowerCase();
    if (isNormalName(text)) return text;
    try {
      return normalizeName(text);
    } catch (err) {
      skipped.push({ input: label, reason: (err as Error).message });
      return undefined;
    }
  };
  const own = fqdn(c.name, c.stack);
  if (!own) return [];
  const ownNames = [own];
  for (const extra of [c.hostname, ...(c.aliases ?? [])]) {
    if (!extra || extra === c.name) continue;
    const n = fqdn(extra, c.stack);
    if (n && !ownNames.includes(n)) ownNames.push(n);
  }
  const service = c.service ? fqdn(c.service, c.stack) : undefined;
  const srv: DnsSrv[] = (c.ports ?? []).map((p) => ({ proto: p.proto, port: p.port, target: own, ...(p.name ? { service: p.name } : {}) }));
  const out: NameContribution[] = ownNames.map((n) => ({ name: n, addrs: c.addrs, srv: n === own ? srv : [] }));
  if (service && !ownNames.includes(service)) out.push({ name: service, addrs: c.addrs, srv });
  else if (service && service !== own) {
    // The service's name is also one of this container's aliases: one contribution, with SRV.
    const i = out.findIndex((x) => x.name === service);
    out[i] = { name: service, addrs: c.addrs, srv };
  }
  return out;
}

/** The name an extra record (`weft dns add`) contributes to. */
export function extraNames(e: ExtraRecord, domain: string = DEFAULT_DOMAIN, skipped: BuiltRecords['skipped'] = []): NameContribution[] {
  try {
    return [{ name: qualify(e.name, domain), addrs: [e.addr], srv: [] }];
  } catch (err) {
    skipped.push({ input: e.name, reason: (err as Error).message });
    return [];
  }
}

// ---- Dynamic links: aliases of other names -----------------------------------------------

/** Entries of one label read at most; those after are skipped (and reported). */
export const MAX_LINKS = 32;

/**
 * A container declaring dynamic links, as Tutum's: label `weft.links` = `ALIAS=TARGET,...`,
 * TARGET a service in the linker's stack (`web`) or another stack's as DNS reads it
 * (`web.other`). Container `client-1` of stack `shop` with `backend=web,db=mysql.data` makes
 * `backend.shop.DOMAIN` answer what `web.shop.DOMAIN` answers and `db.shop.DOMAIN` what
 * `mysql.data.DOMAIN` does, following them as they change; a linker outside a stack puts its
 * aliases at `ALIAS.DOMAIN` (and reads a one-label target there too). The rules, the same in
 * buildRecordSet and dns/registry-index.ts:
 *  - Who declares: a container record that is running on a peer not proven dead or gone
 *    (answered-containers.ts, declaresLinks). Its health is not asked: a client whose own
 *    health check needs its backend would otherwise never become healthy.
 *  - A real name wins: an alias at a name that containers or extras contribute to adds
 *    nothing there (`web=web` in one stack is a no-op).
 *  - Several declarations of one alias (one linker or many, any targets): the union of the
 *    targets' data (addresses and SRV), targets taken in sorted order.
 *  - Only real data is copied: aliases never chain (a target that is only an alias gives
 *    nothing), so an alias costs one pass over its targets, never a walk.
 *  - No data from any target: no name (NXDOMAIN, like any unknown name; an empty name would
 *    answer NODATA instead).
 *  - SRV: the targets' SRV entries are copied, so `_80._tcp.backend.shop.DOMAIN` answers the
 *    target service's containers as `_80._tcp.web.shop.DOMAIN` does (targets stay the
 *    containers' own names). PTR is derived from addresses as for any name: an alias of a
 *    service of one container is among the names of its address, as that service's name is.
 *  - Bounds: MAX_LINKS entries; an alias is one DNS label, a target one or two; a malformed
 *    entry (or one past the bound) is skipped and reported, the rest of the label stands.
 */
export interface LinkerRecord {
  /** The container's name, for reports. */
  name: string;
  stack?: string;
  /** The label's text. */
  links: string;
}

/** One link as names: normalized FQDNs of the alias and of its target. */
export interface LinkName {
  alias: string;
  target: string;
}

/** A linker's links as names (distinct pairs, in label order); malformed entries and those
 *  past MAX_LINKS are left out and reported in `skipped`. */
export function linkNames(l: LinkerRecord, domain: string = DEFAULT_DOMAIN, skipped: BuiltRecords['skipped'] = []): LinkName[] {
  const zone = l.stack ? `${l.stack}.${domain}` : domain;
  const out: LinkName[] = [];
  const seen = new Set<string>();
  const items = l.links.split(',');
  let read = 0;
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!.trim();
    if (item === '') continue; // `a=x,,b=y` or a trailing comma: nothing was meant
    if (read++ === MAX_LINKS) {
      const rest = items.slice(i).filter((x) => x.trim() !== '').length;
      skipped.push({ input: `${LINKS_LABEL} of ${l.name}`, reason: `more than ${MAX_LINKS} links: the last ${rest} left out` });
      break;
    }
    const eq = item.indexOf('=');
    const alias = item.slice(0, eq).trim().toLowerCase();
    const target = item.slice(eq + 1).trim().toLowerCase();
    const labels = target.split('.');
    let reason: string | undefined;
    if (eq < 0) reason = 'not ALIAS=TARGET';
    else if (!isLabel(alias)) reason = 'the alias is not one DNS label (letters, digits, "-", "_")';
    else if (labels.length > 2 || !labels.every(isLabel)) reason = 'the target is not SERVICE or SERVICE.STACK';
    let names: LinkName | undefined;
    if (!reason) {
      try {
        names = { alias: normalizeName(`${alias}.${zone}`), target: normalizeName(`${target}.${labels.length === 1 ? zone : domain}`) };
      } catch (err) {
        reason = (err as Error).message;
      }
    }
    if (!names) {
      skipped.push({ input: `${LINKS_LABEL} of ${l.name}: "${item.slice(0, 200)}"`, reason: reason! });
      continue;
    }
    const key = `${names.alias} ${names.target}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(names);
  }
  return out;
}

/** What an alias answers: the union of its targets' real data (`realData` gives a name's data
 *  only if containers or extras make it: no chaining), targets in sorted order, SRV entries
 *  without repeats; undefined if no target has any. */
export function aliasData(targets: Iterable<string>, realData: (name: string) => DnsName | undefined): DnsName | undefined {
  const addrs = new Set<string>();
  const srv = new Map<string, DnsSrv>();
  for (const t of [...targets].sort()) {
    const d = realData(t);
    if (!d) continue;
    for (const a of d.addrs) addrs.add(a);
    for (const e of d.srv ?? []) srv.set(`${e.proto}/${e.port}/${e.service ?? ''}/${e.target}/${e.priority ?? ''}/${e.weight ?? ''}`, e);
  }
  if (addrs.size === 0 && srv.size === 0) return undefined;
  return srv.size ? { addrs: [...addrs], srv: [...srv.values()] } : { addrs: [...addrs] };
}

/**
 * The names a stack's containers get: for service `web` of stack `shop` with containers `web-1..3`,
 * `web.shop.DOMAIN` holds every container's address and `web-1.shop.DOMAIN` one; hostnames
 * and aliases resolve in the container's stack (or the domain outside a stack); containers
 * sharing a name (two aliases alike) share it round-robin. Short names (`web`, `web-1`) work
 * through the containers' search domains `shop.DOMAIN DOMAIN`: the server answers FQDNs only.
 * Dynamic links (`linkers`) add aliases of those names (LinkerRecord has the rules).
 * Given the `previous` set, names whose data did not change keep their objects, which makes
 * the server's update cost proportional to what changed.
 */
export function buildRecordSet(inputs: RecordInputs, domain: string = DEFAULT_DOMAIN, previous?: DnsRecordSet): BuiltRecords {
  const names = new Map<string, { addrs: Set<string>; srv: DnsSrv[] }>();
  const skipped: BuiltRecords['skipped'] = [];
  const add = (contributions: readonly NameContribution[]) => {
    for (const c of contributions) {
      let n = names.get(c.name);
      if (!n) names.set(c.name, (n = { addrs: new Set(), srv: [] }));
      for (const a of c.addrs) n.addrs.add(a);
      n.srv.push(...c.srv);
    }
  };
  for (const c of inputs.containers) add(containerNames(c, domain, skipped));
  for (const e of inputs.extras ?? []) add(extraNames(e, domain, skipped));

  const out = new Map<string, DnsName>();
  for (const [name, n] of names) {
    const next: DnsName = n.srv.length ? { addrs: [...n.addrs], srv: n.srv } : { addrs: [...n.addrs] };
    const old = previous?.names.get(name);
    out.set(name, old && sameDnsName(old, next) ? old : next);
  }

  // Aliases, from the real names only (`names`): a real name wins, and aliases never chain.
  const aliases = new Map<string, Set<string>>();
  for (const l of inputs.linkers ?? []) {
    for (const { alias, target } of linkNames(l, domain, skipped)) {
      if (names.has(alias)) continue;
      let targets = aliases.get(alias);
      if (!targets) aliases.set(alias, (targets = new Set()));
      targets.add(target);
    }
  }
  for (const [alias, targets] of aliases) {
    const next = aliasData(targets, (t) => (names.has(t) ? out.get(t) : undefined));
    if (!next) continue;
    const old = previous?.names.get(alias);
    out.set(alias, old && sameDnsName(old, next) ? old : next);
  }
  return { set: { names: out }, skipped };
}
