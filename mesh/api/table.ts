// The API's one table of methods. Subsystems register theirs (mesh/api/peer-methods.ts,
// dns/api.ts); a request is then looked up, its caller's right to it checked, its parameters
// validated against the method's schema, and only then handed to the method. A method added
// later gets all three by being registered: there is no second list to keep in step.

import { ACCESS_LEVELS, v, type Access, type MethodSpec, type ParamsSchema } from './method.ts';
import { UserError, type ApiContext, type ApiHandler } from './request.ts';

/** What the table needs to know about a caller (as ApiContext.caller names it): `local` for
 *  the unix socket, `member` for a mesh member, a token's scope, or undefined for a token
 *  that is no longer valid. */
export type AccessOf = (caller: string) => Access | undefined;

export interface CallContext<E> {
  /** Streams one event to the client. */
  emit(event: E): void;
  /** Resolves when the client goes away. */
  closed: Promise<void>;
  /** Who is calling (see ApiContext.caller). */
  caller: string;
}

type Handler<S extends ParamsSchema, R, E> = (params: v.InferOutput<S>, ctx: CallContext<E>) => R | Promise<R>;

interface Entry {
  spec: MethodSpec<ParamsSchema, unknown, unknown>;
  handle: (params: unknown, ctx: CallContext<unknown>) => unknown;
}

export class MethodTable {
  private readonly methods = new Map<string, Entry>();

  register<S extends ParamsSchema, R, E>(spec: MethodSpec<S, R, E>, handle: Handler<S, R, E>): void {
    if (this.methods.has(spec.name)) throw new Error(`API method "${spec.name}" is registered twice`);
    this.methods.set(spec.name, { spec, handle: handle as Entry['handle'] });
  }

  /** The handler the API server runs for every request. */
  handler(accessOf: AccessOf): ApiHandler {
    return async (req, ctx: ApiContext) => {
      const entry = this.methods.get(req.method);
      if (!entry) throw new UserError(`unknown API method "${req.method}" (is the CLI newer than the peer?)`);
      const { spec } = entry;
      const caller = ctx.caller === 'local' ? 'local' : accessOf(ctx.caller);
      if (caller === undefined) throw new UserError('this API token has been revoked');
      if (rank(caller) < rank(spec.access)) throw new UserError(refusal(spec, caller));
      const parsed = v.safeParse(spec.params, req.params);
      if (!parsed.success) throw new UserError(`${spec.name}: ${issueText(parsed.issues[0])}`);
      return entry.handle(parsed.output, ctx);
    };
  }
}

function rank(a: Access): number {
  return ACCESS_LEVELS.indexOf(a);
}

function refusal(spec: MethodSpec<ParamsSchema, unknown, unknown>, caller: Access): string {
  const why = spec.accessReason ? `: ${spec.accessReason}` : '';
  if (caller === 'operator' && spec.access === 'admin') {
    return `"${spec.name}" is not allowed for an API token of scope operator${why} (make one with --scope admin, or use the mesh password)`;
  }
  if (spec.access === 'member') return `"${spec.name}" is not allowed for an API token${why || ': it needs the mesh secret'}`;
  return `"${spec.name}" is allowed only on the peer's own host (the local socket)${why}`;
}

/** One sentence for a schema failure, naming the parameter. */
export function issueText(issue: v.BaseIssue<unknown> | undefined): string {
  if (!issue) return 'invalid parameters';
  const key = issue.path?.map((p) => String(p.key)).join('.');
  const name = key ? `"${key}"` : 'the parameters';
  if (issue.type === 'strict_object' && key) {
    return issue.received === 'undefined' ? `missing parameter ${name}` : `unknown parameter ${name}`;
  }
  switch (issue.type) {
    case 'min_length':
      return issue.expected === '>=1' ? `parameter ${name} must not be empty` : `parameter ${name} is too short (${issue.expected} characters)`;
    case 'max_length':
      return `parameter ${name} is too long (${issue.received} characters, at most ${issue.expected?.slice(2)})`;
    case 'picklist':
      return `parameter ${name} must be one of ${issue.expected?.replace(/[()"]/g, '').split(' | ').join(', ')}, not ${issue.received}`;
    default:
      return `parameter ${name} must be a ${issue.expected}, not ${issue.received}`;
  }
}
