// The security group weft manages for a cluster (security-group-rules.ts says what it holds):
// found by its name and tags, created when missing, given the rules it lacks, and deleted once
// no instance uses it. Docker Machine left its groups behind; this one goes with its cluster.

import type { Filter, IpPermission, SecurityGroup } from '@aws-sdk/client-ec2';
import type { Logger } from '../../../mesh/log.ts';
import { ProviderError } from '../../provider.ts';
import { Ec2CallError, type Ec2Connection } from './ec2-connection.ts';
import { extraRules, ipPermission, managedGroupDescription, managedGroupName, missingRules, wantedRules } from './security-group-rules.ts';
import { NOT_YET_VISIBLE, TAG_RETRY_DELAYS_MS, type Tagging } from './tagging.ts';
import { belongsTo, clusterFilters, groupTags, TAG_MANAGED, TAG_MESH, tagMap } from './weft-tags.ts';

/** A cluster has one group; a name filter matches one per VPC. Pages beyond this are an
 *  endpoint that keeps handing out tokens. */
const MAX_GROUP_PAGES = 10;

/** What cleanup did: the groups it deleted, and those it left with the reason. */
export interface GroupCleanup {
  deleted: string[];
  left: { groupId: string; reason: string }[];
}

interface Found {
  id: string;
  ingress: IpPermission[];
}

export class ManagedGroups {
  private readonly conn: Ec2Connection;
  private readonly tagging: Tagging;
  private readonly mesh: string;
  private readonly log: Logger;
  private readonly delays: readonly number[];
  /** Groups made ready in this leader's term, by cluster and wanted ranges: later creates of
   *  the cluster skip the DescribeSecurityGroups. Dropped when the group turns out gone. */
  private readonly ready = new Map<string, Promise<string>>();

  constructor(o: { conn: Ec2Connection; tagging: Tagging; mesh: string; log: Logger; delays?: readonly number[] }) {
    this.conn = o.conn;
    this.tagging = o.tagging;
    this.mesh = o.mesh;
    this.log = o.log;
    this.delays = o.delays ?? TAG_RETRY_DELAYS_MS;
  }

  /** The id of the cluster's group, holding at least the wanted rules. Concurrent creates of one
   *  cluster share one call. */
  ensure(cluster: string, o: { sshFrom: readonly string[]; meshFrom: readonly string[] }): Promise<string> {
    const key = JSON.stringify([cluster, o.sshFrom, o.meshFrom]);
    let p = this.ready.get(key);
    if (!p) {
      p = this.prepare(cluster, o);
      this.ready.set(key, p);
      p.catch(() => this.ready.delete(key));
    }
    return p;
  }

  /** Forgets what is known of the cluster's group (it was deleted, here or by hand). */
  forget(cluster: string): void {
    for (const key of this.ready.keys()) if ((JSON.parse(key) as string[])[0] === cluster) this.ready.delete(key);
  }

  /** Deletes the cluster's managed groups. One still used by an instance (even one shutting
   *  down) is left, with the reason: EC2 refuses with DependencyViolation until it is gone. */
  async cleanup(cluster: string): Promise<GroupCleanup> {
    this.forget(cluster);
    const out: GroupCleanup = { deleted: [], left: [] };
    const filters = [...clusterFilters(this.mesh, cluster), { Name: `tag:${TAG_MANAGED}`, Values: ['true'] }];
    const groups = await this.describe(filters);
    for (const g of groups) {
      const tags = tagMap(g.Tags);
      if (!g.GroupId || !belongsTo(tags, this.mesh, cluster) || tags.get(TAG_MANAGED) !== 'true') continue;
      try {
        await this.conn.call('DeleteSecurityGroup', (s, c) => c.send(new s.DeleteSecurityGroupCommand({ GroupId: g.GroupId })));
        out.deleted.push(g.GroupId);
        this.log.info('deleted the security group of a node cluster', { cluster, group: g.GroupId });
      } catch (err) {
        if (err instanceof Ec2CallError && err.code === 'InvalidGroup.NotFound') continue;
        const reason = err instanceof Ec2CallError && err.code === 'DependencyViolation'
          ? 'instances (or another group\'s rule) still use it; deleted once they are gone'
          : (err as Error).message;
        out.left.push({ groupId: g.GroupId, reason });
      }
    }
    return out;
  }

  private async prepare(cluster: string, o: { sshFrom: readonly string[]; meshFrom: readonly string[] }): Promise<string> {
    const group = (await this.find(cluster)) ?? (await this.create(cluster));
    const wanted = wantedRules(group.id, o);
    for (const rule of missingRules(group.ingress, wanted)) await this.authorize(group.id, ipPermission(rule));
    const extra = extraRules(group.ingress, wanted);
    if (extra.length > 0) this.log.warn('the security group of a node cluster holds rules weft did not ask for; they are left as they are', { cluster, group: group.id, rules: extra.join(' ') });
    return group.id;
  }

  /** The cluster's group by its name, with weft's tags. One that has the name and weft's
   *  description but no tags was created by a leader that stopped before tagging it (on an
   *  endpoint without tag-on-create): it is tagged and used. Any other with the name is not
   *  weft's, and is not touched. */
  private async find(cluster: string): Promise<Found | undefined> {
    const name = managedGroupName(this.mesh, cluster);
    const named = (await this.describe([{ Name: 'group-name', Values: [name] }])).filter((g) => g.GroupName === name && g.GroupId);
    const ours = named.find((g) => belongsTo(tagMap(g.Tags), this.mesh, cluster));
    if (ours?.GroupId) return { id: ours.GroupId, ingress: ours.IpPermissions ?? [] };
    const unfinished = named.find((g) => !tagMap(g.Tags).has(TAG_MESH) && g.Description === managedGroupDescription(this.mesh, cluster));
    if (unfinished?.GroupId) {
      await this.tagging.tag([unfinished.GroupId], groupTags(this.mesh, cluster, name));
      return { id: unfinished.GroupId, ingress: unfinished.IpPermissions ?? [] };
    }
    const other = named[0];
    if (other) {
      throw new ProviderError('parameters', 'GroupNameTaken', this.conn.redact(`a security group named ${name} (${other.GroupId}) exists that weft did not create: delete or rename it, or give the cluster option security-group=`));
    }
    return undefined;
  }

  private async create(cluster: string): Promise<Found> {
    const name = managedGroupName(this.mesh, cluster);
    const tags = groupTags(this.mesh, cluster, name);
    try {
      const { result, untagged } = await this.tagging.create([{ ResourceType: 'security-group', Tags: tags }], (specs) =>
        this.conn.call('CreateSecurityGroup', (s, c) => c.send(new s.CreateSecurityGroupCommand({
          GroupName: name,
          Description: managedGroupDescription(this.mesh, cluster),
          ...(specs ? { TagSpecifications: specs } : {}),
        }))));
      const id = result.GroupId;
      if (!id) throw new ProviderError('transient', 'NoGroupId', 'EC2 answered CreateSecurityGroup without a group id');
      if (untagged) await this.tagging.tag([id], tags);
      this.log.info('created the security group of a node cluster', { cluster, group: id });
      return { id, ingress: [] };
    } catch (err) {
      // Another leader (or this one, a moment ago) made it first.
      if (err instanceof Ec2CallError && err.code === 'InvalidGroup.Duplicate') {
        const found = await this.find(cluster);
        if (found) return found;
      }
      throw err;
    }
  }

  /** One rule per call, so that a rule already there (InvalidPermission.Duplicate, which fails
   *  the whole call) is success without hiding the others. */
  private async authorize(groupId: string, permission: IpPermission): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.conn.call('AuthorizeSecurityGroupIngress', (s, c) => c.send(new s.AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [permission] })));
        return;
      } catch (err) {
        if (err instanceof Ec2CallError && err.code === 'InvalidPermission.Duplicate') return;
        const delay = this.delays[attempt];
        // A group just created may not be visible to this call yet.
        if (!(err instanceof Ec2CallError && NOT_YET_VISIBLE.has(err.code)) || delay === undefined) throw err;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private async describe(filters: Filter[]): Promise<SecurityGroup[]> {
    const out: SecurityGroup[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_GROUP_PAGES; page++) {
      const r = await this.conn.call('DescribeSecurityGroups', (s, c) => c.send(new s.DescribeSecurityGroupsCommand({ Filters: filters, ...(token ? { NextToken: token } : {}) })));
      out.push(...(r.SecurityGroups ?? []));
      if (!r.NextToken || r.NextToken === token) return out;
      token = r.NextToken;
    }
    return out;
  }
}
