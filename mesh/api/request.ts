/**
 * What an API request is and what a method handler gets: shared by the API server, its
 * sessions and the method tables (peer-api, DNS). `server.ts` re-exports all of it.
 */

/** The libp2p protocol remote CLIs use (the connection is admitted by the mesh secret or an API
 *  token); the unix socket carries the same frames. */
export const API_PROTOCOL = '/weft/api/1.0.0';

/** A request: `{ id, method, params }`. Replies: `{ id, result }`, `{ id, error }`, or for
 *  streaming methods any number of `{ id, event }` and then the result. A frame that is not
 *  a request is answered `{ id: -1, error }`. */
export interface ApiRequest {
  id: number;
  method: string;
  params: Record<string, unknown>;
}

export interface ApiContext {
  /** Streams one event to the client (for `events --follow`). A client that stops reading is
   *  dropped once its queued events pass the bound, and `closed` then resolves. */
  emit(event: unknown): void;
  /** Resolves when the client goes away (or has sent its last request). */
  closed: Promise<void>;
  /** 'local' for the unix socket, else whatever the server's `callerOf` says. */
  caller: string;
}

export type ApiHandler = (req: ApiRequest, ctx: ApiContext) => Promise<unknown>;

/** An error whose message is meant for the user of the CLI as it is. */
export class UserError extends Error {}

/** Runs a handler's work, any failure said to the caller as it is (one UserError). */
export async function asUserError<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    throw err instanceof UserError ? err : new UserError((err as Error).message);
  }
}

/** Longest method name accepted; real ones are like `dns.add`. */
const MAX_METHOD_CHARS = 64;

export function parseRequest(u: unknown): ApiRequest | string {
  if (typeof u !== 'object' || u === null) return 'request is not an object';
  const r = u as Record<string, unknown>;
  if (typeof r.id !== 'number' || !Number.isSafeInteger(r.id)) return 'request id must be an integer';
  if (typeof r.method !== 'string' || r.method.length > MAX_METHOD_CHARS) return 'request method must be a short string';
  const params = r.params ?? {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return 'request params must be an object';
  return { id: r.id, method: r.method, params: params as Record<string, unknown> };
}
