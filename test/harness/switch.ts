// The test network: a "switch" namespace holding Linux bridges, and one namespace per host
// joined to it by a veth pair. Nothing is created in the root namespace.
//
//   wt<id>sw:   br0 ── p1 ─┐  p2 ─┐ ...        (br1.. appear only while partitioned)
//   wt<id>h1:   eth0 10.250.<id>.1/24 <─┘
//   wt<id>h2:   eth0 10.250.<id>.2/24 <───────┘
//
// Failure semantics, chosen to look like a cloud network (EC2's VPC) to the peers:
// - Every host has permanent neighbour (ARP) entries for every other host, as a VPC's
//   hypervisor answers ARP for all addresses. So a cut host is a black hole: packets to it
//   vanish, and the sender gets no "host unreachable" from a failed ARP either.
// - cut(host) sets the host's bridge port to the "disabled" STP state: the bridge drops
//   every frame from and to it. Both veth ends stay up with carrier, so neither side sees a
//   link event, and nothing sends FIN, RST or ICMP: established TCP connections just stop
//   delivering and retransmit, and resume when healed (if they have not timed out).
// - partition(groups) moves the ports of each group onto a bridge of its own. Detaching a
//   port from a bridge changes nothing on the host side either; frames to another segment
//   reach nobody. A cut stays in force across re-partitioning.
import { hostIp, hostMac, hostNs, HOST_IFACE, MAIN_BRIDGE, segmentBridge, switchNs, switchPort } from './names.ts';
import { mustRun } from './run.ts';

/** Bridge port states (include/uapi/linux/if_bridge.h). With STP off nothing changes them
 *  except a carrier change on the port, which the harness never causes. */
const PORT_DISABLED = 0;
const PORT_FORWARDING = 3;

export class Switch {
  readonly id: number;
  readonly ns: string;
  readonly hostCount: number;
  /** Segment (bridge index) of each host number; 0 is the main bridge. */
  private readonly segment = new Map<number, number>();
  private readonly cutHosts = new Set<number>();
  /** Segment bridges that exist besides the main one (br1..). */
  private readonly bridges = new Set<number>();
  /** Serializes changes: cut, heal and partition each rewrite port state. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(id: number, hostCount: number) {
    this.id = id;
    this.ns = switchNs(id);
    this.hostCount = hostCount;
    for (let n = 1; n <= hostCount; n++) this.segment.set(n, 0);
  }

  /** Creates the switch and host namespaces and wires them. On failure the caller tears down
   *  by id (see sweep.ts); partial state is harmless to that. */
  static async build(id: number, hostCount: number): Promise<Switch> {
    const sw = new Switch(id, hostCount);
    const nss = [sw.ns, ...sw.hostNumbers().map((n) => hostNs(id, n))];
    // One by one: `ip netns add` moves the calling ip process into the new namespace, so
    // it cannot be batched.
    for (const ns of nss) await mustRun(['ip', 'netns', 'add', ns]);

    const swCmds = ['link set lo up', `link add ${MAIN_BRIDGE} type bridge stp_state 0`, `link set ${MAIN_BRIDGE} up`];
    for (const n of sw.hostNumbers()) {
      const port = switchPort(n);
      swCmds.push(
        `link add ${port} type veth peer name ${HOST_IFACE} address ${hostMac(id, n)} netns ${hostNs(id, n)}`,
        `link set ${port} master ${MAIN_BRIDGE}`,
        `link set ${port} up`,
      );
    }
    await ipBatch(sw.ns, swCmds);

    await Promise.all(
      sw.hostNumbers().map((n) => {
        const cmds = ['link set lo up', `address add ${hostIp(id, n)}/24 dev ${HOST_IFACE}`, `link set ${HOST_IFACE} up`];
        for (const m of sw.hostNumbers()) {
          if (m !== n) cmds.push(`neigh replace ${hostIp(id, m)} lladdr ${hostMac(id, m)} dev ${HOST_IFACE} nud permanent`);
        }
        return ipBatch(hostNs(id, n), cmds);
      }),
    );
    return sw;
  }

  isCut(n: number): boolean {
    return this.cutHosts.has(n);
  }

  /** Silently drops all traffic from and to host n (see the file comment). */
  cut(n: number): Promise<void> {
    return this.change(async () => {
      this.checkHost(n);
      this.cutHosts.add(n);
      await bridgeBatch(this.ns, [portState(n, PORT_DISABLED)]);
    });
  }

  heal(n: number): Promise<void> {
    return this.change(async () => {
      this.checkHost(n);
      this.cutHosts.delete(n);
      await bridgeBatch(this.ns, [portState(n, PORT_FORWARDING)]);
    });
  }

  /** Each group becomes a segment of its own; hosts in no group stay on the main segment.
   *  Replaces any earlier partition. partition() with no groups joins everything again. */
  partition(groups: readonly (readonly number[])[]): Promise<void> {
    return this.change(async () => {
      const wanted = new Map<number, number>();
      for (const n of this.hostNumbers()) wanted.set(n, 0);
      groups.forEach((group, i) => {
        for (const n of group) {
          this.checkHost(n);
          if ((wanted.get(n) ?? 0) !== 0) throw new Error(`partition: host h${n} is in two groups`);
          wanted.set(n, i + 1);
        }
      });
      const cmds: string[] = [];
      const recut: string[] = [];
      for (let k = 1; k <= groups.length; k++) {
        if (!this.bridges.has(k)) cmds.push(`link add ${segmentBridge(k)} type bridge stp_state 0`, `link set ${segmentBridge(k)} up`);
      }
      for (const [n, k] of wanted) {
        if (this.segment.get(n) === k) continue;
        cmds.push(`link set ${switchPort(n)} master ${segmentBridge(k)}`);
        // A port joining a bridge starts forwarding: re-apply the cut.
        if (this.cutHosts.has(n)) recut.push(portState(n, PORT_DISABLED));
      }
      const unused = [...this.bridges].filter((k) => k > groups.length);
      for (const k of unused) cmds.push(`link delete ${segmentBridge(k)}`);
      if (cmds.length > 0) await ipBatch(this.ns, cmds);
      if (recut.length > 0) await bridgeBatch(this.ns, recut);
      for (const [n, k] of wanted) this.segment.set(n, k);
      for (let k = 1; k <= groups.length; k++) this.bridges.add(k);
      for (const k of unused) this.bridges.delete(k);
    });
  }

  /** The segment host n is on (0 = main), whether or not it is cut. */
  segmentOf(n: number): number {
    return this.segment.get(n) ?? 0;
  }

  hostNumbers(): number[] {
    return Array.from({ length: this.hostCount }, (_, i) => i + 1);
  }

  private checkHost(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > this.hostCount) throw new Error(`no host h${n} on this switch (h1..h${this.hostCount})`);
  }

  private change(fn: () => Promise<void>): Promise<void> {
    const next = this.queue.then(fn);
    this.queue = next.catch(() => {});
    return next;
  }
}

// `bridge link set ... state`, not `ip link set ... type bridge_slave state`: the kernel
// takes a port's state only from the bridge's setlink, and ip's variant is silently ignored.
function portState(n: number, state: number): string {
  return `link set dev ${switchPort(n)} state ${state}`;
}

/** Runs `ip` commands in one process inside a namespace; stops at the first failure. */
async function ipBatch(ns: string, cmds: readonly string[]): Promise<void> {
  await mustRun(['ip', '-n', ns, '-batch', '-'], { input: `${cmds.join('\n')}\n` });
}

async function bridgeBatch(ns: string, cmds: readonly string[]): Promise<void> {
  await mustRun(['bridge', '-n', ns, '-batch', '-'], { input: `${cmds.join('\n')}\n` });
}
