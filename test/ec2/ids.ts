// Resource ids in EC2's long form: a type prefix and 17 hex digits (i-0123456789abcdef0).

import { randomBytes } from 'node:crypto';

/** EC2's long ids have 17 hex digits after the prefix. */
const ID_HEX_DIGITS = 17;

export function newId(prefix: 'i' | 'r' | 'sg' | 'sgr' | 'vpc' | 'subnet'): string {
  return `${prefix}-${randomBytes(9).toString('hex').slice(0, ID_HEX_DIGITS)}`;
}

/** An id of the given prefix in EC2's short (8) or long (17 hex digit) form. */
export function isWellFormedId(prefix: string, id: string): boolean {
  return new RegExp(`^${prefix}-([0-9a-f]{8}|[0-9a-f]{17})$`).test(id);
}
