// The EC2 path end to end: a peer with an `aws` provider pointed at the EC2 double (in the peer's
// namespace), whose instances are harness hosts: each launch runs the instance's user data (the
// install script the peer made) on a free host, which installs weft from the peer's own bundle
// and joins the mesh. A cluster of 2 spreads over the zones and joins; scaled to 1, one instance
// is terminated and its peer leaves; removed, every instance and the security group weft made
// are gone.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { useHarness } from '../harness/vitest.ts';
import { waitFor, type Host } from '../harness/harness.ts';
import { type DoubleOnHost, type DoubleState, startDoubleOn } from './ec2-double-host.ts';

const PASSWORD = 'e2e-ec2-password-4b7c';
const KEY_ID = 'AKIAWEFTE2EEC2HOSTS1';
const SECRET = 'e2e-ec2-secret-9a8b7c6d5e4f3a2b1c0d';
const DOUBLE_PORT = 8774;
/** Installing is downloading and unpacking the bundle (tens of MB) and starting a peer. */
const JOIN_TIMEOUT_S = 300;


describe('the aws provider against the EC2 double, its instances harness hosts that run their user data', () => {
  const mesh = useHarness({ hosts: 3, name: 'e2e-ec2' });
  const hosts = () => mesh().hosts as [Host, Host, Host];
  let ec2: DoubleOnHost;
  const double = (): DoubleState => ec2.state();
  const clusterNodes = async (h: Host) => (await h.weftJson<any[]>(['node', 'ls', '--json'])).filter((n) => n.cluster === 'web');

  test('a cluster of 2 is made, spread over the zones, and its nodes join; scaled to 1 and removed, nothing weft made is left', async () => {
    const [h1, h2, h3] = hosts();
    ec2 = await startDoubleOn({ host: h1, dir: mesh().tmpDir, port: DOUBLE_PORT, password: PASSWORD, keyId: KEY_ID, secret: SECRET, instances: [h2, h3] });
    const add = await h1.weft(['provider', 'add', 'aws', 'cloud', '--region', 'us-east-1', '--endpoint', ec2.url, '--access-key-id', KEY_ID, '--secret-access-key-file', ec2.secretFile]);
    expect(add.code, add.stderr).toBe(0);

    // Mesh-only nodes: the hosts have no dockerd of their own for a data plane.
    const create = await h1.weft(['nodecluster', 'create', 'web', '--provider', 'cloud', '--nodes', '2', '--node-type', 't3.micro', '--tags', 'tier=web',
      '--option', 'image=ami-0123456789abcdef0', '--option', 'dataplane=false', '--timeout', String(JOIN_TIMEOUT_S)], { timeoutMs: (JOIN_TIMEOUT_S + 30) * 1000 });
    expect(create.code, `${create.stderr}\n${bootLogs()}`).toBe(0);
    const rows = await clusterNodes(h1);
    expect(rows.map((r) => r.state)).toEqual(['Deployed', 'Deployed']);
    expect(rows.map((r) => r.zone).sort()).toEqual(['us-east-1a', 'us-east-1b']);
    expect(rows.map((r) => r.provider)).toEqual(['cloud', 'cloud']);
    const running = double().instances.filter((i) => i.state === 'running');
    expect(running.length).toBe(2);
    for (const i of running) {
      expect(i.tags).toMatchObject({ 'weft:cluster': 'web', Name: expect.stringMatching(/^web-\d$/) });
      // <cluster uid>-<slot index>-<attempt serial>: the slot's own, one per instance.
      expect(i.clientToken).toMatch(new RegExp(`^[0-9a-f]{16}-${i.tags.Name?.slice('web-'.length)}-\\d+$`));
    }
    expect(new Set(running.map((i) => i.clientToken)).size).toBe(2);
    expect(running.map((i) => i.privateIpAddress).sort()).toEqual([h2.ip, h3.ip].sort());
    const peers = await h1.weftJson<any[]>(['peers', '--json']);
    for (const r of rows) {
      const p = peers.find((x) => x.name === r.name);
      expect(p?.state).toBe('alive');
      expect(p?.tags).toEqual(expect.arrayContaining(['provider=cloud', 'region=us-east-1', `zone=${r.zone}`, 'cluster=web', 'tier=web']));
    }
    // The one managed group holds the mesh's ports between members and nothing else.
    expect(double().groups.filter((g) => g.groupName.startsWith('weft-')).length).toBe(1);

    const scale = await h1.weft(['nodecluster', 'scale', 'web', '1', '--timeout', '120'], { timeoutMs: 150_000 });
    expect(scale.code, scale.stderr).toBe(0);
    await waitFor(async () => double().instances.filter((i) => i.state === 'running').length === 1, { timeoutMs: 60_000, what: 'one instance terminated' });
    await waitFor(async () => (await h1.weftJson<any[]>(['peers', '--json'])).filter((p) => p.name.startsWith('web-') && p.state === 'alive').length === 1,
      { timeoutMs: 60_000, what: "the terminated node's peer to leave" });

    const rm = await h1.weft(['nodecluster', 'rm', 'web', '--timeout', '120'], { timeoutMs: 150_000 });
    expect(rm.code, rm.stderr).toBe(0);
    expect(double().instances.filter((i) => i.state !== 'terminated')).toEqual([]);
    await waitFor(async () => double().groups.filter((g) => g.groupName.startsWith('weft-')).length === 0, { timeoutMs: 90_000, what: 'the managed group to be deleted' });
    // RunInstances once per node, not per round.
    expect(double().calls.filter((c) => c.action === 'RunInstances').length).toBe(2);
  }, 600_000);

  /** What the instances' user data printed, for a failure's message. */
  function bootLogs(): string {
    return hosts().slice(1).flatMap((h) => {
      const dir = join(h.dir, 'ec2');
      if (!existsSync(dir)) return [];
      return readdirSync(dir).map((i) => `${h.name}/${i}: ${existsSync(join(dir, i, 'boot.log')) ? readFileSync(join(dir, i, 'boot.log'), 'utf8') : ''}`);
    }).join('\n');
  }
});
