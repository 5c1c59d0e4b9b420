// The rules an AuthorizeSecurityGroupIngress request asks for: IpPermissions.N (protocol,
// ports, and peers under IpRanges.M and Groups.M), or the older flat form (IpProtocol,
// FromPort, ToPort, CidrIp or SourceSecurityGroupName). Each peer becomes one rule.

import { Ec2Error, invalidValue, missingParameter } from '../errors.ts';
import type { QueryParams } from '../query-parse.ts';
import type { RulePeer, SecurityGroupRule } from '../security-groups.ts';
import type { World } from '../world.ts';
import { groupById, groupByName } from './group-ref.ts';

export type RuleRequest = Omit<SecurityGroupRule, 'ruleId'>;

/** Protocol numbers EC2 writes by name. */
const PROTOCOL_NAMES: Readonly<Record<string, string>> = { '1': 'icmp', '6': 'tcp', '17': 'udp', '58': 'icmpv6' };
const NAMED_PROTOCOLS = ['tcp', 'udp', 'icmp', 'icmpv6', '-1'];
const MAX_PORT = 65_535;
/** ICMP "ports" are a type and a code, each 0-255, or -1 for all. */
const MAX_ICMP_FIELD = 255;

const CIDR = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\/(3[0-2]|[12]?\d)$/;

const FLAT = ['IpProtocol', 'FromPort', 'ToPort', 'CidrIp', 'SourceSecurityGroupName', 'SourceSecurityGroupOwnerId'];

export function requestedRules(params: QueryParams, world: World): RuleRequest[] {
  const flat = FLAT.filter((name) => params.get(name) !== undefined);
  const permissions = params.structs('IpPermissions', ['IpProtocol', 'FromPort', 'ToPort', 'IpRanges', 'Groups']);
  if (flat.length > 0 && permissions.length > 0) {
    throw new Ec2Error('InvalidParameterCombination', `The parameter IpPermissions cannot be used with the parameter ${flat[0]}`);
  }
  if (flat.length > 0) return flatRules(params, world);
  if (permissions.length === 0) throw missingParameter('IpPermissions');
  return permissions.flatMap((permission) => permissionRules(permission, world));
}

function permissionRules(permission: QueryParams, world: World): RuleRequest[] {
  const { protocol, fromPort, toPort } = protocolAndPorts(permission);
  const peers: { peer: RulePeer; description: string | undefined }[] = [
    ...permission.structs('IpRanges', ['CidrIp', 'Description']).map((range) => ({
      peer: cidrPeer(range.require('CidrIp')),
      description: range.get('Description'),
    })),
    ...permission.structs('Groups', ['GroupId', 'GroupName', 'UserId', 'Description']).map((pair) => {
      const groupId = pair.get('GroupId');
      const groupName = pair.get('GroupName');
      if (!groupId && !groupName) throw missingParameter(pair.fullName('GroupId'));
      const group = groupId ? groupById(groupId, world) : groupByName(groupName ?? '', world);
      return {
        peer: { kind: 'group' as const, groupId: group.groupId, userId: pair.get('UserId') ?? world.accountId },
        description: pair.get('Description'),
      };
    }),
  ];
  if (peers.length === 0) {
    throw missingParameter(`${permission.fullName('IpRanges')} or ${permission.fullName('Groups')}`);
  }
  return peers.map(({ peer, description }) => ({ protocol, fromPort, toPort, peer, description }));
}

function flatRules(params: QueryParams, world: World): RuleRequest[] {
  const { protocol, fromPort, toPort } = protocolAndPorts(params);
  const cidr = params.get('CidrIp');
  const source = params.get('SourceSecurityGroupName');
  if (cidr !== undefined && source !== undefined) {
    throw new Ec2Error('InvalidParameterCombination', 'The parameter CidrIp cannot be used with the parameter SourceSecurityGroupName');
  }
  if (cidr === undefined && source === undefined) throw missingParameter('CidrIp');
  const peer: RulePeer =
    cidr !== undefined
      ? cidrPeer(cidr)
      : { kind: 'group', groupId: groupByName(source ?? '', world).groupId, userId: params.get('SourceSecurityGroupOwnerId') ?? world.accountId };
  return [{ protocol, fromPort, toPort, peer, description: undefined }];
}

function cidrPeer(cidr: string): RulePeer {
  if (!CIDR.test(cidr)) throw invalidValue(`CIDR block ${cidr} is malformed`);
  return { kind: 'cidr', cidr };
}

function protocolAndPorts(params: QueryParams): Pick<RuleRequest, 'protocol' | 'fromPort' | 'toPort'> {
  const raw = params.require('IpProtocol');
  const protocol = normalProtocol(raw);
  if (protocol === 'tcp' || protocol === 'udp') {
    const fromPort = params.int('FromPort', 0, MAX_PORT);
    const toPort = params.int('ToPort', 0, MAX_PORT);
    if (fromPort === undefined || toPort === undefined) throw invalidValue('Must specify both from and to ports with TCP/UDP.');
    if (fromPort > toPort) throw invalidValue(`Invalid port range: from port ${fromPort} is above to port ${toPort}`);
    return { protocol, fromPort, toPort };
  }
  if (protocol === 'icmp' || protocol === 'icmpv6') {
    return {
      protocol,
      fromPort: params.int('FromPort', -1, MAX_ICMP_FIELD) ?? -1,
      toPort: params.int('ToPort', -1, MAX_ICMP_FIELD) ?? -1,
    };
  }
  // All traffic (-1) and other protocols have no ports: EC2 ignores any given.
  return { protocol, fromPort: undefined, toPort: undefined };
}

function normalProtocol(raw: string): string {
  const lower = raw.toLowerCase();
  if (NAMED_PROTOCOLS.includes(lower)) return lower;
  if (/^[0-9]{1,3}$/.test(raw) && Number(raw) <= 255) return PROTOCOL_NAMES[String(Number(raw))] ?? String(Number(raw));
  throw invalidValue(`Invalid value '${raw}' for IP protocol. Unknown protocol.`);
}
