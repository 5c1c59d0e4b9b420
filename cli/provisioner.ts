// The provisioner composed on a peer: the leader's provisioner (it acts only while this peer
// leads), its providers, the host side of the `local` provider (this peer runs the nodes of the
// local clusters created through it), and the API methods of both.

import { join } from 'node:path';
import { encodeJoinToken } from '../mesh/admission/join-token.ts';
import { formatHostPort } from '../mesh/address.ts';
import { ApiClient } from '../mesh/api/client.ts';
import { UserError } from '../mesh/api/request.ts';
import type { MethodTable } from '../mesh/api/table.ts';
import type { ControlEventType } from '../mesh/events.ts';
import type { Logger } from '../mesh/log.ts';
import type { Peer } from '../mesh/peer.ts';
import { registerProvisionerMethods } from '../provisioner/api.ts';
import type { NodeClusterSpec } from '../provisioner/cluster/cluster-spec.ts';
import type { Provider } from '../provisioner/provider.ts';
import { Provisioner } from '../provisioner/provisioner.ts';
import { localNodeCreate, localNodeDestroy, localNodeList } from '../provisioner/providers/local-contract.ts';
import { LocalHost } from '../provisioner/providers/local-host.ts';
import { LocalProvider } from '../provisioner/providers/local.ts';
import type { Timing } from '../provisioner/reconcile.ts';
import type { Managers } from '../scheduler/manager/managers.ts';

/** A local node starts dockerd and a peer on this machine: joined in seconds; three minutes
 *  is a machine too loaded to be given more nodes. Its peer gone while its processes run (a
 *  partition cannot happen on one machine): half a minute. */
const LOCAL_TIMING: Timing = { provisionTimeoutMs: 180_000, unreachableGraceMs: 30_000, orphanGraceMs: 60_000 };

export interface ProvisionerService {
  provisioner: Provisioner;
  stop(): void;
}

export function startProvisioner(peer: Peer, managers: Managers, methods: MethodTable, log: Logger): ProvisionerService {
  const emit = (type: ControlEventType, detail: string) => peer.events.add({ type, detail });
  let host: Promise<LocalHost> | undefined;
  const localHost = (): Promise<LocalHost> => (host ??= (async () => {
    // Loaded only when a local cluster is used: most peers never run one.
    const { LocalNodes, currentWeftCommand } = await import('../provisioner/local/local-nodes.ts');
    const dir = join(peer.config.dataDir, 'local-nodes');
    const runner = new LocalNodes({ dir, log: log.child('local-nodes'), weft: currentWeftCommand() });
    return new LocalHost({
      runner, dir: join(peer.config.dataDir, 'local-node-labels'), log: log.child('local-nodes'),
      joinToken: () => encodeJoinToken({ key: peer.config.meshKey, peers: [] }),
      // A peer listening on every address (or only on loopback) is reached from its nodes at the
      // node bridge's gateway; otherwise at its own advertised address, which is local to it.
      meshAddress: (gateway) => (['0.0.0.0', '127.0.0.1'].includes(peer.advertise.host) || peer.advertise.host.startsWith('127.') ? `${gateway}:${peer.advertise.port}` : formatHostPort(peer.advertise)),
    });
  })());
  const local = new LocalProvider({ self: peer.view().self.id, here: localHost, there: (id) => ApiClient.overMesh(peer.node, id) });
  const providers = (name: string): Provider | undefined => (name === 'local' ? local : undefined);
  const provisioner = new Provisioner({
    raft: managers.raft, view: peer.view(), log, provider: providers, emit,
    timing: (_c: NodeClusterSpec) => LOCAL_TIMING,
  });
  provisioner.start();
  registerProvisionerMethods(methods, managers.raft, peer.view(), () => []);
  const user = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      throw err instanceof UserError ? err : new UserError((err as Error).message);
    }
  };
  methods.register(localNodeCreate, (p) => user(async () => (await localHost()).create(p)));
  methods.register(localNodeList, ({ cluster }) => user(async () => (await localHost()).list(cluster)));
  methods.register(localNodeDestroy, ({ node, clientToken }) => user(async () => {
    await (await localHost()).destroy(node, clientToken);
    return { destroyed: node };
  }));
  return { provisioner, stop: () => provisioner.stop() };
}
