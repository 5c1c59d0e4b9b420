// The group a request is about, named by GroupId or (in the default VPC) GroupName.

import { Ec2Error, groupNotFound, malformedId, missingParameter } from '../errors.ts';
import { isWellFormedId } from '../ids.ts';
import type { QueryParams } from '../query-parse.ts';
import type { SecurityGroupRecord } from '../security-groups.ts';
import type { World } from '../world.ts';

export function groupById(groupId: string, world: World): SecurityGroupRecord {
  if (!isWellFormedId('sg', groupId)) throw malformedId('InvalidGroupId.Malformed', groupId);
  const group = world.groups.byId(groupId);
  if (!group) throw groupNotFound(groupId);
  return group;
}

export function groupByName(groupName: string, world: World): SecurityGroupRecord {
  const group = world.groups.byName(groupName);
  if (!group) {
    throw new Ec2Error(
      'InvalidGroup.NotFound',
      `The security group '${groupName}' does not exist in default VPC '${world.network.vpcId}'`,
    );
  }
  return group;
}

/** GroupId wins when both are given, as the id is what EC2 goes by. */
export function namedGroup(params: QueryParams, world: World): SecurityGroupRecord {
  const groupId = params.get('GroupId');
  if (groupId !== undefined && groupId !== '') return groupById(groupId, world);
  const groupName = params.get('GroupName');
  if (groupName !== undefined && groupName !== '') return groupByName(groupName, world);
  throw missingParameter('GroupId');
}
