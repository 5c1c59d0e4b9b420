// Command lines (for `ip -batch -`) that plug a container into the bridge. Pure. A container
// gets a /32 and reaches everything in the overlay through the gateway on the bridge, so the
// host routes every packet (L3, no overlay-wide broadcast domain, no ARP across hosts).
import { GATEWAY } from './names.ts';

export interface VethSpec {
  addr: string;
  hostIf: string;
  /** The container end's name where it is created. */
  peerIf: string;
  mac: string;
  mtu: number;
  bridge: string;
  /** Create the container end directly in this namespace (a path); else in the host's. */
  netns?: string;
}

/** Host side: the pair (the container end created in place, so it never appears in the host's
 *  namespace under a name that could clash), the host end on the bridge, the host route. */
export function hostSide(s: VethSpec): string[] {
  const where = s.netns === undefined ? '' : ` netns ${s.netns}`;
  return [
    `link add ${s.hostIf} mtu ${s.mtu} type veth peer name ${s.peerIf} address ${s.mac} mtu ${s.mtu}${where}`,
    `link set dev ${s.hostIf} master ${s.bridge} up`,
    // replace: the address may still be routed to a remote host (a container that moved here
    // before gossip told everyone); the local route wins at once.
    `route replace ${s.addr}/32 dev ${s.bridge}`,
  ];
}

/** Container side: its address and the two routes through the gateway. */
export function containerSide(ifName: string, addr: string, range: string): string[] {
  return [
    `link set dev ${ifName} up`,
    `addr replace ${addr}/32 dev ${ifName}`,
    `route replace ${GATEWAY} dev ${ifName} scope link`,
    `route replace ${range} via ${GATEWAY} dev ${ifName}`,
  ];
}

/** Undoing an attach: deleting the host end deletes the pair. */
export function removal(hostIf: string, addr: string, bridge: string): string[] {
  return [`link del dev ${hostIf}`, `route del ${addr}/32 dev ${bridge}`];
}

/** ip's complaints that mean "already gone", which removal tolerates. */
export const ALREADY_GONE = /Cannot find device|No such process|No such device|does not exist/;
