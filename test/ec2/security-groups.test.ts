// Security groups through the real SDK: created, opened to their own members and to address
// ranges, described as EC2 merges rules, and not deletable while an instance or another
// group's rule uses them.

import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DeleteSecurityGroupCommand,
  DescribeSecurityGroupsCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { describe, expect, test } from 'vitest';
import { clientFor, launch, refusal, startDouble } from './helpers.ts';

describe('security groups', () => {
  test('created, opened to itself and a range, described with merged rules; a duplicate rule is refused', async () => {
    const ec2 = await startDouble();
    const client = clientFor(ec2);
    const created = await client.send(
      new CreateSecurityGroupCommand({
        GroupName: 'weft-mesh',
        Description: 'weft peers',
        TagSpecifications: [{ ResourceType: 'security-group', Tags: [{ Key: 'weft:cluster', Value: 'web' }] }],
      }),
    );
    const sg = created.GroupId ?? '';
    expect(sg).toMatch(/^sg-[0-9a-f]{17}$/);
    expect(await refusal(client.send(new CreateSecurityGroupCommand({ GroupName: 'weft-mesh', Description: 'again' })))).toMatchObject({
      code: 'InvalidGroup.Duplicate',
      status: 400,
    });

    const authorized = await client.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: sg,
        IpPermissions: [
          { IpProtocol: 'tcp', FromPort: 6783, ToPort: 6783, UserIdGroupPairs: [{ GroupId: sg, Description: 'mesh control' }] },
          { IpProtocol: 'udp', FromPort: 6783, ToPort: 6784, UserIdGroupPairs: [{ GroupId: sg }] },
          { IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '10.0.0.0/8' }, { CidrIp: '192.168.0.0/16' }] },
        ],
      }),
    );
    expect(authorized.Return).toBe(true);
    expect(authorized.SecurityGroupRules).toHaveLength(4);
    expect(authorized.SecurityGroupRules?.[0]).toMatchObject({
      GroupId: sg,
      IsEgress: false,
      IpProtocol: 'tcp',
      FromPort: 6783,
      ToPort: 6783,
      ReferencedGroupInfo: { GroupId: sg },
      Description: 'mesh control',
    });

    const described = await client.send(new DescribeSecurityGroupsCommand({ GroupIds: [sg] }));
    const group = described.SecurityGroups?.[0];
    expect(group).toMatchObject({ GroupName: 'weft-mesh', Description: 'weft peers', VpcId: ec2.vpcId, Tags: [{ Key: 'weft:cluster', Value: 'web' }] });
    expect(group?.IpPermissions).toEqual([
      {
        IpProtocol: 'tcp', FromPort: 6783, ToPort: 6783, IpRanges: [], Ipv6Ranges: [], PrefixListIds: [],
        UserIdGroupPairs: [{ UserId: ec2.accountId, GroupId: sg, Description: 'mesh control' }],
      },
      {
        IpProtocol: 'udp', FromPort: 6783, ToPort: 6784, IpRanges: [], Ipv6Ranges: [], PrefixListIds: [],
        UserIdGroupPairs: [{ UserId: ec2.accountId, GroupId: sg }],
      },
      {
        IpProtocol: 'tcp', FromPort: 22, ToPort: 22, UserIdGroupPairs: [], Ipv6Ranges: [], PrefixListIds: [],
        IpRanges: [{ CidrIp: '10.0.0.0/8' }, { CidrIp: '192.168.0.0/16' }],
      },
    ]);
    expect(group?.IpPermissionsEgress).toEqual([
      { IpProtocol: '-1', UserIdGroupPairs: [], IpRanges: [{ CidrIp: '0.0.0.0/0' }], Ipv6Ranges: [], PrefixListIds: [] },
    ]);

    const duplicate = await refusal(
      client.send(
        new AuthorizeSecurityGroupIngressCommand({
          GroupId: sg,
          IpPermissions: [{ IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '10.0.0.0/8' }] }],
        }),
      ),
    );
    expect(duplicate).toMatchObject({
      code: 'InvalidPermission.Duplicate',
      status: 400,
      message: 'the specified rule "peer: 10.0.0.0/8, TCP, from port: 22, to port: 22, ALLOW" already exists',
    });
    expect(ec2.securityGroups().find((g) => g.groupId === sg)?.ingress).toHaveLength(4);

    const byName = await client.send(new DescribeSecurityGroupsCommand({ GroupNames: ['weft-mesh'] }));
    expect(byName.SecurityGroups?.map((g) => g.GroupId)).toEqual([sg]);
    const byTag = await client.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'tag:weft:cluster', Values: ['web'] }] }));
    expect(byTag.SecurityGroups?.map((g) => g.GroupId)).toEqual([sg]);
    const all = await client.send(new DescribeSecurityGroupsCommand({}));
    expect(all.SecurityGroups?.map((g) => g.GroupName)).toEqual(['default', 'weft-mesh']);
  });

  test('rules are checked: protocol, ports, CIDR, a peer group that does not exist', async () => {
    const ec2 = await startDouble();
    const client = clientFor(ec2);
    const { GroupId: sg = '' } = await client.send(new CreateSecurityGroupCommand({ GroupName: 'g', Description: 'g' }));
    const authorize = (p: { IpProtocol: string; FromPort?: number; ToPort?: number; IpRanges?: { CidrIp: string }[]; UserIdGroupPairs?: { GroupId: string }[] }) =>
      refusal(client.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: sg, IpPermissions: [p] })));
    expect(await authorize({ IpProtocol: 'tcpx', FromPort: 1, ToPort: 2, IpRanges: [{ CidrIp: '10.0.0.0/8' }] })).toMatchObject({
      code: 'InvalidParameterValue',
    });
    expect(await authorize({ IpProtocol: 'tcp', FromPort: 1, IpRanges: [{ CidrIp: '10.0.0.0/8' }] })).toMatchObject({
      code: 'InvalidParameterValue',
    });
    expect(await authorize({ IpProtocol: 'tcp', FromPort: 1, ToPort: 70000, IpRanges: [{ CidrIp: '10.0.0.0/8' }] })).toMatchObject({
      code: 'InvalidParameterValue',
    });
    expect(await authorize({ IpProtocol: 'tcp', FromPort: 1, ToPort: 2, IpRanges: [{ CidrIp: '10.0.0.0/33' }] })).toMatchObject({
      code: 'InvalidParameterValue',
      message: 'CIDR block 10.0.0.0/33 is malformed',
    });
    expect(await authorize({ IpProtocol: '-1', UserIdGroupPairs: [{ GroupId: 'sg-0123456789abcdef0' }] })).toMatchObject({
      code: 'InvalidGroup.NotFound',
    });
    expect(
      await refusal(
        client.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: 'sg-0123456789abcdef0', IpProtocol: 'tcp', FromPort: 1, ToPort: 1, CidrIp: '0.0.0.0/0' })),
      ),
    ).toMatchObject({ code: 'InvalidGroup.NotFound', message: "The security group 'sg-0123456789abcdef0' does not exist" });
    expect(ec2.securityGroups().find((g) => g.groupId === sg)?.ingress).toEqual([]);
  });

  test('a group in use cannot be deleted until its instance is terminated; the default group never', async () => {
    const ec2 = await startDouble();
    const client = clientFor(ec2);
    const { GroupId: sg = '' } = await client.send(new CreateSecurityGroupCommand({ GroupName: 'weft', Description: 'weft' }));
    const id = (await client.send(launch({ SecurityGroupIds: [sg] }))).Instances?.[0]?.InstanceId ?? '';
    expect(ec2.instance(id)?.securityGroupIds).toEqual([sg]);

    expect(await refusal(client.send(new DeleteSecurityGroupCommand({ GroupId: sg })))).toMatchObject({
      code: 'DependencyViolation',
      status: 400,
      message: `resource ${sg} has a dependent object`,
    });
    await client.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect((await refusal(client.send(new DeleteSecurityGroupCommand({ GroupId: sg })))).code).toBe('DependencyViolation');
    await ec2.waitForState(id, 'terminated');
    const deleted = await client.send(new DeleteSecurityGroupCommand({ GroupId: sg }));
    expect(deleted).toMatchObject({ Return: true, GroupId: sg });
    expect((await refusal(client.send(new DescribeSecurityGroupsCommand({ GroupIds: [sg] })))).code).toBe('InvalidGroup.NotFound');

    const defaultGroup = ec2.securityGroups().find((g) => g.groupName === 'default')?.groupId;
    expect((await refusal(client.send(new DeleteSecurityGroupCommand({ GroupId: defaultGroup })))).code).toBe('CannotDelete');
    expect((await refusal(client.send(launch({ SecurityGroupIds: [sg] })))).code).toBe('InvalidGroup.NotFound');
  });

  test("a group another group's rule names is in use too", async () => {
    const ec2 = await startDouble();
    const client = clientFor(ec2);
    const { GroupId: a = '' } = await client.send(new CreateSecurityGroupCommand({ GroupName: 'a', Description: 'a' }));
    const { GroupId: b = '' } = await client.send(new CreateSecurityGroupCommand({ GroupName: 'b', Description: 'b' }));
    await client.send(
      new AuthorizeSecurityGroupIngressCommand({ GroupId: b, IpPermissions: [{ IpProtocol: '-1', UserIdGroupPairs: [{ GroupId: a }] }] }),
    );
    expect((await refusal(client.send(new DeleteSecurityGroupCommand({ GroupId: a })))).code).toBe('DependencyViolation');
    await client.send(new DeleteSecurityGroupCommand({ GroupId: b }));
    await client.send(new DeleteSecurityGroupCommand({ GroupName: 'a' }));
    expect(ec2.securityGroups().map((g) => g.groupName)).toEqual(['default']);
  });
});
