// The main job: one weft peer on this machine (in a network namespace of its own, so the
// machine's network is untouched), a `local` node cluster of 3 made by the provisioner (each
// node a namespace with its own dockerd and weft peer, joined with a token), and the sample
// stack (scripts/shop.yml: `web` ×3 serving HTTP, a client linking it as `backend`) deployed on
// it through the scheduler. It shows `weft status`, `weft node ls`, `weft ps`, round-robin
// lookups and fetches from inside the client; kills a node with -9 and shows it replaced and its
// containers back under the same names and addresses; scales the cluster to 4 and back; and
// removes everything. `--keep` leaves it running until Ctrl-C.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, waitFor, type Host } from '../test/harness/harness.ts';
import { BUSYBOX_IMAGE } from '../test/harness/dockerd.ts';

/** The sample stack (its image is the busybox loaded into every node's dockerd). */
const STACK_FILE = join(import.meta.dirname, 'shop.yml');
const CLUSTER = 'demo';
const PASSWORD = `demo-${process.pid}-${Date.now()}`;
const keep = process.argv.includes('--keep');

function step(text: string): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);
}

async function show(h: Host, args: string[]): Promise<void> {
  process.stdout.write(`$ weft ${args.join(' ')}\n`);
  // Nodes boot and deploys start containers: minutes at most on a loaded machine.
  const r = await h.weft(args, { timeoutMs: 300_000 });
  process.stdout.write(r.stdout + (r.stderr ? r.stderr : ''));
  if (r.code !== 0) throw new Error(`weft ${args.join(' ')} failed (exit ${r.code})`);
}

interface Ps { name: string; host: string; address: string; state: string }

const mesh = await Harness.create({ hosts: 1, name: 'demo' });
const h1 = mesh.hosts[0] as Host;
const nodesDir = join(h1.dataDir, 'local-nodes');
/** The docker CLI against a node's own dockerd. */
const docker = (node: string, args: string[]) =>
  execFileSync('docker', ['-H', `unix://${join(nodesDir, node, 'docker', 'docker.sock')}`, ...args], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
let ok = false;
try {
  step(`one peer on this machine: ${h1.name} at ${h1.ip} (a network namespace)`);
  // The image the nodes run, as a `docker save` file: made once with a dockerd of h1's own,
  // then loaded into every node's dockerd when it starts (no registry needed).
  const d = await h1.startDockerd();
  await d.importBusybox();
  const image = join(mesh.tmpDir, 'busybox-image.tar');
  await d.mustDocker(['save', '-o', image, BUSYBOX_IMAGE], { timeoutMs: 60_000 });
  await d.stop();
  await h1.startPeer({ password: PASSWORD });
  await waitFor(async () => (await h1.weft(['config', 'ls', '--consistent'])).code === 0, { what: 'the peer to lead its managers' });
  await show(h1, ['status']);

  step(`a local node cluster of 3: the leader's provisioner makes each node and its peer joins the mesh`);
  // The nodes' peers forward other names to the host side of their bridge, where nothing
  // answers: the demo sends no query to the machine's resolver.
  await show(h1, ['nodecluster', 'create', CLUSTER, '--provider', 'local', '--nodes', '3', '--tags', 'demo',
    '--option', `load-images=${image}`, '--option', 'dns-upstream=172.30.83.1:5353']);
  await show(h1, ['node', 'ls']);

  step('the sample stack "shop" deployed on it through the scheduler');
  process.stdout.write(readFileSync(STACK_FILE, 'utf8'));
  await show(h1, ['stack', 'deploy', '-f', STACK_FILE, 'shop']);
  await show(h1, ['status']);
  await show(h1, ['ps']);
  const where = async (name: string) => {
    const c = (await h1.weftJson<Ps[]>(['ps', '--json'])).find((x) => x.name === name && x.state === 'running');
    if (!c) throw new Error(`${name} is not running`);
    return c;
  };

  step('from inside client-1: `backend` (its link to web) answers every web container, shuffled on each lookup');
  // (busybox's static wget crashes in this image, so HTTP by hand with nc)
  const fetchScript = String.raw`ip=$(ping -c 1 -W 1 backend | sed -n '1s/.*(\([0-9.]*\)).*/\1/p'); echo "backend is $ip: $(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 $ip 80 | tail -n 1)"`;
  const inClient = async (script: string) => {
    const c = await where('client-1');
    return docker(c.host, ['exec', 'client-1.shop', 'sh', '-c', script]).trim();
  };
  await waitFor(async () => (await inClient(fetchScript).catch(() => '')).includes('hello'), { what: 'the client to reach backend' });
  for (let i = 0; i < 3; i++) {
    const answers = (await inClient('nslookup backend 2>/dev/null | sed -n "s/^Address: //p" | tr "\\n" " "'));
    process.stdout.write(`$ nslookup backend    # in client-1: ${answers}\n`);
  }
  const pages: string[] = [];
  for (let i = 0; i < 6; i++) pages.push(await inClient(fetchScript));
  process.stdout.write(`$ GET http://backend/    # 6 times\n${pages.join('\n')}\n`);

  const web1 = await where('web-1');
  step(`${web1.host}, the node where web-1 runs, is killed with -9 (every process of its namespace): the provisioner replaces the node, the scheduler brings web-1 back under its name and address`);
  const t0 = Date.now();
  const pids = execFileSync('ip', ['netns', 'pids', `weftn-${web1.host}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
  execFileSync('kill', ['-9', ...pids]);
  await waitFor(async () => {
    const c = (await h1.weftJson<Ps[]>(['ps', '--json'])).find((x) => x.name === 'web-1' && x.state === 'running');
    return c !== undefined && c.address === web1.address && (c.host !== web1.host || Date.now() - t0 > 15_000);
  }, { timeoutMs: 180_000, intervalMs: 500, what: 'web-1 to run again at its address' });
  process.stdout.write(`(web-1 answers again at ${web1.address} ${((Date.now() - t0) / 1000).toFixed(1)} s after the kill)\n`);
  await waitFor(async () => (await h1.weftJson<{ state: string; deployed: number }[]>(['nodecluster', 'ls', '--json']))[0]?.deployed === 3, { timeoutMs: 180_000, what: 'the cluster to have 3 nodes again' });
  await show(h1, ['node', 'ls']);
  await show(h1, ['ps']);
  await waitFor(async () => (await inClient(fetchScript).catch(() => '')).includes('hello'), { what: 'the client to reach backend again' });

  step('the node cluster scaled to 4, and back to 3');
  await show(h1, ['nodecluster', 'scale', CLUSTER, '4']);
  await show(h1, ['nodecluster', 'scale', CLUSTER, '3']);
  await show(h1, ['nodecluster', 'inspect', CLUSTER]);
  await show(h1, ['events']);
  ok = true;

  if (keep) {
    step(`it keeps running; try: bin/weft --data-dir ${h1.dataDir} node ls   (Ctrl-C ends it)`);
    await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  }
  step('everything removed: the stack, then the node cluster (its nodes leave the mesh; nothing of them stays)');
  await show(h1, ['stack', 'rm', 'shop']);
  await show(h1, ['nodecluster', 'rm', CLUSTER]);
} catch (err) {
  ok = false;
  process.stderr.write(`demo failed: ${(err as Error).message}\n${mesh.dumpLogs()}\n`);
} finally {
  // Nodes outlive their host's peer by design: end whatever a failure left, once the peer is
  // stopped (while it runs, its provisioner would make them again).
  if (h1.peer?.running) await h1.stop().catch(() => undefined);
  if (existsSync(nodesDir)) {
    const { LocalNodes, currentWeftCommand } = await import('../provisioner/local/local-nodes.ts');
    const { logger } = await import('../mesh/log.ts');
    const runner = new LocalNodes({ dir: nodesDir, log: logger('demo'), weft: currentWeftCommand() });
    for (const n of await runner.list().catch(() => [])) await runner.destroy(n.name).catch(() => undefined);
  }
  await mesh.cleanup();
  process.stdout.write(`\nremoved the peer, nodes and files of the demo${ok ? '' : ' (after a failure)'}\n`);
}
process.exit(ok ? 0 : 1);
