// MaxResults / NextToken for DescribeInstances and DescribeSecurityGroups. The token is opaque
// to the caller, as on EC2; here it holds the offset of the next page and a digest of the
// query it belongs to, so a token replayed with other filters is refused rather than
// silently paging through a different result.

import { createHash } from 'node:crypto';
import { Ec2Error, invalidValue } from './errors.ts';
import type { QueryParams } from './query-parse.ts';

/** The API reference's bounds on MaxResults for these actions. */
export const MIN_MAX_RESULTS = 5;
export const MAX_MAX_RESULTS = 1000;

/** Tokens longer than this are not ours; the bound keeps a junk token cheap to refuse. */
const MAX_TOKEN_LENGTH = 1024;

export interface Page<T> {
  items: T[];
  nextToken: string | undefined;
}

/** `query` identifies the request's selection (its filters and ids), whatever page it asks for. */
export function paginate<T>(items: readonly T[], params: QueryParams, query: string): Page<T> {
  const maxResults = readMaxResults(params);
  const token = params.get('NextToken');
  const digest = createHash('sha256').update(query).digest('hex').slice(0, 16);
  const offset = token === undefined || token === '' ? 0 : readToken(token, digest);
  if (maxResults === undefined) return { items: items.slice(offset), nextToken: undefined };
  const end = offset + maxResults;
  const nextToken =
    end < items.length ? Buffer.from(JSON.stringify({ o: end, q: digest })).toString('base64url') : undefined;
  return { items: items.slice(offset, end), nextToken };
}

/** The request's parameters other than paging ones, as one string: the query a token is for. */
export function queryKey(params: QueryParams): string {
  return JSON.stringify(
    params
      .entries()
      .filter(([name]) => !['NextToken', 'MaxResults', 'Action', 'Version', 'DryRun'].includes(name))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
}

function readMaxResults(params: QueryParams): number | undefined {
  const raw = params.get('MaxResults');
  if (raw === undefined) return undefined;
  const n = /^[0-9]{1,10}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= MIN_MAX_RESULTS)) {
    throw invalidValue(`Value ( ${raw} ) for parameter maxResults is invalid. Expecting a value greater than ${MIN_MAX_RESULTS}.`);
  }
  if (n > MAX_MAX_RESULTS) {
    throw invalidValue(`Value ( ${raw} ) for parameter maxResults is invalid. Expecting a value less than ${MAX_MAX_RESULTS}.`);
  }
  return n;
}

function readToken(token: string, digest: string): number {
  const refused = new Ec2Error('InvalidPaginationToken', 'The specified pagination token is not valid or is expired.');
  if (token.length > MAX_TOKEN_LENGTH) throw refused;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw refused;
  }
  if (typeof decoded !== 'object' || decoded === null) throw refused;
  const { o, q } = decoded as { o?: unknown; q?: unknown };
  if (typeof o !== 'number' || !Number.isInteger(o) || o < 0 || q !== digest) throw refused;
  return o;
}
