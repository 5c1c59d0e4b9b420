// EC2's error codes as the double answers them, each with the HTTP status EC2 uses for it.
// The API reference (errors-overview) sorts codes into client errors (400-series) and server
// errors (500-series); the exact statuses below are what EC2 is seen to send for them.

/** A refusal that becomes an EC2 error document. */
export class Ec2Error extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, status = statusFor(code)) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/** Codes whose status is not the client default of 400. AuthFailure is 401 and
 *  SignatureDoesNotMatch 403 (EC2's answers to an unknown key and a wrong secret);
 *  DryRunOperation is 412; the capacity and internal codes are server errors (500), and
 *  EC2 throttles with RequestLimitExceeded on 503 ("Request limit exceeded."). */
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  AuthFailure: 401,
  MissingAuthenticationToken: 401,
  SignatureDoesNotMatch: 403,
  UnauthorizedOperation: 403,
  DryRunOperation: 412,
  InsufficientInstanceCapacity: 500,
  InsufficientCapacity: 500,
  InsufficientAddressCapacity: 500,
  InsufficientHostCapacity: 500,
  InternalError: 500,
  InternalFailure: 500,
  ServiceUnavailable: 503,
  Unavailable: 503,
  RequestLimitExceeded: 503,
};

/** EC2's client errors are all 400 unless listed above. */
const CLIENT_ERROR_STATUS = 400;

export function statusFor(code: string): number {
  return STATUS_BY_CODE[code] ?? CLIENT_ERROR_STATUS;
}

// The messages follow EC2's own wording where it is known, so a caller that shows the
// provider's words to an operator is tested with realistic ones.

export const missingParameter = (name: string): Ec2Error =>
  new Ec2Error('MissingParameter', `The request must contain the parameter ${name}`);

export const unknownParameter = (name: string): Ec2Error =>
  new Ec2Error('UnknownParameter', `The parameter ${name} is not recognized`);

export const invalidValue = (message: string): Ec2Error => new Ec2Error('InvalidParameterValue', message);

export const invalidValueFor = (name: string, value: string): Ec2Error =>
  invalidValue(`Invalid value '${value}' for ${name}`);

export const malformedQuery = (reason: string): Ec2Error => new Ec2Error('MalformedQueryString', reason);

export const authFailure = (): Ec2Error =>
  new Ec2Error('AuthFailure', 'AWS was not able to validate the provided access credentials');

export const signatureMismatch = (): Ec2Error =>
  new Ec2Error(
    'SignatureDoesNotMatch',
    'The request signature we calculated does not match the signature you provided. ' +
      'Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
  );

export const dryRunSucceeded = (): Ec2Error =>
  new Ec2Error('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.');

export const internalError = (): Ec2Error => new Ec2Error('InternalError', 'An internal error has occurred');

export const malformedId = (code: string, id: string): Ec2Error => new Ec2Error(code, `Invalid id: "${id}"`);

export function instancesNotFound(ids: readonly string[]): Ec2Error {
  const list = ids.join(', ');
  return new Ec2Error(
    'InvalidInstanceID.NotFound',
    ids.length === 1 ? `The instance ID '${list}' does not exist` : `The instance IDs '${list}' do not exist`,
  );
}

export const groupNotFound = (idOrName: string): Ec2Error =>
  new Ec2Error('InvalidGroup.NotFound', `The security group '${idOrName}' does not exist`);
