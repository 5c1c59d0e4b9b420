// An instance and a reservation as EC2's Query API writes them (RunInstances and
// DescribeInstances share the shape), with element names from the API reference's
// Instance type: instanceState, dnsName, ipAddress, groupSet, tagSet and the rest.

import { type InstanceRecord, type ReservationRecord, STATE_CODES } from './instances.ts';
import { tagSetXml } from './tags.ts';
import type { World } from './world.ts';
import { el, itemSet, opt, type Part, type Xml } from './xml.ts';

export function instanceStateXml(name: string, state: InstanceRecord['state']): Xml {
  return el(name, el('code', STATE_CODES[state]), el('name', state));
}

export function instanceXml(instance: InstanceRecord, world: World): Part[] {
  const ended = instance.state === 'terminated';
  const running = instance.state === 'running';
  const privateIp = instance.privateIpAddress;
  return [
    el('instanceId', instance.instanceId),
    el('imageId', instance.imageId),
    instanceStateXml('instanceState', instance.state),
    // Host names appear once the instance runs, per the reference's Instance type.
    el('privateDnsName', running && privateIp ? world.network.privateDnsName(privateIp) : undefined),
    el('dnsName', running && instance.publicIpAddress ? world.network.publicDnsName(instance.publicIpAddress) : undefined),
    el('reason', instance.transitionReason),
    opt('keyName', instance.keyName),
    el('amiLaunchIndex', instance.amiLaunchIndex),
    el('productCodes'),
    el('instanceType', instance.instanceType),
    el('launchTime', instance.launchTime.toISOString()),
    el('placement', el('availabilityZone', instance.zone), el('groupName'), el('tenancy', 'default')),
    el('monitoring', el('state', 'disabled')),
    ended ? undefined : el('subnetId', instance.subnetId),
    ended ? undefined : el('vpcId', world.network.vpcId),
    opt('privateIpAddress', privateIp),
    opt('ipAddress', instance.publicIpAddress),
    ended ? undefined : el('sourceDestCheck', true),
    itemSet(
      'groupSet',
      instance.securityGroupIds.map((groupId) => [el('groupId', groupId), opt('groupName', world.groups.byId(groupId)?.groupName)]),
    ),
    instance.stateReason && el('stateReason', el('code', instance.stateReason.code), el('message', instance.stateReason.message)),
    el('architecture', 'x86_64'),
    el('rootDeviceType', 'ebs'),
    el('rootDeviceName', '/dev/xvda'),
    el('blockDeviceMapping'),
    el('virtualizationType', 'hvm'),
    el('clientToken', instance.clientToken),
    tagSetXml(instance.tags),
    el('hypervisor', 'xen'),
    el('ebsOptimized', false),
    el('enaSupport', true),
  ];
}

/** A reservation's members (RunInstances' whole response, DescribeInstances' items), with the
 *  given instances of it. `groupSet` is empty: the reference marks it unsupported in a VPC. */
export function reservationXml(reservation: ReservationRecord, instances: readonly InstanceRecord[], world: World): Part[] {
  return [
    el('reservationId', reservation.reservationId),
    el('ownerId', world.accountId),
    el('groupSet'),
    itemSet('instancesSet', instances.map((instance) => instanceXml(instance, world))),
  ];
}
