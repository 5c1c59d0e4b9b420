// AWS Signature Version 4 as EC2 checks it, from the IAM user guide's "Create a signed AWS API
// request": a canonical request (method, URI, query, signed headers, payload hash) is hashed
// into a string to sign under a credential scope (date/region/service/aws4_request) and
// HMAC'd with a key derived from the secret. The double recomputes it with the secret it was
// configured with, so a wrong secret fails exactly as on EC2. It also signs, for raw-HTTP tests.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { authFailure, Ec2Error, malformedQuery, signatureMismatch } from './errors.ts';

export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';

/** How far a request's X-Amz-Date may be from the server's clock. EC2 documents RequestExpired
 *  for a date stamp more than 15 minutes away from the time the request arrives. */
export const MAX_CLOCK_SKEW_MS = 15 * 60_000;

/** `YYYYMMDD'T'HHMMSS'Z'`, the only date form SigV4 signs. */
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

type Headers = Readonly<Record<string, string | string[] | undefined>>;

export interface IncomingSignedRequest {
  method: string;
  /** The request target as sent: path and query (`/`, `/?a=b`). */
  target: string;
  /** Header names lower-cased, as node:http gives them. */
  headers: Headers;
  body: Buffer;
}

export interface VerifyOptions {
  /** Access key id → secret access key. */
  credentials: ReadonlyMap<string, string>;
  region: string;
  service: string;
  nowMs: number;
}

const incomplete = (message: string): Ec2Error => new Ec2Error('IncompleteSignature', message);

/** Checks the Authorization header; returns the access key id that signed, or throws the error
 *  EC2 gives: MissingAuthenticationToken, IncompleteSignature, AuthFailure (unknown key or a
 *  scope for another region or service), RequestExpired, SignatureDoesNotMatch (wrong secret). */
export function verifySigV4(req: IncomingSignedRequest, opts: VerifyOptions): string {
  const authorization = headerValue(req.headers, 'authorization');
  if (authorization === undefined) {
    throw new Ec2Error('MissingAuthenticationToken', 'Request is missing Authentication Token');
  }
  const auth = parseAuthorization(authorization);
  const [accessKeyId, scopeDate, scopeRegion, scopeService, terminator, ...extra] = auth.credential.split('/');
  if (!accessKeyId || !scopeDate || !scopeRegion || !scopeService || terminator !== 'aws4_request' || extra.length) {
    throw incomplete(`Credential must have the form <access key id>/<date>/<region>/<service>/aws4_request, not '${auth.credential}'`);
  }
  const secret = opts.credentials.get(accessKeyId);
  if (secret === undefined) throw authFailure();
  if (scopeRegion !== opts.region) {
    throw new Ec2Error('AuthFailure', `Credential should be scoped to a valid region, not '${scopeRegion}'.`);
  }
  if (scopeService !== opts.service) {
    throw new Ec2Error('AuthFailure', `Credential should be scoped to correct service: '${opts.service}'.`);
  }
  if (!auth.signedHeaders.includes('host')) throw incomplete("'Host' must be a signed header");

  const amzDate = headerValue(req.headers, 'x-amz-date');
  if (amzDate === undefined) {
    throw incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
  }
  const signedAt = parseAmzDate(amzDate);
  if (Math.abs(opts.nowMs - signedAt) > MAX_CLOCK_SKEW_MS) throw new Ec2Error('RequestExpired', 'Request has expired.');
  if (amzDate.slice(0, 8) !== scopeDate) throw signatureMismatch();

  const expected = signature({
    secret,
    amzDate,
    scope: { date: scopeDate, region: scopeRegion, service: scopeService },
    canonical: canonicalRequest(req.method, req.target, auth.signedHeaders, req.headers, req.body),
  });
  const given = Buffer.from(auth.signature, 'utf8');
  const wanted = Buffer.from(expected, 'utf8');
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) throw signatureMismatch();
  return accessKeyId;
}

interface ParsedAuthorization {
  credential: string;
  signedHeaders: string[];
  signature: string;
}

function parseAuthorization(value: string): ParsedAuthorization {
  const space = value.indexOf(' ');
  const algorithm = space < 0 ? value : value.slice(0, space);
  if (algorithm !== SIGV4_ALGORITHM) {
    throw incomplete(`Unsupported Authorization type '${algorithm.slice(0, 40)}'; EC2 needs ${SIGV4_ALGORITHM}`);
  }
  const fields = new Map<string, string>();
  for (const part of value.slice(space + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const missing = ['Credential', 'SignedHeaders', 'Signature'].filter((name) => !fields.get(name));
  if (missing.length) {
    throw incomplete(missing.map((name) => `Authorization header requires '${name}' parameter.`).join(' '));
  }
  return {
    credential: fields.get('Credential') ?? '',
    signedHeaders: (fields.get('SignedHeaders') ?? '').split(';'),
    signature: fields.get('Signature') ?? '',
  };
}

function parseAmzDate(value: string): number {
  const m = AMZ_DATE.exec(value);
  if (!m) throw incomplete(`Date must be in ISO-8601 'basic format' (YYYYMMDD'T'HHMMSS'Z'), not '${value.slice(0, 40)}'`);
  const [, y, mo, d, h, mi, s] = m.map(Number);
  return Date.UTC(y ?? 0, (mo ?? 1) - 1, d ?? 1, h ?? 0, mi ?? 0, s ?? 0);
}

function headerValue(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** SigV4's UriEncode: every byte but the unreserved characters, as upper-case %XX. */
export function uriEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function canonicalRequest(method: string, target: string, signed: readonly string[], headers: Headers, body: Buffer): string {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q + 1);
  // Services other than S3 encode each path segment once more than it was sent.
  const uri = path === '' ? '/' : path.split('/').map(uriEncode).join('/');
  const canonicalHeaders = signed
    .map((name) => `${name}:${(headerValue(headers, name) ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  return [
    method,
    uri,
    canonicalQuery(query),
    canonicalHeaders,
    signed.join(';'),
    createHash('sha256').update(body).digest('hex'),
  ].join('\n');
}

function canonicalQuery(query: string): string {
  if (query === '') return '';
  const pairs = query
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      const value = eq < 0 ? '' : pair.slice(eq + 1);
      try {
        return [uriEncode(decodeURIComponent(name)), uriEncode(decodeURIComponent(value))] as const;
      } catch {
        throw malformedQuery('The URL query string contains a syntax error');
      }
    })
    .filter(([name]) => name !== 'X-Amz-Signature');
  pairs.sort(([an, av], [bn, bv]) => (an === bn ? (av < bv ? -1 : av > bv ? 1 : 0) : an < bn ? -1 : 1));
  return pairs.map(([name, value]) => `${name}=${value}`).join('&');
}

interface Scope {
  date: string;
  region: string;
  service: string;
}

function signature(input: { secret: string; amzDate: string; scope: Scope; canonical: string }): string {
  const { secret, amzDate, scope, canonical } = input;
  const scopeText = `${scope.date}/${scope.region}/${scope.service}/aws4_request`;
  const stringToSign = [SIGV4_ALGORITHM, amzDate, scopeText, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest();
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, scope.date), scope.region), scope.service), 'aws4_request');
  return createHmac('sha256', key).update(stringToSign).digest('hex');
}

export interface SignInput {
  method: string;
  url: URL;
  /** Headers to send and sign besides host and x-amz-date (names lower-case). */
  headers: Record<string, string>;
  body: string | Buffer;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  service: string;
  date: Date;
}

/** Signs a request the way an SDK would; returns every header to send. For raw-HTTP tests. */
export function signSigV4(input: SignInput): Record<string, string> {
  const amzDate = input.date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const headers: Record<string, string> = { ...input.headers, host: input.url.host, 'x-amz-date': amzDate };
  const signed = Object.keys(headers).map((name) => name.toLowerCase()).sort();
  const target = input.url.pathname + input.url.search;
  const body = typeof input.body === 'string' ? Buffer.from(input.body, 'utf8') : input.body;
  const scope = { date: amzDate.slice(0, 8), region: input.region, service: input.service };
  const sig = signature({
    secret: input.secretAccessKey,
    amzDate,
    scope,
    canonical: canonicalRequest(input.method, target, signed, headers, body),
  });
  headers.authorization =
    `${SIGV4_ALGORITHM} Credential=${input.accessKeyId}/${scope.date}/${scope.region}/${scope.service}/aws4_request, ` +
    `SignedHeaders=${signed.join(';')}, Signature=${sig}`;
  return headers;
}
