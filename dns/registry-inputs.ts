// The record inputs of the whole registry at once: the definition of what DNS answers from
// the replicated entries, written as plainly as possible. RegistryIndex (registry-index.ts)
// keeps the same answer change by change, and the tests hold it to this one over random
// histories (test/dns/registry-source.test.ts).
// Pure: entries and liveness in, record inputs out.

import type { Entry } from '../mesh/replication/wire.ts';
import type { ContainerEndpoint } from '../mesh/endpoint.ts';
import { CONTAINER_PREFIX } from '../mesh/keyspace.ts';
import { type Liveness, containerRecordOf, declaresLinks, endpointOf, isAnswered, linkerOf, winnerOf } from './answered-containers.ts';
import { type ExtraVote, decidingVote, parseExtraKey, parseExtraVote } from './extra-votes.ts';
import type { ContainerRecord, ExtraRecord, LinkerRecord, RecordInputs } from './records.ts';

export interface RegistryInputs {
  inputs: RecordInputs;
  /** Entries that are not valid records, with the reason. */
  invalid: { owner: string; key: string; reason: string }[];
}

/**
 * The record inputs for the registry's entries as they are now: container records under
 * `container/`, extra votes under `dns/extra/`, and what membership believes of each owner.
 * Every valid container record whose links are in force (declaresLinks: running, owner not
 * proven dead; any health, any address claim) is a linker.
 */
export function registryInputs(containers: readonly Entry[], extras: readonly Entry[], liveness: Liveness): RegistryInputs {
  const invalid: RegistryInputs['invalid'] = [];
  const claims = new Map<string, { owner: string; ep: ContainerEndpoint }[]>();
  const linkers: LinkerRecord[] = [];
  for (const e of containers) {
    if (e.value === null || !e.key.startsWith(CONTAINER_PREFIX)) continue;
    const ep = endpointOf(e.owner, e.value);
    if (typeof ep === 'string') {
      invalid.push({ owner: e.owner, key: e.key, reason: ep });
      continue;
    }
    const linker = linkerOf(ep);
    if (linker && declaresLinks(ep, e.owner, liveness)) linkers.push(linker);
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
  return { inputs: { containers: records, extras: extraRecords, linkers }, invalid };
}
