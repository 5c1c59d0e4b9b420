// How the mesh names containers, shared by the container network (which writes each
// container's search domains) and DNS (which answers the names): the mesh domain, and a
// container's stack, service and name from its labels.

/** The mesh domain (`web.shop.weft.local`): `.local` is never delegated on the Internet, so no
 *  real name is shadowed, and it is Weave Net's choice, which its users' tooling expects. */
export const MESH_DOMAIN = 'weft.local';

export interface ContainerIdentity {
  name: string;
  stack?: string;
  service?: string;
}

/**
 * A container's place in the names, from its labels: weft's own (`weft.stack`,
 * `weft.service`) or Docker Compose's (`com.docker.compose.project`, `…service`,
 * `…container-number`), so that a Compose project attached to weft resolves as a stack with
 * no configuration. A Compose container is named `SERVICE-NUMBER` (`web-1`, as with
 * `docker compose` itself), so is one the scheduler made (`weft.index`: its Docker name is
 * `web-1.shop`, unique on its host across stacks), any other by its Docker name.
 */
export function identityFromLabels(dockerName: string, labels: Readonly<Record<string, string>>): ContainerIdentity {
  const stack = stackOf(labels);
  const service = labels['weft.service'] ?? labels['com.docker.compose.service'];
  const number = labels['com.docker.compose.container-number'];
  const composeService = labels['com.docker.compose.service'];
  const index = labels['weft.index'];
  const name = service && index && /^[1-9]\d{0,5}$/.test(index)
    ? `${service}-${index}`
    : composeService && number ? `${composeService}-${number}` : dockerName.replace(/^\//, '');
  return { name, ...(stack ? { stack } : {}), ...(service ? { service } : {}) };
}

/** The stack a container belongs to, if any. */
export function stackOf(labels: Readonly<Record<string, string>>): string | undefined {
  return labels['weft.stack'] ?? labels['com.docker.compose.project'];
}

/** A container's links, for the mesh DNS: `alias=service` or `alias=service.stack`,
 *  comma-separated; the alias answers, in the container's stack, with the target service's
 *  addresses as they change (dns/records.ts). The scheduler's agent sets it
 *  (scheduler/agent/links.ts); a user may set it on any attached container. */
export const LINKS_LABEL = 'weft.links';
