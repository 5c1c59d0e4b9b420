// Cloud providers end to end: a peer with an `aws` provider pointed at the EC2 double (in the
// peer's namespace, speaking the EC2 Query API). Credentials are read from a file or standard
// input, sealed before they are stored, and never seen again: not in `provider ls`, a backup,
// the peer's log, events, errors or the process list. Credentials the cloud refuses give one
// clear error naming the fix, and no retry storm.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { useHarness } from '../harness/vitest.ts';
import { waitFor, type Host } from '../harness/harness.ts';
import { type DoubleOnHost, type DoubleState, startDoubleOn } from './ec2-double-host.ts';

const PASSWORD = 'e2e-provider-password-09d1';
const KEY_ID = 'AKIAWEFTE2EPROVIDER1';
const SECRET = 'e2e-provider-secret-0f9e8d7c6b5a4f3e2d1c';
const WRONG = 'e2e-provider-wrong-secret-1a2b3c4d5e6f7a8b';
const DOUBLE_PORT = 8773;


/** Every process's command line, for secrets that must never be on one. */
function commandLines(): string {
  let out = '';
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      out += `${readFileSync(`/proc/${pid}/cmdline`, 'utf8')}\n`;
    } catch { /* gone */ }
  }
  return out;
}

describe('cloud providers: credentials sealed, refused credentials said once', () => {
  const mesh = useHarness({ hosts: 1, name: 'e2e-provider' });
  const h = () => mesh().hosts[0] as Host;
  let ec2: DoubleOnHost;
  const double = (): DoubleState => ec2.state();

  test('add from a file, list, back up: the secret is nowhere but sealed', async () => {
    const h1 = h();
    ec2 = await startDoubleOn({ host: h1, dir: mesh().tmpDir, port: DOUBLE_PORT, password: PASSWORD, keyId: KEY_ID, secret: SECRET });
    const secretFile = ec2.secretFile;
    const add = await h1.weft(['provider', 'add', 'aws', 'cloud', '--region', 'us-east-1', '--endpoint', `http://${h1.ip}:${DOUBLE_PORT}`, '--access-key-id', KEY_ID, '--secret-access-key-file', secretFile]);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/added provider cloud \(us-east-1, key AKIA…/);
    const ls = await h1.weftJson<any[]>(['provider', 'ls', '--json']);
    expect(ls).toEqual([expect.objectContaining({ name: 'cloud', type: 'aws', region: 'us-east-1', endpoint: `http://${h1.ip}:${DOUBLE_PORT}`, clusters: [] })]);
    expect(JSON.stringify(ls)).not.toContain(SECRET);
    expect(JSON.stringify(ls)).not.toContain(KEY_ID);
    const backup = join(mesh().tmpDir, 'backup.json');
    expect((await h1.weft(['state', 'backup', backup])).code).toBe(0);
    const text = readFileSync(backup, 'utf8');
    expect(text).toContain('sealed');
    expect(text).not.toContain(SECRET);
    // A second add under the name is refused; `local` is not a name to take.
    expect((await h1.weft(['provider', 'add', 'aws', 'cloud', '--region', 'us-east-1', '--access-key-id', KEY_ID, '--secret-access-key-file', secretFile])).stderr).toMatch(/a provider "cloud" exists/);
    expect((await h1.weft(['provider', 'add', 'aws', 'local', '--region', 'us-east-1', '--access-key-id', KEY_ID, '--secret-access-key-file', secretFile])).stderr).toMatch(/built-in provider/);
  }, 120_000);

  test('credentials the cloud refuses: one clear error, no retry storm, the secret in no log, event, error or command line', async () => {
    const h1 = h();
    // Rotated to a wrong secret, read from standard input.
    const rotate = await h1.weft(['provider', 'rotate', 'cloud', '--access-key-id', KEY_ID, '--secret-access-key-file', '-'], { input: `${WRONG}\n` });
    expect(rotate.code, rotate.stderr).toBe(0);
    const before = double().calls.length;
    const create = await h1.weft(['nodecluster', 'create', 'web', '--provider', 'cloud', '--nodes', '1', '--node-type', 't3.micro', '--option', 'image=ami-0123456789abcdef0', '--detach']);
    expect(create.code, create.stderr).toBe(0);
    expect((await h1.weft(['nodecluster', 'create', 'eu', '--provider', 'cloud', '--region', 'eu-west-1', '--nodes', '1', '--node-type', 't3.micro', '--option', 'image=ami-0123456789abcdef0'])).stderr).toMatch(/is in us-east-1, not eu-west-1/);
    expect((await h1.weft(['nodecluster', 'create', 'bad', '--provider', 'cloud', '--nodes', '1', '--node-type', 't3.micro'])).code).not.toBe(0);

    await waitFor(async () => (await h1.weftJson<any>(['nodecluster', 'inspect', 'web', '--json'])).cluster.error !== undefined, { timeoutMs: 30_000, what: 'the cluster to say its credentials were refused' })
      .catch(async (e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify(await h1.weftJson<any>(['nodecluster', 'inspect', 'web', '--json']))} ${JSON.stringify((await h1.weftJson<any[]>(['events', '--json'])).slice(-5))} ${JSON.stringify(double().calls.slice(-5))}`);
      });
    const inspect = await h1.weftJson<any>(['nodecluster', 'inspect', 'web', '--json']);
    // Its listing is refused: nothing is created, the cluster says why in EC2's words and the fix.
    expect(inspect.cluster.error).toMatch(/SignatureDoesNotMatch|AuthFailure/);
    expect(inspect.cluster.error).toMatch(/weft provider rotate cloud/);
    expect((await h1.weftJson<any[]>(['nodecluster', 'ls', '--json']))[0].error).toBe(inspect.cluster.error);
    expect(inspect.nodes).toEqual([]);
    // Watch it for 25 s: a backoff of 10 s, then 20 s, allows two or three attempts of two
    // calls each, not two a round (every 2 s).
    await new Promise((r) => setTimeout(r, 25_000));
    const calls = double().calls.slice(before);
    expect(calls.length, JSON.stringify(calls)).toBeLessThanOrEqual(6);
    expect(calls.every((c) => c.status >= 400)).toBe(true);
    expect(double().instances).toEqual([]);

    const events = JSON.stringify(await h1.weftJson<any[]>(['events', '--json']));
    expect(events).toMatch(/SignatureDoesNotMatch|AuthFailure/);
    const peerLog = readFileSync(h1.peer!.logFile, 'utf8');
    for (const secret of [SECRET, WRONG]) {
      expect(events).not.toContain(secret);
      expect(JSON.stringify(inspect)).not.toContain(secret);
      expect(peerLog).not.toContain(secret);
      expect(commandLines()).not.toContain(secret);
    }
    // A provider a cluster uses stays; once the cluster is gone, it goes.
    expect((await h1.weft(['provider', 'rm', 'cloud'])).stderr).toMatch(/runs node clusters web/);
    // Removing waits for the provider to confirm it holds nothing for the cluster: with refused
    // credentials it cannot, and says so; rotated to good ones, the removal completes.
    expect((await h1.weft(['nodecluster', 'rm', 'web', '--detach'])).code).toBe(0);
    expect((await h1.weftJson<any[]>(['nodecluster', 'ls', '--json']))[0]).toMatchObject({ state: 'Terminated', error: expect.stringMatching(/SignatureDoesNotMatch|AuthFailure/) });
    expect((await h1.weft(['provider', 'rotate', 'cloud', '--access-key-id', KEY_ID, '--secret-access-key-file', ec2.secretFile])).code).toBe(0);
    await waitFor(async () => (await h1.weftJson<any[]>(['nodecluster', 'ls', '--json'])).length === 0, { timeoutMs: 30_000, what: 'the cluster to be removed once the provider answers' });
    expect((await h1.weft(['provider', 'rm', 'cloud'])).code).toBe(0);
    expect(await h1.weftJson<any[]>(['provider', 'ls', '--json'])).toEqual([]);
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toMatch(/weftn-/);
  }, 180_000);
});
