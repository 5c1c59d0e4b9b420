// The aws provider's reading of EC2 refusals (provisioner/providers/aws/ec2-errors.ts): each
// code the provisioner can meet, the kind it becomes (which decides whether the round moves to
// another zone, backs off, or stops and says so) and the one line the user reads.

import { describe, expect, test } from 'vitest';
import { classifyEc2Failure, type Ec2Failure, ec2Failure, MAX_EC2_MESSAGE_CHARS, rejectsMetadataOptions, rejectsTagSpecifications } from '../../provisioner/providers/aws/ec2-errors.ts';

const ctx = { provider: 'prod', action: 'RunInstances' };
const f = (code: string, status?: number, message = 'EC2 says so'): Ec2Failure => ({ code, ...(status !== undefined ? { status } : {}), message });

describe('EC2 refusals sorted into what the provisioner does', () => {
  test.each([
    // capacity: the round tries the next zone
    ['InsufficientInstanceCapacity', 500, 'capacity'],
    ['InsufficientCapacity', 500, 'capacity'],
    ['InsufficientHostCapacity', 500, 'capacity'],
    ['InsufficientFreeAddressesInSubnet', 400, 'capacity'],
    ['Unsupported', 400, 'capacity'],
    // limits: stop and say so
    ['InstanceLimitExceeded', 400, 'limit'],
    ['VcpuLimitExceeded', 400, 'limit'],
    ['SecurityGroupLimitExceeded', 400, 'limit'],
    ['RulesPerSecurityGroupLimitExceeded', 400, 'limit'],
    ['MaxSpotInstanceCountExceeded', 400, 'limit'],
    // credentials
    ['AuthFailure', 401, 'credentials'],
    ['SignatureDoesNotMatch', 403, 'credentials'],
    ['UnauthorizedOperation', 403, 'credentials'],
    ['InvalidClientTokenId', 403, 'credentials'],
    ['RequestExpired', 400, 'credentials'],
    ['OptInRequired', 401, 'credentials'],
    ['MissingAuthenticationToken', 401, 'credentials'],
    ['Blocked', 400, 'credentials'],
    // parameters
    ['InvalidParameterValue', 400, 'parameters'],
    ['InvalidAMIID.NotFound', 400, 'parameters'],
    ['InvalidAMIID.Malformed', 400, 'parameters'],
    ['InvalidKeyPair.NotFound', 400, 'parameters'],
    ['MissingParameter', 400, 'parameters'],
    ['IdempotentParameterMismatch', 400, 'parameters'],
    ['VPCIdNotSpecified', 400, 'parameters'],
    ['SomeNewClientError', 400, 'parameters'],
    ['CERT_HAS_EXPIRED', undefined, 'parameters'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', undefined, 'parameters'],
    // transient: retry with backoff
    ['RequestLimitExceeded', 503, 'transient'],
    ['Throttling', 400, 'transient'],
    ['SomeThrottle', 429, 'transient'],
    ['InternalError', 500, 'transient'],
    ['ServiceUnavailable', 503, 'transient'],
    ['Unavailable', 503, 'transient'],
    ['Unknown', 502, 'transient'],
    ['ECONNREFUSED', undefined, 'transient'],
    ['ECONNRESET', undefined, 'transient'],
    ['ENOTFOUND', undefined, 'transient'],
    ['TimeoutError', undefined, 'transient'],
    ['Error', undefined, 'transient'],
    // a 401/403 without a known code is still about credentials
    ['Unknown', 403, 'credentials'],
  ] as const)('%s (HTTP %s) is %s', (code, status, kind) => {
    const c = classifyEc2Failure(f(code, status), ctx);
    expect(c.kind).toBe(kind);
    expect(c.code).toBe(code);
    expect(c.message.length).toBeGreaterThan(10);
  });

  test('RequestLimitExceeded is throttling, not a limit to raise', () => {
    expect(classifyEc2Failure(f('RequestLimitExceeded', 503), ctx).kind).toBe('transient');
    expect(classifyEc2Failure(f('FooLimitExceeded', 400), ctx).kind).toBe('limit');
  });

  test('the messages say what to do', () => {
    expect(classifyEc2Failure(f('AuthFailure', 401), ctx).message).toMatch(/credentials of provider prod were refused by EC2.*weft provider rotate prod/);
    expect(classifyEc2Failure(f('SignatureDoesNotMatch', 403), ctx).message).toMatch(/secret access key of provider prod.*weft provider rotate prod/);
    expect(classifyEc2Failure(f('UnauthorizedOperation', 403), ctx).message).toMatch(/may not call RunInstances.*ec2:RunInstances/);
    expect(classifyEc2Failure(f('RequestExpired', 400), ctx).message).toMatch(/clock/);
    expect(classifyEc2Failure(f('InstanceLimitExceeded', 400), ctx).message).toMatch(/Service Quotas|lower the cluster's target/);
    expect(classifyEc2Failure(f('InvalidAMIID.NotFound', 400), ctx).message).toMatch(/option image=/);
    expect(classifyEc2Failure(f('InvalidKeyPair.NotFound', 400), ctx).message).toMatch(/key-name/);
    expect(classifyEc2Failure(f('ECONNREFUSED'), ctx).message).toMatch(/endpoint/);
  });

  test("a hostile endpoint's long message is cut; an empty one adds nothing", () => {
    const long = classifyEc2Failure(f('InvalidParameterValue', 400, 'x'.repeat(10_000)), ctx).message;
    expect(long.length).toBeLessThan(MAX_EC2_MESSAGE_CHARS + 200);
    expect(classifyEc2Failure(f('InternalError', 500, ''), ctx).message).not.toMatch(/: $/);
  });

  test('the SDK errors are read for code and status; a code that is not one is not passed on', () => {
    const service = Object.assign(new Error('Request limit exceeded.'), { name: 'RequestLimitExceeded', $metadata: { httpStatusCode: 503 } });
    expect(ec2Failure(service, service.message)).toEqual({ code: 'RequestLimitExceeded', status: 503, message: 'Request limit exceeded.' });
    const network = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', $metadata: { attempts: 1 } });
    expect(ec2Failure(network, network.message)).toEqual({ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:1' });
    const timeout = Object.assign(new Error('timed out'), { name: 'TimeoutError', code: 'ETIMEDOUT' });
    expect(ec2Failure(timeout, 'timed out').code).toBe('TimeoutError');
    const hostile = Object.assign(new Error('x'), { name: '<script>alert(1)</script>', $metadata: { httpStatusCode: 400 } });
    expect(ec2Failure(hostile, 'x').code).toBe('Unknown');
    expect(ec2Failure('a string', 'a string').code).toBe('Unknown');
  });

  test('an endpoint without tag-on-create is recognised by either refusal, and only by one naming TagSpecification', () => {
    expect(rejectsTagSpecifications(f('UnknownParameter', 400, 'The parameter TagSpecification is not recognized'))).toBe(true);
    expect(rejectsTagSpecifications(f('InvalidParameterValue', 400, 'The parameter TagSpecification is not supported for this resource type'))).toBe(true);
    expect(rejectsTagSpecifications(f('InvalidParameterValue', 400, "Invalid value 'x' for InstanceType"))).toBe(false);
    expect(rejectsTagSpecifications(f('InternalError', 500, 'TagSpecification broke'))).toBe(false);
    expect(rejectsMetadataOptions(f('UnknownParameter', 400, 'The parameter MetadataOptions is not recognized'))).toBe(true);
  });
});
