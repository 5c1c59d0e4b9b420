// A provider as desired state keeps it: kind `provider`, named for the provider (`weft provider
// add aws --name prod`), holding where its API is and its credentials sealed under the mesh key
// (seal.ts). Raft replicates it to every manager, so whichever becomes leader can open the
// credentials; the log, snapshots and backups hold only the sealed box. The access key id's
// first and last four characters stay in the clear so `weft provider ls` can tell keys apart
// without opening anything.
//
// Pure, except newProviderRecord and rotateProviderRecord, which seal (a random nonce) and so
// run where the command is made, before it is proposed; the record they return is what Raft
// carries.

import { type AwsCredentials, accessKeyIdHint, awsCredentialsProblem, hiddenAwsCredentials } from './aws-credentials.ts';
import { endpointProblem } from './endpoint.ts';
import { type CredentialsKey, open, type SealedBox, seal, sealedBoxProblem } from './seal.ts';

/** The desired-state kind of a provider record. */
export const PROVIDER_KIND = 'provider';
/** A provider's name: short and DNS-label-like, so it prints in tables, sorts and types safely,
 *  and can appear in a node cluster's spec and in cloud tags. */
export const PROVIDER_NAME = /^[a-z][a-z0-9-]{0,31}$/;

export interface ProviderRecord {
  type: 'aws';
  /** An AWS region (us-east-1), or with an endpoint whatever region name that cloud uses. */
  region: string;
  /** The EC2 API's URL for an EC2-compatible cloud (endpoint.ts); absent: AWS itself. */
  endpoint?: string;
  /** accessKeyIdHint() of the sealed access key id ("AKIA…WXYZ"). */
  accessKeyIdHint: string;
  /** The credentials (SealedPlaintext), sealed. */
  sealed: SealedBox;
  /** Milliseconds since the epoch, by the clock of the peer that took the command. */
  createdAt: number;
  /** When the credentials were last replaced (`weft provider rotate`). */
  rotatedAt?: number;
}

/** What `weft provider ls` and `inspect` may show: the record without its sealed box. */
export interface ProviderView {
  type: 'aws';
  region: string;
  endpoint?: string;
  accessKeyIdHint: string;
  createdAt: number;
  rotatedAt?: number;
}

/** What the box holds: the credentials and the provider they were sealed for, so that a box
 *  copied into another provider's record is refused rather than used. */
interface SealedPlaintext {
  provider: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

const FIELDS = ['type', 'region', 'endpoint', 'accessKeyIdHint', 'sealed', 'createdAt', 'rotatedAt'];
/** AWS's region names: two letters, words, a number (us-east-1, us-gov-west-1, ap-southeast-2). */
const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
/** Other clouds name regions freely (OpenStack's RegionOne); a DNS-label-like name of this
 *  length covers them and prints safely. */
const OTHER_REGION = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** accessKeyIdHint's forms: up to four characters, an ellipsis, up to four. */
const HINT = /^[A-Za-z0-9._-]{0,4}…[A-Za-z0-9._-]{0,4}$/;

/** Why `name` is not a provider name (undefined: it is one). */
export function providerNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || !PROVIDER_NAME.test(name)) return 'a provider name is 1-32 lower-case letters, digits and "-", starting with a letter';
  return undefined;
}

/** Why `region` is not a region for a provider with or without an endpoint (undefined: it is). */
export function regionProblem(region: unknown, endpoint: unknown): string | undefined {
  if (endpoint === undefined) {
    if (typeof region !== 'string' || !AWS_REGION.test(region)) return 'the region must be an AWS region like us-east-1 (for an EC2-compatible cloud, give its endpoint too)';
  } else if (typeof region !== 'string' || !OTHER_REGION.test(region)) {
    return 'the region must be 1-64 letters, digits, ".", "_" or "-"';
  }
  return undefined;
}

/** Why `x` is not a provider record (undefined: it is one), naming the first bad field and
 *  never echoing a value. Desired state runs it on every put of kind `provider`; it opens
 *  nothing, needs no key, and never throws. */
export function providerRecordProblem(x: unknown): string | undefined {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'a provider must be an object';
  const r = x as Record<string, unknown>;
  const extra = Object.keys(r).find((k) => !FIELDS.includes(k));
  if (extra !== undefined) return `a provider has no field "${extra}"`;
  if (r.type !== 'aws') return 'a provider\'s type must be aws';
  if (r.endpoint !== undefined) {
    const problem = endpointProblem(r.endpoint);
    if (problem !== undefined) return problem;
  }
  const region = regionProblem(r.region, r.endpoint);
  if (region !== undefined) return region;
  if (typeof r.accessKeyIdHint !== 'string' || !HINT.test(r.accessKeyIdHint)) return 'a provider needs the hint of its access key id, like AKIA…WXYZ';
  const sealed = sealedBoxProblem(r.sealed);
  if (sealed !== undefined) return `a provider's sealed credentials: ${sealed}`;
  if (!isTime(r.createdAt)) return 'a provider\'s createdAt must be milliseconds since the epoch';
  if (r.rotatedAt !== undefined && !(isTime(r.rotatedAt) && r.rotatedAt >= (r.createdAt as number))) {
    return 'a provider\'s rotatedAt must be milliseconds since the epoch, not before createdAt';
  }
  return undefined;
}

/** Why a put of kind `provider` named `name` with this spec is invalid (undefined: it is
 *  valid): what desired state's validateSpec runs for this kind. */
export function providerObjectProblem(name: unknown, spec: unknown): string | undefined {
  return providerNameProblem(name) ?? providerRecordProblem(spec);
}

export interface NewProviderInput {
  key: CredentialsKey;
  name: string;
  region: string;
  endpoint?: string;
  credentials: AwsCredentials;
  /** Milliseconds since the epoch. */
  now: number;
}

/** The record for `weft provider add aws`: checks every part and seals the credentials. Throws
 *  one line for the user, never holding a secret. */
export function newProviderRecord(input: NewProviderInput): ProviderRecord {
  const problem = providerNameProblem(input.name) ?? (input.endpoint !== undefined ? endpointProblem(input.endpoint) : undefined)
    ?? regionProblem(input.region, input.endpoint) ?? awsCredentialsProblem(plain(input.credentials));
  if (problem !== undefined) throw new Error(problem);
  if (!isTime(input.now)) throw new Error('the time must be milliseconds since the epoch');
  const record: ProviderRecord = {
    type: 'aws',
    region: input.region,
    ...(input.endpoint !== undefined ? { endpoint: input.endpoint } : {}),
    accessKeyIdHint: accessKeyIdHint(input.credentials.accessKeyId),
    sealed: sealFor(input.key, input.name, input.credentials),
    createdAt: input.now,
  };
  return record;
}

/** The record after `weft provider rotate`: new credentials sealed in, everything else kept.
 *  rotatedAt is never before createdAt, even when this peer's clock is behind the one that
 *  created the record. */
export function rotateProviderRecord(record: ProviderRecord, input: { key: CredentialsKey; name: string; credentials: AwsCredentials; now: number }): ProviderRecord {
  const problem = providerNameProblem(input.name) ?? awsCredentialsProblem(plain(input.credentials));
  if (problem !== undefined) throw new Error(problem);
  if (!isTime(input.now)) throw new Error('the time must be milliseconds since the epoch');
  return {
    type: record.type,
    region: record.region,
    ...(record.endpoint !== undefined ? { endpoint: record.endpoint } : {}),
    accessKeyIdHint: accessKeyIdHint(input.credentials.accessKeyId),
    sealed: sealFor(input.key, input.name, input.credentials),
    createdAt: record.createdAt,
    rotatedAt: Math.max(input.now, record.createdAt),
  };
}

/** The provider's credentials, for the leader's provisioner to call the cloud with. Throws one
 *  line (seal.ts's CANNOT_OPEN for a wrong mesh secret or an altered box) that never holds a
 *  secret. The returned object prints as its hint (hiddenAwsCredentials). */
export function openProviderCredentials(key: CredentialsKey, name: string, record: ProviderRecord): AwsCredentials {
  const opened = open(key, record.sealed);
  const again = `give them again with \`weft provider rotate ${name}\``;
  if (opened.provider !== name) throw new Error(`the credentials of provider "${name}" were sealed for another provider: ${again}`);
  const { provider: _, ...credentials } = opened;
  const problem = awsCredentialsProblem(credentials);
  if (problem !== undefined) throw new Error(`the credentials of provider "${name}" are damaged (${problem}): ${again}`);
  const c = credentials as unknown as AwsCredentials;
  if (accessKeyIdHint(c.accessKeyId) !== record.accessKeyIdHint) {
    throw new Error(`provider "${name}" shows access key ${record.accessKeyIdHint} but holds another: ${again}`);
  }
  return hiddenAwsCredentials(c);
}

/** What `weft provider ls` may print. Built field by field, so nothing added to the record later
 *  (the sealed box least of all) reaches it by accident. */
export function publicView(record: ProviderRecord): ProviderView {
  return {
    type: record.type,
    region: record.region,
    ...(record.endpoint !== undefined ? { endpoint: record.endpoint } : {}),
    accessKeyIdHint: record.accessKeyIdHint,
    createdAt: record.createdAt,
    ...(record.rotatedAt !== undefined ? { rotatedAt: record.rotatedAt } : {}),
  };
}

function sealFor(key: CredentialsKey, provider: string, c: AwsCredentials): SealedBox {
  const plaintext: SealedPlaintext = { provider, ...plain(c) };
  return seal(key, plaintext);
}

/** The credentials as a plain object: those from resolveAwsCredentials print (and serialise)
 *  as their hint, so they are copied field by field before JSON sees them. */
function plain(c: AwsCredentials): AwsCredentials {
  return c.sessionToken === undefined
    ? { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey }
    : { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken };
}

function isTime(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}
