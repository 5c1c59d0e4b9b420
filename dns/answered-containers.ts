// Which container records of the registry DNS answers, and as what. Every peer publishes a
// record for each of its own containers (mesh/endpoint.ts); these rules decide, the same way
// on every peer, which of them are answered (state, health, the owner's liveness), which one
// wins when two claim one address, what names a record gives, and whose dynamic links
// (`weft.links`) are in force. The whole-registry view
// (registry-inputs.ts) and the incremental one (registry-index.ts) both decide with them.
// Pure: liveness is passed in.

import type { PeerLiveness } from '../mesh/mesh-view.ts';
import { type ContainerEndpoint, parseContainerEndpoint, preferEndpoint } from '../mesh/endpoint.ts';
import type { ContainerRecord, LinkerRecord } from './records.ts';
import { identityFromLabels, LINKS_LABEL, stackOf } from '../mesh/naming.ts';

/** What membership believes of a peer now (undefined: it does not know the peer). */
export type Liveness = (peerId: string) => PeerLiveness | undefined;

/**
 * Whether a container record is answered. Running, on a peer not proven dead or gone
 * ('suspect' and unknown still answer: not proven dead), and healthy or without a health
 * check. 'starting' is not answered: like Docker swarm's routing mesh, a container whose
 * health check has not passed yet gets no traffic (its names give NXDOMAIN, cached 1 TTL).
 */
export function isAnswered(ep: ContainerEndpoint, owner: string, liveness: Liveness): boolean {
  if (ep.health !== 'healthy' && ep.health !== 'none') return false;
  return declaresLinks(ep, owner, liveness);
}

/**
 * Whether a container record's links (`weft.links`, records.ts LinkerRecord) are in force:
 * running on a peer not proven dead or gone, as isAnswered but whatever its health ('starting'
 * and 'unhealthy' declare too: a client whose health check needs its backend must be able to
 * resolve it first). Each record declares on its own: two records claiming one address (a
 * moved container) both do, as both are that container with the same labels, and the stale
 * one goes when its peer marks it stopped or is found dead.
 */
export function declaresLinks(ep: ContainerEndpoint, owner: string, liveness: Liveness): boolean {
  if (ep.state !== 'running') return false;
  const l = liveness(owner);
  return l !== 'dead' && l !== 'left';
}

/** A record's links as a LinkerRecord, if it has the label (whether they are in force is
 *  declaresLinks's question). */
export function linkerOf(ep: ContainerEndpoint): LinkerRecord | undefined {
  const links = ep.labels[LINKS_LABEL];
  if (links === undefined) return undefined;
  const stack = stackOf(ep.labels);
  return { name: identityFromLabels(ep.name, ep.labels).name, ...(stack ? { stack } : {}), links };
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
