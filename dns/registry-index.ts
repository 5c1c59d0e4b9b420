// The registry's record set, kept up to date one change at a time. A peer's DNS answers from
// this: a change costs the names of the records it touches (and at a service name, one pass
// over its containers), whatever the size of the registry. It gives the same names as
// registryInputs (registry-inputs.ts) would from scratch, with the same rules
// (answered-containers.ts, extra-votes.ts); the tests hold it to that over random histories.
// Dynamic links (records.ts, LinkerRecord) are kept by declaration counts per alias and target
// and a reverse map target → aliases: an alias is recomputed (one pass over its targets' data)
// when its declarations change or when one of its targets' names is touched, nothing else.
// Pure: no I/O, no clock. The shell that feeds it a MeshView's events is registry-source.ts.

import type { ContainerEndpoint } from '../mesh/endpoint.ts';
import { type Liveness, containerRecordOf, declaresLinks, endpointOf, isAnswered, linkerOf, winnerOf } from './answered-containers.ts';
import { type ExtraVote, decidingVote, parseExtraKey, parseExtraVote } from './extra-votes.ts';
import { DEFAULT_DOMAIN, normalizeName } from './names.ts';
import {
  type BuiltRecords,
  type DnsName,
  type DnsSrv,
  type ExtraRecord,
  type LinkName,
  type NameContribution,
  aliasData,
  containerNames,
  extraNames,
  linkNames,
  sameDnsName,
} from './records.ts';

/** One container entry as held: its text (to see a repeat) and the record, if valid. */
interface Unit {
  owner: string;
  key: string;
  text: string;
  ep: ContainerEndpoint | undefined;
}

/**
 * The record set of the registry. Feed it entries and liveness changes, then `flush()` to
 * apply them: it returns the names whose data changed.
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
  /** Units whose links are in force (declaresLinks, with the label) → their links, and the
   *  entries of their labels that were skipped. */
  private readonly declared = new Map<string, LinkName[]>();
  private readonly linkSkippedBy = new Map<string, BuiltRecords['skipped']>();
  /** Alias → target → how many units declare that link; target → the aliases declaring it. */
  private readonly aliasTargets = new Map<string, Map<string, number>>();
  private readonly aliasesOf = new Map<string, Set<string>>();
  private readonly dirtyAliases = new Set<string>();

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
      this.declareLinks(id, undefined);
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
    this.declareLinks(id, unit);
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
      this.declareLinks(id, unit);
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

    // Real names (containers, extras) first; the aliases they concern after, from the real
    // data only. A touched name marks the aliases that target it, and itself if it is an
    // alias (a real name there now wins, or no longer does).
    const changed: string[] = [];
    for (const name of this.dirtyNames) {
      for (const alias of this.aliasesOf.get(name) ?? []) this.dirtyAliases.add(alias);
      const at = this.atName.get(name);
      const old = this.names.get(name);
      if (!at) {
        if (this.aliasTargets.has(name)) {
          this.dirtyAliases.add(name);
          continue;
        }
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

    const realData = (t: string) => (this.atName.has(t) ? this.names.get(t) : undefined);
    for (const alias of this.dirtyAliases) {
      if (this.atName.has(alias)) continue; // a real name: done above
      const targets = this.aliasTargets.get(alias);
      const next = targets ? aliasData(targets.keys(), realData) : undefined;
      const old = this.names.get(alias);
      if (!next) {
        if (old) {
          this.names.delete(alias);
          changed.push(alias);
        }
        continue;
      }
      if (old && sameDnsName(old, next)) continue;
      this.names.set(alias, next);
      changed.push(alias);
    }
    this.dirtyAliases.clear();
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
    for (const s of this.linkSkippedBy.values()) skipped += s.length;
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

  /** A unit's links as they are now (unit undefined: gone): the declaration counts of the
   *  links it adds or drops change, and those aliases are marked. A unit whose links did not
   *  change (a health change, a suspect owner) costs one parse of its label. */
  private declareLinks(id: string, unit: Unit | undefined): void {
    const linker = unit?.ep && declaresLinks(unit.ep, unit.owner, this.liveness) ? linkerOf(unit.ep) : undefined;
    const skipped: BuiltRecords['skipped'] = [];
    const links = linker ? linkNames(linker, this.domain, skipped) : undefined;
    if (skipped.length) this.linkSkippedBy.set(id, skipped);
    else this.linkSkippedBy.delete(id);
    const old = this.declared.get(id);
    if (old && links && old.length === links.length && old.every((l, i) => l.alias === links[i]!.alias && l.target === links[i]!.target)) return;
    for (const l of old ?? []) {
      const targets = this.aliasTargets.get(l.alias)!;
      const n = targets.get(l.target)! - 1;
      if (n > 0) {
        targets.set(l.target, n);
        continue;
      }
      targets.delete(l.target);
      if (targets.size === 0) this.aliasTargets.delete(l.alias);
      const aliases = this.aliasesOf.get(l.target)!;
      aliases.delete(l.alias);
      if (aliases.size === 0) this.aliasesOf.delete(l.target);
      this.dirtyAliases.add(l.alias);
    }
    if (!links?.length) {
      this.declared.delete(id);
      return;
    }
    this.declared.set(id, links);
    for (const l of links) {
      let targets = this.aliasTargets.get(l.alias);
      if (!targets) this.aliasTargets.set(l.alias, (targets = new Map()));
      const n = targets.get(l.target) ?? 0;
      targets.set(l.target, n + 1);
      if (n > 0) continue;
      let aliases = this.aliasesOf.get(l.target);
      if (!aliases) this.aliasesOf.set(l.target, (aliases = new Set()));
      aliases.add(l.alias);
      this.dirtyAliases.add(l.alias);
    }
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
