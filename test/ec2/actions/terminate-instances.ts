// TerminateInstances: each named instance starts shutting down (once; terminating it again
// changes nothing) and the answer gives its state before and after, as EC2's does.

import type { ActionRow } from '../action.ts';
import { missingParameter } from '../errors.ts';
import { instanceStateXml } from '../instance-xml.ts';
import { reasonTimestamp } from '../instances.ts';
import { el, itemSet } from '../xml.ts';
import { namedInstances } from './instance-ids.ts';

export const terminateInstances: ActionRow = {
  name: 'TerminateInstances',
  params: ['InstanceId'],
  handle(ctx) {
    const { params, world } = ctx;
    if (params.list('InstanceId').length === 0) throw missingParameter('InstanceId');
    const instances = namedInstances(params, world);
    ctx.checkDryRun();
    const changes = instances.map((instance) => {
      const previous = instance.state;
      if (previous === 'pending' || previous === 'running') {
        instance.state = 'shutting-down';
        instance.stateReason = {
          code: 'Client.UserInitiatedShutdown',
          message: 'Client.UserInitiatedShutdown: User initiated shutdown',
        };
        instance.transitionReason = `User initiated (${reasonTimestamp(world.clock())})`;
        world.lifecycle.terminating(instance);
      }
      return [
        el('instanceId', instance.instanceId),
        instanceStateXml('currentState', instance.state),
        instanceStateXml('previousState', previous),
      ];
    });
    return [itemSet('instancesSet', changes)];
  },
};
