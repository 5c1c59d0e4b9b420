// The scheduler composed on a peer: the reconciler (it acts only while this peer leads the
// managers) and, on a peer that runs the container network, the agent that runs this node's
// tasks on its dockerd. Their lifecycle events go to the peer's event log (`weft events`).

import type { ControlEventType } from '../mesh/events.ts';
import type { Logger } from '../mesh/log.ts';
import type { Peer } from '../mesh/peer.ts';
import type { Managers } from '../scheduler/manager/managers.ts';
import { Reconciler } from '../scheduler/reconciler/reconciler.ts';
import type { LogSource } from '../scheduler/service/logs.ts';
import { logSource } from './scheduler-logs.ts';

export interface Scheduler {
  reconciler: Reconciler;
  /** Where this peer reads its containers' logs; undefined without the data plane. */
  logs: LogSource | undefined;
  stop(): void;
}

export async function startScheduler(peer: Peer, managers: Managers, log: Logger, dataplane: boolean, dockerHost: string | undefined): Promise<Scheduler> {
  const emit = (type: ControlEventType, detail: string) => peer.events.add({ type, detail });
  const reconciler = new Reconciler({ raft: managers.raft, view: peer.view(), log, emit });
  reconciler.start();
  let stopAgent = () => {};
  let logs: LogSource | undefined;
  if (dataplane) {
    // Loaded only with the network: a mesh-only peer runs no containers.
    const [{ Agent }, { DockerOps }, { dockerClient }] = await Promise.all([
      import('../scheduler/agent/agent.ts'),
      import('../scheduler/agent/docker-ops.ts'),
      import('../mesh/network/docker/events.ts'),
    ]);
    const docker = new DockerOps(dockerClient(dockerHost), log.child('agent'));
    const agent = new Agent({ raft: managers.raft, view: peer.view(), docker, log: log.child('agent'), emit });
    agent.start();
    stopAgent = () => agent.stop();
    logs = logSource(peer.node, peer.view().self.name, docker);
  }
  return {
    reconciler,
    logs,
    stop() {
      stopAgent();
      reconciler.stop();
    },
  };
}
