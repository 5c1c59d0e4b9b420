// Taking a node apart, from its name and directory alone: what destroy does, and what create
// does to the remains of an interrupted creation. Gentle first (the peer says goodbye to its
// mesh, dockerd removes its containers and their mounts in order), then certain (the cgroup
// kill ends whatever is left, also what outlived a kill -9: wireguard-go, containerd, shims,
// containers), then every object outside the node's processes. Each step is bounded in time
// and runs even when an earlier one failed; what could not be undone is reported at the end.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorText, type Logger } from '../../mesh/log.ts';
import { DEFAULT_PLUGIN_DIR } from '../../mesh/network/docker/plugin.ts';
import { WG_SOCKET_DIR } from '../../mesh/network/dataplane/wireguard.ts';
import { cgroupRoot, killCgroup, nodeCgroupDir, removeNodeCgroups } from './cgroup.ts';
import { DOCKERD_STOP_MS, dockerAnswers, removeContainers, removeShimSockets } from './dockerd.ts';
import { unmountBelow, mountsBelow } from './mounts.ts';
import { pluginName } from './names.ts';
import { namespacePids, removeNodeNetwork, tunnelDevices } from './network.ts';
import type { NodeDir } from './node-dir.ts';
import { isRunning, lastLines, stopProcess } from './processes.ts';

/** Grace for the peer on SIGTERM: it says goodbye to its mesh and flushes its store, well
 *  under a second; 10 s only runs out on a wedged peer, which SIGKILL then ends. */
export const PEER_STOP_MS = 10_000;
/** How much of the log of a node's peer that died on its own is kept in the host's log when the
 *  node is destroyed (its directory goes with it): enough for a stack trace. */
const DEAD_PEER_LOG_BYTES = 4096;
const DEAD_PEER_LOG_LINES = 40;
/** How long to wait for killed stragglers in the node's namespace (see CGROUP_DRAIN_MS). */
const STRAGGLER_WAIT_MS = 5_000;
const POLL_MS = 20;

/** Removes everything of node `name`; throws one error naming what is left, if anything is. */
export async function teardownNode(name: string, d: NodeDir, log: Logger): Promise<void> {
  const problems: string[] = [];
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      problems.push(`${what}: ${errorText(e)}`);
    }
  };
  const procs = d.readProcesses();
  // A peer that exited before anyone stopped it crashed or was killed: its last words would
  // go with the node's directory, so the host's log keeps them.
  if (procs.peer && !isRunning(procs.peer)) {
    log.info("the node's peer had exited before the node was destroyed; the end of its log", { node: name, log: lastLines(d.peerLog, DEAD_PEER_LOG_BYTES, DEAD_PEER_LOG_LINES) });
  }

  await step('stopping the peer', async () => {
    if (procs.peer && (await stopProcess(procs.peer, PEER_STOP_MS)) === 'killed') {
      log.warn('the peer ignored SIGTERM; killed it', { node: name, pid: procs.peer.pid });
    }
  });
  await step('stopping dockerd', async () => {
    if (!isRunning(procs.dockerd)) return;
    if (await dockerAnswers(d)) {
      // Through dockerd, containers go with their mounts and network namespaces in order;
      // whatever it fails at, the cgroup kill below covers.
      await removeContainers(d).catch((e: unknown) => log.warn('could not remove the containers through dockerd; killing them', { node: name, err: errorText(e) }));
    }
    if ((await stopProcess(procs.dockerd, DOCKERD_STOP_MS)) === 'killed') log.warn('dockerd ignored SIGTERM; killed it', { node: name });
  });

  // Named before the kill: their control sockets are machine-wide and outlive a killed daemon.
  const tunnels = await tunnelDevices(name).catch(() => [] as string[]);
  await step('killing the node\'s processes', async () => {
    if (cgroupRoot() !== null) {
      const left = await killCgroup(nodeCgroupDir(name));
      if (left !== undefined) throw new Error(left);
    }
    await killStragglers(name);
  });

  await step('removing sockets', async () => {
    removeShimSockets(d);
    fs.rmSync(path.join(DEFAULT_PLUGIN_DIR, `${pluginName(name)}.sock`), { force: true });
    for (const dev of tunnels) fs.rmSync(path.join(WG_SOCKET_DIR, `${dev}.sock`), { force: true });
  });
  problems.push(...(await unmountBelow(d.dir)));
  problems.push(...(await removeNodeNetwork(name)));
  problems.push(...(await removeNodeCgroups(name)));
  if (mountsBelow(d.dir).length === 0) {
    await step(`removing ${d.dir}`, async () => fs.rmSync(d.dir, { recursive: true, force: true }));
  } else {
    problems.push(`kept ${d.dir}: mounts below it could not be released`);
  }
  if (problems.length > 0) throw new Error(`local node ${name}: could not remove everything: ${problems.join('; ')}`);
}

/** Processes inside the node's namespace but outside its cgroup (a shell someone entered it
 *  with): they would keep the namespace, and with it the node's address, alive. */
async function killStragglers(name: string): Promise<void> {
  const pids = namespacePids(name);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  const deadline = Date.now() + STRAGGLER_WAIT_MS;
  for (let i = 0; i < STRAGGLER_WAIT_MS / POLL_MS && Date.now() < deadline && namespacePids(name).length > 0; i++) await sleep(POLL_MS);
  const left = namespacePids(name);
  if (left.length > 0) throw new Error(`processes ${left.join(' ')} in namespace of node ${name} did not die`);
}
