// The double's one VPC, laid out as EC2 lays out a default VPC: 172.31.0.0/16 with one /20
// subnet per availability zone. It hands out private addresses at launch and public ones
// when an instance runs.

import { Ec2Error } from './errors.ts';
import { newId } from './ids.ts';

/** EC2's default VPC CIDR in every region. */
const VPC_BASE = ipToInt('172.31.0.0');
/** EC2's default subnets are /20s, one per zone, 4096 addresses each. */
const SUBNET_SIZE = 4096;
/** AWS reserves the first four addresses of a subnet (network, router, DNS, future use)… */
const FIRST_USABLE_HOST = 4;
/** …and the last one (broadcast). */
const LAST_USABLE_HOST = SUBNET_SIZE - 2;
/** Public addresses come from TEST-NET-2 and TEST-NET-3 (RFC 5737): documentation ranges that
 *  nothing routes, so a test can never reach a real host through one. */
const PUBLIC_POOLS = ['198.51.100.', '203.0.113.'];
const PUBLIC_HOSTS_PER_POOL = 254;

export interface Zone {
  name: string;
  zoneId: string;
  subnetId: string;
  subnetCidr: string;
  /** Offset of the next private address to hand out in the subnet. */
  nextHost: number;
  subnetBase: number;
}

export class Network {
  readonly vpcId = newId('vpc');
  readonly vpcCidr = '172.31.0.0/16';
  readonly region: string;
  readonly zones: readonly Zone[];
  #publicCount = 0;

  constructor(region: string, zoneNames: readonly string[]) {
    this.region = region;
    const short = regionShortName(region);
    this.zones = zoneNames.map((name, i) => {
      const subnetBase = VPC_BASE + i * SUBNET_SIZE;
      return {
        name,
        zoneId: `${short}-az${i + 1}`,
        subnetId: newId('subnet'),
        subnetCidr: `${intToIp(subnetBase)}/20`,
        nextHost: FIRST_USABLE_HOST,
        subnetBase,
      };
    });
  }

  zone(name: string): Zone | undefined {
    return this.zones.find((z) => z.name === name);
  }

  freeAddresses(zone: Zone): number {
    return LAST_USABLE_HOST - zone.nextHost + 1;
  }

  allocatePrivateIp(zone: Zone): string {
    if (this.freeAddresses(zone) <= 0) throw subnetFull(zone);
    return intToIp(zone.subnetBase + zone.nextHost++);
  }

  allocatePublicIp(): string {
    const n = this.#publicCount++ % (PUBLIC_POOLS.length * PUBLIC_HOSTS_PER_POOL);
    return `${PUBLIC_POOLS[Math.floor(n / PUBLIC_HOSTS_PER_POOL)]}${(n % PUBLIC_HOSTS_PER_POOL) + 1}`;
  }

  /** EC2's IP-based private host name: `ip-172-31-0-4.ec2.internal` in us-east-1, else
   *  `ip-….<region>.compute.internal`. */
  privateDnsName(ip: string): string {
    const host = `ip-${ip.replaceAll('.', '-')}`;
    return this.region === 'us-east-1' ? `${host}.ec2.internal` : `${host}.${this.region}.compute.internal`;
  }

  publicDnsName(ip: string): string {
    const host = `ec2-${ip.replaceAll('.', '-')}`;
    return this.region === 'us-east-1' ? `${host}.compute-1.amazonaws.com` : `${host}.${this.region}.compute.amazonaws.com`;
  }
}

export function subnetFull(zone: Zone): Ec2Error {
  return new Ec2Error(
    'InsufficientFreeAddressesInSubnet',
    `There are not enough free addresses in subnet '${zone.subnetId}' to satisfy the requested number of instances.`,
  );
}

/** EC2's zone ids abbreviate the region: us-east-1 → use1, eu-central-1 → euc1. */
function regionShortName(region: string): string {
  const parts = region.split('-');
  if (parts.length < 3) return region;
  return parts[0] + parts.slice(1, -1).map((p) => p[0] ?? '').join('') + parts[parts.length - 1];
}

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function intToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIpv4(text: string): boolean {
  return IPV4.test(text);
}
