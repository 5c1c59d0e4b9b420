// The multi-host test harness: hosts as network namespaces on a private switch, a weft peer
// per host, silent link cuts and partitions, and cleanup that also survives a crashed runner.
//
//   const mesh = await Harness.create({ hosts: 3 });
//   try {
//     await mesh.hosts[0].startPeer({ password: 'pw' });
//     await mesh.hosts[1].startPeer({ password: 'pw', peers: [mesh.hosts[0].ip] });
//     await mesh.hosts[1].cut();
//   } finally {
//     await mesh.cleanup();
//   }
//
// Cleanup, in layers (each removes everything by name, see sweep.ts):
// 1. cleanup() / cleanupSync(), from the test's afterAll or finally;
// 2. process 'exit', SIGINT, SIGTERM and SIGHUP hooks in the test process;
// 3. a guardian process (guardian.ts) that sweeps this process's harnesses when it dies by
//    SIGKILL, which no hook survives (vitest's watchdog SIGKILLs workers on Ctrl-C);
// 4. at every create(), a sweep of leftovers of crashed runs: ids that nobody holds the
//    lease of and whose recorded owner pid is dead.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CGROUP_PARENT, ensureCgroup } from './cgroup.ts';
import { guard } from './guardian.ts';
import { defaultCliCommand, defaultPeerCommand, Host, type CliCommand, type PeerCommand } from './host.ts';
import { firstFreeId, ownRecord, writeRecord, type Lease } from './lease.ts';
import { hostIp, hostName, hostNs, instanceTag, MAX_HOSTS, OWNER_ENV, SUBNET_PREFIX } from './names.ts';
import { KILL_WAIT_MS, within } from './process.ts';
import { killInstanceSync, sweepLeased, sweepStale, teardownSync } from './sweep.ts';
import { Switch } from './switch.ts';

export { waitFor, type WaitOptions } from './wait.ts';
export { sweepStale } from './sweep.ts';
export { Host, MESH_PORT, WEFT_BIN, defaultPeerCommand, defaultCliCommand } from './host.ts';
export type { PeerSpec, PeerCommand, CliCommand, PeerOptions } from './host.ts';
export { HostProcess, type ExitInfo } from './process.ts';
export type { ExecResult, RunOptions } from './run.ts';
export { Dockerd, BUSYBOX_IMAGE, type DockerdOptions } from './dockerd.ts';

/** Bytes of each log shown by dumpLogs(): enough for the last few hundred lines. */
export const LOG_TAIL_BYTES = 64 * 1024;

export interface HarnessOptions {
  /** Number of hosts, h1..hN, 1..200. */
  hosts: number;
  /** A label for the records and log headers, e.g. the test file's name. */
  name?: string;
  /** Builds a peer's argv; default `bin/weft launch ...` (see defaultPeerCommand). */
  peerCommand?: PeerCommand;
  /** Builds a CLI call's argv; default `bin/weft --data-dir D ...`. */
  cliCommand?: CliCommand;
  /** Keep the temp dir (logs, data dirs) after cleanup. Default: env WEFT_HARNESS_KEEP=1. */
  keepTmp?: boolean;
}

export class Harness {
  /** Instance id: the third octet of the subnet and the number in every name. */
  readonly id: number;
  readonly label: string;
  /** "10.250.<id>.0/24" */
  readonly subnet: string;
  /** Switch namespace ("wt<id>sw"): the bridges live there. */
  readonly switchNs: string;
  /** <os tmpdir>/wt<id>-XXXXXX: one directory per host (logs, data, password). */
  readonly tmpDir: string;
  readonly hosts: Host[] = [];
  private readonly lease: Lease;
  private readonly keepTmp: boolean;
  private net: Switch | undefined;
  private cleaning: Promise<void> | undefined;
  private tornDown = false;

  private constructor(lease: Lease, label: string, tmpDir: string, keepTmp: boolean) {
    this.id = lease.id;
    this.lease = lease;
    this.label = label;
    this.tmpDir = tmpDir;
    this.keepTmp = keepTmp;
    this.subnet = `${SUBNET_PREFIX}.${lease.id}.0/24`;
    this.switchNs = `${instanceTag(lease.id)}sw`;
  }

  /** Builds the switch and the hosts. On any failure everything made so far is removed. */
  static async create(opts: HarnessOptions): Promise<Harness> {
    const count = opts.hosts;
    if (!Number.isInteger(count) || count < 1 || count > MAX_HOSTS) throw new Error(`Harness.create: hosts must be 1..${MAX_HOSTS}, got ${count}`);
    if (process.getuid?.() !== 0) throw new Error('Harness.create: network namespaces need root (run the tests as root)');
    installExitHooks();
    await sweepStale();
    const lease = await firstFreeId((l) => {
      // Leftovers that appeared after the sweep (a run that crashed just now) go first.
      const { outcome, problems } = sweepLeased(l.id);
      if (problems.length > 0) console.warn(`weft harness: skipping ${instanceTag(l.id)}: ${problems.join('; ')}`);
      return outcome !== 'owner alive' && problems.length === 0;
    });
    const label = opts.name ?? `pid ${process.pid}`;
    let h: Harness;
    try {
      const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), `${instanceTag(lease.id)}-`));
      h = new Harness(lease, label, tmpDir, opts.keepTmp ?? process.env.WEFT_HARNESS_KEEP === '1');
      writeRecord(ownRecord(lease.id, tmpDir, label));
    } catch (e) {
      lease.release();
      throw e;
    }
    live.add(h);
    if (process.env.WEFT_HARNESS_GUARDIAN !== '0') guard(lease.id);
    try {
      await h.build(count, opts.peerCommand ?? defaultPeerCommand, opts.cliCommand ?? defaultCliCommand);
    } catch (e) {
      await h.cleanup().catch(() => {});
      throw e;
    }
    return h;
  }

  private async build(count: number, peerCommand: PeerCommand, cliCommand: CliCommand): Promise<void> {
    const tag = instanceTag(this.id);
    ensureCgroup(tag);
    this.net = await Switch.build(this.id, count);
    for (const n of this.net.hostNumbers()) {
      const name = hostName(n);
      const dir = path.join(this.tmpDir, name);
      fs.mkdirSync(dir, { recursive: true });
      this.hosts.push(
        new Host({
          n,
          name,
          ns: hostNs(this.id, n),
          ip: hostIp(this.id, n),
          dir,
          place: { ns: hostNs(this.id, n), cgroupProcs: ensureCgroup(tag, name), env: { ...process.env, [OWNER_ENV]: `${tag}:${process.pid}` } },
          containerCgroup: `/${CGROUP_PARENT}/${tag}/${name}-containers`,
          net: this.net,
          peerCommand,
          cliCommand,
        }),
      );
    }
  }

  /** Splits the network: each group can talk only within itself; hosts in no group form one
   *  more group. Replaces an earlier partition; cuts stay as they are. Silent, like cut(). */
  partition(...groups: readonly (readonly Host[])[]): Promise<void> {
    return this.requireNet().partition(groups.map((g) => g.map((host) => this.own(host).n)));
  }

  /** Joins all partition segments again (cut hosts stay cut). */
  healPartition(): Promise<void> {
    return this.requireNet().partition([]);
  }

  /** The tail of every process log of every host, for a failed test's output. */
  dumpLogs(bytes = LOG_TAIL_BYTES): string {
    const parts: string[] = [];
    for (const host of this.hosts) {
      let logs: string[];
      try {
        logs = fs.readdirSync(host.dir).filter((f) => f.endsWith('.log')).sort();
      } catch {
        parts.push(`--- ${host.name}: logs already removed (set WEFT_HARNESS_KEEP=1 to keep them)`);
        continue;
      }
      for (const f of logs) parts.push(`--- ${host.name}/${f} (${path.join(host.dir, f)})\n${tail(path.join(host.dir, f), bytes)}`);
    }
    return `=== logs of harness ${instanceTag(this.id)} (${this.label})\n${parts.join('\n')}`;
  }

  /** Removes containers and stops dockerds, kills every other process of every host
   *  (SIGKILL: stop peers first if a test needs a clean shutdown), removes namespaces,
   *  bridges, cgroups, mounts and the temp dir. Idempotent; rejects if something could not
   *  be removed. */
  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      const problems: string[] = [];
      if (!this.tornDown) {
        // dockerd first and gently: removing containers through it releases their mounts
        // and network namespaces in order. Whatever it fails at, the kill below covers.
        await Promise.all(this.hosts.map((h) => h.dockerd?.stop().catch((e: unknown) => problems.push(`${h.name} dockerd: ${(e as Error).message}`))));
        const procs = this.hosts.flatMap((h) => h.processes).filter((p) => p.running);
        problems.push(...killInstanceSync(this.id));
        // Reap our children before removing their cgroups (the kernel keeps a cgroup busy
        // while a zombie of it is unreaped), and so no exit event arrives after the test.
        await Promise.all(procs.map((p) => within(p.exited, KILL_WAIT_MS)));
      }
      problems.push(...this.teardown(false));
      if (problems.length > 0) throw new Error(`harness ${instanceTag(this.id)} cleanup: ${problems.join('; ')}`);
    })();
    return this.cleaning;
  }

  /** The synchronous core of cleanup(), for exit hooks (which cannot reap their children:
   *  the empty cgroups those keep busy are swept by the next harness start). Returns
   *  problems; idempotent. */
  cleanupSync(): string[] {
    return this.teardown(true);
  }

  private teardown(tolerateUnreaped: boolean): string[] {
    if (this.tornDown) return [];
    this.tornDown = true;
    try {
      const problems = teardownSync(this.id, { tmpDir: this.tmpDir, keepTmp: this.keepTmp, tolerateUnreaped });
      if (this.keepTmp) console.warn(`weft harness: kept ${this.tmpDir}`);
      return problems;
    } finally {
      this.lease.release();
      live.delete(this);
    }
  }

  private requireNet(): Switch {
    if (this.net === undefined || this.tornDown) throw new Error(`harness ${instanceTag(this.id)} is not running`);
    return this.net;
  }

  private own(host: Host): Host {
    if (this.hosts[host.n - 1] !== host) throw new Error(`${host.name} (${host.ns}) is not a host of harness ${instanceTag(this.id)}`);
    return host;
  }
}

function tail(file: string, bytes: number): string {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, bytes);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    return (size > len ? '[…]\n' : '') + buf.toString('utf8');
  } catch (e) {
    return `(cannot read: ${(e as Error).message})`;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Harnesses of this process not yet cleaned up, for the exit hooks. */
const live = new Set<Harness>();
let hooked = false;

const FATAL_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function cleanupAllSync(why: string): void {
  for (const h of [...live]) {
    const problems = h.cleanupSync();
    if (problems.length > 0) console.error(`weft harness: cleanup on ${why}: ${problems.join('; ')}`);
  }
}

function installExitHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => cleanupAllSync('exit'));
  for (const sig of FATAL_SIGNALS) {
    const onSignal = () => {
      cleanupAllSync(sig);
      process.removeListener(sig, onSignal);
      // Listening replaced the default action; if nobody else handles it, die by it as if
      // we had never listened (the parent sees the right signal).
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}
