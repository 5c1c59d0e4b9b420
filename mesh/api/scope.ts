// Who may call which API method. The local unix socket (root of trust: mode 0600) and mesh
// members (they hold the mesh secret) may call everything. An API token may call what its
// scope allows: `operator` reads the mesh and works with the replicated kv and DNS records;
// `admin` may also change membership, the data plane and tokens. Nothing reachable with a
// token ever hands out the mesh secret (join tokens need it), whatever the scope.

import { UserError, type ApiHandler } from './server.ts';
import type { TokenScope } from '../admission/api-token.ts';

export type MethodScope = TokenScope;

/** Every method an operator token may call; anything not listed needs `admin`, so a method
 *  added later is closed to operator tokens until someone decides otherwise here. */
const OPERATOR_METHODS: ReadonlySet<string> = new Set([
  'status', 'peers', 'events', 'token.list',
  'kv.get', 'kv.list', 'kv.put',
  'ps', 'ipam.status',
  'dns.lookup', 'dns.ls', 'dns.add', 'dns.remove', 'dns.status',
]);

export function methodScope(method: string): MethodScope {
  return OPERATOR_METHODS.has(method) ? 'operator' : 'admin';
}

/** How a caller's rights are found: 'member' for the local socket and mesh members, a
 *  token's scope, or undefined for a token that is no longer valid. */
export type ScopeOf = (caller: string) => TokenScope | 'member' | undefined;

/** Wraps the API's handler so that a call beyond the caller's scope is refused, in one
 *  sentence, before the method runs. */
export function authorize(handler: ApiHandler, scopeOf: ScopeOf): ApiHandler {
  return async (req, ctx) => {
    if (ctx.caller === 'local') return handler(req, ctx);
    const scope = scopeOf(ctx.caller);
    if (scope === undefined) throw new UserError('this API token has been revoked');
    if (scope === 'operator' && methodScope(req.method) === 'admin') {
      throw new UserError(`"${req.method}" is not allowed for an API token of scope operator (make one with --scope admin, or use the mesh password)`);
    }
    return handler(req, ctx);
  };
}
