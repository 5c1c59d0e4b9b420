// What the cloud e2e tests share: a leading peer on a harness host, the EC2 double running in
// that host's namespace (test/ec2/serve.ts; its credentials from a file), optionally with other
// harness hosts as its instances, and a secret file for `weft provider add`.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor, type Host } from '../harness/harness.ts';

export interface DoubleState {
  calls: { action?: string; status: number; code?: string }[];
  instances: { instanceId: string; state: string; zone: string; privateIpAddress?: string; clientToken?: string; tags: Record<string, string> }[];
  groups: { groupName: string }[];
}

export interface DoubleOnHost {
  /** The double's endpoint, for `--endpoint`. */
  url: string;
  /** A 0600 file holding the secret, for `--secret-access-key-file`. */
  secretFile: string;
  /** What the double was asked and holds, as of a fifth of a second ago. */
  state(): DoubleState;
}

export async function startDoubleOn(o: {
  host: Host; dir: string; port: number; password: string; keyId: string; secret: string; instances?: readonly Host[];
  /** The mesh's manager count (`--managers`); 1 by default, so the host's peer leads at once. */
  managers?: number;
  /** EC2_DOUBLE_HOLD for the double (test/ec2/serve.ts): answers held once carried out. */
  hold?: string;
}): Promise<DoubleOnHost> {
  const { host } = o;
  await host.startPeer({ password: o.password, args: ['--managers', String(o.managers ?? 1)] });
  const creds = join(o.dir, 'ec2-credentials.json');
  writeFileSync(creds, JSON.stringify({ [o.keyId]: o.secret }), { mode: 0o600 });
  const stateFile = join(o.dir, 'ec2-double.json');
  const argv = [process.execPath, '--disable-warning=ExperimentalWarning', join(import.meta.dirname, '../ec2/serve.ts'), host.ip, String(o.port), stateFile, creds];
  if (o.instances?.length) {
    const machines = join(o.dir, 'ec2-hosts.json');
    writeFileSync(machines, JSON.stringify(o.instances.map((h) => ({ ns: h.ns, ip: h.ip, dir: join(h.dir, 'ec2') }))));
    argv.push(machines);
  }
  await host.spawn('ec2', argv, o.hold ? { env: { EC2_DOUBLE_HOLD: o.hold } } : {});
  await waitFor(async () => existsSync(stateFile), { what: 'the EC2 double' });
  if ((o.managers ?? 1) === 1) await waitFor(async () => (await host.weft(['config', 'ls', '--consistent'])).code === 0, { what: 'a leader' });
  const secretFile = join(o.dir, 'secret');
  writeFileSync(secretFile, `${o.secret}\n`, { mode: 0o600 });
  return { url: `http://${host.ip}:${o.port}`, secretFile, state: () => JSON.parse(readFileSync(stateFile, 'utf8')) as DoubleState };
}
