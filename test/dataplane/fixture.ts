// A simulated mesh of data planes on harness hosts, for the data plane's tests and benchmark:
// one Dataplane per host namespace (in this process, commands wrapped in nsenter), "containers"
// as bare network namespaces, and views handed to every data plane as gossip would.
//
// Container namespaces are named like harness hosts numbered 300 + 10·host + k ("wt<id>h312"
// is container 2 of h1), so the harness's own cleanup and its stale sweep (which remove every
// namespace matching wt<id>h<n>, and kill what runs in it) remove them too.
import fs from 'node:fs';
import type { Harness, Host } from '../harness/harness.ts';
import { mustRun, run } from '../harness/run.ts';
import { Dataplane } from '../../mesh/network/dataplane/dataplane.ts';
import { resetHost } from '../../mesh/network/dataplane/reset.ts';
import { Shell } from '../../mesh/network/dataplane/exec.ts';
import { daemonPids, WG_SOCKET_DIR } from '../../mesh/network/dataplane/wireguard.ts';
import { wgIfName } from '../../mesh/network/dataplane/names.ts';
import type { Mode } from '../../mesh/network/dataplane/plan.ts';
import type { DataplaneRecord } from '../../mesh/endpoint.ts';
import { logger } from '../../mesh/log.ts';

export const RANGE = '10.32.0.0/12';
export const NETNS_DIR = '/var/run/netns';
/** Container numbers per host: 0..9 (the namespace name encodes host and container). */
export const MAX_CONTAINERS_PER_HOST = 10;

export function nsPath(ns: string): string {
  return `${NETNS_DIR}/${ns}`;
}

/** Data-plane suffix for host n of a harness: unique on the machine ("wgt12h1"), because
 *  wireguard-go's sockets are shared by every namespace. */
export function suffixOf(mesh: Harness, host: Host): string {
  return `t${mesh.id}h${host.n}`;
}

export function containerNs(mesh: Harness, host: Host, k: number): string {
  if (!Number.isInteger(k) || k < 0 || k >= MAX_CONTAINERS_PER_HOST || host.n > 9) throw new Error(`container ${k} of h${host.n}: out of the naming scheme`);
  return `wt${mesh.id}h${300 + 10 * host.n + k}`;
}

/** Runs argv inside namespace `ns`; resolves with the result whatever the exit code. */
export function nsRun(ns: string, argv: readonly string[], timeoutMs = 10_000) {
  return run(['nsenter', `--net=${nsPath(ns)}`, '--', ...argv], { timeoutMs });
}

export async function makeNamespace(ns: string): Promise<void> {
  await mustRun(['ip', 'netns', 'add', ns]);
  await mustRun(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
}

export async function deleteNamespace(ns: string): Promise<void> {
  if (fs.existsSync(nsPath(ns))) await run(['ip', 'netns', 'delete', ns]);
}

/** One ICMP echo from namespace `ns`. */
export async function ping(ns: string, addr: string, waitSec = 1): Promise<boolean> {
  return (await nsRun(ns, ['busybox', 'ping', '-c', '1', '-W', String(waitSec), addr], (waitSec + 5) * 1000)).code === 0;
}

/** ICMP echo requests namespace `ns` has received (its own counter in /proc/net/snmp). */
export async function echoesReceived(ns: string): Promise<number> {
  const text = (await nsRun(ns, ['cat', '/proc/net/snmp'])).stdout;
  const lines = text.split('\n').filter((l) => l.startsWith('Icmp:'));
  const names = (lines[0] ?? '').split(/\s+/);
  const values = (lines[1] ?? '').split(/\s+/);
  return Number(values[names.indexOf('InEchos')]);
}

export interface Container {
  ns: string;
  addr: string;
  host: Host;
  mac: string;
}

export class TestMesh {
  readonly mesh: Harness;
  readonly mode: Mode;
  readonly planes = new Map<Host, Dataplane>();
  readonly containers: Container[] = [];

  constructor(mesh: Harness, mode: Mode) {
    this.mesh = mesh;
    this.mode = mode;
  }

  peerId(host: Host): string {
    return `peer-${host.name}`;
  }

  async start(host: Host): Promise<Dataplane> {
    this.planes.get(host)?.stop();
    const dp = await Dataplane.start({
      mode: this.mode,
      range: RANGE,
      underlay: host.ip,
      dataDir: host.dataDir,
      suffix: suffixOf(this.mesh, host),
      log: logger(`dataplane.${host.name}`),
      netns: nsPath(host.ns),
    });
    this.planes.set(host, dp);
    return dp;
  }

  plane(host: Host): Dataplane {
    const dp = this.planes.get(host);
    if (dp === undefined) throw new Error(`no data plane on ${host.name}`);
    return dp;
  }

  /** A new container namespace on `host`, attached with `addr`. */
  async attach(host: Host, k: number, addr: string): Promise<Container> {
    const ns = containerNs(this.mesh, host, k);
    await makeNamespace(ns);
    const { mac } = await this.plane(host).attach(nsPath(ns), addr);
    const c = { ns, addr, host, mac };
    this.containers.push(c);
    return c;
  }

  async detach(c: Container): Promise<void> {
    await this.plane(c.host).detach(c.addr);
    await deleteNamespace(c.ns);
    this.containers.splice(this.containers.indexOf(c), 1);
  }

  /** What gossip would deliver: every data plane's record and every container. */
  view(): { hosts: Map<string, DataplaneRecord>; remote: { addr: string; peer: string }[] } {
    const hosts = new Map<string, DataplaneRecord>();
    for (const [host, dp] of this.planes) hosts.set(this.peerId(host), dp.record());
    return { hosts, remote: this.containers.map((c) => ({ addr: c.addr, peer: this.peerId(c.host) })) };
  }

  async syncAll(): Promise<void> {
    const v = this.view();
    await Promise.all([...this.planes.values()].map((dp) => dp.sync(v)));
  }

  /** Best-effort teardown that needs no Dataplane object: every host's data plane by name,
   *  container namespaces, wireguard-go daemons and their sockets. The harness's cleanup
   *  removes the namespaces (and kills what runs in them) in any case. */
  async cleanup(): Promise<void> {
    for (const dp of this.planes.values()) dp.stop();
    for (const host of this.mesh.hosts) {
      await resetHost(new Shell(nsPath(host.ns)), { bridge: 'weft', suffix: suffixOf(this.mesh, host), range: RANGE, log: logger('dataplane.cleanup') }).catch(() => {});
      const dev = wgIfName(suffixOf(this.mesh, host));
      for (const pid of daemonPids(dev)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      fs.rmSync(`${WG_SOCKET_DIR}/${dev}.sock`, { force: true });
      for (let k = 0; k < MAX_CONTAINERS_PER_HOST && host.n <= 9; k++) await deleteNamespace(containerNs(this.mesh, host, k));
    }
  }
}
