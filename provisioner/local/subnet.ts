// The node network's addresses: the subnet, its gateway (the bridge in the host peer's
// namespace) and the choice of a free address for a new node. Pure: the caller reads which
// addresses are taken and persists the choice.
import { formatIPv4, parseIPv4 } from '../../mesh/ipv4.ts';
import { DEFAULT_IPAM_RANGE, parseCidr, type Cidr } from '../../mesh/ipam/cidr.ts';

/** Default node subnet. Private (172.16/12) and clear of weft's container range 10.32/12 and
 *  the test harness's 10.250/16. Docker's default pools hand out 172.17-172.31 as /16s, one
 *  per user network in order, and skip a range the host already routes, so a dockerd that
 *  comes later steps around it. 253 nodes are more than one machine can run. */
export const DEFAULT_NODE_SUBNET = '172.30.83.0/24';

export interface NodeSubnet {
  cidr: Cidr;
  /** The first address: the bridge's, in the host peer's namespace. */
  gateway: string;
}

/** Parses the subnet option; the error is a sentence for the person who set it. */
export function nodeSubnet(text: string): NodeSubnet {
  const cidr = parseCidr(text);
  if (typeof cidr === 'string') throw new Error(`local node subnet: ${cidr}`);
  const weft = parseCidr(DEFAULT_IPAM_RANGE) as Cidr;
  if (overlaps(cidr, weft)) {
    throw new Error(`local node subnet ${cidr.text} overlaps weft's container range ${weft.text}: choose another private range, e.g. ${DEFAULT_NODE_SUBNET}`);
  }
  return { cidr, gateway: formatIPv4(cidr.base + 1) };
}

/** Number of node addresses: all but the network address, the gateway and the broadcast. */
export function nodeCapacity(s: NodeSubnet): number {
  return s.cidr.size - 3;
}

/**
 * The lowest address of the subnet that is neither the network, the gateway, the broadcast nor
 * in `used`; undefined when every one is taken. Lowest first, so addresses are easy to read
 * and a destroyed node's address is reused rather than the subnet walked through.
 */
export function allocateAddress(s: NodeSubnet, used: Iterable<string>): string | undefined {
  const taken = new Set<number>();
  for (const a of used) {
    const n = parseIPv4(a);
    if (n !== undefined) taken.add(n);
  }
  const last = s.cidr.base + s.cidr.size - 2; // the broadcast address is base + size - 1
  for (let n = s.cidr.base + 2; n <= last; n++) {
    if (!taken.has(n)) return formatIPv4(n);
  }
  return undefined;
}

/** True if `address` is a node address of the subnet (not network, gateway or broadcast). */
export function isNodeAddress(s: NodeSubnet, address: string): boolean {
  const n = parseIPv4(address);
  return n !== undefined && n >= s.cidr.base + 2 && n <= s.cidr.base + s.cidr.size - 2;
}

function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}
