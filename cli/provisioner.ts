// The provisioner composed on a peer: the leader's provisioner (it acts only while this peer
// leads), its providers, the host side of the `local` provider (this peer runs the nodes of the
// local clusters created through it), and the API methods of both.

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { encodeJoinToken } from '../mesh/admission/join-token.ts';
import { formatHostPort } from '../mesh/address.ts';
import { ApiClient } from '../mesh/api/client.ts';
import { asUserError, UserError } from '../mesh/api/request.ts';
import type { MethodTable } from '../mesh/api/table.ts';
import type { ControlEventType } from '../mesh/events.ts';
import type { Logger } from '../mesh/log.ts';
import type { Peer } from '../mesh/peer.ts';
import { registerProvisionerMethods } from '../provisioner/api.ts';
import type { RetirePeer } from '../provisioner/retire.ts';
import type { NodeClusterSpec } from '../provisioner/cluster/cluster-spec.ts';
import type { Provider, CreateRequest } from '../provisioner/provider.ts';
import { openProviderCredentials, type ProviderRecord } from '../provisioner/credentials/provider-record.ts';
import { CredentialsKey } from '../provisioner/credentials/seal.ts';
import { registerProviderMethods } from '../provisioner/provider-api.ts';
import type { AwsProvider } from '../provisioner/providers/aws/aws-provider.ts';
import { Provisioner } from '../provisioner/provisioner.ts';
import { localNodeCreate, localNodeDestroy, localNodeList } from '../provisioner/providers/local-contract.ts';
import { LocalHost } from '../provisioner/providers/local-host.ts';
import { LocalProvider } from '../provisioner/providers/local.ts';
import type { Timing } from '../provisioner/reconcile.ts';
import type { Managers } from '../scheduler/manager/managers.ts';
import type { Reconciler } from '../scheduler/reconciler/reconciler.ts';
import type { InstallService } from '../provisioner/byon/install-server.ts';

/** A local node starts dockerd and a peer on this machine: joined in seconds; three minutes
 *  is a machine too loaded to be given more nodes. Its peer gone while its processes run (a
 *  partition cannot happen on one machine): half a minute. */
const LOCAL_TIMING: Timing = { provisionTimeoutMs: 180_000, unreachableGraceMs: 30_000, orphanGraceMs: 60_000 };
/** An EC2 instance boots, installs Docker and weft and joins in minutes; fifteen is a broken
 *  image or user data. Its peer gone for two minutes while EC2 says it runs: replaced (a
 *  partition of a VPC is rarer than a dead host). A stray instance is left five minutes, long
 *  after any create whose answer was lost has been listed. */
const AWS_TIMING: Timing = { provisionTimeoutMs: 15 * 60_000, unreachableGraceMs: 120_000, orphanGraceMs: 5 * 60_000 };
/** The mesh's label in cloud tags and group names: a hash of the mesh key, the same on every
 *  peer and across leader changes and forced new clusters, and saying nothing of the key. */
const MESH_LABEL_DOMAIN = 'weft mesh label v1';

export interface ProvisionerService {
  provisioner: Provisioner;
  stop(): void;
}

export function startProvisioner(peer: Peer, managers: Managers, methods: MethodTable, log: Logger, reconciler: Reconciler, install: InstallService): ProvisionerService {
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
  const key = CredentialsKey.derive(peer.config.meshKey);
  const mesh = createHash('sha256').update(MESH_LABEL_DOMAIN).update(peer.config.meshKey).digest('hex').slice(0, 16);
  // A cloud node's user data: the install script with the join token, made once per client
  // token on this leader (a repeat of RunInstances must send the same text; a new leader's
  // differs, and the aws provider then finds the instance by its client token instead).
  const userDataByToken = new Map<string, Promise<string>>();
  const userData = (req: CreateRequest): Promise<string> => {
    let text = userDataByToken.get(req.clientToken);
    if (!text) {
      text = install.userData({ name: req.node, tags: req.tags, dataplane: req.options.dataplane !== 'false', expiresMs: AWS_TIMING.provisionTimeoutMs });
      userDataByToken.set(req.clientToken, text);
      void text.catch(() => userDataByToken.delete(req.clientToken));
      // Kept while its install may still run; a token's attempts never outlive the timeout.
      setTimeout(() => userDataByToken.delete(req.clientToken), AWS_TIMING.provisionTimeoutMs).unref();
    }
    return text;
  };
  // One AwsProvider per provider record version (a rotation makes a new one), made once even
  // when several clusters ask at the same moment.
  const aws = new Map<string, { version: number; made: Promise<AwsProvider> }>();
  const providers = async (name: string): Promise<{ provider: Provider; version: number } | undefined> => {
    if (name === 'local') return { provider: local, version: 0 };
    const o = managers.raft.state.get('provider', name);
    if (!o) return undefined;
    let entry = aws.get(name);
    if (entry?.version !== o.version) {
      const old = entry;
      void old?.made.then((p) => p.close(), () => undefined);
      const record = o.spec as ProviderRecord;
      entry = {
        version: o.version,
        made: (async () => {
          // Loaded only when a cloud provider is used: @aws-sdk is large.
          const { AwsProvider } = await import('../provisioner/providers/aws/aws-provider.ts');
          // Throws one line without a secret when the box cannot be opened (another mesh secret).
          const credentials = openProviderCredentials(key, name, record);
          return new AwsProvider({
            name, region: record.region, ...(record.endpoint ? { endpoint: record.endpoint } : {}), credentials, mesh, log: log.child('aws'),
            userData: (req: CreateRequest) => userData(req),
          });
        })(),
      };
      aws.set(name, entry);
    }
    return { provider: await entry.made, version: entry.version };
  };
  const retire: RetirePeer = async (id) => {
    const r = await peer.ipam.rmpeer(id);
    if (r.status === 'refused') throw new UserError(r.reason);
    await peer.forget(id);
  };
  const provisioner = new Provisioner({
    raft: managers.raft, view: peer.view(), log, provider: providers, emit, retire,
    timing: (c: NodeClusterSpec) => (c.provider === 'local' ? LOCAL_TIMING : AWS_TIMING),
    // What the scheduler's last round (on this leader) could not place.
    demands: () => reconciler.services()
      .flatMap((s) => (s.pendingReason ? [{ service: s.name, reason: s.pendingReason, unplaced: s.unplaced ?? 0 }] : [])),
  });
  provisioner.start();
  registerProvisionerMethods(methods, managers.raft, peer.view(), retire);
  registerProviderMethods(methods, managers.raft, key);
  const user = asUserError;
  methods.register(localNodeCreate, (p) => user(async () => (await localHost()).create(p)));
  methods.register(localNodeList, ({ cluster }) => user(async () => (await localHost()).list(cluster)));
  methods.register(localNodeDestroy, ({ node, clientToken }) => user(async () => {
    await (await localHost()).destroy(node, clientToken);
    return { destroyed: node };
  }));
  return {
    provisioner,
    stop: () => {
      provisioner.stop();
      for (const a of aws.values()) void a.made.then((p) => p.close(), () => undefined);
    },
  };
}

