// The provisioner's pure round (provisioner/reconcile.ts) driving the aws provider against the
// EC2 double, in real time: a cluster scaled 0 → 3 → 1 ends with one instance running and the
// other two terminated, spread over the zones, and a zone without capacity is passed over. The
// hosts are not real, so no peer ever joins: a node counts as joined once its instance runs,
// which is what a working image's user data would make true a minute later.

import { RunInstancesCommand } from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, test } from 'vitest';
import type { Logger } from '../../mesh/log.ts';
import type { NodeClusterSpec } from '../../provisioner/cluster/cluster-spec.ts';
import type { NodeRecord } from '../../provisioner/cluster/node-record.ts';
import type { ClusterLog } from '../../provisioner/cluster/timeline.ts';
import { hiddenAwsCredentials } from '../../provisioner/credentials/aws-credentials.ts';
import { ProviderError, type ProviderNode } from '../../provisioner/provider.ts';
import { AwsProvider } from '../../provisioner/providers/aws/aws-provider.ts';
import { type Listing, nodeKey, provision, type Timing } from '../../provisioner/reconcile.ts';
import { DesiredState, type Kind, type StateObject } from '../../scheduler/manager/desired-state.ts';
import type { Versioned } from '../../scheduler/reconciler/observed.ts';
import type { Ec2Double } from './ec2-double.ts';
import { ACCESS_KEY_ID, clientFor, IMAGE, SECRET, startDouble } from './helpers.ts';

const TIMING: Timing = { provisionTimeoutMs: 60_000, unreachableGraceMs: 30_000, orphanGraceMs: 60_000 };
/** Rounds a few times faster than the shell's 2 s: the double launches in 20 ms. */
const ROUND_PAUSE_MS = 30;
const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => quiet };

/** A leader's provisioner reduced to its loop: desired state in memory (validated as on a
 *  manager), the round, its batch applied, then its calls, awaited in turn. */
class Leader {
  readonly state = new DesiredState();
  readonly created = new Map<string, ProviderNode | ProviderError>();
  readonly terminateAsked = new Map<string, number>();
  readonly orphanSince = new Map<string, number>();
  readonly events: string[] = [];
  private index = 0;
  private readonly provider: AwsProvider;
  private readonly ec2: Ec2Double;

  private readonly timing: Timing;

  constructor(provider: AwsProvider, ec2: Ec2Double, timing: Timing) {
    this.provider = provider;
    this.ec2 = ec2;
    this.timing = timing;
  }

  put(kind: Kind, name: string, spec: unknown, expect?: number): void {
    const r = this.state.apply(++this.index, JSON.stringify({ op: 'put', kind, name, spec, req: `t${this.index}`, ...(expect !== undefined ? { expect } : {}) }));
    if (!r.outcome.ok) throw new Error(r.outcome.error);
  }

  scale(name: string, target: number): void {
    const o = this.state.get('nodecluster', name) as StateObject;
    this.put('nodecluster', name, { ...(o.spec as NodeClusterSpec), target }, o.version);
  }

  records(): NodeRecord[] {
    return this.state.list('node').map((o) => o.spec as NodeRecord);
  }

  async round(): Promise<void> {
    const clusters = this.state.list('nodecluster').map((o) => versioned<NodeClusterSpec>(o));
    const listings = new Map<string, Listing>();
    for (const c of clusters) {
      try {
        listings.set(c.name, { nodes: await this.provider.list(c.name, c.spec.options), zones: await this.provider.zones(c.spec.options) });
      } catch (err) {
        listings.set(c.name, { error: (err as Error).message });
      }
    }
    // No real host runs weft here: a node's peer counts as joined once its instance runs.
    // Orphans: listed for a cluster, named by no record (the shell's noteOrphans).
    const tokens = new Set(this.records().map((r) => r.clientToken));
    for (const l of listings.values()) {
      if ('error' in l) continue;
      for (const n of l.nodes) if (n.state !== 'terminated' && !tokens.has(n.clientToken) && !this.orphanSince.has(nodeKey(n))) this.orphanSince.set(nodeKey(n), Date.now());
    }
    const members = new Map(this.ec2.instances().filter((i) => i.state === 'running').map((i) => [i.tags['weft:node'] ?? '', [{ id: `peer-${i.instanceId}`, up: true }]]));
    const result = provision({
      clusters, nodes: this.state.list('node').map((o) => versioned<NodeRecord>(o)),
      timelines: new Map(this.state.list('timeline').map((o) => [o.name, versioned<ClusterLog>(o)])),
      listings, members, created: this.created, terminateAsked: this.terminateAsked, inFlight: new Set(), orphanSince: this.orphanSince,
      timing: () => this.timing, now: Date.now(),
    });
    if (result.ops.length > 0) {
      const r = this.state.apply(++this.index, JSON.stringify({ op: 'batch', ops: result.ops, req: `r${this.index}` }));
      if (!r.outcome.ok) throw new Error(`the round's batch was refused: ${r.outcome.error}`);
    }
    this.events.push(...result.events.map((e) => `${e.type} ${e.detail}`));
    // Only after the batch (with the client tokens) is committed: the order the shell keeps.
    for (const req of result.creates) {
      this.created.set(req.clientToken, await this.provider.create(req).catch((err: unknown) => (err instanceof ProviderError ? err : new ProviderError('transient', 'Error', String(err)))));
    }
    for (const t of result.terminates) {
      this.terminateAsked.set(nodeKey(t.node), Date.now());
      await this.provider.terminate(t.node, {});
    }
  }

  async runUntil(done: () => boolean, maxRounds = 200): Promise<boolean> {
    for (let i = 0; i < maxRounds; i++) {
      if (done()) return true;
      await this.round();
      await new Promise((r) => setTimeout(r, ROUND_PAUSE_MS));
    }
    return done();
  }
}

function versioned<T>(o: StateObject): Versioned<T> {
  return { name: o.name, version: o.version, spec: o.spec as T };
}

const providers: AwsProvider[] = [];
afterEach(() => {
  for (const p of providers.splice(0)) p.close();
});

async function world(zones: string[], timing = TIMING): Promise<{ ec2: Ec2Double; leader: Leader }> {
  const ec2 = await startDouble({ zones });
  const provider = new AwsProvider({
    name: 'prod', region: ec2.region, endpoint: ec2.url, mesh: 'roundmesh',
    credentials: hiddenAwsCredentials({ accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET }),
    userData: (req) => `#!/bin/sh\n# join as ${req.node}\n`, log: quiet,
  });
  providers.push(provider);
  const leader = new Leader(provider, ec2, timing);
  leader.put('nodecluster', 'web', {
    name: 'web', provider: 'prod', region: ec2.region, nodeType: 't3.small', target: 0, min: 0, max: 10, tags: [],
    options: { image: IMAGE }, uid: 'a1b2c3d4e5f60718', createdAt: Date.now(),
  } satisfies NodeClusterSpec, 0);
  return { ec2, leader };
}

const live = (ec2: Ec2Double) => ec2.instances().filter((i) => i.state === 'pending' || i.state === 'running');
const deployed = (leader: Leader, n: number) => () => leader.records().length === n && leader.records().every((r) => r.state === 'deployed');

describe('the provisioner round with the aws provider', () => {
  test('a cluster scaled 0 → 3 → 1: three instances over three zones, then two terminated', async () => {
    const { ec2, leader } = await world(['us-east-1a', 'us-east-1b', 'us-east-1c']);
    await leader.round();
    expect(ec2.instances()).toHaveLength(0);

    leader.scale('web', 3);
    expect(await leader.runUntil(deployed(leader, 3))).toBe(true);
    expect(live(ec2).map((i) => i.zone).sort()).toEqual(['us-east-1a', 'us-east-1b', 'us-east-1c']);
    expect(ec2.instances()).toHaveLength(3);
    expect(leader.records().map((r) => r.providerId).sort()).toEqual(ec2.instances().map((i) => i.instanceId).sort());
    expect(leader.records().every((r) => r.address?.startsWith('172.31.'))).toBe(true);

    leader.scale('web', 1);
    expect(await leader.runUntil(() => deployed(leader, 1)() && live(ec2).length === 1)).toBe(true);
    expect(ec2.instances()).toHaveLength(3);
    expect(ec2.instances().filter((i) => i.state === 'shutting-down' || i.state === 'terminated')).toHaveLength(2);
    expect(live(ec2)[0]?.instanceId).toBe(leader.records()[0]?.providerId);
  });

  test('a zone without capacity is passed over; the node is made in another with a new client token', async () => {
    const { ec2, leader } = await world(['us-east-1a', 'us-east-1b']);
    ec2.setZoneCapacity('us-east-1a', 0);
    leader.scale('web', 1);
    expect(await leader.runUntil(deployed(leader, 1))).toBe(true);
    expect(ec2.instances().map((i) => i.zone)).toEqual(['us-east-1b']);
    expect(leader.records()[0]).toMatchObject({ zone: 'us-east-1b', attempt: 2 });
    expect(leader.events.some((e) => /us-east-1a has no capacity \(InsufficientInstanceCapacity/.test(e))).toBe(true);
  });

  test("an instance tagged for the cluster that no record names is terminated after the orphan grace", async () => {
    const { ec2, leader } = await world(['us-east-1a'], { ...TIMING, orphanGraceMs: 300 });
    const tags = [{ Key: 'weft:mesh', Value: 'roundmesh' }, { Key: 'weft:cluster', Value: 'web' }, { Key: 'weft:node', Value: 'web-9' }];
    const made = await clientFor(ec2).send(new RunInstancesCommand({ ImageId: IMAGE, InstanceType: 't3.small', MinCount: 1, MaxCount: 1, TagSpecifications: [{ ResourceType: 'instance', Tags: tags }] }));
    const id = made.Instances?.[0]?.InstanceId ?? '';
    const started = Date.now();
    expect(await leader.runUntil(() => ec2.instance(id)?.state !== 'pending' && ec2.instance(id)?.state !== 'running')).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(leader.events.some((e) => e.startsWith(`node-terminated web-9 (${id}): held by the provider for this cluster but not in desired state`))).toBe(true);
  });
});
