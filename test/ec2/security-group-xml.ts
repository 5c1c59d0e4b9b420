// Security groups and rules as EC2 writes them: a group's rules merged into IpPermission items
// (one per protocol and port range, its peers under <groups> and <ipRanges>), and the
// SecurityGroupRule items AuthorizeSecurityGroupIngress answers with.

import type { SecurityGroupRecord, SecurityGroupRule } from './security-groups.ts';
import { tagSetXml } from './tags.ts';
import type { World } from './world.ts';
import { el, itemSet, opt, type Part, type Xml } from './xml.ts';

export function securityGroupArn(world: World, groupId: string): string {
  return `arn:aws:ec2:${world.region}:${world.accountId}:security-group/${groupId}`;
}

function ipPermissionsXml(name: string, rules: readonly SecurityGroupRule[]): Xml {
  const merged = new Map<string, SecurityGroupRule[]>();
  for (const rule of rules) {
    const key = `${rule.protocol}|${rule.fromPort ?? ''}|${rule.toPort ?? ''}`;
    merged.set(key, [...(merged.get(key) ?? []), rule]);
  }
  return itemSet(
    name,
    [...merged.values()].map((same) => {
      const first = same[0];
      const groups = same.flatMap((r) => (r.peer.kind === 'group' ? [{ rule: r, peer: r.peer }] : []));
      const ranges = same.flatMap((r) => (r.peer.kind === 'cidr' ? [{ rule: r, peer: r.peer }] : []));
      return [
        el('ipProtocol', first?.protocol),
        opt('fromPort', first?.fromPort),
        opt('toPort', first?.toPort),
        itemSet('groups', groups.map(({ rule, peer }) => [el('userId', peer.userId), el('groupId', peer.groupId), opt('description', rule.description)])),
        itemSet('ipRanges', ranges.map(({ rule, peer }) => [el('cidrIp', peer.cidr), opt('description', rule.description)])),
        el('ipv6Ranges'),
        el('prefixListIds'),
      ];
    }),
  );
}

export function securityGroupXml(group: SecurityGroupRecord, world: World): Part[] {
  return [
    el('ownerId', group.ownerId),
    el('groupId', group.groupId),
    el('groupName', group.groupName),
    el('groupDescription', group.description),
    ipPermissionsXml('ipPermissions', group.ingress),
    ipPermissionsXml('ipPermissionsEgress', group.egress),
    el('vpcId', group.vpcId),
    el('securityGroupArn', securityGroupArn(world, group.groupId)),
    tagSetXml(group.tags),
  ];
}

/** Rules as SecurityGroupRule items; ports are -1 where a protocol has none, as EC2 writes them. */
export function securityGroupRuleXml(group: SecurityGroupRecord, rule: SecurityGroupRule, isEgress: boolean): Part[] {
  return [
    el('securityGroupRuleId', rule.ruleId),
    el('groupId', group.groupId),
    el('groupOwnerId', group.ownerId),
    el('isEgress', isEgress),
    el('ipProtocol', rule.protocol),
    el('fromPort', rule.fromPort ?? -1),
    el('toPort', rule.toPort ?? -1),
    rule.peer.kind === 'cidr' ? el('cidrIpv4', rule.peer.cidr) : undefined,
    rule.peer.kind === 'group'
      ? el('referencedGroupInfo', el('groupId', rule.peer.groupId), el('userId', rule.peer.userId))
      : undefined,
    opt('description', rule.description),
  ];
}
