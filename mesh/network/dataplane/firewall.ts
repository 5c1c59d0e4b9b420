// The data plane's iptables rules, as `iptables-restore --noflush` input (declaring a chain
// there creates or flushes it, so installing twice gives the same rules: idempotent and atomic).
//
// FORWARD → WEFT: only overlay traffic may enter or leave the bridge and the tunnel device. A
// host outside the mesh that routes the overlay range to a member's underlay address gets its
// packets dropped here instead of forwarded to a container; Docker's FORWARD policy DROP would
// drop our own traffic, so it is accepted explicitly.
// INPUT → WEFT-IN: in fast mode VXLAN has no authentication, so its port accepts only the known
// peers' underlay addresses; the gateway address answers only local containers and the host.
// What arrives from the tunnel for a local overlay address is either for the exposed address
// (`weft expose`: the host wanted to be reachable) or for the peer's DNS address on lo (the
// second resolver of other hosts' containers): that one answers DNS (53/udp, 53/tcp) and
// nothing else, so remote containers cannot reach the host's other services through it.
// OUTPUT → WEFT-OUT: no ICMP redirects to containers. Two containers on one host talk through
// the gateway, out the port the packet came in, and the kernel would tell the sender to go
// direct (send_redirects on the bridge alone does not stop it: the kernel ORs it with
// conf.all). A container that obeys caches the peer as on-link and keeps sending to its old MAC
// after the peer moves to another host, until its neighbour entry times out.
import { GATEWAY } from './names.ts';

/** The only port the DNS address answers on to other hosts' containers. */
const DNS_PORT = 53;

export interface FirewallSpec {
  forward: string;
  input: string;
  output: string;
  bridge: string;
  /** The WireGuard or VXLAN device. */
  tunnel: string;
  /** The overlay range: from the tunnel, a local address in it is the DNS address or `exposed`. */
  range: string;
  /** The host's exposed overlay address (`weft expose`), open to the overlay on every port. */
  exposed?: string;
  /** fast mode: the VXLAN port and the peers allowed to send to it. */
  vxlan?: { port: number; peers: readonly string[] };
}

export function firewallRules(s: FirewallSpec): string {
  const f = s.forward;
  const lines = [
    '*filter',
    `:${f} - [0:0]`,
    `:${s.input} - [0:0]`,
    `:${s.output} - [0:0]`,
    `-A ${f} -i ${s.bridge} -o ${s.bridge} -j ACCEPT`,
    `-A ${f} -i ${s.bridge} -o ${s.tunnel} -j ACCEPT`,
    `-A ${f} -i ${s.tunnel} -o ${s.bridge} -j ACCEPT`,
    `-A ${f} -o ${s.bridge} -j DROP`,
    `-A ${f} -o ${s.tunnel} -j DROP`,
    // A remote container must not use this host as a router into the underlay.
    `-A ${f} -i ${s.tunnel} -j DROP`,
    `-A ${s.input} -d ${GATEWAY}/32 -i ${s.bridge} -j RETURN`,
    `-A ${s.input} -d ${GATEWAY}/32 -i lo -j RETURN`,
    `-A ${s.input} -d ${GATEWAY}/32 -j DROP`,
    ...(s.exposed !== undefined ? [`-A ${s.input} -i ${s.tunnel} -d ${s.exposed}/32 -j RETURN`] : []),
    `-A ${s.input} -i ${s.tunnel} -d ${s.range} -p udp --dport ${DNS_PORT} -j RETURN`,
    `-A ${s.input} -i ${s.tunnel} -d ${s.range} -p tcp --dport ${DNS_PORT} -j RETURN`,
    `-A ${s.input} -i ${s.tunnel} -d ${s.range} -j DROP`,
    `-A ${s.output} -o ${s.bridge} -p icmp --icmp-type redirect -j DROP`,
  ];
  if (s.vxlan !== undefined) {
    for (const peer of s.vxlan.peers) lines.push(`-A ${s.input} -s ${peer}/32 -p udp --dport ${s.vxlan.port} -j RETURN`);
    lines.push(`-A ${s.input} -p udp --dport ${s.vxlan.port} -j DROP`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Which of the jumps `hooks` (built-in chain → ours) `iptables -S` output lacks. A jump that
 *  exists is left where it is (Docker may have inserted its own above it). */
export function missingJumps(rulesText: string, hooks: readonly [string, string][]): [string, string][] {
  const lines = new Set(rulesText.split('\n').map((l) => l.trim()));
  return hooks.filter(([hook, chain]) => !lines.has(`-A ${hook} -j ${chain}`));
}
