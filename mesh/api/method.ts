// What an API method is, as both sides see it: its name, who may call it, the schema of its
// parameters, and (as a type only) its result and the events it streams. A method's spec is
// data the client imports without the code behind it; the peer binds a handler to the same
// spec in a MethodTable (table.ts), so a parameter the client sends and the server reads, and
// a result the server returns and the client prints, are one declaration.
//
// Parameters are checked with valibot, chosen over zod for its cost to every peer: importing
// zod 4 took ~60 ms and ~20 MB of resident memory, valibot ~6 ms and ~3 MB (measured here on
// Node 24), against an idle peer's memory budget of 80 MB.

import * as v from 'valibot';

export { v };

/** Who may call a method, weakest first. Each level includes the callers of the next:
 *  `operator` tokens, `admin` tokens, mesh `member`s (they hold the mesh secret) and the
 *  `local` unix socket (mode 0600, the root of trust). A method is open to its level and
 *  every stronger caller. */
export const ACCESS_LEVELS = ['operator', 'admin', 'member', 'local'] as const;
export type Access = (typeof ACCESS_LEVELS)[number];

/** A method's parameters: an object schema that rejects unknown fields. */
export type ParamsSchema = v.StrictObjectSchema<v.ObjectEntries, undefined>;

export interface MethodSpec<S extends ParamsSchema = ParamsSchema, R = unknown, E = never> {
  readonly name: string;
  readonly access: Access;
  /** Why the method needs its level, said to a caller below it (optional). */
  readonly accessReason?: string;
  readonly params: S;
  /** Type carriers only (never set): the result and the streamed events. */
  readonly result?: R;
  readonly event?: E;
}

export type ParamsOf<M> = M extends MethodSpec<infer S, unknown, unknown> ? v.InferInput<S> : never;
export type ResultOf<M> = M extends MethodSpec<ParamsSchema, infer R, unknown> ? R : never;
export type EventOf<M> = M extends MethodSpec<ParamsSchema, unknown, infer E> ? E : never;

/** Declares a method: `method<Result>()({ name, access, params })`, curried so that the
 *  result type is given and the parameter schema's type is inferred. */
export function method<R, E = never>() {
  return <const S extends ParamsSchema>(spec: { name: string; access: Access; accessReason?: string; params: S }): MethodSpec<S, R, E> => spec;
}

/** A non-empty string of at most `max` characters. */
export function text(max: number) {
  return v.pipe(v.string(), v.minLength(1), v.maxLength(max));
}

/** No parameters. */
export const NONE = v.strictObject({});
