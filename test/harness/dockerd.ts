// A dockerd per test host, inside the host's network namespace, sharing nothing with the
// machine's own Docker (if any) or with other hosts: its own data root, exec root (and with
// them its own containerd), pidfile, API socket and config file, all under the host's dir.
//
// Containers go into the cgroup <harness cgroup>/<host>-containers, inside the instance's
// cgroup subtree, so the harness's cgroup kill reaches them even when dockerd is gone.
// No registry: images come from `docker import` of a tarball (importBusybox).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { HostProcess } from './process.ts';
import { describeFailure, run, type ExecResult, type RunOptions } from './run.ts';
import { waitFor } from './wait.ts';

/** dockerd's first start (containerd, graph driver, "Loading containers") takes 2-5 s on
 *  2 loaded cores; 60 s is failure. */
export const DOCKERD_READY_MS = 60_000;

/** Grace for dockerd on SIGTERM: it stops containers (10 s default each) and containerd. */
export const DOCKERD_STOP_MS = 20_000;

/** Where busybox-static (scripts/setup.sh) installs its binary. */
export const BUSYBOX = '/bin/busybox';

export const BUSYBOX_IMAGE = 'weft-test/busybox:latest';

export interface DockerdOptions {
  /** Extra dockerd arguments, e.g. ['--storage-driver', 'vfs']. */
  args?: readonly string[];
}

/** What a Host offers a Dockerd: a place to run it and where its files go. */
export interface DockerdHost {
  readonly name: string;
  readonly dir: string;
  /** cgroup path (from the cgroup root) for this host's containers. */
  readonly containerCgroup: string;
  spawn(name: string, argv: readonly string[], opts?: { env?: NodeJS.ProcessEnv }): Promise<HostProcess>;
}

export class Dockerd {
  readonly process: HostProcess;
  /** The API socket path; DOCKER_HOST is `unix://<socket>`. */
  readonly socket: string;
  readonly dir: string;
  private readonly hostName: string;

  private constructor(hostName: string, dir: string, socket: string, proc: HostProcess) {
    this.hostName = hostName;
    this.dir = dir;
    this.socket = socket;
    this.process = proc;
  }

  /** Starts dockerd in the host's namespace and waits until its API answers. */
  static async start(host: DockerdHost, opts: DockerdOptions = {}): Promise<Dockerd> {
    const dir = path.join(host.dir, 'docker');
    fs.mkdirSync(path.join(dir, 'cli'), { recursive: true });
    const config = path.join(dir, 'daemon.json');
    // An empty config of our own: the machine's /etc/docker/daemon.json must not leak in.
    fs.writeFileSync(config, '{}\n');
    const socket = path.join(dir, 'docker.sock');
    const argv = [
      'dockerd',
      '--config-file', config,
      '--data-root', path.join(dir, 'data'),
      '--exec-root', path.join(dir, 'exec'),
      '--pidfile', path.join(dir, 'docker.pid'),
      '--host', `unix://${socket}`,
      // Networking is weft's job: no docker0, no iptables rules, no sysctls, no proxies.
      '--bridge=none',
      '--iptables=false',
      '--ip6tables=false',
      '--ip-forward=false',
      '--ip-masq=false',
      '--userland-proxy=false',
      // cgroupfs, so --cgroup-parent is a plain path inside the harness's cgroup subtree.
      '--exec-opt', 'native.cgroupdriver=cgroupfs',
      `--cgroup-parent=${host.containerCgroup}`,
      ...(opts.args ?? []),
    ];
    // containerd writes goroutine dumps (containerd.<pid>.stacks.log, when dockerd dies
    // under it) to $TMPDIR: keep them in the host's directory, not the machine's /tmp.
    const tmp = path.join(dir, 'tmp');
    fs.mkdirSync(tmp, { recursive: true });
    const proc = await host.spawn('dockerd', argv, { env: { TMPDIR: tmp } });
    const d = new Dockerd(host.name, dir, socket, proc);
    await waitFor(
      async () => {
        if (!proc.running) throw new Error(`dockerd exited (${JSON.stringify(proc.exit)}); see ${proc.logFile}`);
        return (await d.docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10_000 })).code === 0;
      },
      { timeoutMs: DOCKERD_READY_MS, intervalMs: 200, what: `dockerd on ${host.name} to answer on ${socket}` },
    ).catch(async (e: unknown) => {
      await proc.kill().catch(() => {});
      throw e;
    });
    return d;
  }

  /** Runs the docker CLI against this dockerd (from the root namespace: the socket is a file). */
  docker(args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
    return run(['docker', ...args], {
      ...opts,
      env: { ...process.env, DOCKER_HOST: `unix://${this.socket}`, DOCKER_CONFIG: path.join(this.dir, 'cli'), ...opts.env },
    });
  }

  /** Like docker(), but throws with the CLI's words unless it exits 0; resolves stdout, trimmed. */
  async mustDocker(args: readonly string[], opts: RunOptions = {}): Promise<string> {
    const r = await this.docker(args, opts);
    if (r.code !== 0) throw new Error(`${this.hostName}: ${describeFailure(['docker', ...args], r)}`);
    return r.stdout.trim();
  }

  /** Imports a busybox-only image (static /bin/busybox plus one symlink per applet). */
  async importBusybox(tag = BUSYBOX_IMAGE): Promise<string> {
    const tarball = await busyboxTarball(this.dir);
    await this.mustDocker(['import', tarball, tag], { timeoutMs: 60_000 });
    return tag;
  }

  /** Force-removes every container (bounded), for a clean stop. */
  async removeAllContainers(): Promise<void> {
    const ids = (await this.mustDocker(['ps', '-aq'])).split('\n').filter(Boolean);
    if (ids.length > 0) await this.mustDocker(['rm', '-f', '-v', ...ids], { timeoutMs: 60_000 });
  }

  /** Removes the containers, then stops dockerd (SIGTERM, bounded, then SIGKILL). */
  async stop(): Promise<void> {
    if (!this.process.running) return;
    await this.removeAllContainers().catch(() => {}); // the cgroup kill gets them anyway
    await this.process.stop(DOCKERD_STOP_MS);
  }
}

/** Where containerd 1.6+ puts shim sockets: /run/containerd/s/<sha256>, one machine-wide
 *  directory whatever the daemon's own paths. */
const SHIM_SOCKET_DIR = '/run/containerd/s';

/**
 * Removes the shim sockets a killed dockerd's containers leave in SHIM_SOCKET_DIR (a shim
 * removes its own on a clean exit, not on SIGKILL). Each name is sha256 of
 * "<containerd address>/moby/<container id>" (containerd's shim.SocketAddress), so exactly
 * ours are found from the containers dockerd recorded under `dockerDir`. Call once the
 * shims are dead.
 */
export function removeShimSocketsSync(dockerDir: string): void {
  const address = path.join(dockerDir, 'exec', 'containerd', 'containerd.sock');
  let ids: string[];
  try {
    ids = fs.readdirSync(path.join(dockerDir, 'data', 'containers'));
  } catch {
    return; // no dockerd ran here
  }
  for (const id of ids) {
    const name = createHash('sha256').update(path.join(address, 'moby', id)).digest('hex');
    fs.rmSync(path.join(SHIM_SOCKET_DIR, name), { force: true });
  }
}

/** Builds (once per directory) rootfs.tar: /bin/busybox and a symlink per applet. */
async function busyboxTarball(dir: string): Promise<string> {
  const tarball = path.join(dir, 'busybox-rootfs.tar');
  if (fs.existsSync(tarball)) return tarball;
  if (!fs.existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: install busybox-static (scripts/setup.sh)`);
  const root = path.join(dir, 'busybox-rootfs');
  for (const d of ['bin', 'tmp', 'etc', 'proc', 'sys', 'dev']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  const list = await run([BUSYBOX, '--list']);
  if (list.code !== 0) throw new Error(`${BUSYBOX} --list failed: ${list.stderr.trim()}`);
  for (const applet of list.stdout.split('\n').filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox')) {
    fs.symlinkSync('busybox', path.join(root, 'bin', applet));
  }
  const tmp = `${tarball}.tmp`;
  const r = await run(['tar', '-C', root, '-cf', tmp, '.']);
  if (r.code !== 0) throw new Error(describeFailure(['tar', '-C', root, '-cf', tmp, '.'], r));
  fs.renameSync(tmp, tarball);
  return tarball;
}
