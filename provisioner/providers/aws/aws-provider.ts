// The `aws` provider: node clusters on EC2, or on an EC2-compatible cloud through its endpoint.
// A node is one instance, launched with RunInstances in the zone the round chose, with the
// caller's user data (which installs and starts weft and joins the mesh), in the cluster's
// managed security group (managed-group.ts), tagged as weft's (weft-tags.ts) and found again by
// those tags. The node slot's client token, kept in desired state before the call, is the
// ClientToken of RunInstances: a new leader repeating the call gets the same instance back.
//
// What the round does not see, this does: the managed group is deleted once the last instance of
// a cluster has gone (a sweep after each terminate, and cleanup() for the shell when a cluster is
// removed). Draining a node before its end is the scheduler's: the round terminates a node only
// once its record says so, and the scheduler reschedules what ran on it when its peer goes.

import { Buffer } from 'node:buffer';
import type { _InstanceType, Instance, RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import type { Logger } from '../../../mesh/log.ts';
import type { AwsCredentials } from '../../credentials/aws-credentials.ts';
import { type CreateRequest, type Provider, ProviderError, type ProviderNode } from '../../provider.ts';
import { type AwsClusterOptions, awsOptionsProblem, parseAwsOptions, zonesOption, zonesProblem } from './aws-options.ts';
import { Ec2CallError, Ec2Connection } from './ec2-connection.ts';
import { rejectsMetadataOptions } from './ec2-errors.ts';
import { LISTED_STATES, providerNode } from './instance-node.ts';
import { type GroupCleanup, ManagedGroups } from './managed-group.ts';
import { Tagging, TAG_RETRY_DELAYS_MS } from './tagging.ts';
import { belongsTo, clusterFilters, MESH_LABEL, nodeTags, TAG_MESH, tagMap } from './weft-tags.ts';

export type { GroupCleanup } from './managed-group.ts';

/** Zones change rarely (a zone taken out of service), while the round asks every 2 s for every
 *  cluster: a minute keeps DescribeAvailabilityZones to one call a minute per provider. */
export const ZONES_CACHE_MS = 60_000;
/** DescribeInstances allows 5-1000 per page; a cluster holds at most 100 nodes (MAX_NODES), so
 *  one page nearly always does, with room for instances shutting down and orphans. */
export const PAGE_SIZE = 1000;
/** A listing of more pages than this is an endpoint that keeps handing out tokens. */
const MAX_PAGES = 20;
/** EC2's cap on user data: 16 KB before base64 encoding (RunInstances in the API reference). */
export const MAX_USER_DATA_BYTES = 16 * 1024;
/** After a terminate, how often the cluster is looked at to delete its group once it is empty:
 *  EC2 takes a minute or two to end an instance, and the group cannot go before. */
export const SWEEP_EVERY_MS = 20_000;
/** ...and for how long: an instance still shutting down after this is stuck; cleanup() (when
 *  the cluster is removed) or the next terminate try again. */
export const SWEEP_FOR_MS = 15 * 60_000;

/** Timings the tests shorten; defaults above. */
export interface AwsTuning {
  zonesCacheMs: number;
  pageSize: number;
  sweepEveryMs: number;
  sweepForMs: number;
  /** Pauses before asking again for a resource just created (tagging.ts). */
  notVisibleRetryMs: readonly number[];
}

export interface AwsProviderOptions {
  /** The provider's name (`weft provider add aws --name NAME`), for messages that say what to run. */
  name: string;
  region: string;
  /** The EC2 API of an EC2-compatible cloud (checked by credentials/endpoint.ts); absent: AWS. */
  endpoint?: string;
  /** Opened credentials (openProviderCredentials): they print as their hint. */
  credentials: AwsCredentials;
  /** This mesh's label in tags and group names (weft-tags.ts's MESH_LABEL). */
  mesh: string;
  /** The node's user data (the script that installs weft and joins it with a join token), as
   *  text; it is base64-encoded here. It must give the same text for the same client token: a
   *  repeat of RunInstances with other parameters is IdempotentParameterMismatch. */
  userData: (req: CreateRequest) => string | Promise<string>;
  log: Logger;
  tuning?: Partial<AwsTuning>;
}

export class AwsProvider implements Provider {
  private readonly o: AwsProviderOptions;
  private readonly t: AwsTuning;
  private readonly conn: Ec2Connection;
  private readonly tagging: Tagging;
  private readonly groups: ManagedGroups;
  private zoneCache?: { at: number; zones: Promise<string[]> };
  /** Creates under way per cluster: the sweep leaves a cluster's group alone meanwhile. */
  private readonly creating = new Map<string, number>();
  private readonly sweeps = new Map<string, NodeJS.Timeout>();
  private closed = false;

  constructor(o: AwsProviderOptions) {
    if (!MESH_LABEL.test(o.mesh)) throw new Error('the mesh label of an aws provider must be 1-64 letters, digits, ".", "_" or "-"');
    this.o = o;
    this.t = {
      zonesCacheMs: ZONES_CACHE_MS, pageSize: PAGE_SIZE, sweepEveryMs: SWEEP_EVERY_MS, sweepForMs: SWEEP_FOR_MS,
      notVisibleRetryMs: TAG_RETRY_DELAYS_MS, ...o.tuning,
    };
    this.conn = new Ec2Connection({ name: o.name, region: o.region, ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}), credentials: o.credentials, log: o.log });
    this.tagging = new Tagging(this.conn, o.log, this.t.notVisibleRetryMs);
    this.groups = new ManagedGroups({ conn: this.conn, tagging: this.tagging, mesh: o.mesh, log: o.log, delays: this.t.notVisibleRetryMs });
  }

  /** The region's available zones, sorted, narrowed to the cluster's `zones` option. */
  async zones(options: Readonly<Record<string, string>>): Promise<string[]> {
    // Only `zones` is read here: a cluster whose other options went bad must still be listed.
    const problem = options.zones === undefined ? undefined : zonesProblem(options.zones);
    if (problem) throw new ProviderError('parameters', 'InvalidOption', problem);
    const all = await this.availableZones();
    const wanted = zonesOption(options);
    if (!wanted) return all;
    const zones = all.filter((z) => wanted.includes(z));
    if (zones.length === 0) {
      throw new ProviderError('parameters', 'NoZone', `none of the zones ${wanted.join(', ')} (option zones) is available in ${this.o.region}; available: ${all.join(', ')}`);
    }
    return zones;
  }

  async create(req: CreateRequest): Promise<ProviderNode> {
    const problem = awsOptionsProblem(req.options);
    if (problem) throw new ProviderError('parameters', 'InvalidOption', problem);
    const o = parseAwsOptions(req.options);
    const text = await this.o.userData(req);
    if (Buffer.byteLength(text, 'utf8') > MAX_USER_DATA_BYTES) {
      throw new ProviderError('parameters', 'UserDataTooLarge', `the node's user data is ${Buffer.byteLength(text, 'utf8')} bytes; EC2 takes at most ${MAX_USER_DATA_BYTES}`);
    }
    const userData = Buffer.from(text, 'utf8').toString('base64');
    this.creating.set(req.cluster, (this.creating.get(req.cluster) ?? 0) + 1);
    try {
      const groupId = o.securityGroup ?? (await this.groups.ensure(req.cluster, o));
      try {
        return await this.launch(req, o, groupId, userData);
      } catch (err) {
        // The managed group went (deleted by hand, or by a sweep of an earlier leader) since it
        // was last made ready: make it again, once.
        if (o.securityGroup !== undefined || !(err instanceof Ec2CallError && err.code === 'InvalidGroup.NotFound')) throw err;
        this.groups.forget(req.cluster);
        return await this.launch(req, o, await this.groups.ensure(req.cluster, o), userData);
      }
    } finally {
      const n = (this.creating.get(req.cluster) ?? 1) - 1;
      if (n > 0) this.creating.set(req.cluster, n);
      else this.creating.delete(req.cluster);
    }
  }

  /** The cluster's instances of this mesh, found by their tags, all states but terminated. */
  async list(cluster: string, options: Readonly<Record<string, string>>): Promise<ProviderNode[]> {
    // Only `address` is read, leniently: a cluster whose other options went bad must still be
    // listed, so that its nodes can be ended.
    const address = options.address === 'public' ? 'public' : 'private';
    return (await this.instances(cluster)).flatMap((i) => providerNode(i, cluster, address) ?? []);
  }

  /** Ends the instance. One EC2 no longer knows is success: the round asks again if it is still
   *  listed (the reference warns that NotFound right after a create does not mean it is gone). */
  async terminate(node: ProviderNode, _options: Readonly<Record<string, string>>): Promise<void> {
    try {
      await this.conn.call('TerminateInstances', (s, c) => c.send(new s.TerminateInstancesCommand({ InstanceIds: [node.id] })));
      this.o.log.info('terminating an instance', { cluster: node.cluster, node: node.node, instance: node.id });
    } catch (err) {
      if (!(err instanceof Ec2CallError && err.code === 'InvalidInstanceID.NotFound')) throw err;
    }
    this.sweepLater(node.cluster);
  }

  /** Deletes what weft created for the cluster beyond its instances (its managed security
   *  group): for the shell to call when a cluster is removed, until nothing is left. A group
   *  still used by instances shutting down is left, with the reason. */
  cleanup(cluster: string): Promise<GroupCleanup> {
    return this.groups.cleanup(cluster);
  }

  /** Stops the sweeps and the client. */
  close(): void {
    this.closed = true;
    for (const timer of this.sweeps.values()) clearTimeout(timer);
    this.sweeps.clear();
    this.conn.close();
  }

  private async launch(req: CreateRequest, o: AwsClusterOptions, groupId: string, userData: string): Promise<ProviderNode> {
    // The user data holds a join token: never in a message, as text or as sent.
    const secrets = [userData, Buffer.from(userData, 'base64').toString('utf8')];
    const input: RunInstancesCommandInput = {
      ImageId: o.image,
      // The reference types it as a list of known names; EC2 takes new ones first, and an
      // EC2-compatible cloud its own: passed as given, refused by EC2 if wrong.
      InstanceType: req.nodeType as _InstanceType,
      MinCount: 1,
      MaxCount: 1,
      ClientToken: req.clientToken,
      Placement: { AvailabilityZone: req.zone },
      SecurityGroupIds: [groupId],
      UserData: userData,
      ...(o.keyName !== undefined ? { KeyName: o.keyName } : {}),
      ...(o.imds === 'required' ? { MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1, HttpEndpoint: 'enabled' } } : {}),
    };
    const tags = nodeTags(this.o.mesh, req);
    let instance: Instance;
    try {
      const { result, untagged } = await this.tagging.create([{ ResourceType: 'instance', Tags: tags }], (specs) =>
        this.conn.call('RunInstances', (s, c) => c.send(new s.RunInstancesCommand({ ...input, ...(specs ? { TagSpecifications: specs } : {}) })), secrets));
      const first = result.Instances?.[0];
      if (!first?.InstanceId) throw new ProviderError('transient', 'NoInstance', 'EC2 answered RunInstances without an instance');
      instance = first;
      if (untagged) await this.tagOrEnd(first.InstanceId, req);
    } catch (err) {
      if (!(err instanceof Ec2CallError)) throw err;
      if (err.code === 'IdempotentParameterMismatch') {
        const earlier = await this.byClientToken(req);
        if (earlier) return earlier;
      }
      if (rejectsMetadataOptions(err.failure)) {
        throw new ProviderError('parameters', err.code, this.conn.redact(`${err.message}; this endpoint does not take MetadataOptions: give the cluster option imds=optional`, secrets));
      }
      throw err;
    }
    this.o.log.info('launched an instance', { cluster: req.cluster, node: req.node, instance: instance.InstanceId, zone: req.zone });
    return this.answer(instance, req, o.address);
  }

  /** Tags an instance launched without tags; if that fails it is ended, since untagged it would
   *  be found by no listing and run, unseen, forever. */
  private async tagOrEnd(instanceId: string, req: CreateRequest): Promise<void> {
    try {
      await this.tagging.tag([instanceId], nodeTags(this.o.mesh, req));
    } catch (err) {
      const e = err instanceof ProviderError ? err : this.conn.refusal('CreateTags', err);
      let after: string;
      try {
        await this.conn.call('TerminateInstances', (s, c) => c.send(new s.TerminateInstancesCommand({ InstanceIds: [instanceId] })));
        after = `instance ${instanceId} could not be tagged and was terminated`;
      } catch {
        after = `instance ${instanceId} could not be tagged nor terminated: terminate it by hand`;
        this.o.log.warn('an untagged instance may be left running', { instance: instanceId, cluster: req.cluster });
      }
      throw new ProviderError(e.kind, e.code, this.conn.redact(`${e.message}; ${after}`));
    }
  }

  /** The instance an earlier RunInstances with this client token made, if it is this
   *  cluster's (or untagged: a predecessor stopped before CreateTags; the token is the slot's
   *  own, so it is ours, and is tagged now). */
  private async byClientToken(req: CreateRequest): Promise<ProviderNode | undefined> {
    const r = await this.conn.call('DescribeInstances', (s, c) => c.send(new s.DescribeInstancesCommand({ Filters: [{ Name: 'client-token', Values: [req.clientToken] }] })));
    const instance = (r.Reservations ?? []).flatMap((x) => x.Instances ?? []).find((i) => i.ClientToken === req.clientToken && i.InstanceId);
    if (!instance?.InstanceId) return undefined;
    const tags = tagMap(instance.Tags);
    if (!belongsTo(tags, this.o.mesh, req.cluster)) {
      if (tags.has(TAG_MESH)) return undefined;
      await this.tagOrEnd(instance.InstanceId, req);
    }
    const o = parseAwsOptions(req.options);
    return this.answer(instance, req, o.address);
  }

  /** The node for a create's answer: slot and token from the request (an endpoint may not echo
   *  the tags), the rest from EC2. */
  private answer(instance: Instance, req: CreateRequest, address: 'private' | 'public'): ProviderNode {
    const node = providerNode(instance, req.cluster, address);
    if (!node) throw new ProviderError('transient', 'NoInstance', 'EC2 answered RunInstances without an instance id');
    return { ...node, node: req.node, clientToken: req.clientToken, zone: node.zone || req.zone };
  }

  private async instances(cluster: string): Promise<Instance[]> {
    const filters = [...clusterFilters(this.o.mesh, cluster), { Name: 'instance-state-name', Values: LISTED_STATES }];
    const seen = new Map<string, Instance>();
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const r = await this.conn.call('DescribeInstances', (s, c) => c.send(new s.DescribeInstancesCommand({ Filters: filters, MaxResults: this.t.pageSize, ...(token ? { NextToken: token } : {}) })));
      for (const i of (r.Reservations ?? []).flatMap((x) => x.Instances ?? [])) {
        // Checked again: an EC2-compatible endpoint may ignore a filter it does not know.
        if (i.InstanceId && belongsTo(tagMap(i.Tags), this.o.mesh, cluster) && i.State?.Name !== 'terminated') seen.set(i.InstanceId, i);
      }
      if (!r.NextToken || r.NextToken === token) return [...seen.values()];
      token = r.NextToken;
    }
    throw new ProviderError('transient', 'TooManyPages', `DescribeInstances kept paging after ${MAX_PAGES} pages of ${this.t.pageSize}`);
  }

  private availableZones(): Promise<string[]> {
    const now = Date.now();
    if (!this.zoneCache || now - this.zoneCache.at >= this.t.zonesCacheMs) {
      const zones = this.conn.call('DescribeAvailabilityZones', (s, c) => c.send(new s.DescribeAvailabilityZonesCommand({}))).then((r) => {
        // Filtered here, not with Filters: an EC2-compatible endpoint may not know zone-type.
        // Local Zones and Wavelength Zones are left out: they lack most instance types.
        const names = (r.AvailabilityZones ?? [])
          .filter((z) => (z.State === undefined || z.State === 'available') && (z.ZoneType === undefined || z.ZoneType === 'availability-zone'))
          .flatMap((z) => (z.ZoneName ? [z.ZoneName] : []));
        if (names.length === 0) throw new ProviderError('parameters', 'NoZone', `EC2 offers no available zone in ${this.o.region}`);
        return [...new Set(names)].sort();
      });
      this.zoneCache = { at: now, zones };
      // A failure is not kept: the next round asks again.
      zones.catch(() => {
        if (this.zoneCache?.zones === zones) this.zoneCache = undefined;
      });
    }
    return this.zoneCache.zones;
  }

  /** Looks at the cluster now and then after a terminate, and deletes its managed group once no
   *  instance of it is left: while one still runs the group serves it, and while one shuts
   *  down EC2 would refuse. */
  private sweepLater(cluster: string): void {
    if (this.closed || this.sweeps.has(cluster)) return;
    const until = Date.now() + this.t.sweepForMs;
    const next = () => {
      const timer = setTimeout(() => {
        void this.sweep(cluster).then(
          (again) => (again && Date.now() < until && !this.closed ? next() : this.sweeps.delete(cluster)),
          (err: unknown) => {
            this.o.log.debug('could not look at a node cluster to delete its security group', { cluster, err: this.conn.redact(String((err as Error).message)) });
            if (Date.now() < until && !this.closed) next();
            else this.sweeps.delete(cluster);
          },
        );
      }, this.t.sweepEveryMs);
      timer.unref();
      this.sweeps.set(cluster, timer);
    };
    next();
  }

  /** True: look again later. */
  private async sweep(cluster: string): Promise<boolean> {
    if ((this.creating.get(cluster) ?? 0) > 0) return false;
    const left = await this.instances(cluster);
    if (left.some((i) => i.State?.Name !== 'shutting-down')) return false;
    if (left.length > 0) return true;
    const done = await this.groups.cleanup(cluster);
    for (const l of done.left) this.o.log.debug('the security group of a node cluster is kept for now', { cluster, group: l.groupId, reason: l.reason });
    return done.left.length > 0;
  }
}
