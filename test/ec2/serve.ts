// The EC2 double as a process of its own, for tests whose peers run in a network namespace:
// `node test/ec2/serve.ts HOST PORT STATE_FILE CREDENTIALS_FILE [HOSTS_FILE]`. CREDENTIALS_FILE is a
// JSON object of access key ids and secrets (a file, so no secret is on a command line). It
// writes what it was asked and what it holds (calls, instances, groups) to STATE_FILE five times
// a second. HOSTS_FILE, a JSON array of {ns, ip, dir}, makes instances real: each launch takes a
// free host, gives the instance its address and runs the instance's user data there (as root,
// installing under <dir>/<instance>, no systemd: WEFT_PREFIX and WEFT_NO_SYSTEMD), as a cloud's
// first boot would; a termination kills what the user data started there.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { start } from './ec2-double.ts';

interface Machine { ns: string; ip: string; dir: string }

const [host, port, stateFile, credentialsFile, hostsFile] = process.argv.slice(2) as [string, string, string, string, string | undefined];
const credentials = JSON.parse(readFileSync(credentialsFile, 'utf8')) as Record<string, string>;
const machines: Machine[] = hostsFile ? (JSON.parse(readFileSync(hostsFile, 'utf8')) as Machine[]) : [];
/** A fresh host's PATH: nothing of the project's (its Node comes from the bundle). */
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** EC2_DOUBLE_HOLD=Action=MS,...: answers of those actions are held that long once carried out. */
const holds = new Map((process.env.EC2_DOUBLE_HOLD ?? '').split(',').filter(Boolean).map((h) => {
  const [action, ms] = h.split('=');
  return [action as string, Number(ms)] as const;
}));
const busy = new Map<string, { machine: Machine; boot: ChildProcess; prefix: string }>();

const double = await start({
  host, port: Number(port), credentials, zones: ['us-east-1a', 'us-east-1b'], launchDelayMs: 200, terminateDelayMs: 200, log: () => {},
  holdAnswerMs: (action) => holds.get(action ?? '') ?? 0,
  onLaunch: machines.length === 0 ? undefined : (i) => {
    const machine = machines.find((m) => ![...busy.values()].some((b) => b.machine === m));
    if (!machine) throw new Error('no free host for this instance');
    i.setPrivateIp(machine.ip);
    const dir = join(machine.dir, i.instanceId);
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    writeFileSync(join(dir, 'user-data'), i.userDataText ?? '', { mode: 0o600 });
    const log = openSync(join(dir, 'boot.log'), 'a');
    // Not awaited: the instance runs, and its user data runs meanwhile, as on EC2.
    const boot = spawn('nsenter', [`--net=/var/run/netns/${machine.ns}`, '--', 'sh', join(dir, 'user-data')], {
      env: { PATH: SYSTEM_PATH, WEFT_PREFIX: join(dir, 'root'), WEFT_NO_SYSTEMD: '1', TMPDIR: join(dir, 'tmp') },
      stdio: ['ignore', log, log], detached: true,
    });
    busy.set(i.instanceId, { machine, boot, prefix: join(dir, 'root') });
  },
  onTerminate: (i) => {
    const b = busy.get(i.instanceId);
    if (!b) return;
    busy.delete(i.instanceId);
    try {
      process.kill(-(b.boot.pid ?? 0), 'SIGKILL');
    } catch { /* done already */ }
    try {
      process.kill(Number(readFileSync(join(b.prefix, 'run/weft.pid'), 'utf8')), 'SIGTERM');
    } catch { /* never started */ }
    setTimeout(() => rmSync(b.prefix, { recursive: true, force: true }), 5000).unref();
  },
});
const dump = () => {
  const state = { url: double.url, calls: double.callLog(), instances: double.instances().map(({ userData: _u, userDataText: _t, ...i }) => i), groups: double.securityGroups() };
  writeFileSync(`${stateFile}.tmp`, JSON.stringify(state));
  renameSync(`${stateFile}.tmp`, stateFile);
};
dump();
setInterval(dump, 200);
process.on('SIGTERM', () => void double.stop().then(() => process.exit(0)));
