// Links: `service` or `service:alias`; the service is in this stack, or in another as
// `stack.service` (Tutum's form for a service of another stack). Each link becomes the alias's
// DNS name and Docker-link variables in the linking service's containers (scheduler/agent/link-env.ts).
//
// Cycles are allowed (web links db, db links web): Tutum resolved links through its own DNS and
// variables rather than Docker's container links, which need their target to exist first, and
// so does weft; a link never orders the start of containers. docker-compose refuses a cycle
// ("Circular dependency"), so a Compose file docker-compose accepts has none anyway.

import type { LinkSpec } from '../service/spec.ts';
import { show } from './errors.ts';
import { isLabel, MAX_ALIAS_LENGTH, serviceNameProblem } from './names.ts';
import { type At, fail, list } from './values.ts';

export function readLinks(at: At, key: string, v: unknown): LinkSpec[] | undefined {
  const items = list(at, key, v);
  if (items === undefined) return undefined;
  const out: LinkSpec[] = [];
  for (const item of items) {
    if (typeof item !== 'string') {
      fail(at, key, `${show(item)} is not a link like "db" or "db:database"`);
      continue;
    }
    const parts = item.split(':');
    if (parts.length > 2) {
      fail(at, key, `"${item}" is not a link like "db" or "db:database"`);
      continue;
    }
    const service = parts[0] as string;
    const names = service.split('.');
    const target = names[names.length - 1] as string;
    const alias = parts[1] ?? target;
    const bad = names.length > 2 ? 'has more than one "."' : names.map(serviceNameProblem).find((x) => x !== undefined);
    if (bad !== undefined) {
      fail(at, key, `"${item}" names a service that ${bad}`);
      continue;
    }
    if (!isLabel(alias, MAX_ALIAS_LENGTH)) {
      fail(at, key, `"${item}" has alias "${alias}", which is not a DNS label`);
      continue;
    }
    if (out.some((l) => l.alias === alias)) {
      fail(at, key, `"${item}" uses the alias "${alias}" a second time`);
      continue;
    }
    out.push({ service, alias });
  }
  return out;
}

/** Links to a service of this stack that the stack does not have are errors; a link across
 *  stacks (`stack.service`) is checked when the stack is deployed, against the desired state. */
export function checkLinkTargets(at: At, links: readonly LinkSpec[], services: ReadonlySet<string>): void {
  for (const l of links) {
    if (!l.service.includes('.') && !services.has(l.service)) {
      fail(at, 'links', `"${l.service === l.alias ? l.service : `${l.service}:${l.alias}`}" names service "${l.service}", which this stack does not have`);
    }
  }
}
