// The wire of Docker's legacy plugin protocol (libnetwork remote drivers, moby
// libnetwork/docs/remote.md and ipam.md): HTTP POST of a JSON body to /<Interface>.<Method>,
// JSON back. This file reads bodies within a bound, decodes the few shapes the plugin needs
// and writes replies; it decides nothing about networks or addresses.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** What dockerd sends in Accept and expects back (pkg/plugins' VersionMimetype). */
export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

/** Request bodies are a few hundred bytes (the largest, CreateNetwork, carries the user's
 *  --opt map and labels: a few KiB even when generous). 256 KiB is far above any real one and,
 *  times MAX_IN_FLIGHT, keeps what all callers together can make the peer buffer to 16 MiB. */
export const MAX_BODY_BYTES = 256 * 1024;

/** dockerd writes each request in one go on a local socket, so a request whose headers or body
 *  take longer than this comes from a stuck or hostile client; 10 s leaves room for a loaded
 *  machine. The connection is answered with an error and closed. */
export const REQUEST_TIMEOUT_MS = 10_000;

/** Requests being read or served at once. dockerd makes a few calls per container start, in
 *  parallel across containers; an allocation may wait for address space. 64 covers a large
 *  `docker compose up`; past it a caller is told the plugin is busy instead of the peer holding
 *  ever more bodies and pending allocations. */
export const MAX_IN_FLIGHT = 64;

/** Open connections to the socket. dockerd keeps a handful alive; each costs a socket and an
 *  HTTP parser. Past this the kernel's accepted connection is closed at once (nothing can be
 *  answered on it without reading it). */
export const MAX_CONNECTIONS = 256;

/** Longest string field accepted: Docker's ids are 64 hex digits, names and paths (the
 *  sandbox key) are short; 4 KiB leaves room for any option value without risking memory. */
const MAX_FIELD_CHARS = 4096;

/** A request that cannot be served, with the sentence dockerd shows its user (it prints the
 *  text after "Error response from daemon: ..."). `status` is 200 for operations that were
 *  understood but failed (remote.md: reply `{"Err": ...}`), 4xx for malformed requests. */
export class PluginError extends Error {
  readonly status: number;
  constructor(message: string, status = 200) {
    super(message);
    this.status = status;
  }
}

/** Reads the whole body, or rejects with a 413 PluginError once it passes `limit` bytes and
 *  with a 408 when it has not all arrived within `timeoutMs`. After a rejection the rest of the
 *  body is not read: the caller answers and closes the connection. */
export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new PluginError(`request body of ${declared} bytes is over the ${limit}-byte limit`, 413));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      req.off('data', onData);
    };
    const timer = setTimeout(() => {
      if (done) return;
      finish();
      req.pause();
      reject(new PluginError(`request body did not arrive within ${timeoutMs / 1000} s`, 408));
    }, timeoutMs);
    const onData = (b: Buffer): void => {
      if (done) return;
      size += b.length;
      if (size > limit) {
        finish();
        req.pause();
        reject(new PluginError(`request body is over the ${limit}-byte limit`, 413));
        return;
      }
      chunks.push(b);
    };
    req.on('data', onData);
    req.on('end', () => {
      if (done) return;
      finish();
      resolve(Buffer.concat(chunks));
    });
    const fail = (e: Error): void => {
      if (done) return;
      finish();
      reject(e);
    };
    req.on('error', fail);
    // The client went away before sending it all: nobody to answer.
    req.on('close', () => fail(new PluginError('the client closed the connection before sending the whole request', 400)));
  });
}

/** A JSON object from a body; an empty body is `{}` (Activate and the capability calls send
 *  none, or `null`). Anything else that is not an object is a 400. */
export function parseObject(body: Buffer): Record<string, unknown> {
  const text = body.toString('utf8').trim();
  if (text === '' || text === 'null') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new PluginError(`request body is not JSON: ${(e as Error).message}`, 400);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PluginError('request body is not a JSON object', 400);
  return v as Record<string, unknown>;
}

/** A string field: absent or null reads as '' unless `required`; any other type is a 400. */
export function str(o: Record<string, unknown>, key: string, required = false): string {
  const v = o[key];
  if (v === undefined || v === null || v === '') {
    if (required) throw new PluginError(`request has no "${key}"`, 400);
    return '';
  }
  if (typeof v !== 'string') throw new PluginError(`"${key}" must be a string`, 400);
  if (v.length > MAX_FIELD_CHARS) throw new PluginError(`"${key}" is longer than ${MAX_FIELD_CHARS} characters`, 400);
  return v;
}

/** An object field (absent or null reads as {}); any other type is a 400. */
export function obj(o: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = o[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new PluginError(`"${key}" must be an object`, 400);
  return v as Record<string, unknown>;
}

/** An array-of-objects field (absent or null reads as []). */
export function objs(o: Record<string, unknown>, key: string): Record<string, unknown>[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((e) => typeof e !== 'object' || e === null || Array.isArray(e))) {
    throw new PluginError(`"${key}" must be a list of objects`, 400);
  }
  return v as Record<string, unknown>[];
}

/** A map of strings (IPAM Options), non-string values dropped: dockerd only sends strings. */
export function strMap(o: Record<string, unknown>, key: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(o, key))) if (typeof v === 'string') out[k] = v;
  return out;
}

/** Writes one JSON answer. `close` ends the connection after it (a request whose body was
 *  not read to the end leaves the connection unusable). Never throws: an answer that cannot
 *  be encoded becomes a 500 with a sentence. */
export function reply(res: ServerResponse, status: number, body: unknown, close = false): void {
  if (res.headersSent || res.destroyed) return;
  let text: string;
  try {
    text = JSON.stringify(body);
  } catch (e) {
    const msg = `weft's docker plugin could not encode its answer: ${(e as Error).message}`;
    status = 500;
    text = JSON.stringify({ Err: msg, Error: msg });
  }
  const headers: Record<string, string | number> = { 'Content-Type': PLUGIN_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) };
  if (close) {
    headers.Connection = 'close';
    // The unread rest of the body stays unread: once the answer is out the connection goes
    // (on a unix socket the client still reads what was written before).
    const socket = res.socket;
    res.on('finish', () => socket?.destroy());
  }
  res.writeHead(status, headers);
  res.end(text);
}

/** A whole HTTP/1.1 error answer for a connection whose request never became one (bad
 *  syntax, headers too large or too slow): written straight to the socket, then closed. */
export function rawErrorReply(status: number, reason: string, message: string): string {
  const text = JSON.stringify({ Err: message, Error: message });
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: ${PLUGIN_CONTENT_TYPE}\r\n` +
    `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`
  );
}
