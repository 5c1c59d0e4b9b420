// RunInstances: launches MinCount..MaxCount instances in one zone, as many as the instance
// limit, the zone's capacity and its subnet allow, or none (EC2 launches no instances when
// it cannot launch MinCount). A ClientToken makes it idempotent: the same request with the same
// token answers with the reservation it made the first time; another request with that token
// is IdempotentParameterMismatch.

import type { ActionRow } from '../action.ts';
import { Ec2Error, invalidValue } from '../errors.ts';
import { newId } from '../ids.ts';
import { reservationXml } from '../instance-xml.ts';
import type { InstanceRecord, ReservationRecord } from '../instances.ts';
import { subnetFull, type Zone } from '../network.ts';
import type { QueryParams } from '../query-parse.ts';
import type { World } from '../world.ts';
import type { Part } from '../xml.ts';
import { type LaunchRequest, readLaunchRequest } from './launch-request.ts';

/** EC2's documented cap on a client token. */
const MAX_CLIENT_TOKEN_LENGTH = 64;

export const runInstances: ActionRow = {
  name: 'RunInstances',
  params: [
    'ImageId', 'InstanceType', 'MinCount', 'MaxCount', 'ClientToken', 'Placement', 'SubnetId', 'UserData',
    'SecurityGroupId', 'SecurityGroup', 'KeyName', 'TagSpecification', 'InstanceInitiatedShutdownBehavior',
    'MetadataOptions',
  ],
  handle(ctx) {
    const { params, world } = ctx;
    const request = readLaunchRequest(params, world);
    const token = params.get('ClientToken');
    if (token !== undefined) {
      if (token.length > MAX_CLIENT_TOKEN_LENGTH || !/^[\x20-\x7e]*$/.test(token)) {
        throw invalidValue(`The client token must be at most ${MAX_CLIENT_TOKEN_LENGTH} ASCII characters`);
      }
      const earlier = world.instances.byClientToken(token);
      if (earlier) return repeat(earlier, fingerprint(params), world);
    }
    ctx.checkDryRun();
    return launch(request, token, fingerprint(params), world);
  },
};

/** Everything a repeat must share with the first request: all but the token and DryRun. */
function fingerprint(params: QueryParams): string {
  return JSON.stringify(
    params
      .entries()
      .filter(([name]) => !['ClientToken', 'DryRun', 'Action', 'Version'].includes(name))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
}

function repeat(earlier: ReservationRecord, print: string, world: World): Part[] {
  if (earlier.fingerprint !== print) {
    throw new Ec2Error(
      'IdempotentParameterMismatch',
      'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).',
    );
  }
  const instances = earlier.instanceIds.flatMap((id) => world.instances.get(id) ?? []);
  return reservationXml(earlier, instances, world);
}

function launch(request: LaunchRequest, token: string | undefined, print: string, world: World): Part[] {
  const room = world.instanceLimit - world.instances.liveCount();
  if (room < request.minCount) {
    throw new Ec2Error(
      'InstanceLimitExceeded',
      `You have requested more instances (${request.minCount}) than your current instance limit of ` +
        `${world.instanceLimit} allows for the specified instance type. Please visit ` +
        'http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.',
    );
  }
  const zone = chooseZone(request, world);
  const capacity = world.faults.zoneCapacity.get(zone.name) ?? Number.POSITIVE_INFINITY;
  const count = Math.min(request.maxCount, room, capacity, world.network.freeAddresses(zone));
  if (count < request.minCount) throw subnetFull(zone);
  if (world.faults.zoneCapacity.has(zone.name)) world.faults.zoneCapacity.set(zone.name, capacity - count);

  const reservation: ReservationRecord = {
    reservationId: newId('r'),
    instanceIds: [],
    clientToken: token,
    fingerprint: print,
  };
  const launchTime = new Date(Math.floor(world.clock() / 1000) * 1000);
  const instances: InstanceRecord[] = Array.from({ length: count }, (_, index) => ({
    instanceId: newId('i'),
    reservationId: reservation.reservationId,
    imageId: request.imageId,
    instanceType: request.instanceType,
    zone: zone.name,
    subnetId: zone.subnetId,
    keyName: request.keyName,
    securityGroupIds: request.securityGroupIds,
    userData: request.userData,
    clientToken: token,
    launchTime,
    amiLaunchIndex: index,
    tags: new Map(request.tags),
    state: 'pending',
    privateIpAddress: world.network.allocatePrivateIp(zone),
    publicIpAddress: undefined,
    stateReason: undefined,
    transitionReason: '',
    listed: true,
  }));
  const stored = { ...reservation, instanceIds: instances.map((i) => i.instanceId) };
  world.instances.add(stored, instances);
  for (const instance of instances) world.lifecycle.launched(instance);
  return reservationXml(stored, instances, world);
}

/** The requested zone, or (as EC2 picks one for you) the first with room for MinCount. */
function chooseZone(request: LaunchRequest, world: World): Zone {
  const roomIn = (zone: Zone) => world.faults.zoneCapacity.get(zone.name) ?? Number.POSITIVE_INFINITY;
  const zone = request.zone ?? world.network.zones.find((z) => roomIn(z) >= request.minCount);
  if (zone && roomIn(zone) >= request.minCount) return zone;
  const others = world.network.zones.filter((z) => z !== zone && roomIn(z) >= request.minCount).map((z) => z.name);
  const type = request.instanceType;
  throw new Ec2Error(
    'InsufficientInstanceCapacity',
    zone
      ? `We currently do not have sufficient ${type} capacity in the Availability Zone you requested (${zone.name}). ` +
          'Our system will be working on provisioning additional capacity. You can currently get ' +
          `${type} capacity by not specifying an Availability Zone in your request` +
          (others.length ? ` or choosing ${others.join(', ')}.` : '.')
      : 'Insufficient capacity.',
  );
}
