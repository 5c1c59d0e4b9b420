// Reads a request body with a bound. A body over the bound is read to its end and thrown away
// (so the client, still sending, gets the error document rather than a reset connection), up
// to a hard limit past which the connection is cut.

import type { IncomingMessage } from 'node:http';
import { Ec2Error } from './errors.ts';

/** Ten times the largest request weft makes: RunInstances with EC2's maximum 16 KiB of user
 *  data (about 22 KiB once base64- and form-encoded) and 50 tags. */
export const MAX_REQUEST_BODY_BYTES = 256 * 1024;

/** How much of an oversized body is drained before the connection is cut instead. */
export const MAX_DRAINED_BYTES = 8 * 1024 * 1024;

/** The client went away, or sent more than can be drained: there is no one to answer. */
export class ClientGone extends Error {}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BODY_BYTES) chunks.push(chunk);
      else if (size > MAX_DRAINED_BYTES) {
        req.destroy();
        reject(new ClientGone(`request body over ${MAX_DRAINED_BYTES} bytes`));
      }
    });
    req.on('end', () => {
      if (size > MAX_REQUEST_BODY_BYTES) {
        reject(new Ec2Error('MalformedQueryString', `The request body exceeds ${MAX_REQUEST_BODY_BYTES} bytes`, 413));
      } else resolve(Buffer.concat(chunks));
    });
    req.on('error', (error) => reject(new ClientGone(error.message)));
    req.on('close', () => {
      if (!req.complete) reject(new ClientGone('the client closed the connection mid-request'));
    });
  });
}
