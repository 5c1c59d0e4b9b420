// The options of an `aws` node cluster (`weft nodecluster create … --option key=value`), checked
// and read. Pure. Every key:
//
//   image=ami-…            required: the AMI the nodes boot (of the provider's region). It must
//                          run the user data the caller builds (cloud-init: any mainstream Linux).
//   key-name=NAME          optional: an existing EC2 key pair for SSH; weft never creates or
//                          deletes key pairs (Docker Machine left its own behind).
//   security-group=sg-…    optional: an existing group to use instead of the one weft manages;
//                          the caller keeps 6783/tcp, 6783/udp, 6784/udp and 6785/tcp (new
//                          nodes fetch weft there) open in it between members. weft never
//                          changes or deletes it.
//   dataplane=false        optional: mesh-only nodes (no Docker, no container network).
//   zones=a,b              optional: only these availability zones (of those EC2 says are
//                          available), e.g. to keep nodes where a subnet or reservation is.
//   address=private|public which address the provisioner records and peers dial; default
//                          private (see ADDRESS_DEFAULT).
//   ssh-from=CIDR[,CIDR]   optional: also open 22/tcp from these IPv4 ranges in the managed group.
//   mesh-from=CIDR[,CIDR]  optional: also open the mesh ports from these ranges, for peers
//                          outside the VPC (the rest of a mesh that spans sites).
//   imds=required|optional the instance metadata service: `required` (default) needs IMDSv2
//                          tokens with a hop limit of 1, so containers on a node cannot read its
//                          user data, which holds the join token; `optional` for EC2-compatible
//                          clouds that do not know MetadataOptions.
//
// Nodes go into the region's default VPC, in its default subnet of each zone: a non-default VPC
// needs DescribeSubnets to map zones to subnets, which this provider does not do yet.

/** Every option key, for the message that lists them. */
export const AWS_OPTION_KEYS = ['image', 'key-name', 'security-group', 'zones', 'address', 'ssh-from', 'mesh-from', 'imds', 'dataplane'] as const;

/** Peers inside one VPC reach each other on private addresses, and a security group rule that
 *  names a group (the managed group's mesh rules) matches only traffic over private addresses;
 *  public addresses cost money and may be absent (a subnet without auto-assign). */
export const ADDRESS_DEFAULT = 'private';

/** AWS's AMI ids are `ami-` and 8 or 17 hex digits; EC2-compatible clouds use other prefixes
 *  (Eucalyptus's `emi-`) and lengths, so only the shape "prefix-id" is checked. */
const IMAGE_ID = /^[a-z]{2,8}-[0-9A-Za-z]{1,40}$/;
/** EC2's key pair names: up to 255 ASCII characters. */
const KEY_NAME = /^[\x20-\x7e]{1,255}$/;
const GROUP_ID = /^sg-[0-9a-z]{1,40}$/;
/** Zone names are a region and a letter (us-east-1a), or a cloud's own short names. */
const ZONE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Enough for every zone of any region (us-east-1 has six). */
const MAX_ZONES = 32;
/** Each range is a rule of the managed group, which EC2 caps at 60 inbound rules (four mesh
 *  rules per mesh-from range); ten of each stays well inside. */
const MAX_RANGES = 10;
const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

export interface AwsClusterOptions {
  image: string;
  keyName?: string;
  securityGroup?: string;
  zones?: string[];
  address: 'private' | 'public';
  sshFrom: string[];
  meshFrom: string[];
  imds: 'required' | 'optional';
}

/** Why these are not the options of an aws cluster (undefined: they are), naming the option. */
export function awsOptionsProblem(options: Readonly<Record<string, string>>): string | undefined {
  const unknown = Object.keys(options).find((k) => !(AWS_OPTION_KEYS as readonly string[]).includes(k));
  if (unknown !== undefined) return `an aws node cluster has no option "${unknown}" (its options: ${AWS_OPTION_KEYS.join(', ')})`;
  const image = options.image;
  if (image === undefined || image === '') return 'an aws node cluster needs option image=ami-… (an AMI of its region)';
  if (!IMAGE_ID.test(image)) return `option image "${image}" is not an AMI id like ami-0abcdef1234567890 (give the id, not the image's name)`;
  const key = options['key-name'];
  if (key !== undefined && !KEY_NAME.test(key)) return 'option key-name must be the name of an EC2 key pair: 1-255 printable ASCII characters';
  const group = options['security-group'];
  if (group !== undefined) {
    if (!GROUP_ID.test(group)) return `option security-group "${group}" is not a security group id like sg-0123456789abcdef0`;
    if (options['ssh-from'] !== undefined || options['mesh-from'] !== undefined) {
      return 'options ssh-from and mesh-from open ports in the group weft manages: with security-group, open them in that group yourself';
    }
  }
  const zones = options.zones === undefined ? undefined : zonesProblem(options.zones);
  if (zones !== undefined) return zones;
  const address = options.address;
  if (address !== undefined && address !== 'private' && address !== 'public') return 'option address must be private or public';
  const imds = options.imds;
  if (imds !== undefined && imds !== 'required' && imds !== 'optional') return 'option imds must be required or optional';
  // dataplane=false: mesh-only nodes (no Docker, no container network), e.g. for managers.
  const dataplane = options.dataplane;
  if (dataplane !== undefined && dataplane !== 'true' && dataplane !== 'false') return 'option dataplane must be true or false';
  for (const name of ['ssh-from', 'mesh-from'] as const) {
    const value = options[name];
    if (value === undefined) continue;
    const list = splitList(value);
    if (list.length === 0 || list.length > MAX_RANGES) return `option ${name} must give 1-${MAX_RANGES} IPv4 ranges like 203.0.113.0/24, separated by commas`;
    for (const cidr of list) {
      const problem = cidrProblem(cidr);
      if (problem !== undefined) return `option ${name}: ${problem}`;
    }
  }
  return undefined;
}

/** The options, read; throws the problem as an Error when awsOptionsProblem has one. */
export function parseAwsOptions(options: Readonly<Record<string, string>>): AwsClusterOptions {
  const problem = awsOptionsProblem(options);
  if (problem !== undefined) throw new Error(problem);
  const zones = zonesOption(options);
  return {
    image: options.image ?? '',
    ...(options['key-name'] !== undefined ? { keyName: options['key-name'] } : {}),
    ...(options['security-group'] !== undefined ? { securityGroup: options['security-group'] } : {}),
    ...(zones !== undefined ? { zones } : {}),
    address: options.address === 'public' ? 'public' : ADDRESS_DEFAULT,
    sshFrom: [...new Set(splitList(options['ssh-from'] ?? ''))],
    meshFrom: [...new Set(splitList(options['mesh-from'] ?? ''))],
    imds: options.imds === 'optional' ? 'optional' : 'required',
  };
}

/** Why the value of option zones is not a list of zone names (undefined: it is one). */
export function zonesProblem(value: string): string | undefined {
  const list = splitList(value);
  if (list.length === 0 || list.length > MAX_ZONES) return `option zones must name 1-${MAX_ZONES} availability zones, separated by commas`;
  const bad = list.find((z) => !ZONE_NAME.test(z));
  if (bad !== undefined) return `option zones: "${bad}" is not an availability zone name like us-east-1a`;
  return undefined;
}

/** The zones option's names, without repeats (undefined: the option is absent). */
export function zonesOption(options: Readonly<Record<string, string>>): string[] | undefined {
  return options.zones === undefined ? undefined : [...new Set(splitList(options.zones))];
}

function splitList(s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

/** An IPv4 range in the form EC2 keeps (host bits zero), so that a rule once authorized is
 *  recognised in DescribeSecurityGroups' answer and not authorized again. */
function cidrProblem(cidr: string): string | undefined {
  const m = CIDR.exec(cidr);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const bits = m ? Number(m[5]) : NaN;
  if (!m || octets.some((o) => o > 255) || !(bits >= 0 && bits <= 32)) return `"${cidr}" is not an IPv4 range like 203.0.113.0/24`;
  const value = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - bits);
  if (value % size !== 0) {
    const base = value - (value % size);
    const text = [24, 16, 8, 0].map((s) => Math.floor(base / 2 ** s) % 256).join('.');
    return `"${cidr}" has host bits set: did you mean ${text}/${bits}?`;
  }
  return undefined;
}
