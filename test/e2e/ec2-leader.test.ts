// The provisioner's one promise that only a real leader change can show: a node's client token
// is in desired state before RunInstances is sent, so a leader killed -9 after EC2 carried a
// call out but before the answer reached it leaves its successor the same token, and the
// successor's repeat finds that instance instead of making a second one. Three managers on
// three harness hosts; the EC2 double (in h1's namespace, a process of its own that outlives
// h1's peer) holds its RunInstances and DescribeInstances answers (each computed when asked)
// for a few seconds to open that window: the leader learns the instances neither way in it.
import { describe, expect, test } from 'vitest';
import { useHarness } from '../harness/vitest.ts';
import { waitFor, type Host } from '../harness/harness.ts';
import { type DoubleOnHost, startDoubleOn } from './ec2-double-host.ts';

const PASSWORD = 'e2e-ec2-leader-password-5d2e';
const KEY_ID = 'AKIAWEFTE2ELEADER001';
const SECRET = 'e2e-ec2-leader-secret-1f2e3d4c5b6a';
const DOUBLE_PORT = 8775;
/** Long enough to see the call carried out and kill the leader before its answer. */
const HOLD_MS = 8000;

describe('a leader killed while RunInstances is in flight', () => {
  const mesh = useHarness({ hosts: 3, name: 'e2e-ec2-leader' });
  const hosts = () => mesh().hosts as [Host, Host, Host];
  let ec2: DoubleOnHost;

  const leaderOf = async (asked: readonly Host[]): Promise<Host | undefined> => {
    for (const h of asked) {
      const rows = await h.weftJson<{ name: string; leader: boolean }[]>(['manager', 'ls', '--json'], { timeoutMs: 10_000 }).catch(() => []);
      const name = rows.find((r) => r.leader)?.name;
      if (name) return hosts().find((x) => x.name === name);
    }
    return undefined;
  };

  test('its successor finds the instances by their client tokens: one instance per node, none made twice', async () => {
    const [h1, h2, h3] = hosts();
    ec2 = await startDoubleOn({ host: h1, dir: mesh().tmpDir, port: DOUBLE_PORT, password: PASSWORD, keyId: KEY_ID, secret: SECRET, managers: 3, hold: `RunInstances=${HOLD_MS},DescribeInstances=${HOLD_MS}` });
    for (const h of [h2, h3]) await h.startPeer({ password: PASSWORD, peers: [h1.address], args: ['--managers', '3'] });
    await waitFor(async () => (await h1.weftJson<any[]>(['manager', 'ls', '--json'])).filter((m) => m.voter).length === 3, { timeoutMs: 60_000, what: 'three voting managers' });
    const add = await h1.weft(['provider', 'add', 'aws', 'cloud', '--region', 'us-east-1', '--endpoint', ec2.url, '--access-key-id', KEY_ID, '--secret-access-key-file', ec2.secretFile]);
    expect(add.code, add.stderr).toBe(0);

    const leader = await waitFor(() => leaderOf(hosts()), { timeoutMs: 30_000, what: 'a leader' });
    const others = hosts().filter((h) => h !== leader);
    const create = await others[0]!.weft(['nodecluster', 'create', 'web', '--provider', 'cloud', '--nodes', '2', '--node-type', 't3.micro',
      '--option', 'image=ami-0123456789abcdef0', '--option', 'dataplane=false', '--detach']);
    expect(create.code, create.stderr).toBe(0);
    const runs = () => ec2.state().calls.filter((c) => c.action === 'RunInstances');
    // Both creates carried out (the double has the instances) and their answers held.
    await waitFor(() => runs().length === 2 && ec2.state().instances.length === 2, { timeoutMs: 30_000, intervalMs: 100, what: 'both RunInstances carried out' });
    const made = ec2.state().instances.map((i) => ({ id: i.instanceId, token: i.clientToken }));
    const nodes = async () => (await others[0]!.weftJson<any[]>(['node', 'ls', '--json'])).filter((n) => n.cluster === 'web');
    // The leader has not heard back: desired state holds the tokens and no instance id.
    expect((await nodes()).map((n) => n.providerId ?? null)).toEqual([null, null]);
    await leader.kill();

    const successor = await waitFor(() => leaderOf(others), { timeoutMs: 60_000, what: 'a new leader' });
    expect(successor).not.toBe(leader);
    await waitFor(async () => (await nodes()).every((n) => n.providerId) && (await nodes()).length === 2, { timeoutMs: 120_000, what: "both nodes' instances recorded by the new leader" });
    // The new leader found both by their client tokens (in its listing, or by repeating the
    // call) and EC2 made nothing new: the records name the two instances made before the kill.
    const live = ec2.state().instances.filter((i) => i.state !== 'terminated');
    expect(live.map((i) => ({ id: i.instanceId, token: i.clientToken })).sort((a, b) => a.id.localeCompare(b.id))).toEqual(made.sort((a, b) => a.id.localeCompare(b.id)));
    expect((await nodes()).map((n) => n.providerId).sort()).toEqual(made.map((m) => m.id).sort());

    // Removed through the new leader: no instance is left.
    const rm = await others[0]!.weft(['nodecluster', 'rm', 'web', '--timeout', '120'], { timeoutMs: 150_000 });
    expect(rm.code, rm.stderr).toBe(0);
    expect(ec2.state().instances.filter((i) => i.state !== 'terminated')).toEqual([]);
  }, 420_000);
});
