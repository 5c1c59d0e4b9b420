// A node's dockerd, inside the node's namespace, sharing nothing with the machine's own Docker
// or another node's: its own config file, data root, exec root (and with it its own
// containerd), pidfile and API socket, all under the node's directory. Containers go into the
// node's cgroup (--cgroup-parent), where destroy's cgroup kill reaches them even when dockerd
// is gone. Drives dockerd and the docker CLI; decides nothing about which nodes exist.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mustRun } from './command.ts';
import type { NodeDir } from './node-dir.ts';

/** dockerd's first start (containerd, storage driver, "Loading containers") takes 2-5 s on two
 *  loaded cores; a minute is failure. */
export const DOCKERD_READY_MS = 60_000;
const READY_POLL_MS = 200;
/** One /_ping: dockerd answers in milliseconds once it listens. */
const PING_TIMEOUT_MS = 5_000;

/** `docker load` of one image tarball: a gigabyte image unpacks in about a minute on a slow
 *  disk; five is failure. */
export const DOCKER_LOAD_MS = 300_000;

/** Grace for dockerd on SIGTERM: it stops containers (10 s each by default, in parallel) and
 *  containerd. Its containers are removed before, so this is rarely more than a second. */
export const DOCKERD_STOP_MS = 20_000;

/** Removing a node's containers before stopping dockerd (each is killed, not stopped). */
export const CONTAINERS_REMOVE_MS = 60_000;

/** Where containerd 1.6+ puts shim sockets: /run/containerd/s/<sha256>, one machine-wide
 *  directory whatever the daemon's own paths. */
const SHIM_SOCKET_DIR = '/run/containerd/s';

/** dockerd's argv for the node. */
export function dockerdArgv(d: NodeDir, cgroupParent: string): string[] {
  return [
    'dockerd',
    '--config-file', path.join(d.dockerDir, 'daemon.json'),
    '--data-root', path.join(d.dockerDir, 'data'),
    '--exec-root', d.dockerExecRoot,
    '--pidfile', path.join(d.dockerDir, 'docker.pid'),
    '--host', `unix://${d.dockerSocket}`,
    // Networking is the node's weft peer's job: no docker0, no iptables rules, no sysctls,
    // no proxies.
    '--bridge=none',
    '--iptables=false',
    '--ip6tables=false',
    '--ip-forward=false',
    '--ip-masq=false',
    '--userland-proxy=false',
    // cgroupfs, so --cgroup-parent is a plain path inside the node's cgroup.
    '--exec-opt', 'native.cgroupdriver=cgroupfs',
    `--cgroup-parent=${cgroupParent}`,
  ];
}

/** Writes what dockerd needs before it starts; returns the environment additions. */
export function prepareDockerDir(d: NodeDir): NodeJS.ProcessEnv {
  fs.mkdirSync(path.join(d.dockerDir, 'cli'), { recursive: true, mode: 0o700 });
  // An empty config of its own: the machine's /etc/docker/daemon.json must not leak in.
  fs.writeFileSync(path.join(d.dockerDir, 'daemon.json'), '{}\n');
  // containerd writes goroutine dumps (when dockerd dies under it) to $TMPDIR: keep them in
  // the node's directory, which destroy removes, not the machine's /tmp.
  const tmp = path.join(d.dockerDir, 'tmp');
  fs.mkdirSync(tmp, { recursive: true });
  return { TMPDIR: tmp };
}

/** True once dockerd answers on its socket. */
export function dockerPing(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: socket, path: '/_ping', timeout: PING_TIMEOUT_MS }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** Waits (bounded) until dockerd answers; `alive` says whether it is still worth waiting. */
export async function waitDockerd(socket: string, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + DOCKERD_READY_MS;
  for (let i = 0; i < DOCKERD_READY_MS / READY_POLL_MS && Date.now() < deadline; i++) {
    if (await dockerPing(socket)) return;
    if (!alive()) throw new Error('dockerd exited before it answered');
    await sleep(READY_POLL_MS);
  }
  throw new Error(`dockerd did not answer on ${socket} within ${DOCKERD_READY_MS / 1000} s`);
}

/** Runs the docker CLI against the node's dockerd (from any namespace: the socket is a file). */
function docker(d: NodeDir, args: readonly string[], timeoutMs?: number): Promise<string> {
  return mustRun(['docker', ...args], { timeoutMs, env: dockerEnv(d) });
}

export function dockerEnv(d: NodeDir): NodeJS.ProcessEnv {
  // The CLI's own config dir: the machine's ~/.docker (contexts, credential helpers) stays out.
  return { PATH: process.env.PATH, DOCKER_HOST: `unix://${d.dockerSocket}`, DOCKER_CONFIG: path.join(d.dockerDir, 'cli') };
}

/** `docker load -i` of each tarball into the node's dockerd. */
export async function loadImages(d: NodeDir, tarballs: readonly string[]): Promise<void> {
  for (const t of tarballs) {
    if (!fs.existsSync(t)) throw new Error(`image tarball ${t} does not exist`);
    await docker(d, ['load', '-q', '-i', t], DOCKER_LOAD_MS);
  }
}

/** Force-removes every container of the node's dockerd (with its anonymous volumes). */
export async function removeContainers(d: NodeDir): Promise<void> {
  const ids = (await docker(d, ['ps', '-aq'])).split('\n').map((s) => s.trim()).filter(Boolean);
  if (ids.length > 0) await docker(d, ['rm', '-f', '-v', ...ids], CONTAINERS_REMOVE_MS);
}

/** Whether the node's dockerd answers at all (a quick probe before asking it for work). */
export async function dockerAnswers(d: NodeDir): Promise<boolean> {
  return fs.existsSync(d.dockerSocket) && (await dockerPing(d.dockerSocket));
}

/**
 * Removes the shim sockets the node's containers left in SHIM_SOCKET_DIR (a shim removes its
 * own on a clean exit, not when killed). Each name is sha256 of "<containerd address>/moby/<id>"
 * (containerd's shim.SocketAddress), so exactly the node's are found from the containers
 * recorded under its data root. Call once the shims are dead.
 */
export function removeShimSockets(d: NodeDir): void {
  for (const s of shimSockets(d)) fs.rmSync(s, { force: true });
}

/** The shim socket paths the node's containers have, or had. */
export function shimSockets(d: NodeDir): string[] {
  const address = path.join(d.dockerExecRoot, 'containerd', 'containerd.sock');
  let ids: string[];
  try {
    ids = fs.readdirSync(path.join(d.dockerDir, 'data', 'containers'));
  } catch {
    return []; // no container was ever made
  }
  return ids.map((id) => path.join(SHIM_SOCKET_DIR, createHash('sha256').update(path.join(address, 'moby', id)).digest('hex')));
}
