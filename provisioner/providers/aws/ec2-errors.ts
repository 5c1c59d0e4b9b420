// What the provisioner does about an EC2 refusal: its code sorted into a ProviderError kind
// (provider.ts) with one sentence for the user that says what happened and what to do. Pure:
// the caller hands in the refusal's code, HTTP status and message, already redacted
// (provisioner/credentials/redact.ts), and redacts the sentence again.
//
// Codes are from the EC2 API reference's "Error codes" page: client errors come with a 4xx
// status, server errors with a 5xx; RequestLimitExceeded is throttling; network failures carry
// Node's errno codes (ECONNREFUSED…) or the SDK's TimeoutError and no HTTP status.

import type { ProviderError } from '../../provider.ts';

export type Kind = ProviderError['kind'];

/** A failed call as the SDK reported it. */
export interface Ec2Failure {
  /** EC2's error code, or Node's errno code, or the error's name. */
  code: string;
  /** The HTTP status, when an answer came. */
  status?: number;
  /** EC2's own words, redacted. */
  message: string;
}

export interface Classified {
  kind: Kind;
  code: string;
  message: string;
}

export interface ClassifyContext {
  /** The provider's name, for the command to run (`weft provider rotate NAME`). */
  provider: string;
  /** The EC2 action that was refused (RunInstances). */
  action: string;
}

/** An endpoint's message is shown to the user, in events and `weft nodecluster inspect`; one
 *  that is very long is cut here, so a hostile or broken endpoint cannot flood desired state
 *  (timelines) with it. EC2's own messages stay far below. */
export const MAX_EC2_MESSAGE_CHARS = 400;
/** EC2's codes are dotted words (InvalidAMIID.NotFound); anything else is not passed on as one. */
const CODE = /^[A-Za-z0-9._-]{1,64}$/;

const CAPACITY = new Set([
  'InsufficientInstanceCapacity', 'InsufficientCapacity', 'InsufficientHostCapacity', 'InsufficientReservedInstanceCapacity',
  'InsufficientAddressCapacity',
  // The zone's default subnet has no free address: another zone's subnet may.
  'InsufficientFreeAddressesInSubnet',
  // "The requested configuration is currently not supported": the instance type is not offered
  // in the zone asked for; another zone may offer it.
  'Unsupported',
]);
const THROTTLED = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'TooManyRequestsException']);
const LIMIT = new Set(['InstanceLimitExceeded', 'VcpuLimitExceeded', 'MaxSpotInstanceCountExceeded', 'PendingVerification']);
const SERVER = new Set(['InternalError', 'InternalFailure', 'ServiceUnavailable', 'Unavailable', 'IncorrectState', 'IncorrectInstanceState']);
/** Node's and the SDK's codes for a request that got no answer. */
const NETWORK = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN',
  'ECONNABORTED', 'TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'AbortError', 'UND_ERR_SOCKET',
]);
/** Node's codes for a TLS certificate it refused: a wrong endpoint or a missing CA, which
 *  retrying does not fix. */
const TLS = /^(CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET|VERIFY)_|ERR_TLS_|ERR_SSL_)/;

/** The code, status and message of anything an SDK call threw. */
export function ec2Failure(err: unknown, redactedMessage: string): Ec2Failure {
  const e = (typeof err === 'object' && err !== null ? err : {}) as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: unknown } };
  const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  // A service error's name is EC2's code; a network error's name is "Error" and its errno code
  // is in `code`.
  const raw = status === undefined && typeof e.code === 'string' && e.name !== 'TimeoutError' ? e.code : e.name;
  const code = typeof raw === 'string' && CODE.test(raw) ? raw : 'Unknown';
  return { code, ...(status !== undefined ? { status } : {}), message: redactedMessage };
}

/** The kind of a refusal, and the sentence for it. */
export function classifyEc2Failure(f: Ec2Failure, ctx: ClassifyContext): Classified {
  const said = words(f.message);
  const { provider, action } = ctx;
  const code = f.code;
  const rotate = `rotate them with \`weft provider rotate ${provider}\``;
  const out = (kind: Kind, message: string): Classified => ({ kind, code, message });

  switch (code) {
    case 'AuthFailure':
    case 'InvalidClientTokenId':
    case 'MissingAuthenticationToken':
      return out('credentials', `the credentials of provider ${provider} were refused by EC2 (${code}${said}): ${rotate}`);
    case 'SignatureDoesNotMatch':
    case 'IncompleteSignature':
      return out('credentials', `the secret access key of provider ${provider} was refused by EC2 (${code}): ${rotate}`);
    case 'UnauthorizedOperation':
      return out('credentials', `the credentials of provider ${provider} may not call ${action} (UnauthorizedOperation${said}): allow ec2:${action} to their IAM user or role, or ${rotate}`);
    case 'RequestExpired':
      return out('credentials', `EC2 refused a request of provider ${provider} as expired (RequestExpired): check this host's clock, and if it is right, the credentials' session has ended: ${rotate}`);
    case 'OptInRequired':
      return out('credentials', `the account of provider ${provider} is not subscribed to EC2 in this region (OptInRequired${said}): enable the region for the account, or ${rotate} for another account`);
    case 'Blocked':
      return out('credentials', `the account of provider ${provider} is blocked by AWS (Blocked): contact AWS Support, or ${rotate} for another account`);
    case 'IdempotentParameterMismatch':
      return out('parameters', `EC2 refused ${action}: its client token was used before with other parameters (IdempotentParameterMismatch${said}); the provisioner tries again with a new token`);
  }
  if (CAPACITY.has(code)) return out('capacity', `EC2 has no capacity for it in this zone (${code}${said})`);
  if (THROTTLED.has(code) || f.status === 429) return out('transient', `EC2 throttled provider ${provider} (${code}): the provisioner slows down and retries`);
  if (LIMIT.has(code) || (code.endsWith('LimitExceeded') && code !== 'RequestLimitExceeded')) {
    return out('limit', `an EC2 limit of the account of provider ${provider} was reached (${code}${said}): raise it in the AWS console (Service Quotas), or lower the cluster's target`);
  }
  if (code.startsWith('InvalidAMIID.')) return out('parameters', `EC2 does not offer the cluster's image (${code}${said}): give an AMI of this region with option image=`);
  if (code.startsWith('InvalidKeyPair.')) return out('parameters', `EC2 has no such key pair (${code}${said}): create it in this region or change option key-name`);
  if (code === 'VPCIdNotSpecified' || code === 'InvalidVpcID.NotFound') {
    return out('parameters', `the region has no default VPC (${code}${said}): weft puts nodes in the default VPC; create one with \`aws ec2 create-default-vpc\``);
  }
  if (SERVER.has(code) || (f.status !== undefined && f.status >= 500)) return out('transient', `EC2 failed to answer ${action} (${code}${said}): the provisioner retries`);
  if (NETWORK.has(code) || /^E[A-Z]{3,}$/.test(code)) {
    return out('transient', `EC2 could not be reached for ${action} (${code}${said}): the provisioner retries; check the provider's endpoint and this host's network if it persists`);
  }
  if (TLS.test(code)) return out('parameters', `the TLS certificate of the EC2 endpoint of provider ${provider} was refused (${code}${said}): check the endpoint`);
  if (f.status === 401 || f.status === 403) return out('credentials', `the credentials of provider ${provider} were refused by EC2 (${code}${said}): ${rotate}`);
  if (f.status !== undefined && f.status >= 400) return out('parameters', `EC2 refused ${action} (${code}${said}): check the cluster's node type and options`);
  // No answer and no code we know: a failure on the way, most likely.
  return out('transient', `${action} failed (${code}${said}): the provisioner retries`);
}

/** EC2's message as ": …", cut to its bound; empty when there is none worth adding. */
function words(message: string): string {
  const m = message.replace(/\s+/g, ' ').trim();
  if (m === '' || m === 'Unknown' || m === 'UnknownError') return '';
  return `: ${m.length > MAX_EC2_MESSAGE_CHARS ? `${m.slice(0, MAX_EC2_MESSAGE_CHARS)}…` : m}`;
}

/** Whether a refusal says the endpoint does not take TagSpecification (tag-on-create), as some
 *  EC2-compatible clouds do: by an unknown parameter, or an invalid value, naming it. */
export function rejectsTagSpecifications(f: Ec2Failure): boolean {
  return ['UnknownParameter', 'InvalidParameter', 'InvalidParameterValue', 'InvalidParameterCombination', 'UnsupportedOperation'].includes(f.code)
    && /tag[ _-]?specification/i.test(f.message);
}

/** Whether a refusal names MetadataOptions as unknown: an EC2-compatible cloud without IMDSv2
 *  settings, for the hint to use imds=optional. */
export function rejectsMetadataOptions(f: Ec2Failure): boolean {
  return ['UnknownParameter', 'InvalidParameter', 'InvalidParameterValue'].includes(f.code) && /metadata[ _-]?options/i.test(f.message);
}
