// The managed security group of a cluster: its name, and the inbound rules it should hold. Pure.
//
// Open: the mesh's ports between the group's own members (a rule naming the group itself, as
// the API reference's UserIdGroupPairs allows), and only what the cluster's options add
// (ssh-from, mesh-from). Nothing else inbound, so a node is not reachable from the internet
// unless asked. Outbound stays EC2's default (all), which installing weft needs.

import type { IpPermission } from '@aws-sdk/client-ec2';
import { MESH_PORT } from '../../../mesh/address.ts';
import { DEFAULT_VXLAN_PORT, DEFAULT_WG_PORT } from '../../../mesh/network/dataplane/plan.ts';
import { INSTALL_PORT } from '../../byon/install-port.ts';

/** ARCHITECTURE.md's ports: libp2p control on TCP, WireGuard and VXLAN on UDP; and the install
 *  listener new nodes fetch weft from. */
export const MESH_PORTS: readonly { protocol: 'tcp' | 'udp'; port: number; what: string }[] = [
  { protocol: 'tcp', port: MESH_PORT, what: 'weft mesh control' },
  { protocol: 'udp', port: DEFAULT_WG_PORT, what: 'weft encrypted data plane' },
  { protocol: 'udp', port: DEFAULT_VXLAN_PORT, what: 'weft fast data plane' },
  // A new node fetches weft and its install script from the member that made its user data
  // (provisioner/byon/): no outside registry, so this port too, between members only.
  { protocol: 'tcp', port: INSTALL_PORT, what: 'weft install commands' },
];
const SSH_PORT = 22;

export interface Rule {
  protocol: 'tcp' | 'udp';
  port: number;
  /** The group's own id (members) or an IPv4 range. */
  from: { group: string } | { cidr: string };
  description: string;
}

/** One group per cluster and mesh; EC2 names are unique per VPC, so the mesh is in it too. */
export function managedGroupName(mesh: string, cluster: string): string {
  return `weft-${mesh}-${cluster}`;
}

/** Within EC2's characters for a description (letters, digits, spaces and ._-:/()#,@[]+=&;{}!$*). */
export function managedGroupDescription(mesh: string, cluster: string): string {
  return `weft node cluster ${cluster} of mesh ${mesh}: mesh ports open between members`;
}

export function wantedRules(groupId: string, o: { sshFrom: readonly string[]; meshFrom: readonly string[] }): Rule[] {
  const rules: Rule[] = MESH_PORTS.map((p) => ({ protocol: p.protocol, port: p.port, from: { group: groupId }, description: `${p.what} between members` }));
  for (const cidr of o.meshFrom) for (const p of MESH_PORTS) rules.push({ protocol: p.protocol, port: p.port, from: { cidr }, description: `${p.what} from outside (mesh-from)` });
  for (const cidr of o.sshFrom) rules.push({ protocol: 'tcp', port: SSH_PORT, from: { cidr }, description: 'ssh (ssh-from)' });
  return rules;
}

/** The rule in the API's IpPermission form, for AuthorizeSecurityGroupIngress. */
export function ipPermission(rule: Rule): IpPermission {
  const base = { IpProtocol: rule.protocol, FromPort: rule.port, ToPort: rule.port };
  return 'group' in rule.from
    ? { ...base, UserIdGroupPairs: [{ GroupId: rule.from.group, Description: rule.description }] }
    : { ...base, IpRanges: [{ CidrIp: rule.from.cidr, Description: rule.description }] };
}

/** The rules a group holds, one per (protocol, port range, peer), as DescribeSecurityGroups
 *  gives them merged into IpPermissions. Protocols come back as names or numbers (6, 17). */
function heldKeys(held: readonly IpPermission[]): Set<string> {
  const keys = new Set<string>();
  for (const p of held) {
    const protocol = p.IpProtocol === '6' ? 'tcp' : p.IpProtocol === '17' ? 'udp' : (p.IpProtocol ?? '');
    const ports = `${p.FromPort ?? ''}-${p.ToPort ?? ''}`;
    for (const g of p.UserIdGroupPairs ?? []) if (g.GroupId) keys.add(`${protocol}|${ports}|${g.GroupId}`);
    for (const r of p.IpRanges ?? []) if (r.CidrIp) keys.add(`${protocol}|${ports}|${r.CidrIp}`);
    for (const r of p.Ipv6Ranges ?? []) if (r.CidrIpv6) keys.add(`${protocol}|${ports}|${r.CidrIpv6}`);
    for (const r of p.PrefixListIds ?? []) if (r.PrefixListId) keys.add(`${protocol}|${ports}|${r.PrefixListId}`);
  }
  return keys;
}

function ruleKey(r: Rule): string {
  return `${r.protocol}|${r.port}-${r.port}|${'group' in r.from ? r.from.group : r.from.cidr}`;
}

/** The wanted rules the group does not hold yet. */
export function missingRules(held: readonly IpPermission[], wanted: readonly Rule[]): Rule[] {
  const have = heldKeys(held);
  return wanted.filter((r) => !have.has(ruleKey(r)));
}

/** Rules the group holds that weft does not want (an option since removed, or one added by
 *  hand): reported, not revoked, since a person may have added them on purpose. */
export function extraRules(held: readonly IpPermission[], wanted: readonly Rule[]): string[] {
  const want = new Set(wanted.map(ruleKey));
  return [...heldKeys(held)].filter((k) => !want.has(k));
}
