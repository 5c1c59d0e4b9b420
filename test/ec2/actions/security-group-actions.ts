// CreateSecurityGroup, DescribeSecurityGroups, AuthorizeSecurityGroupIngress and
// DeleteSecurityGroup on the double's one VPC.

import type { ActionRow } from '../action.ts';
import { Ec2Error, invalidValue } from '../errors.ts';
import { applyFilters, type FilterTable, parseFilters } from '../filters.ts';
import { paginate, queryKey } from '../pagination.ts';
import { DEFAULT_GROUP_NAME, newRule, ruleKey, ruleText, type SecurityGroupRecord } from '../security-groups.ts';
import { securityGroupArn, securityGroupRuleXml, securityGroupXml } from '../security-group-xml.ts';
import { parseTagSpecifications, replaceTags, tagSetXml, withTags } from '../tags.ts';
import { el, itemSet, opt } from '../xml.ts';
import { groupById, groupByName, namedGroup } from './group-ref.ts';
import { requestedRules } from './ip-permissions.ts';

/** EC2's limits: names and descriptions up to 255 characters, 60 inbound rules per group. */
const MAX_NAME_LENGTH = 255;
export const MAX_INGRESS_RULES = 60;

export const createSecurityGroup: ActionRow = {
  name: 'CreateSecurityGroup',
  params: ['GroupName', 'GroupDescription', 'VpcId', 'TagSpecification'],
  handle(ctx) {
    const { params, world } = ctx;
    const groupName = params.require('GroupName');
    const description = params.require('GroupDescription');
    if (groupName.length > MAX_NAME_LENGTH) throw invalidValue(`Group name exceeds ${MAX_NAME_LENGTH} characters`);
    if (description.length > MAX_NAME_LENGTH) throw invalidValue(`Group description exceeds ${MAX_NAME_LENGTH} characters`);
    if (groupName.toLowerCase().startsWith('sg-')) throw invalidValue('Group names may not be in the format sg-*');
    const vpcId = params.get('VpcId');
    if (vpcId !== undefined && vpcId !== world.network.vpcId) {
      throw new Ec2Error('InvalidVpcID.NotFound', `The vpc ID '${vpcId}' does not exist`);
    }
    if (world.groups.byName(groupName)) {
      throw new Ec2Error('InvalidGroup.Duplicate', `The security group '${groupName}' already exists for VPC '${world.network.vpcId}'`);
    }
    const tags = withTags(new Map(), parseTagSpecifications(params, ['security-group']).get('security-group') ?? []);
    ctx.checkDryRun();
    const group = world.groups.create(groupName, description);
    replaceTags(group.tags, tags);
    return [
      el('return', true),
      el('groupId', group.groupId),
      el('securityGroupArn', securityGroupArn(world, group.groupId)),
      tagSetXml(group.tags),
    ];
  },
};

const groupFilters: FilterTable<SecurityGroupRecord> = {
  'group-id': (g) => [g.groupId],
  'group-name': (g) => [g.groupName],
  description: (g) => [g.description],
  'vpc-id': (g) => [g.vpcId],
  'owner-id': (g) => [g.ownerId],
  'ip-permission.protocol': (g) => g.ingress.map((r) => r.protocol),
  'ip-permission.from-port': (g) => g.ingress.map((r) => String(r.fromPort ?? -1)),
  'ip-permission.to-port': (g) => g.ingress.map((r) => String(r.toPort ?? -1)),
  'ip-permission.cidr': (g) => g.ingress.map((r) => (r.peer.kind === 'cidr' ? r.peer.cidr : undefined)),
  'ip-permission.group-id': (g) => g.ingress.map((r) => (r.peer.kind === 'group' ? r.peer.groupId : undefined)),
};

export const describeSecurityGroups: ActionRow = {
  name: 'DescribeSecurityGroups',
  params: ['GroupId', 'GroupName', 'Filter', 'MaxResults', 'NextToken'],
  handle(ctx) {
    const { params, world } = ctx;
    const ids = params.list('GroupId');
    const names = params.list('GroupName');
    const named =
      ids.length + names.length > 0
        ? [...new Set([...ids.map((id) => groupById(id, world)), ...names.map((name) => groupByName(name, world))])]
        : world.groups.all();
    const selected = applyFilters(named, parseFilters(params), groupFilters, (g) => g.tags);
    ctx.checkDryRun();
    const page = paginate(selected, params, queryKey(params));
    return [
      itemSet('securityGroupInfo', page.items.map((group) => securityGroupXml(group, world))),
      opt('nextToken', page.nextToken),
    ];
  },
};

export const authorizeSecurityGroupIngress: ActionRow = {
  name: 'AuthorizeSecurityGroupIngress',
  params: ['GroupId', 'GroupName', 'IpPermissions', 'IpProtocol', 'FromPort', 'ToPort', 'CidrIp',
    'SourceSecurityGroupName', 'SourceSecurityGroupOwnerId', 'TagSpecification'],
  handle(ctx) {
    const { params, world } = ctx;
    const group = namedGroup(params, world);
    const rules = requestedRules(params, world);
    parseTagSpecifications(params, ['security-group-rule']);
    const seen = new Set(group.ingress.map(ruleKey));
    for (const rule of rules) {
      const key = ruleKey(rule);
      if (seen.has(key)) {
        throw new Ec2Error('InvalidPermission.Duplicate', `the specified rule "${ruleText(rule)}" already exists`);
      }
      seen.add(key);
    }
    if (group.ingress.length + rules.length > MAX_INGRESS_RULES) {
      throw new Ec2Error('RulesPerSecurityGroupLimitExceeded', 'The maximum number of rules per security group has been reached.');
    }
    ctx.checkDryRun();
    const added = rules.map((r) => newRule(r.protocol, r.fromPort, r.toPort, r.peer, r.description));
    group.ingress.push(...added);
    return [el('return', true), itemSet('securityGroupRuleSet', added.map((rule) => securityGroupRuleXml(group, rule, false)))];
  },
};

export const deleteSecurityGroup: ActionRow = {
  name: 'DeleteSecurityGroup',
  params: ['GroupId', 'GroupName'],
  handle(ctx) {
    const { params, world } = ctx;
    const group = namedGroup(params, world);
    if (group.groupName === DEFAULT_GROUP_NAME) {
      throw new Ec2Error('CannotDelete', `the specified group: "${group.groupId}" name: "${DEFAULT_GROUP_NAME}" cannot be deleted by a user`);
    }
    // An instance keeps its groups in use until it is terminated, and so does another group's
    // rule naming this one: EC2 refuses both as DependencyViolation.
    if (world.instances.usingGroup(group.groupId).length > 0 || world.groups.referencing(group.groupId).length > 0) {
      throw new Ec2Error('DependencyViolation', `resource ${group.groupId} has a dependent object`);
    }
    ctx.checkDryRun();
    world.groups.delete(group.groupId);
    return [el('return', true), el('groupId', group.groupId)];
  },
};
