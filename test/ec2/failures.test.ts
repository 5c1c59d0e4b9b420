// The failures weft's provisioner must handle, from the real SDK's side: capacity gone in one
// zone, the instance limit, throttling and injected errors (and how many calls the SDK's own
// retries make of them), a rejected credential, and an endpoint without tag-on-create.

import {
  CreateTagsCommand,
  DescribeAvailabilityZonesCommand,
  DescribeInstancesCommand,
} from '@aws-sdk/client-ec2';
import { describe, expect, test } from 'vitest';
import { clientFor, clusterTags, launch, refusal, startDouble } from './helpers.ts';

describe('capacity and limits', () => {
  test('a zone out of capacity refuses with InsufficientInstanceCapacity (500) while another zone launches', async () => {
    const ec2 = await startDouble();
    ec2.setZoneCapacity('us-east-1a', 0);
    const client = clientFor(ec2);
    const full = await refusal(client.send(launch({ InstanceType: 'c5.xlarge', Placement: { AvailabilityZone: 'us-east-1a' } })));
    expect(full).toMatchObject({ code: 'InsufficientInstanceCapacity', status: 500, fault: 'server' });
    expect(full.message).toContain('capacity in the Availability Zone you requested (us-east-1a)');
    expect(full.message).toContain('choosing us-east-1b');
    expect(ec2.calls('RunInstances')).toBe(1);

    const other = await client.send(launch({ Placement: { AvailabilityZone: 'us-east-1b' } }));
    expect(other.Instances?.[0]?.Placement?.AvailabilityZone).toBe('us-east-1b');
    // Left to choose, EC2 puts the instance where there is room.
    const anywhere = await client.send(launch());
    expect(anywhere.Instances?.[0]?.Placement?.AvailabilityZone).toBe('us-east-1b');
    expect(ec2.instances()).toHaveLength(2);
  });

  test("the SDK's default retry strategy sends a capacity refusal three times: a caller must not add a storm of its own", async () => {
    const ec2 = await startDouble();
    ec2.setZoneCapacity('us-east-1a', 0);
    const client = clientFor(ec2, { maxAttempts: 3 });
    const full = await refusal(client.send(launch({ Placement: { AvailabilityZone: 'us-east-1a' } })));
    expect(full.code).toBe('InsufficientInstanceCapacity');
    expect(ec2.calls('RunInstances')).toBe(3);
  });

  test('zone capacity counts down with each instance launched', async () => {
    const ec2 = await startDouble();
    ec2.setZoneCapacity('us-east-1a', 2);
    const client = clientFor(ec2);
    const two = await client.send(launch({ MinCount: 1, MaxCount: 5, Placement: { AvailabilityZone: 'us-east-1a' } }));
    expect(two.Instances).toHaveLength(2);
    expect((await refusal(client.send(launch({ Placement: { AvailabilityZone: 'us-east-1a' } })))).code).toBe(
      'InsufficientInstanceCapacity',
    );
    ec2.setZoneCapacity('us-east-1a', undefined);
    await client.send(launch({ Placement: { AvailabilityZone: 'us-east-1a' } }));
  });

  test('throttling: an empty bucket answers RequestLimitExceeded (503) for that action only', async () => {
    let now = Date.now();
    const ec2 = await startDouble({ clock: () => now });
    ec2.throttle({ actions: ['DescribeInstances'], capacity: 2, refillPerSecond: 1 });
    const client = clientFor(ec2);
    await client.send(new DescribeInstancesCommand({}));
    await client.send(new DescribeInstancesCommand({}));
    const throttled = await refusal(client.send(new DescribeInstancesCommand({})));
    expect(throttled).toMatchObject({ code: 'RequestLimitExceeded', status: 503, message: 'Request limit exceeded.' });
    await client.send(new DescribeAvailabilityZonesCommand({}));
    now += 1_000; // one token back
    await client.send(new DescribeInstancesCommand({}));
    expect(ec2.calls('DescribeInstances')).toBe(4);
  });

  test('failNext: the next calls of an action fail with the code asked for, then it works again', async () => {
    const ec2 = await startDouble();
    ec2.failNext(2, 'Unavailable', { action: 'DescribeInstances' });
    const client = clientFor(ec2);
    await client.send(new DescribeAvailabilityZonesCommand({})); // another action is not affected
    for (let i = 0; i < 2; i++) {
      expect(await refusal(client.send(new DescribeInstancesCommand({})))).toMatchObject({ code: 'Unavailable', status: 503 });
    }
    await client.send(new DescribeInstancesCommand({}));
    expect(ec2.calls('DescribeInstances')).toBe(3);
    expect(ec2.callLog().map((c) => c.code ?? c.status)).toEqual([200, 'Unavailable', 'Unavailable', 200]);
  });
});

describe('credentials', () => {
  test('a wrong secret is SignatureDoesNotMatch (403), an unknown key AuthFailure (401), another region AuthFailure', async () => {
    const ec2 = await startDouble();
    const wrongSecret = await refusal(clientFor(ec2, { secret: 'not-the-secret' }).send(launch()));
    expect(wrongSecret).toMatchObject({ code: 'SignatureDoesNotMatch', status: 403 });
    expect(wrongSecret.message).toContain('Check your AWS Secret Access Key');
    const unknownKey = await refusal(clientFor(ec2, { accessKeyId: 'AKIANOSUCHKEY0000000' }).send(launch()));
    expect(unknownKey).toMatchObject({
      code: 'AuthFailure',
      status: 401,
      message: 'AWS was not able to validate the provided access credentials',
    });
    const otherRegion = await refusal(clientFor(ec2, { region: 'eu-west-1' }).send(new DescribeInstancesCommand({})));
    expect(otherRegion).toMatchObject({ code: 'AuthFailure', status: 401 });
    expect(ec2.instances()).toHaveLength(0);
    expect(ec2.calls('RunInstances')).toBe(2);
  });
});

describe('an endpoint without tag-on-create', () => {
  test.each(['UnknownParameter', 'InvalidParameterValue'] as const)(
    'refuses TagSpecification with %s, launches without it, and CreateTags tags the instance',
    async (code) => {
      const ec2 = await startDouble();
      ec2.rejectTagSpecifications(code);
      const client = clientFor(ec2);
      const refused = await refusal(client.send(launch({ TagSpecifications: clusterTags('web', 'web-1') })));
      expect(refused).toMatchObject({ code, status: 400 });
      expect(ec2.instances()).toHaveLength(0);

      const id = (await client.send(launch())).Instances?.[0]?.InstanceId ?? '';
      await client.send(
        new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'weft:cluster', Value: 'web' }, { Key: 'weft:node', Value: 'web-1' }] }),
      );
      const found = await client.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:weft:cluster', Values: ['web'] }] }));
      expect(found.Reservations?.[0]?.Instances?.[0]?.Tags).toEqual([
        { Key: 'weft:cluster', Value: 'web' },
        { Key: 'weft:node', Value: 'web-1' },
      ]);
    },
  );
});

