// Names and fixed addresses of the data plane's kernel objects. Derived, never stored: a
// restarted peer (or `reset()` after a crash) finds every object again from its name alone.
import { parseIPv4 } from '../../ipv4.ts';
import { randomBytes } from 'node:crypto';

/** The containers' gateway: the bridge's address, the same on every host so a container moved
 *  to another host keeps a valid gateway. Link-local (169.254/16), so never routed off-host;
 *  the peer's DNS listens here too. */
export const GATEWAY = '169.254.53.1';

export const DEFAULT_BRIDGE = 'weft';
/** The container's end of its veth pair, as Weave Net names it. */
export const DEFAULT_CONTAINER_IF = 'ethwe';

/** Linux interface names are at most 15 bytes (IFNAMSIZ 16 with the NUL). */
export const MAX_IFNAME = 15;
const IFNAME = /^[A-Za-z0-9_.-]+$/;

/** Host end of a container's veth: "vw" + the address as 8 hex digits. One address is attached
 *  at most once per host, so the name is unique, and detach(addr) needs no table. */
export function hostIfName(addr: string): string {
  return `vw${addrHex(addr)}`;
}

/** Container end of a prepared veth (prepareVeth), until Docker moves and renames it. */
export function preparedIfName(addr: string): string {
  return `vc${addrHex(addr)}`;
}

export function wgIfName(suffix: string): string {
  return checkIfName(`wg${suffix}`);
}

export function vxlanIfName(suffix: string): string {
  return checkIfName(`vx${suffix}`);
}

export function checkIfName(name: string): string {
  if (name.length === 0 || name.length > MAX_IFNAME || !IFNAME.test(name)) {
    throw new Error(`"${name}" cannot be a network interface name (1..${MAX_IFNAME} letters, digits, . _ -)`);
  }
  return name;
}

/** iptables chains: "WEFT" for the default bridge, "WEFT-<bridge>" for another, so two data
 *  planes with different bridges on one host (tests, a second mesh) keep separate rules. */
export function chainNames(bridge: string): { forward: string; input: string; output: string } {
  const forward = bridge === DEFAULT_BRIDGE ? 'WEFT' : `WEFT-${bridge}`;
  return { forward, input: `${forward}-IN`, output: `${forward}-OUT` };
}

/** Our chains and the built-in chains that jump to them, in install order. */
export function chainHooks(bridge: string): [hook: string, chain: string][] {
  const c = chainNames(bridge);
  return [['FORWARD', c.forward], ['INPUT', c.input], ['OUTPUT', c.output]];
}

function addrHex(addr: string): string {
  const n = parseIPv4(addr);
  if (n === undefined) throw new Error(`"${addr}" is not an IPv4 address`);
  return n.toString(16).padStart(8, '0');
}

/** A random unicast, locally administered MAC (the "02" bit set, the multicast bit clear). */
export function randomMac(bytes: Uint8Array = randomBytes(6)): string {
  const b = Array.from(bytes.subarray(0, 6));
  b[0] = ((b[0] ?? 0) & 0xfc) | 0x02;
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}
