// What a RunInstances request asks for, checked the way EC2 checks it: the AMI, the type, the
// counts, the zone (by Placement or subnet), key pair, security groups, user data (base64, at
// most 16 KB decoded) and the tags to put on the instances.

import { Ec2Error, groupNotFound, invalidValue, invalidValueFor, malformedId } from '../errors.ts';
import { isWellFormedId } from '../ids.ts';
import type { Zone } from '../network.ts';
import type { QueryParams } from '../query-parse.ts';
import { parseTagSpecifications, withTags } from '../tags.ts';
import type { World } from '../world.ts';

/** EC2's documented cap on user data: 16 KB before base64 encoding. */
export const MAX_USER_DATA_BYTES = 16 * 1024;
/** The reference's default when InstanceType is not given. */
const DEFAULT_INSTANCE_TYPE = 'm1.small';
/** Resource types RunInstances can tag on create; only instances are modelled, the others are
 *  accepted as EC2 accepts them. */
const TAGGABLE = ['instance', 'volume', 'network-interface'];

export interface LaunchRequest {
  imageId: string;
  instanceType: string;
  minCount: number;
  maxCount: number;
  zone: Zone | undefined;
  keyName: string | undefined;
  securityGroupIds: string[];
  userData: Buffer | undefined;
  tags: Map<string, string>;
}

export function readLaunchRequest(params: QueryParams, world: World): LaunchRequest {
  const imageId = params.require('ImageId');
  if (!isWellFormedId('ami', imageId)) throw malformedId('InvalidAMIID.Malformed', imageId);
  if (world.images && !world.images.has(imageId)) {
    throw new Ec2Error('InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
  }
  const instanceType = params.get('InstanceType') ?? DEFAULT_INSTANCE_TYPE;
  if (!/^[a-z0-9-]+\.[a-z0-9-]+$/.test(instanceType)) throw invalidValueFor('InstanceType', instanceType);
  params.require('MinCount');
  params.require('MaxCount');
  const minCount = params.int('MinCount', 1, Number.MAX_SAFE_INTEGER) ?? 1;
  const maxCount = params.int('MaxCount', 1, Number.MAX_SAFE_INTEGER) ?? 1;
  if (minCount > maxCount) throw invalidValue(`MinCount (${minCount}) is greater than MaxCount (${maxCount})`);

  const behaviour = params.get('InstanceInitiatedShutdownBehavior');
  if (behaviour !== undefined && behaviour !== 'stop' && behaviour !== 'terminate') {
    throw invalidValueFor('InstanceInitiatedShutdownBehavior', behaviour);
  }
  params.struct('MetadataOptions', ['HttpTokens', 'HttpEndpoint', 'HttpPutResponseHopLimit']);

  const keyName = params.get('KeyName');
  if (keyName !== undefined && world.keyPairs && !world.keyPairs.has(keyName)) {
    throw new Ec2Error('InvalidKeyPair.NotFound', `The key pair '${keyName}' does not exist`);
  }
  const tagSpecs = parseTagSpecifications(params, TAGGABLE);
  return {
    imageId,
    instanceType,
    minCount,
    maxCount,
    zone: readZone(params, world),
    keyName,
    securityGroupIds: readGroups(params, world),
    userData: readUserData(params.get('UserData')),
    tags: withTags(new Map(), tagSpecs.get('instance') ?? []),
  };
}

function readZone(params: QueryParams, world: World): Zone | undefined {
  const placement = params.struct('Placement', ['AvailabilityZone']).get('AvailabilityZone');
  const subnetId = params.get('SubnetId');
  const byName = placement === undefined || placement === '' ? undefined : world.network.zone(placement);
  if (placement && !byName) throw invalidValue(`Invalid availability zone: [${placement}]`);
  if (subnetId === undefined) return byName;
  const bySubnet = world.network.zones.find((z) => z.subnetId === subnetId);
  if (!bySubnet) throw new Ec2Error('InvalidSubnetID.NotFound', `The subnet ID '${subnetId}' does not exist`);
  if (byName && byName !== bySubnet) {
    throw new Ec2Error(
      'InvalidParameterCombination',
      `The subnet '${subnetId}' is in ${bySubnet.name}, not in the requested zone ${byName.name}`,
    );
  }
  return bySubnet;
}

function readGroups(params: QueryParams, world: World): string[] {
  const ids = params.list('SecurityGroupId').map((groupId) => {
    if (!isWellFormedId('sg', groupId)) throw malformedId('InvalidGroupId.Malformed', groupId);
    if (!world.groups.byId(groupId)) throw groupNotFound(groupId);
    return groupId;
  });
  const byName = params.list('SecurityGroup').map((name) => {
    const group = world.groups.byName(name);
    if (!group) throw groupNotFound(name);
    return group.groupId;
  });
  const all = [...new Set([...ids, ...byName])];
  // With no group given, EC2 puts the instance in its VPC's default group.
  return all.length > 0 ? all : [world.groups.defaultGroup().groupId];
}

function readUserData(encoded: string | undefined): Buffer | undefined {
  if (encoded === undefined) return undefined;
  if (encoded.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) {
    throw invalidValue('Invalid BASE64 encoding of user data.');
  }
  const data = Buffer.from(encoded, 'base64');
  if (data.length > MAX_USER_DATA_BYTES) throw invalidValue(`User data is limited to ${MAX_USER_DATA_BYTES} bytes`);
  return data;
}
