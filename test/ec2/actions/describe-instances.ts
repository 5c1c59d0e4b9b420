// DescribeInstances: listed instances (terminated ones too, for a while), selected by
// InstanceId.N and filters, paged by MaxResults/NextToken, grouped into their reservations.

import type { ActionRow } from '../action.ts';
import { Ec2Error } from '../errors.ts';
import { applyFilters, type FilterTable, parseFilters } from '../filters.ts';
import { reservationXml } from '../instance-xml.ts';
import { type InstanceRecord, STATE_CODES } from '../instances.ts';
import { paginate, queryKey } from '../pagination.ts';
import type { World } from '../world.ts';
import { itemSet, opt, type Part } from '../xml.ts';
import { namedInstances } from './instance-ids.ts';

function instanceFilters(world: World): FilterTable<InstanceRecord> {
  return {
    'instance-id': (i) => [i.instanceId],
    'instance-state-name': (i) => [i.state],
    'instance-state-code': (i) => [String(STATE_CODES[i.state])],
    'client-token': (i) => [i.clientToken],
    'availability-zone': (i) => [i.zone],
    'image-id': (i) => [i.imageId],
    'instance-type': (i) => [i.instanceType],
    'key-name': (i) => [i.keyName],
    'reservation-id': (i) => [i.reservationId],
    'private-ip-address': (i) => [i.privateIpAddress],
    'ip-address': (i) => [i.publicIpAddress],
    'subnet-id': (i) => [i.state === 'terminated' ? undefined : i.subnetId],
    'vpc-id': (i) => [i.state === 'terminated' ? undefined : world.network.vpcId],
    'instance.group-id': (i) => i.securityGroupIds,
    'instance.group-name': (i) => i.securityGroupIds.map((id) => world.groups.byId(id)?.groupName),
  };
}

export const describeInstances: ActionRow = {
  name: 'DescribeInstances',
  params: ['InstanceId', 'Filter', 'MaxResults', 'NextToken'],
  handle(ctx) {
    const { params, world } = ctx;
    const named = params.has('InstanceId') ? namedInstances(params, world) : undefined;
    if (named && params.get('MaxResults') !== undefined) {
      throw new Ec2Error(
        'InvalidParameterCombination',
        'The parameter instancesSet cannot be used with the parameter maxResults',
      );
    }
    const selected = applyFilters(named ?? world.instances.listed(), parseFilters(params), instanceFilters(world), (i) => i.tags);
    ctx.checkDryRun();
    const page = paginate(selected, params, queryKey(params));
    return [itemSet('reservationSet', byReservation(page.items, world)), opt('nextToken', page.nextToken)];
  },
};

/** Groups a page's instances into their reservations, in the order they first appear. */
function byReservation(instances: readonly InstanceRecord[], world: World): Part[][] {
  const groups = new Map<string, InstanceRecord[]>();
  for (const instance of instances) {
    const group = groups.get(instance.reservationId) ?? [];
    group.push(instance);
    groups.set(instance.reservationId, group);
  }
  return [...groups].map(([reservationId, members]) => {
    const first = members[0];
    const reservation = { reservationId, instanceIds: members.map((m) => m.instanceId), clientToken: first?.clientToken, fingerprint: '' };
    return reservationXml(reservation, members, world);
  });
}
