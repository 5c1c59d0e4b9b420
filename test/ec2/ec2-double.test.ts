// The EC2 double driven by the real @aws-sdk/client-ec2, as weft's provisioner drives EC2:
// zones, launching with a client token, finding instances by tag and state, terminating, tags,
// and the hooks that let a test make an instance real. Failures are in failures.test.ts,
// security groups in security-groups.test.ts.

import {
  CreateSecurityGroupCommand,
  CreateTagsCommand,
  DeleteTagsCommand,
  DescribeAvailabilityZonesCommand,
  DescribeInstancesCommand,
  paginateDescribeInstances,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { describe, expect, test } from 'vitest';
import type { LaunchedInstance } from './ec2-double.ts';
import { clientFor, clusterTags, IMAGE, launch, refusal, startDouble } from './helpers.ts';

describe('zones', () => {
  test('DescribeAvailabilityZones lists the configured zones with EC2-style zone ids', async () => {
    const ec2 = await startDouble({ region: 'eu-central-1', zones: ['eu-central-1a', 'eu-central-1b', 'eu-central-1c'] });
    const client = clientFor(ec2);
    const out = await client.send(new DescribeAvailabilityZonesCommand({}));
    expect(out.AvailabilityZones?.map((z) => [z.ZoneName, z.ZoneId, z.State, z.RegionName])).toEqual([
      ['eu-central-1a', 'euc1-az1', 'available', 'eu-central-1'],
      ['eu-central-1b', 'euc1-az2', 'available', 'eu-central-1'],
      ['eu-central-1c', 'euc1-az3', 'available', 'eu-central-1'],
    ]);
    const filtered = await client.send(
      new DescribeAvailabilityZonesCommand({ Filters: [{ Name: 'zone-name', Values: ['*-1b'] }] }),
    );
    expect(filtered.AvailabilityZones?.map((z) => z.ZoneName)).toEqual(['eu-central-1b']);
    const unknown = await refusal(client.send(new DescribeAvailabilityZonesCommand({ ZoneNames: ['eu-central-1z'] })));
    expect(unknown).toMatchObject({ code: 'InvalidParameterValue', status: 400 });
  });
});

describe('launching', () => {
  test('an instance has its private address while pending, and a public one once running', async () => {
    const ec2 = await startDouble({ launchDelayMs: 100 });
    const client = clientFor(ec2);
    const out = await client.send(launch({ Placement: { AvailabilityZone: 'us-east-1b' } }));
    const instance = out.Instances?.[0];
    expect(out.ReservationId).toMatch(/^r-[0-9a-f]{17}$/);
    expect(instance?.InstanceId).toMatch(/^i-[0-9a-f]{17}$/);
    expect(instance?.State).toEqual({ Code: 0, Name: 'pending' });
    expect(instance?.Placement?.AvailabilityZone).toBe('us-east-1b');
    expect(instance?.PrivateIpAddress).toMatch(/^172\.31\.16\.\d+$/); // the second zone's /20
    expect(instance?.PublicIpAddress).toBeUndefined();
    expect(instance?.PublicDnsName).toBe('');

    await ec2.waitForState(instance?.InstanceId ?? '', 'running');
    const described = await client.send(new DescribeInstancesCommand({ InstanceIds: [instance?.InstanceId ?? ''] }));
    const now = described.Reservations?.[0]?.Instances?.[0];
    expect(now?.State).toEqual({ Code: 16, Name: 'running' });
    expect(now?.PrivateIpAddress).toBe(instance?.PrivateIpAddress);
    expect(now?.PublicIpAddress).toMatch(/^(198\.51\.100|203\.0\.113)\.\d+$/);
    expect(now?.PrivateDnsName).toBe(`ip-${now?.PrivateIpAddress?.replaceAll('.', '-')}.ec2.internal`);
    expect(now?.PublicDnsName).toMatch(/\.compute-1\.amazonaws\.com$/);
    expect(now?.SecurityGroups?.map((g) => g.GroupName)).toEqual(['default']);
  });

  test('the same ClientToken returns the same reservation; the token with another request is refused', async () => {
    const ec2 = await startDouble();
    const client = clientFor(ec2);
    const first = await client.send(launch({ ClientToken: 'node-web-1-attempt-1', TagSpecifications: clusterTags('web', 'web-1') }));
    const again = await client.send(launch({ ClientToken: 'node-web-1-attempt-1', TagSpecifications: clusterTags('web', 'web-1') }));
    expect(again.ReservationId).toBe(first.ReservationId);
    expect(again.Instances?.map((i) => i.InstanceId)).toEqual(first.Instances?.map((i) => i.InstanceId));
    expect(ec2.instances()).toHaveLength(1);

    const other = await refusal(client.send(launch({ ClientToken: 'node-web-1-attempt-1', InstanceType: 'm5.large' })));
    expect(other).toMatchObject({ code: 'IdempotentParameterMismatch', status: 400 });
    expect(ec2.instances()).toHaveLength(1);

    // A token is kept even after its instance has gone: a late retry finds it, terminated.
    const id = first.Instances?.[0]?.InstanceId ?? '';
    await client.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    await ec2.waitForState(id, 'terminated');
    const late = await client.send(launch({ ClientToken: 'node-web-1-attempt-1', TagSpecifications: clusterTags('web', 'web-1') }));
    expect(late.Instances?.[0]).toMatchObject({ InstanceId: id, State: { Name: 'terminated' } });
    expect(ec2.instances()).toHaveLength(1);
  });

  test('the SDK sends a ClientToken of its own when the caller gives none', async () => {
    const ec2 = await startDouble();
    await clientFor(ec2).send(launch());
    expect(ec2.instances()[0]?.clientToken).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('MaxCount is filled as far as the instance limit allows; below MinCount nothing launches', async () => {
    const ec2 = await startDouble({ instanceLimit: 3 });
    const client = clientFor(ec2);
    const some = await client.send(launch({ MinCount: 2, MaxCount: 5 }));
    expect(some.Instances).toHaveLength(3);
    expect(some.Instances?.map((i) => i.AmiLaunchIndex)).toEqual([0, 1, 2]);
    const over = await refusal(client.send(launch()));
    expect(over).toMatchObject({ code: 'InstanceLimitExceeded', status: 400, fault: 'client' });
    expect(over.message).toContain('current instance limit of 3');
    expect(ec2.instances()).toHaveLength(3);
  });

  test('the request is checked: a missing ImageId, a malformed AMI, a bad type, bad user data, an unknown zone', async () => {
    const ec2 = await startDouble({ images: [IMAGE] });
    const client = clientFor(ec2);
    expect(await refusal(client.send(launch({ ImageId: undefined })))).toMatchObject({
      code: 'MissingParameter',
      status: 400,
      message: 'The request must contain the parameter ImageId',
    });
    expect(await refusal(client.send(launch({ ImageId: 'ubuntu' })))).toMatchObject({ code: 'InvalidAMIID.Malformed' });
    expect(await refusal(client.send(launch({ ImageId: 'ami-12345678' })))).toMatchObject({ code: 'InvalidAMIID.NotFound' });
    expect(await refusal(client.send(launch({ InstanceType: 'NOT A TYPE' as 't3.small' })))).toMatchObject({
      code: 'InvalidParameterValue',
    });
    expect(await refusal(client.send(launch({ UserData: 'not base64!' })))).toMatchObject({
      code: 'InvalidParameterValue',
      message: 'Invalid BASE64 encoding of user data.',
    });
    const tooBig = Buffer.alloc(16 * 1024 + 1, 'x').toString('base64');
    expect(await refusal(client.send(launch({ UserData: tooBig })))).toMatchObject({ code: 'InvalidParameterValue' });
    expect(await refusal(client.send(launch({ Placement: { AvailabilityZone: 'us-east-1z' } })))).toMatchObject({
      code: 'InvalidParameterValue',
      message: 'Invalid availability zone: [us-east-1z]',
    });
    expect(await refusal(client.send(launch({ MinCount: 3, MaxCount: 2 })))).toMatchObject({ code: 'InvalidParameterValue' });
    expect(ec2.instances()).toHaveLength(0);
  });

  test('a parameter the double does not model is refused by name rather than ignored', async () => {
    const ec2 = await startDouble();
    const refused = await refusal(clientFor(ec2).send(launch({ Ipv6AddressCount: 1 })));
    expect(refused).toMatchObject({ code: 'UnknownParameter', status: 400, message: 'The parameter Ipv6AddressCount is not recognized' });
  });

  test('DryRun answers DryRunOperation (412) and launches nothing', async () => {
    const ec2 = await startDouble();
    const dry = await refusal(clientFor(ec2).send(launch({ DryRun: true })));
    expect(dry).toMatchObject({ code: 'DryRunOperation', status: 412 });
    expect(ec2.instances()).toHaveLength(0);
  });
});

describe('finding instances', () => {
  test('by tag, tag key, state and client token', async () => {
    const ec2 = await startDouble({ launchDelayMs: 60_000 });
    const client = clientFor(ec2);
    const web = await client.send(launch({ ClientToken: 'tok-web-1', TagSpecifications: clusterTags('web', 'web-1') }));
    const db = await client.send(launch({ ClientToken: 'tok-db-1', TagSpecifications: clusterTags('db', 'db-1') }));
    const bare = await client.send(launch());
    const ids = (filters: { Name: string; Values: string[] }[]) =>
      client
        .send(new DescribeInstancesCommand({ Filters: filters }))
        .then((out) => (out.Reservations ?? []).flatMap((r) => (r.Instances ?? []).map((i) => i.InstanceId)));
    const webId = web.Instances?.[0]?.InstanceId;
    const dbId = db.Instances?.[0]?.InstanceId;
    expect(await ids([{ Name: 'tag:weft:cluster', Values: ['web'] }])).toEqual([webId]);
    expect(await ids([{ Name: 'tag:weft:cluster', Values: ['web', 'db'] }])).toEqual([webId, dbId]);
    expect(await ids([{ Name: 'tag:weft:node', Values: ['*-1'] }])).toEqual([webId, dbId]);
    expect(await ids([{ Name: 'tag-key', Values: ['weft:cluster'] }])).toEqual([webId, dbId]);
    expect(await ids([{ Name: 'client-token', Values: ['tok-db-1'] }])).toEqual([dbId]);
    expect(await ids([{ Name: 'instance-state-name', Values: ['pending'] }])).toHaveLength(3);
    expect(
      await ids([
        { Name: 'tag:weft:cluster', Values: ['web'] },
        { Name: 'instance-state-name', Values: ['running'] },
      ]),
    ).toEqual([]);
    expect(await ids([])).toEqual([webId, dbId, bare.Instances?.[0]?.InstanceId]);
    expect(await refusal(ids([{ Name: 'no-such-filter', Values: ['x'] }]))).toMatchObject({
      code: 'InvalidParameterValue',
      message: "The filter 'no-such-filter' is invalid",
    });
  });

  test('pages with MaxResults and NextToken, through the SDK paginator', async () => {
    const ec2 = await startDouble({ instanceLimit: 100 });
    const client = clientFor(ec2);
    const launched = await client.send(launch({ MinCount: 12, MaxCount: 12, TagSpecifications: clusterTags('big', 'n') }));
    const pages: number[] = [];
    const seen: string[] = [];
    for await (const page of paginateDescribeInstances(
      { client, pageSize: 5 },
      { Filters: [{ Name: 'tag:weft:cluster', Values: ['big'] }] },
    )) {
      const ids = (page.Reservations ?? []).flatMap((r) => (r.Instances ?? []).map((i) => i.InstanceId ?? ''));
      pages.push(ids.length);
      seen.push(...ids);
    }
    expect(pages).toEqual([5, 5, 2]);
    expect(seen).toEqual(launched.Instances?.map((i) => i.InstanceId));

    expect(await refusal(client.send(new DescribeInstancesCommand({ MaxResults: 3 })))).toMatchObject({
      code: 'InvalidParameterValue',
    });
    expect(await refusal(client.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: 'bogus' })))).toMatchObject({
      code: 'InvalidPaginationToken',
    });
    expect(
      await refusal(client.send(new DescribeInstancesCommand({ MaxResults: 5, InstanceIds: [seen[0] ?? ''] }))),
    ).toMatchObject({ code: 'InvalidParameterCombination' });
    // A token belongs to its query: replayed with other filters it is refused.
    const first = await client.send(new DescribeInstancesCommand({ MaxResults: 5 }));
    expect(
      await refusal(
        client.send(
          new DescribeInstancesCommand({ MaxResults: 5, NextToken: first.NextToken, Filters: [{ Name: 'instance-state-name', Values: ['pending'] }] }),
        ),
      ),
    ).toMatchObject({ code: 'InvalidPaginationToken' });
  });

  test('unknown and malformed instance ids', async () => {
    const ec2 = await startDouble();
    const client = clientFor(ec2);
    expect(await refusal(client.send(new DescribeInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] })))).toMatchObject({
      code: 'InvalidInstanceID.NotFound',
      status: 400,
      message: "The instance ID 'i-0123456789abcdef0' does not exist",
    });
    expect(await refusal(client.send(new TerminateInstancesCommand({ InstanceIds: ['web-1'] })))).toMatchObject({
      code: 'InvalidInstanceID.Malformed',
    });
  });
});

describe('terminating', () => {
  test('shutting-down, then terminated and still listed without addresses, then gone', async () => {
    const ec2 = await startDouble({ terminatedVisibleMs: 300 });
    const client = clientFor(ec2);
    const id = (await client.send(launch())).Instances?.[0]?.InstanceId ?? '';
    await ec2.waitForState(id, 'running');
    const out = await client.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect(out.TerminatingInstances).toEqual([
      { InstanceId: id, CurrentState: { Code: 32, Name: 'shutting-down' }, PreviousState: { Code: 16, Name: 'running' } },
    ]);
    await ec2.waitForState(id, 'terminated');
    const described = await client.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    const instance = described.Reservations?.[0]?.Instances?.[0];
    expect(instance?.State).toEqual({ Code: 48, Name: 'terminated' });
    expect(instance?.PrivateIpAddress).toBeUndefined();
    expect(instance?.PublicIpAddress).toBeUndefined();
    expect(instance?.StateReason?.Code).toBe('Client.UserInitiatedShutdown');
    expect(instance?.StateTransitionReason).toMatch(/^User initiated \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT\)$/);

    const again = await client.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect(again.TerminatingInstances?.[0]).toMatchObject({ CurrentState: { Name: 'terminated' }, PreviousState: { Name: 'terminated' } });

    await new Promise((resolve) => setTimeout(resolve, 400));
    expect((await refusal(client.send(new DescribeInstancesCommand({ InstanceIds: [id] })))).code).toBe('InvalidInstanceID.NotFound');
    expect((await client.send(new DescribeInstancesCommand({}))).Reservations).toEqual([]);
  });
});

describe('hooks that make an instance real', () => {
  test('onLaunch gets the decoded user data and may set the address; the instance runs when the hook is done', async () => {
    let release: () => void = () => {};
    const hookDone = new Promise<void>((resolve) => {
      release = resolve;
    });
    const seen: LaunchedInstance[] = [];
    const terminated: string[] = [];
    const ec2 = await startDouble({
      launchDelayMs: 0,
      async onLaunch(instance) {
        seen.push(instance);
        instance.setPrivateIp('10.99.0.7'); // the test host's address
        await hookDone;
      },
      onTerminate: (instance) => {
        terminated.push(instance.instanceId);
      },
    });
    const client = clientFor(ec2);
    const script = '#!/bin/sh\nweft launch --join 10.99.0.1 --token s3cr3t\n';
    const out = await client.send(
      launch({ UserData: Buffer.from(script).toString('base64'), TagSpecifications: clusterTags('web', 'web-1') }),
    );
    const id = out.Instances?.[0]?.InstanceId ?? '';
    await expect.poll(() => seen.length).toBe(1);
    expect(seen[0]?.userDataText).toBe(script);
    expect(seen[0]?.tags).toEqual({ 'weft:cluster': 'web', 'weft:node': 'web-1' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(ec2.instance(id)?.state).toBe('pending'); // the launch delay is 0: it waits for the hook

    release();
    await ec2.waitForState(id, 'running');
    const described = await client.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(described.Reservations?.[0]?.Instances?.[0]?.PrivateIpAddress).toBe('10.99.0.7');

    await client.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    await ec2.waitForState(id, 'terminated');
    expect(terminated).toEqual([id]);
  });

  test('a launch hook that fails terminates the instance with Server.InternalError', async () => {
    const ec2 = await startDouble({
      onLaunch: () => {
        throw new Error('the test host did not come up');
      },
    });
    const client = clientFor(ec2);
    const id = (await client.send(launch())).Instances?.[0]?.InstanceId ?? '';
    await ec2.waitForState(id, 'terminated');
    const described = await client.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(described.Reservations?.[0]?.Instances?.[0]?.StateReason?.Code).toBe('Server.InternalError');
  });
});

describe('tags', () => {
  test('CreateTags and DeleteTags on instances and groups, with EC2 value matching and limits', async () => {
    const ec2 = await startDouble();
    const client = clientFor(ec2);
    const id = (await client.send(launch())).Instances?.[0]?.InstanceId ?? '';
    const { GroupId: sg = '' } = await client.send(new CreateSecurityGroupCommand({ GroupName: 'weft', Description: 'weft mesh' }));
    await client.send(
      new CreateTagsCommand({ Resources: [id, sg], Tags: [{ Key: 'a', Value: '1' }, { Key: 'b', Value: '2' }, { Key: 'c' }] }),
    );
    expect(ec2.instance(id)?.tags).toEqual({ a: '1', b: '2', c: '' });
    expect(ec2.securityGroups().find((g) => g.groupId === sg)?.tags).toEqual({ a: '1', b: '2', c: '' });

    await client.send(new DeleteTagsCommand({ Resources: [id], Tags: [{ Key: 'a', Value: 'not-1' }, { Key: 'b' }] }));
    expect(ec2.instance(id)?.tags).toEqual({ a: '1', c: '' }); // a kept: its value differs
    await client.send(new DeleteTagsCommand({ Resources: [id] }));
    expect(ec2.instance(id)?.tags).toEqual({});

    const fiftyOne = Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));
    expect(await refusal(client.send(new CreateTagsCommand({ Resources: [id], Tags: fiftyOne })))).toMatchObject({
      code: 'TagLimitExceeded',
    });
    expect(await refusal(client.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'aws:x', Value: 'v' }] })))).toMatchObject({
      code: 'InvalidParameterValue',
    });
    expect(
      await refusal(client.send(new CreateTagsCommand({ Resources: ['i-0123456789abcdef0'], Tags: [{ Key: 'a', Value: '1' }] }))),
    ).toMatchObject({ code: 'InvalidInstanceID.NotFound' });
    expect(ec2.instance(id)?.tags).toEqual({});
  });
});

