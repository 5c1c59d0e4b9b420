// One HTTP request, answered as EC2 answers: the body read within its bound and decoded, the
// signature checked, the action run, and an XML response or error document written back.
// Nothing a client sends can escape as an exception: an unexpected failure is EC2's
// InternalError (500), logged with its stack.

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dispatch } from './dispatch.ts';
import { Ec2Error, internalError, malformedQuery } from './errors.ts';
import { ClientGone, readBody } from './http-body.ts';
import { decodeForm } from './query-parse.ts';
import { verifySigV4 } from './sigv4.ts';
import type { World } from './world.ts';
import { errorDocument, responseDocument } from './xml.ts';

/** One request as the double saw it. */
export interface CallRecord {
  /** The request's Action parameter, if its body could be read. */
  action: string | undefined;
  /** The HTTP status answered; 0 when the client went away first. */
  status: number;
  /** The error code answered, if it was an error. */
  code: string | undefined;
}

export interface AnswerContext {
  world: World;
  /** Access key id → secret access key. */
  credentials: ReadonlyMap<string, string>;
  record(call: CallRecord): void;
  log(line: string): void;
  /** How long to hold the answer to an action once it is done: the window in which a caller
   *  has had its call carried out and does not know it yet (a leader killed then). */
  holdMs?: (action: string | undefined) => number;
}

export async function answerRequest(req: IncomingMessage, res: ServerResponse, ctx: AnswerContext): Promise<void> {
  const requestId = randomUUID();
  const call: CallRecord = { action: undefined, status: 200, code: undefined };
  let document: string;
  try {
    if (req.method !== 'POST') {
      throw new Ec2Error('UnsupportedOperation', 'The EC2 double takes Query requests as a form-encoded POST', 405);
    }
    const body = await readBody(req);
    const form = decodeForm(utf8(body));
    call.action = form.get('Action');
    verifySigV4(
      { method: req.method, target: req.url ?? '/', headers: req.headers, body },
      { credentials: ctx.credentials, region: ctx.world.region, service: 'ec2', nowMs: ctx.world.clock() },
    );
    const answer = dispatch(form, ctx.world);
    document = responseDocument(answer.action, answer.version, requestId, answer.body);
  } catch (error) {
    if (error instanceof ClientGone) {
      ctx.record({ ...call, status: 0, code: 'ClientGone' });
      return;
    }
    let refusal: Ec2Error;
    if (error instanceof Ec2Error) refusal = error;
    else {
      ctx.log(`ec2 double: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      refusal = internalError();
    }
    call.status = refusal.status;
    call.code = refusal.code;
    document = errorDocument(refusal.code, refusal.message, requestId);
  }
  ctx.record(call);
  const hold = ctx.holdMs?.(call.action) ?? 0;
  if (hold > 0) await sleep(hold);
  const payload = Buffer.from(document, 'utf8');
  res.writeHead(call.status, {
    'content-type': 'text/xml;charset=UTF-8',
    'content-length': payload.length,
    server: 'AmazonEC2',
  });
  res.end(payload);
}

/** The body as UTF-8, refusing bytes that are not (form encoding carries text only). */
function utf8(body: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw malformedQuery('The request body is not valid UTF-8');
  }
}
