// The host's bridge that containers plug into: its gateway address, the catch-all route for
// the overlay range and the sysctls routing through it needs. Drives `ip` and `sysctl`.
import { batch, type Shell } from './exec.ts';
import { GATEWAY, randomMac } from './names.ts';

/** The bridge, up, with the gateway address, the catch-all for the range and the sysctls. */
export async function ensureBridge(shell: Shell, bridge: string, mtu: number, range: string): Promise<void> {
  const exists = (await shell.tryRun(['ip', 'link', 'show', 'dev', bridge])).code === 0;
  const lines = [
    // An explicit MAC: otherwise a bridge takes its ports' lowest MAC, and would change it
    // under the containers' ARP caches whenever a container with a lower one is attached.
    ...(exists ? [] : [`link add ${bridge} address ${randomMac()} mtu ${mtu} type bridge`]),
    `link set dev ${bridge} mtu ${mtu} up`,
    `addr replace ${GATEWAY}/32 dev ${bridge}`,
    // Overlay addresses without a /32 route are unreachable, never sent to the default route.
    `route replace unreachable ${range}`,
  ];
  await shell.run(['ip', '-batch', '-'], batch(lines));
  await shell.run([
    'sysctl', '-q', '-w',
    'net.ipv4.ip_forward=1',
    // Containers on one bridge talk through the gateway (out the port it came in): no redirects.
    `net.ipv4.conf.${bridge}.send_redirects=0`,
    // A container that believes the whole range is on-link (Docker gives the pool's prefix
    // length) ARPs for its peers: the host answers for them, at once.
    `net.ipv4.conf.${bridge}.proxy_arp=1`,
    `net.ipv4.conf.${bridge}.proxy_arp_pvlan=1`,
    `net.ipv4.neigh.${bridge}.proxy_delay=0`,
  ]);
}
