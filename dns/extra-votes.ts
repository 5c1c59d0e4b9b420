// The extra records of `weft dns add`, as votes in the replicated registry. An extra is one
// address at one name, at key `dns/extra/<fqdn>/<ip>`. Entries are owner-signed, so a peer
// cannot delete another's entry: instead every peer that adds or removes an extra writes its
// own entry at that key, a vote `{at, present}`, and the vote with the highest `at` (then the
// highest owner id) across owners decides. `at` is the writer's clock, but never less than one
// more than the newest vote it has seen for that key, so a removal issued after seeing an add
// wins whatever the clocks say (a Lamport-style register); only two writes made without seeing
// each other are ordered by wall clock.
// Extras do not depend on the liveness of the peer that wrote them: they are mesh-wide
// configuration, and stay while that peer's entries stay (until it is removed from the mesh).
// Pure: the caller passes the clock (`nextVoteAt`) and writes the vote.

import { isIPv4 } from 'node:net';
import { DNS_EXTRA_PREFIX } from '../mesh/keyspace.ts';
import { errorText } from '../mesh/log.ts';
import { normalizeName, qualify } from './names.ts';
import type { ExtraRecord } from './records.ts';


/** One peer's say on one extra record. */
export interface ExtraVote {
  v: 1;
  /** Milliseconds since the epoch, raised past every vote seen for the key (see the top). */
  at: number;
  present: boolean;
}

export function extraKey(fqdn: string, ip: string): string {
  return `${DNS_EXTRA_PREFIX}${fqdn}/${ip}`;
}

/** `dns/extra/db.weft.local/10.0.0.5` → name and address, or undefined if malformed. */
export function parseExtraKey(key: string): ExtraRecord | undefined {
  if (!key.startsWith(DNS_EXTRA_PREFIX)) return undefined;
  const rest = key.slice(DNS_EXTRA_PREFIX.length);
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
