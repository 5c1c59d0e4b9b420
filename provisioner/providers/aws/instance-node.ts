// An EC2 instance as the provisioner sees it (provider.ts's ProviderNode). Pure.

import type { Instance } from '@aws-sdk/client-ec2';
import type { ProviderNode } from '../../provider.ts';
import { TAG_CLIENT_TOKEN, TAG_NAME, TAG_NODE, tagMap } from './weft-tags.ts';

/** EC2's instance states (the API reference's InstanceState) in the provisioner's four. A
 *  stopped machine is replaced, not started again: its peer's state is stale and its address
 *  may have changed. An unknown state (an EC2-compatible cloud's own) counts as pending: the
 *  provision timeout replaces it if it never runs. */
const STATES: Readonly<Record<string, ProviderNode['state']>> = {
  pending: 'pending',
  running: 'running',
  stopping: 'stopped',
  stopped: 'stopped',
  'shutting-down': 'terminated',
  terminated: 'terminated',
};

/** The instance states a cluster's listing asks for: all but `terminated`, which EC2 keeps
 *  listing for about an hour and which the provisioner has no use for. `shutting-down` stays:
 *  such an instance still holds the cluster's security group. */
export const LISTED_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];

export function nodeState(name: string | undefined): ProviderNode['state'] {
  return (name !== undefined && Object.hasOwn(STATES, name) ? STATES[name] : undefined) ?? 'pending';
}

/** The node an instance is. Its slot and client token come from weft's tags; an instance made
 *  by hand carries neither, and then its own client token (or id) stands for it, which no node
 *  record holds, so the provisioner sees an orphan. Its address only once it is `running`: a
 *  pending instance's address may not be final, and nothing listens on it yet (Docker Machine
 *  read addresses too early). */
export function providerNode(instance: Instance, cluster: string, address: 'private' | 'public'): ProviderNode | undefined {
  const id = instance.InstanceId;
  if (id === undefined || id === '') return undefined;
  const tags = tagMap(instance.Tags);
  const state = nodeState(instance.State?.Name);
  const ip = address === 'public' ? instance.PublicIpAddress : instance.PrivateIpAddress;
  return {
    id,
    node: tags.get(TAG_NODE) || tags.get(TAG_NAME) || id,
    cluster,
    clientToken: tags.get(TAG_CLIENT_TOKEN) || instance.ClientToken || id,
    zone: instance.Placement?.AvailabilityZone ?? '',
    state,
    ...(state === 'running' && ip ? { address: ip } : {}),
  };
}
