// The double's security groups and their rules. A rule is one (protocol, port range, peer)
// triple, as EC2 keeps them: AuthorizeSecurityGroupIngress splits an IpPermission with several
// peers into several rules, DescribeSecurityGroups merges them back per port range, and a rule
// already present is refused as InvalidPermission.Duplicate.

import { newId } from './ids.ts';

export type RulePeer = { kind: 'cidr'; cidr: string } | { kind: 'group'; groupId: string; userId: string };

export interface SecurityGroupRule {
  readonly ruleId: string;
  /** tcp, udp, icmp, icmpv6, -1 (all), or another protocol number. */
  readonly protocol: string;
  /** Absent for protocols without ports (-1 and numbered ones). */
  readonly fromPort: number | undefined;
  readonly toPort: number | undefined;
  readonly peer: RulePeer;
  readonly description: string | undefined;
}

export interface SecurityGroupRecord {
  readonly groupId: string;
  readonly groupName: string;
  readonly description: string;
  readonly vpcId: string;
  readonly ownerId: string;
  readonly ingress: SecurityGroupRule[];
  readonly egress: SecurityGroupRule[];
  readonly tags: Map<string, string>;
}

/** The name EC2 gives a VPC's own group, which a user cannot delete. */
export const DEFAULT_GROUP_NAME = 'default';

export class SecurityGroupStore {
  readonly #groups = new Map<string, SecurityGroupRecord>();
  readonly #vpcId: string;
  readonly #ownerId: string;

  constructor(vpcId: string, ownerId: string) {
    this.#vpcId = vpcId;
    this.#ownerId = ownerId;
    // Every VPC has a default group: all traffic in from its own members, all traffic out.
    const group = this.create(DEFAULT_GROUP_NAME, 'default VPC security group');
    group.ingress.push(newRule('-1', undefined, undefined, { kind: 'group', groupId: group.groupId, userId: ownerId }));
  }

  /** A new group, with EC2's default egress rule of all traffic to anywhere. */
  create(groupName: string, description: string): SecurityGroupRecord {
    const group: SecurityGroupRecord = {
      groupId: newId('sg'),
      groupName,
      description,
      vpcId: this.#vpcId,
      ownerId: this.#ownerId,
      ingress: [],
      egress: [newRule('-1', undefined, undefined, { kind: 'cidr', cidr: '0.0.0.0/0' })],
      tags: new Map(),
    };
    this.#groups.set(group.groupId, group);
    return group;
  }

  byId(groupId: string): SecurityGroupRecord | undefined {
    return this.#groups.get(groupId);
  }

  byName(groupName: string): SecurityGroupRecord | undefined {
    return this.all().find((g) => g.groupName === groupName);
  }

  defaultGroup(): SecurityGroupRecord {
    const group = this.byName(DEFAULT_GROUP_NAME);
    if (!group) throw new Error('the default security group is missing');
    return group;
  }

  all(): SecurityGroupRecord[] {
    return [...this.#groups.values()];
  }

  delete(groupId: string): void {
    this.#groups.delete(groupId);
  }

  /** Other groups with a rule naming this one as its peer. */
  referencing(groupId: string): SecurityGroupRecord[] {
    return this.all().filter(
      (g) =>
        g.groupId !== groupId &&
        [...g.ingress, ...g.egress].some((r) => r.peer.kind === 'group' && r.peer.groupId === groupId),
    );
  }
}

export function newRule(
  protocol: string,
  fromPort: number | undefined,
  toPort: number | undefined,
  peer: RulePeer,
  description?: string,
): SecurityGroupRule {
  return { ruleId: newId('sgr'), protocol, fromPort, toPort, peer, description };
}

/** What makes two rules the same rule (the description does not). */
export function ruleKey(rule: Omit<SecurityGroupRule, 'ruleId'>): string {
  const peer = rule.peer.kind === 'cidr' ? rule.peer.cidr : rule.peer.groupId;
  return `${rule.protocol}|${rule.fromPort ?? ''}|${rule.toPort ?? ''}|${peer}`;
}

/** A rule in the words of EC2's InvalidPermission.Duplicate message:
 *  `peer: sg-…, TCP, from port: 22, to port: 22, ALLOW`. */
export function ruleText(rule: Omit<SecurityGroupRule, 'ruleId'>): string {
  const peer = rule.peer.kind === 'cidr' ? rule.peer.cidr : rule.peer.groupId;
  const protocol = rule.protocol === '-1' ? 'ALL' : rule.protocol.toUpperCase();
  const ports = rule.fromPort === undefined ? '' : `, from port: ${rule.fromPort}, to port: ${rule.toPort}`;
  return `peer: ${peer}, ${protocol}${ports}, ALLOW`;
}
