// The wire of Docker's legacy plugin protocol (libnetwork remote drivers, moby
// libnetwork/docs/remote.md and ipam.md): HTTP POST of a JSON body to /<Interface>.<Method>,
// JSON back. This file reads bodies within a bound, decodes the few shapes the plugin needs
// and writes replies; it decides nothing about networks or addresses.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** What dockerd sends in Accept and expects back (pkg/plugins' VersionMimetype). */
export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

/** Request bodies are a few hundred bytes (the largest, CreateNetwork, carries the user's
 *  --opt map and labels); 1 MiB bounds what one caller can make the peer buffer. */
export const MAX_BODY_BYTES = 1024 * 1024;

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

/** Reads the whole body, or rejects with a 413 PluginError once it passes `limit` bytes. */
export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new PluginError(`request body of ${declared} bytes is over the ${limit}-byte limit`, 413));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (b: Buffer) => {
      if (done) return;
      size += b.length;
      if (size > limit) {
        done = true;
        reject(new PluginError(`request body is over the ${limit}-byte limit`, 413));
        return;
      }
      chunks.push(b);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    });
    req.on('error', (e) => {
      if (done) return;
      done = true;
      reject(e);
    });
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

export function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': PLUGIN_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
