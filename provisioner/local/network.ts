// The node network: one bridge in the host peer's namespace holding the gateway address, and
// per node a namespace joined to it by a veth pair.
//
//   host peer's namespace:  weftnodes 172.30.83.1/24 ── wn<hash-a> ─┐  wn<hash-b> ─┐
//   weftn-a:                eth0 172.30.83.2/24, default via .1 <───┘             │
//   weftn-b:                eth0 172.30.83.3/24, default via .1 <─────────────────┘
//
// Nodes reach each other across the bridge and the host peer at any of its own addresses
// through the gateway: both are local delivery in the host peer's namespace, so nothing is
// routed and net.ipv4.ip_forward is left alone. Drives `ip`; decides nothing about which
// nodes exist.
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../mesh/log.ts';
import { mustRun, runCommand } from './command.ts';
import { BRIDGE, hostIfName, NODE_IFACE, netnsName, netnsPath } from './names.ts';
import type { NodeSubnet } from './subnet.ts';

/** How long the host end of a node's veth may linger after its namespace is deleted: the
 *  kernel dismantles a namespace asynchronously, within milliseconds when nothing holds it. */
export const VETH_GONE_MS = 5_000;
const POLL_MS = 20;

/** With br_netfilter loaded and this sysctl on, frames crossing any bridge pass the host's
 *  iptables FORWARD chain, where Docker's DROP policy would stop node-to-node traffic. */
const BRIDGE_NF_SYSCTL = '/proc/sys/net/bridge/bridge-nf-call-iptables';

/** Creates the bridge with the gateway address if it is missing, and makes sure it is up. */
export async function ensureBridge(subnet: NodeSubnet, log: Logger): Promise<void> {
  if (!(await linkExists(BRIDGE))) {
    await mustRun(['ip', 'link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0']);
    log.info('created the local node bridge', { bridge: BRIDGE, gateway: subnet.gateway });
    warnIfBridgeFiltered(log);
  }
  await mustRun(['ip', 'address', 'replace', `${subnet.gateway}/${subnet.cidr.prefix}`, 'dev', BRIDGE]);
  await mustRun(['ip', 'link', 'set', BRIDGE, 'up']);
}

/** Deletes the bridge if no port is left on it. True if it is gone. */
export async function removeBridgeIfUnused(log: Logger): Promise<boolean> {
  if (!(await linkExists(BRIDGE))) return true;
  const ports = JSON.parse((await mustRun(['ip', '-j', 'link', 'show', 'master', BRIDGE])) || '[]') as unknown[];
  if (ports.length > 0) return false;
  const r = await runCommand(['ip', 'link', 'delete', BRIDGE]);
  if (r.code !== 0 && (await linkExists(BRIDGE))) throw new Error(`cannot delete the bridge ${BRIDGE}: ${r.stderr.trim()}`);
  log.info('removed the local node bridge (no node left)', { bridge: BRIDGE });
  return true;
}

export function bridgeExists(): Promise<boolean> {
  return linkExists(BRIDGE);
}

export function netnsExists(name: string): boolean {
  return fs.existsSync(netnsPath(name));
}

/** True if the host end of the node's veth is in this (the host peer's) namespace: then the
 *  node's namespace, if it exists, is wired to us, not to another host peer on this machine. */
export function hostIfExists(name: string): Promise<boolean> {
  return linkExists(hostIfName(name));
}

/**
 * Creates the node's namespace and wires it: veth host end on the bridge, `eth0` with the
 * node's address and a default route via the gateway, `lo` up. Callers serialize it: `ip
 * netns add` moves the ip process itself into the new namespace, and the kernel's rtnl lock
 * serializes the rest anyway.
 */
export async function addNodeNetwork(name: string, address: string, subnet: NodeSubnet): Promise<void> {
  const ns = netnsName(name);
  const hostIf = hostIfName(name);
  await mustRun(['ip', 'netns', 'add', ns]);
  await mustRun(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', NODE_IFACE, 'netns', ns]);
  await mustRun(['ip', 'link', 'set', hostIf, 'master', BRIDGE, 'up']);
  const inNode = [
    'link set lo up',
    `address add ${address}/${subnet.cidr.prefix} dev ${NODE_IFACE}`,
    `link set ${NODE_IFACE} up`,
    `route add default via ${subnet.gateway} dev ${NODE_IFACE}`,
  ];
  await mustRun(['ip', '-n', ns, '-batch', '-'], { input: `${inNode.join('\n')}\n` });
}

/** WireGuard devices in the node's namespace ("wg" + 8 hex digits, see the data plane's
 *  names.ts): each is run by a wireguard-go whose control socket is machine-wide. */
export async function tunnelDevices(name: string): Promise<string[]> {
  if (!netnsExists(name)) return [];
  const r = await runCommand(['ip', '-n', netnsName(name), '-j', 'link', 'show']);
  if (r.code !== 0) return [];
  try {
    return (JSON.parse(r.stdout) as { ifname?: string }[]).map((l) => l.ifname ?? '').filter((n) => /^wg[0-9a-f]{8}$/.test(n));
  } catch {
    return [];
  }
}

/** Pids of the processes inside the node's namespace (what `ip netns pids` prints, read from
 *  /proc directly). */
export function namespacePids(name: string): number[] {
  let target: string;
  try {
    target = `net:[${fs.statSync(netnsPath(name)).ino}]`;
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (fs.readlinkSync(`/proc/${d}/ns/net`) === target) pids.push(Number(d));
    } catch {
      // exited, or a kernel thread
    }
  }
  return pids;
}

/** Deletes the node's namespace (and with it its end of the veth), then makes sure (bounded)
 *  the host end is gone too. Returns problems. */
export async function removeNodeNetwork(name: string): Promise<string[]> {
  const problems: string[] = [];
  if (netnsExists(name)) {
    const r = await runCommand(['ip', 'netns', 'delete', netnsName(name)]);
    if (r.code !== 0 && netnsExists(name)) problems.push(`cannot delete namespace ${netnsName(name)}: ${r.stderr.trim()}`);
  }
  const hostIf = hostIfName(name);
  const deadline = Date.now() + VETH_GONE_MS;
  for (let i = 0; i < VETH_GONE_MS / POLL_MS && Date.now() < deadline && (await linkExists(hostIf)); i++) {
    // Deleting either end deletes the pair; failing because the kernel was quicker is fine.
    await runCommand(['ip', 'link', 'delete', hostIf]);
    await sleep(POLL_MS);
  }
  if (await linkExists(hostIf)) problems.push(`the veth ${hostIf} of node ${name} is still there`);
  return problems;
}

async function linkExists(dev: string): Promise<boolean> {
  return (await runCommand(['ip', 'link', 'show', 'dev', dev])).code === 0;
}

function warnIfBridgeFiltered(log: Logger): void {
  let on = false;
  try {
    on = fs.readFileSync(BRIDGE_NF_SYSCTL, 'utf8').trim() === '1';
  } catch {
    return; // br_netfilter is not loaded: bridged frames never meet iptables
  }
  if (on) {
    log.warn(`bridged traffic passes iptables here (${BRIDGE_NF_SYSCTL} = 1): if the FORWARD policy drops (Docker sets DROP), nodes cannot reach each other until you allow it, e.g. iptables -I FORWARD -i ${BRIDGE} -o ${BRIDGE} -j ACCEPT`, { bridge: BRIDGE });
  }
}
