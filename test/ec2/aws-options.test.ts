// The options of an aws node cluster (provisioner/providers/aws/aws-options.ts): what is
// accepted, and the line a user reads for what is not.

import { describe, expect, test } from 'vitest';
import { awsOptionsProblem, parseAwsOptions } from '../../provisioner/providers/aws/aws-options.ts';

const image = 'ami-0abcdef1234567890';

describe('aws cluster options', () => {
  test.each([
    [{ image }],
    [{ image, 'key-name': 'ops key', zones: 'us-east-1a, us-east-1b', address: 'public', imds: 'optional' }],
    [{ image, 'ssh-from': '203.0.113.0/24,10.0.0.0/8', 'mesh-from': '198.51.100.7/32' }],
    [{ image, 'security-group': 'sg-0123456789abcdef0' }],
    [{ image: 'emi-1234abcd' }],
  ])('accepted: %j', (options) => {
    expect(awsOptionsProblem(options)).toBeUndefined();
  });

  test.each([
    [{}, /needs option image=ami-/],
    [{ image: 'ubuntu 24.04' }, /not an AMI id.*not the image's name/],
    [{ image, flavour: 'x' }, /no option "flavour".*image, key-name/],
    [{ image, zones: '' }, /zones must name/],
    [{ image, zones: 'us east' }, /not an availability zone name/],
    [{ image, address: 'elastic' }, /private or public/],
    [{ image, 'ssh-from': '10.0.0.5/8' }, /host bits set: did you mean 10.0.0.0\/8/],
    [{ image, 'ssh-from': '300.0.0.0/8' }, /not an IPv4 range/],
    [{ image, 'mesh-from': '10.0.0.0' }, /not an IPv4 range/],
    [{ image, 'security-group': 'default' }, /not a security group id/],
    [{ image, 'security-group': 'sg-0123456789abcdef0', 'ssh-from': '10.0.0.0/8' }, /open them in that group yourself/],
    [{ image, imds: 'v1' }, /required or optional/],
  ])('refused: %j', (options, why) => {
    expect(awsOptionsProblem(options as Record<string, string>)).toMatch(why);
  });

  test('read with defaults: private address, IMDSv2 required, nothing extra open', () => {
    expect(parseAwsOptions({ image })).toEqual({ image, address: 'private', sshFrom: [], meshFrom: [], imds: 'required' });
    expect(parseAwsOptions({ image, zones: 'b,a,b', 'ssh-from': '10.0.0.0/8, 10.0.0.0/8' })).toMatchObject({ zones: ['b', 'a'], sshFrom: ['10.0.0.0/8'] });
    expect(() => parseAwsOptions({})).toThrow(/needs option image/);
  });
});
