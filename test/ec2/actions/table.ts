// Every action the double answers; any other is InvalidAction.

import type { ActionRow } from '../action.ts';
import { describeAvailabilityZones } from './describe-availability-zones.ts';
import { describeInstances } from './describe-instances.ts';
import { runInstances } from './run-instances.ts';
import {
  authorizeSecurityGroupIngress,
  createSecurityGroup,
  deleteSecurityGroup,
  describeSecurityGroups,
} from './security-group-actions.ts';
import { createTags, deleteTags } from './tag-actions.ts';
import { terminateInstances } from './terminate-instances.ts';

export const ACTIONS: ReadonlyMap<string, ActionRow> = new Map(
  [
    describeAvailabilityZones,
    runInstances,
    describeInstances,
    terminateInstances,
    createTags,
    deleteTags,
    createSecurityGroup,
    describeSecurityGroups,
    authorizeSecurityGroupIngress,
    deleteSecurityGroup,
  ].map((row) => [row.name, row]),
);
