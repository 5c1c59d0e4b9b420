// The aws provider (provisioner/providers/aws/) against the EC2 double, through the real SDK:
// the calls the provisioner's round makes (zones, create, list, terminate) and what EC2 then
// holds: one instance per client token whoever asks, the cluster's security group with the mesh
// ports and nothing else, tags on every instance (also where tag-on-create is refused), and
// refusals sorted into what the round does about them, never holding the secret.

import { DeleteSecurityGroupCommand, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, test } from 'vitest';
import type { Fields, Logger } from '../../mesh/log.ts';
import { hiddenAwsCredentials } from '../../provisioner/credentials/aws-credentials.ts';
import { type CreateRequest, ProviderError } from '../../provisioner/provider.ts';
import { AwsProvider, type AwsProviderOptions } from '../../provisioner/providers/aws/aws-provider.ts';
import type { Ec2Double } from './ec2-double.ts';
import { ACCESS_KEY_ID, clientFor, IMAGE, SECRET, startDouble } from './helpers.ts';

/** Each cluster's uid, as the client tokens of its slots begin with it. */
const uid = (cluster: string) => Buffer.from(cluster).toString('hex').padEnd(16, '0').slice(0, 16);
const token = (cluster: string, index: number, attempt = 1) => `${uid(cluster)}-${index}-${attempt}`;
const MESH = 'testmesh';

/** A logger that keeps its lines, to check what was said and that no secret was. */
function capturingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (msg: string, fields?: Fields) => void lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  const log = { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

const providers: AwsProvider[] = [];

// Providers made by a test are closed with it, so no sweep outlives its double.
afterEach(() => {
  for (const p of providers.splice(0)) p.close();
});

function providerFor(ec2: Ec2Double, extra: Partial<AwsProviderOptions> = {}): AwsProvider & { log: ReturnType<typeof capturingLog> } {
  const log = capturingLog();
  const p = new AwsProvider({
    name: 'prod',
    region: ec2.region,
    endpoint: ec2.url,
    credentials: hiddenAwsCredentials({ accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET }),
    mesh: MESH,
    userData: (req) => `#!/bin/sh\n# install weft and join as ${req.node}\n`,
    log,
    // A sweep only where a test asks for one.
    tuning: { sweepEveryMs: 3_600_000, notVisibleRetryMs: [20, 40] },
    ...extra,
  });
  providers.push(p);
  return Object.assign(p, { log });
}

function request(cluster: string, index: number, extra: Partial<CreateRequest> = {}): CreateRequest {
  return {
    node: `${cluster}-${index}`, cluster, clientToken: token(cluster, index), zone: 'us-east-1a', nodeType: 't3.small',
    tags: [`cluster=${cluster}`], options: { image: IMAGE }, ...extra,
  };
}

async function refused(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  }
  throw new Error('expected a ProviderError, and the call succeeded');
}

const until = async (f: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** The managed group's inbound rules, as readable strings. */
function rulesOf(ec2: Ec2Double, groupId: string): string[] {
  const g = ec2.securityGroups().find((x) => x.groupId === groupId);
  return (g?.ingress ?? []).map((r) => `${r.protocol}/${r.fromPort}-${r.toPort} from ${r.groupId === groupId ? 'members' : (r.cidr ?? r.groupId)}`).sort();
}

const MESH_RULES = ['tcp/6783-6783 from members', 'tcp/6785-6785 from members', 'udp/6783-6783 from members', 'udp/6784-6784 from members'];

describe('aws provider against the EC2 double', () => {
  test('zones: the available ones, sorted, narrowed by the zones option, asked for once a minute', async () => {
    const ec2 = await startDouble({ zones: ['us-east-1c', 'us-east-1a', 'us-east-1b'] });
    const p = providerFor(ec2);
    expect(await p.zones({})).toEqual(['us-east-1a', 'us-east-1b', 'us-east-1c']);
    expect(await p.zones({ zones: 'us-east-1c,us-east-1b,us-east-1x' })).toEqual(['us-east-1b', 'us-east-1c']);
    expect(ec2.calls('DescribeAvailabilityZones')).toBe(1);
    const none = await refused(p.zones({ zones: 'eu-west-1a' }));
    expect(none.kind).toBe('parameters');
    expect(none.message).toMatch(/none of the zones eu-west-1a.*available: us-east-1a, us-east-1b, us-east-1c/);
    p.close();
  });

  test('a created node is pending with no address; once running, the listing gives its private address', async () => {
    const ec2 = await startDouble({ launchDelayMs: 300 });
    const p = providerFor(ec2);
    const req = request('web', 1, { zone: 'us-east-1b' });
    const node = await p.create(req);
    expect(node).toMatchObject({ node: 'web-1', cluster: 'web', clientToken: req.clientToken, zone: 'us-east-1b', state: 'pending' });
    expect(node.address).toBeUndefined();
    const listed = await p.list('web', req.options);
    expect(listed).toEqual([expect.objectContaining({ id: node.id, state: 'pending' })]);
    expect(listed[0]?.address).toBeUndefined();

    const view = ec2.instance(node.id);
    expect(view).toMatchObject({ imageId: IMAGE, instanceType: 't3.small', zone: 'us-east-1b', clientToken: req.clientToken });
    expect(view?.userDataText).toBe('#!/bin/sh\n# install weft and join as web-1\n');
    expect(view?.tags).toEqual({
      'weft:mesh': MESH, 'weft:cluster': 'web', 'weft:node': 'web-1', 'weft:client-token': req.clientToken, 'weft:managed': 'true', Name: 'web-1',
    });

    const running = await ec2.waitForState(node.id, 'running');
    const after = await p.list('web', req.options);
    expect(after).toEqual([{ id: node.id, node: 'web-1', cluster: 'web', clientToken: req.clientToken, zone: 'us-east-1b', state: 'running', address: running.privateIpAddress }]);
    expect(running.privateIpAddress).toMatch(/^172\.31\./);
    expect((await p.list('web', { ...req.options, address: 'public' }))[0]?.address).toBe(running.publicIpAddress);
    p.close();
  });

  test('one client token makes one instance, also when a new leader (a new provider) asks again', async () => {
    const ec2 = await startDouble();
    const first = providerFor(ec2);
    const req = request('web', 1);
    const a = await first.create(req);
    const b = await first.create(req);
    first.close();
    const successor = providerFor(ec2);
    const c = await successor.create(req);
    expect(b.id).toBe(a.id);
    expect(c.id).toBe(a.id);
    expect(ec2.instances()).toHaveLength(1);
    expect(ec2.calls('RunInstances')).toBe(3);
    // The new leader found the group by its name and tags: not created again, no rule added.
    expect(ec2.calls('CreateSecurityGroup')).toBe(1);
    expect(ec2.calls('AuthorizeSecurityGroupIngress')).toBe(MESH_RULES.length);
    successor.close();
  });

  test('a repeat whose user data changed (a rotated join token) still returns the earlier instance', async () => {
    const ec2 = await startDouble();
    const req = request('web', 1);
    const a = await providerFor(ec2).create(req);
    const other = providerFor(ec2, { userData: () => '#!/bin/sh\n# another join token\n' });
    const b = await other.create(req);
    expect(b).toMatchObject({ id: a.id, node: 'web-1', clientToken: req.clientToken });
    expect(ec2.instances()).toHaveLength(1);
    expect(ec2.callLog().some((c) => c.code === 'IdempotentParameterMismatch')).toBe(true);
  });

  test('no capacity in a zone is a capacity refusal (the round moves to the next zone), and the next zone works', async () => {
    const ec2 = await startDouble();
    ec2.setZoneCapacity('us-east-1a', 0);
    const p = providerFor(ec2);
    const e = await refused(p.create(request('web', 1, { zone: 'us-east-1a' })));
    expect(e.kind).toBe('capacity');
    expect(e.code).toBe('InsufficientInstanceCapacity');
    expect(e.message).toMatch(/no capacity/);
    const node = await p.create(request('web', 1, { zone: 'us-east-1b', clientToken: token('web', 1, 2) }));
    expect(node.zone).toBe('us-east-1b');
    expect(ec2.instances().map((i) => i.zone)).toEqual(['us-east-1b']);
  });

  test.each([
    ['a wrong secret', { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'not-the-secret-at-all-0123' }, 'SignatureDoesNotMatch'],
    ['an unknown key', { accessKeyId: 'AKIAUNKNOWNKEY000001', secretAccessKey: 'another-secret-never-shown' }, 'AuthFailure'],
  ])('%s: one request, a credentials refusal saying what to run, and the secret nowhere', async (_what, credentials, code) => {
    const ec2 = await startDouble();
    const p = providerFor(ec2, { credentials: hiddenAwsCredentials(credentials) });
    const e = await refused(p.create(request('web', 1)));
    expect(e.kind).toBe('credentials');
    expect(e.code).toBe(code);
    expect(e.message).toMatch(/provider prod.*weft provider rotate prod/);
    expect(ec2.calls()).toBe(1);
    const z = await refused(p.zones({}));
    expect(z.kind).toBe('credentials');
    expect(ec2.calls()).toBe(2);
    for (const text of [e.message, z.message, JSON.stringify(e), String(e.stack), ...p.log.lines]) {
      expect(text).not.toContain(credentials.secretAccessKey);
      expect(text).not.toContain(credentials.accessKeyId);
    }
    expect(ec2.instances()).toHaveLength(0);
  });

  test.each(['UnknownParameter', 'InvalidParameterValue'] as const)(
    'an endpoint that refuses TagSpecification (%s): created once, tagged with CreateTags, found by the listing',
    async (refusal) => {
      const ec2 = await startDouble();
      ec2.rejectTagSpecifications(refusal);
      const p = providerFor(ec2);
      const req = request('web', 1);
      const node = await p.create(req);
      expect(ec2.instances()).toHaveLength(1);
      expect(ec2.instance(node.id)?.tags).toMatchObject({ 'weft:cluster': 'web', 'weft:node': 'web-1', 'weft:client-token': req.clientToken, 'weft:mesh': MESH });
      expect((await p.list('web', req.options)).map((n) => n.id)).toEqual([node.id]);
      const group = ec2.securityGroups().find((g) => g.groupName === `weft-${MESH}-web`);
      expect(group?.tags).toMatchObject({ 'weft:cluster': 'web', 'weft:managed': 'true' });
      // The group's create learned it first (refused once); the instance went untagged at once.
      expect(ec2.calls('CreateSecurityGroup')).toBe(2);
      expect(ec2.calls('RunInstances')).toBe(1);

      // Learned: the next create goes without TagSpecification too.
      const second = await p.create(request('web', 2, { clientToken: token('web', 2) }));
      expect(ec2.calls('RunInstances')).toBe(2);
      expect(ec2.instance(second.id)?.tags['weft:node']).toBe('web-2');
      // And a new leader, which has not learned it, is refused once and gets the same instance back.
      const again = await providerFor(ec2).create(req);
      expect(again.id).toBe(node.id);
      expect(ec2.calls('RunInstances')).toBe(4);
      expect(ec2.instances()).toHaveLength(2);
    },
  );

  test('the security group: created once with the mesh rules between members and nothing else; ssh only when asked', async () => {
    const ec2 = await startDouble();
    const p = providerFor(ec2);
    const a = await p.create(request('web', 1));
    const b = await p.create(request('web', 2, { clientToken: token('web', 2) }));
    const groupId = ec2.instance(a.id)?.securityGroupIds[0] ?? '';
    expect(ec2.instance(b.id)?.securityGroupIds).toEqual([groupId]);
    const group = ec2.securityGroups().find((g) => g.groupId === groupId);
    expect(group).toMatchObject({ groupName: `weft-${MESH}-web`, tags: { 'weft:mesh': MESH, 'weft:cluster': 'web', 'weft:managed': 'true' } });
    expect(rulesOf(ec2, groupId)).toEqual(MESH_RULES);
    expect(ec2.calls('CreateSecurityGroup')).toBe(1);
    expect(ec2.calls('AuthorizeSecurityGroupIngress')).toBe(MESH_RULES.length);
    expect(ec2.calls('DescribeSecurityGroups')).toBe(1);

    const ssh = await p.create(request('ops', 1, { options: { image: IMAGE, 'ssh-from': '203.0.113.0/24', 'mesh-from': '198.51.100.0/24' } }));
    const sshGroup = ec2.instance(ssh.id)?.securityGroupIds[0] ?? '';
    expect(sshGroup).not.toBe(groupId);
    expect(rulesOf(ec2, sshGroup)).toEqual([
      ...MESH_RULES, 'tcp/22-22 from 203.0.113.0/24',
      'tcp/6783-6783 from 198.51.100.0/24', 'udp/6783-6783 from 198.51.100.0/24', 'udp/6784-6784 from 198.51.100.0/24', 'tcp/6785-6785 from 198.51.100.0/24',
    ].sort());
    // ssh-from dropped later: the rule is reported, not revoked (a person may want it).
    const later = providerFor(ec2);
    await later.create(request('ops', 2, { clientToken: token('ops', 2), options: { image: IMAGE, 'mesh-from': '198.51.100.0/24' } }));
    expect(later.log.lines.some((l) => l.startsWith('warn') && l.includes('tcp|22-22|203.0.113.0/24'))).toBe(true);
    expect(rulesOf(ec2, sshGroup)).toHaveLength(9);

    // A group given by option is used as it is: not created, not changed.
    const own = ec2.securityGroups().find((g) => g.groupName === 'default')?.groupId ?? '';
    const given = await p.create(request('byo', 1, { options: { image: IMAGE, 'security-group': own } }));
    expect(ec2.instance(given.id)?.securityGroupIds).toEqual([own]);
    expect(ec2.securityGroups().filter((g) => g.groupName.startsWith('weft-'))).toHaveLength(2);
  });

  test('a group deleted behind its back is made again on the next create', async () => {
    const ec2 = await startDouble();
    const p = providerFor(ec2);
    const first = await p.create(request('web', 1));
    const groupId = ec2.instance(first.id)?.securityGroupIds[0] ?? '';
    await p.terminate(first, {});
    await ec2.waitForState(first.id, 'terminated');
    await clientFor(ec2).send(new DeleteSecurityGroupCommand({ GroupId: groupId }));
    const second = await p.create(request('web', 2, { clientToken: token('web', 2) }));
    const newGroup = ec2.instance(second.id)?.securityGroupIds[0];
    expect(newGroup).not.toBe(groupId);
    expect(rulesOf(ec2, newGroup ?? '')).toEqual(MESH_RULES);
  });

  test('terminate ends the instance; cleanup deletes the group once nothing uses it, and says why not before', async () => {
    const ec2 = await startDouble({ terminateDelayMs: 300 });
    const p = providerFor(ec2);
    const node = await p.create(request('web', 1));
    await ec2.waitForState(node.id, 'running');
    const groupId = ec2.instance(node.id)?.securityGroupIds[0] ?? '';
    await p.terminate(node, {});
    expect(ec2.instance(node.id)?.state).toBe('shutting-down');
    expect((await p.list('web', {}))[0]?.state).toBe('terminated');
    const early = await p.cleanup('web');
    expect(early).toEqual({ deleted: [], left: [{ groupId, reason: expect.stringMatching(/still use it/) }] });

    await ec2.waitForState(node.id, 'terminated');
    expect(await p.list('web', {})).toEqual([]);
    await p.terminate(node, {}); // again: already gone is success
    expect(await p.cleanup('web')).toEqual({ deleted: [groupId], left: [] });
    expect(ec2.securityGroups().map((g) => g.groupName)).toEqual(['default']);
    expect(await p.cleanup('web')).toEqual({ deleted: [], left: [] });
  });

  test('an instance id EC2 does not know is terminated already', async () => {
    const ec2 = await startDouble();
    const p = providerFor(ec2);
    await p.terminate({ id: 'i-0123456789abcdef0', node: 'web-1', cluster: 'web', clientToken: token('web', 1), zone: 'us-east-1a', state: 'running' }, {});
    expect(ec2.callLog().at(-1)?.code).toBe('InvalidInstanceID.NotFound');
  });

  test('after the last instance of a cluster ends, its group goes by itself', async () => {
    const ec2 = await startDouble();
    const p = providerFor(ec2, { tuning: { sweepEveryMs: 30, notVisibleRetryMs: [] } });
    const [a, b] = [await p.create(request('web', 1)), await p.create(request('web', 2, { clientToken: token('web', 2) }))];
    await p.terminate(a, {});
    await ec2.waitForState(a.id, 'terminated');
    await new Promise((r) => setTimeout(r, 200));
    // b still runs in it: kept.
    expect(ec2.securityGroups().some((g) => g.groupName === `weft-${MESH}-web`)).toBe(true);
    await p.terminate(b, {});
    await until(() => !ec2.securityGroups().some((g) => g.groupName === `weft-${MESH}-web`));
  });

  test('an instance tagged for the cluster but not made by weft is listed (so the round can end it); another mesh\'s is not', async () => {
    const ec2 = await startDouble();
    const p = providerFor(ec2);
    const client = clientFor(ec2);
    const tagged = (mesh: string) => [{ ResourceType: 'instance' as const, Tags: [{ Key: 'weft:mesh', Value: mesh }, { Key: 'weft:cluster', Value: 'web' }] }];
    const mine = await client.send(new RunInstancesCommand({ ImageId: IMAGE, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, TagSpecifications: tagged(MESH) }));
    await client.send(new RunInstancesCommand({ ImageId: IMAGE, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, TagSpecifications: tagged('othermesh') }));
    const id = mine.Instances?.[0]?.InstanceId ?? '';
    const listed = await p.list('web', {});
    expect(listed).toEqual([expect.objectContaining({ id, node: id, cluster: 'web', state: 'pending' })]);
    // Its client token (the SDK's own) is no slot's: the round sees an orphan.
    expect(listed[0]?.clientToken).toBe(ec2.instance(id)?.clientToken);
    expect(listed[0]?.clientToken).not.toMatch(new RegExp(`^${uid('web')}-`));
  });

  test('the listing follows pages', async () => {
    const ec2 = await startDouble();
    const p = providerFor(ec2, { tuning: { pageSize: 5, sweepEveryMs: 3_600_000 } });
    for (let i = 1; i <= 7; i++) await p.create(request('big', i, { clientToken: token('big', i) }));
    ec2.resetCalls();
    expect((await p.list('big', {})).map((n) => n.node).sort()).toEqual(['big-1', 'big-2', 'big-3', 'big-4', 'big-5', 'big-6', 'big-7']);
    expect(ec2.calls('DescribeInstances')).toBe(2);
  });

  test('limits, throttling, bad images and bad options are told apart', async () => {
    const ec2 = await startDouble({ images: [IMAGE] });
    const p = providerFor(ec2);
    const bad = await refused(p.create(request('web', 1, { options: { image: 'ami-0aaaaaaaaaaaaaaaa' } })));
    expect([bad.kind, bad.code]).toEqual(['parameters', 'InvalidAMIID.NotFound']);
    expect(bad.message).toMatch(/option image=/);

    ec2.failNext(1, 'RequestLimitExceeded', { action: 'RunInstances' });
    expect((await refused(p.create(request('web', 1)))).kind).toBe('transient');
    ec2.failNext(1, 'InternalError', { action: 'DescribeInstances' });
    expect((await refused(p.list('web', {}))).kind).toBe('transient');
    ec2.setInstanceLimit(0);
    const limit = await refused(p.create(request('web', 1, { clientToken: token('web', 1, 2) })));
    expect([limit.kind, limit.code]).toEqual(['limit', 'InstanceLimitExceeded']);

    ec2.resetCalls();
    const option = await refused(p.create(request('web', 1, { options: { image: IMAGE, 'ssh-from': 'anywhere' } })));
    expect(option.kind).toBe('parameters');
    expect(option.message).toMatch(/ssh-from/);
    expect(ec2.calls()).toBe(0);
  });

  test("a refusal that quotes the user data (which holds the join token) does not pass it on", async () => {
    const ec2 = await startDouble();
    const text = '#!/bin/sh\nweft launch --join-token wjt-SECRET-JOIN-TOKEN-0123456789\n';
    const p = providerFor(ec2, { userData: () => text });
    const sent = Buffer.from(text).toString('base64');
    ec2.failNext(1, 'InvalidParameterValue', { action: 'RunInstances', message: `Invalid value '${sent}' for UserData (${text})` });
    const e = await refused(p.create(request('web', 1)));
    expect(e.kind).toBe('parameters');
    expect(e.message).not.toContain(sent);
    expect(e.message).not.toContain('wjt-SECRET-JOIN-TOKEN');
    expect(e.message).toContain('[redacted]');
  });

  test('an endpoint that cannot be reached is transient, and says where to look', async () => {
    const ec2 = await startDouble();
    const url = ec2.url;
    await ec2.stop();
    const p = providerFor({ ...ec2, url } as Ec2Double);
    const e = await refused(p.zones({}));
    expect([e.kind, e.code]).toEqual(['transient', 'ECONNREFUSED']);
    expect(e.message).toMatch(/endpoint/);
  });
});
