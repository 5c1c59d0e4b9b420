// The Docker-link variables a task's container gets for its service's links (link-env.ts), from
// desired state: the linked service's containers by DNS name (`db-2`, or `db-2.other` across
// stacks), so the variables stay right when a linked container is redeployed elsewhere. Pure.

import type { StoredService } from '../service/schema.ts';
import type { ServiceSpec } from '../service/spec.ts';
import { linkEnvironment } from './link-env.ts';

export function linkEnvFor(spec: ServiceSpec, index: number, services: ReadonlyMap<string, StoredService>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const link of spec.links) {
    const parts = link.service.split('.');
    const [stack, name] = parts.length === 2 ? [parts[0] as string, parts[1] as string] : [spec.stack, link.service];
    const target = services.get(stack ? `${stack}/${name}` : name)?.spec;
    if (target === undefined) continue;
    const suffix = stack === spec.stack ? '' : `.${stack}`;
    const count = target.deploymentStrategy === 'EVERY_NODE' ? 0 : target.targetNumContainers;
    const containers = Array.from({ length: count }, (_, i) => ({
      addr: `${name}-${i + 1}${suffix}`,
      number: i + 1,
      ports: target.ports.map((p) => ({ port: p.container, proto: p.protocol })),
      env: target.environment,
    }));
    Object.assign(env, linkEnvironment({ alias: link.alias, linker: `${spec.name}-${index}`, containers, serviceAddr: `${name}${suffix}` }));
  }
  return env;
}

export function linksLabel(spec: ServiceSpec): string | undefined {
  const items = spec.links.map((link) => {
    const parts = link.service.split('.');
    // The stack file says `stack.service` for another stack's service; DNS reads `service.stack`.
    const target = parts.length === 2 && parts[0] !== spec.stack ? `${parts[1]}.${parts[0]}` : (parts[parts.length - 1] as string);
    return `${link.alias}=${target}`;
  });
  return items.length ? items.join(',') : undefined;
}
