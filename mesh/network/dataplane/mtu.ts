// The overlay MTU: the underlay interface's MTU minus what each mode's encapsulation adds, so
// that an encapsulated full-size packet is never fragmented on the underlay.

/** WireGuard over IPv4 or IPv6 worst case: outer IPv6 40 + UDP 8 + WireGuard header 16 + tag 16
 *  = 80, the figure wg-quick subtracts (1500 → 1420). */
export const WIREGUARD_OVERHEAD = 80;
/** VXLAN over IPv4: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 = 50 (1500 → 1450). */
export const VXLAN_OVERHEAD = 50;
/** IPv4's minimum MTU; an underlay that leaves less than this after encapsulation is unusable. */
export const MIN_MTU = 576;

export function overlayMtu(mode: 'encrypted' | 'fast', underlayMtu: number): number {
  const mtu = underlayMtu - (mode === 'encrypted' ? WIREGUARD_OVERHEAD : VXLAN_OVERHEAD);
  if (mtu < MIN_MTU) throw new Error(`the underlay interface's MTU ${underlayMtu} leaves ${mtu} for the overlay, below the minimum ${MIN_MTU}`);
  return mtu;
}

/** From `ip -j -4 addr show` output: the interface holding `underlay`, and its MTU. */
export function underlayInterface(ipAddrJson: string, underlay: string): { name: string; mtu: number } | undefined {
  const links = JSON.parse(ipAddrJson) as { ifname: string; mtu: number; addr_info?: { family: string; local: string }[] }[];
  for (const l of links) {
    if ((l.addr_info ?? []).some((a) => a.family === 'inet' && a.local === underlay)) return { name: l.ifname, mtu: l.mtu };
  }
  return undefined;
}
