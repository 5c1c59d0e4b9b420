// Names in a stack: services and stacks are DNS labels, because a container is reached as
// `<service>-<n>` and a service by its name in the mesh's DNS.

import { MAX_SERVICE_NAME_LENGTH } from './limits.ts';

/** RFC 1123 labels in lower case (DNS is case-insensitive; one spelling avoids two services
 *  that resolve alike). Compose also allows `_` and `.`, which are not valid in host names. */
const LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

export const MAX_ALIAS_LENGTH = 63; // a link alias is one DNS label

/** Why `name` cannot name a service, or undefined if it can. */
export function serviceNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_SERVICE_NAME_LENGTH) return `is longer than ${MAX_SERVICE_NAME_LENGTH} characters (a container is named <service>-<n>, one DNS label)`;
  if (!LABEL.test(name)) return 'is not a DNS label (lower-case letters, digits and -, starting and ending with a letter or digit)';
  return undefined;
}

export function isLabel(s: string, max: number): boolean {
  return s.length <= max && LABEL.test(s);
}
