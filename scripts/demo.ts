// The main job: a local mesh of three hosts on this machine, with a sample stack. Each host is a
// network namespace with its own dockerd and weft peer (encrypted data plane). The script shows
// the mesh; the three peers' managers elect a leader and commit a setting written through any
// of them; a stack `shop` (scripts/shop.yml: `web` serving HTTP, a client linking it as
// `backend`) is deployed through the scheduler; the containers' mesh-wide addresses and
// dynamic-link DNS (`web` and `backend` answer all, each container its own name; the client
// fetches through `backend` round-robin); scaling; a peer killed with -9, after which its
// containers come back on other hosts with the same names and addresses and a write still
// commits; it rejoining and its stale copies going; a rolling redeploy; and it cleans up.
// `--keep` leaves the mesh running until Ctrl-C.
import { Harness, waitFor, type Host } from '../test/harness/harness.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The sample stack (its image is the busybox every host's dockerd imports). */
const STACK_FILE = join(import.meta.dirname, 'shop.yml');

const PASSWORD = `demo-${process.pid}-${Date.now()}`;
const keep = process.argv.includes('--keep');

function step(text: string): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);
}

async function show(h: Host, args: string[]): Promise<void> {
  process.stdout.write(`$ weft ${args.join(' ')}    # on ${h.name} (${h.ip})\n`);
  // A deploy or a rolling redeploy waits for its containers: minutes at most on a loaded machine.
  const r = await h.weft(args, { timeoutMs: 300_000 });
  process.stdout.write(r.stdout + (r.stderr ? r.stderr : ''));
  if (r.code !== 0) throw new Error(`weft ${args.join(' ')} failed on ${h.name} (exit ${r.code})`);
}

const alive = async (h: Host) => (await h.weftJson<{ peers: { alive: number } }>(['status', '--json'])).peers.alive;
const stateOf = async (h: Host, name: string) =>
  (await h.weftJson<{ name: string; state: string }[]>(['peers', '--json'])).find((p) => p.name === name)?.state;

const mesh = await Harness.create({ hosts: 3, name: 'demo' });
let ok = false;
try {
  const [h1, h2, h3] = mesh.hosts as [Host, Host, Host];
  step(`three hosts: ${mesh.hosts.map((h) => `${h.name} ${h.ip}`).join(', ')} (network namespaces on one switch), a dockerd on each`);
  await Promise.all([h1, h2, h3].map(async (h) => (await h.startDockerd()).importBusybox()));
  const init = ['--ipalloc-init', 'consensus=3'];
  await h1.startPeer({ password: PASSWORD, dataplane: true, args: init });
  await h2.startPeer({ password: PASSWORD, dataplane: true, peers: [h1.address], args: init });
  await h3.startPeer({ password: PASSWORD, dataplane: true, peers: [h1.address], args: init });
  for (const h of [h1, h2, h3]) await waitFor(async () => (await alive(h)) === 2, { what: `${h.name} to see both others` });

  step('the mesh seen from h1');
  await show(h1, ['status']);
  await show(h1, ['peers']);

  step('a value written on h2 is replicated to every peer');
  await show(h2, ['kv', 'put', 'greeting', 'hello from h2']);
  await waitFor(async () => (await h3.weftJson<unknown[]>(['kv', 'get', 'greeting', '--json'])).length === 1, { what: 'h3 to receive it' });
  await show(h3, ['kv', 'get', 'greeting']);

  step('the control plane: h1 founded it, the autopilot made all three managers; a setting written through h3 is committed on all');
  await waitFor(async () => (await h2.weftJson<{ voter: boolean }[]>(['manager', 'ls', '--json']).catch(() => [])).filter((m) => m.voter).length === 3, { what: 'three voting managers' });
  await show(h2, ['manager', 'ls']);
  await show(h3, ['config', 'set', 'shop/replicas', '2']);
  await show(h1, ['config', 'get', 'shop/replicas', '--consistent']);

  step('a sample stack "shop" deployed through the scheduler: the leader places it, each host\'s agent runs its part');
  process.stdout.write(readFileSync(STACK_FILE, 'utf8'));
  await show(h1, ['stack', 'deploy', '-f', STACK_FILE, 'shop']);
  await show(h2, ['service', 'ls']);
  await show(h1, ['ps']);
  await show(h3, ['dns', 'lookup', 'web.shop.weft.local']);
  await show(h3, ['dns', 'lookup', 'web-2.shop.weft.local']);
  const where = async (name: string) => {
    const c = (await h1.weftJson<{ name: string; host: string; address: string; state: string }[]>(['ps', '--json'])).find((x) => x.name === name && x.state === 'running');
    if (!c) throw new Error(`${name} is not running`);
    return { host: mesh.hosts.find((h) => h.name === c.host) as Host, address: c.address, docker: `${name}.shop` };
  };
  // The link's alias `backend`, through the client container's own resolver (the peer's DNS,
  // search shop.weft.local): it answers every web container, shuffled.
  // (busybox's static wget crashes in this image, so HTTP by hand with nc)
  const fetchScript = String.raw`ip=$(ping -c 1 -W 1 backend | sed -n '1s/.*(\([0-9.]*\)).*/\1/p'); echo "backend is $ip: $(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 $ip 80 | tail -n 1)"`;
  const fetch = async () => {
    const c = await where('client-1');
    return (await c.host.dockerd!.mustDocker(['exec', c.docker, 'sh', '-c', fetchScript])).trim();
  };
  await waitFor(async () => (await fetch()).includes('hello'), { what: 'the client to reach backend' });
  const pages: string[] = [];
  for (let i = 0; i < 6; i++) pages.push(await fetch());
  process.stdout.write(`$ docker exec client-1.shop sh -c 'ip=$(ping -c1 backend ...); GET http://$ip/'    # 6 times: backend's answers are shuffled\n${pages.join('\n')}\n`);

  step('scaled to three web containers, at once resolvable, without touching the client');
  await show(h2, ['service', 'scale', 'shop/web', '3']);
  await show(h3, ['dns', 'lookup', 'backend.shop.weft.local']);

  const web1 = await where('web-1');
  const victim = web1.host;
  const others = mesh.hosts.filter((h) => h !== victim) as Host[];
  step(`${victim.name}, where web-1 runs, is killed with -9: marked dead, then after the service's 5 s grace its containers are recreated on other hosts with the same names and addresses`);
  const t0 = Date.now();
  await victim.kill();
  await waitFor(async () => (await stateOf(others[0]!, victim.name)) === 'dead', { intervalMs: 100, what: `${victim.name} to be marked dead` });
  process.stdout.write(`(seen dead within ${((Date.now() - t0) / 1000).toFixed(1)} s, CLI polling included)\n`);
  await waitFor(async () => {
    const c = (await others[0]!.weftJson<{ name: string; host: string; address: string; state: string }[]>(['ps', '--json'])).find((x) => x.name === 'web-1' && x.state === 'running' && x.host !== victim.name);
    return c?.address === web1.address;
  }, { timeoutMs: 90_000, what: 'web-1 to run elsewhere at its address' });
  process.stdout.write(`(web-1 answers again at ${web1.address} ${((Date.now() - t0) / 1000).toFixed(1)} s after the kill)\n`);
  await show(others[0]!, ['ps']);
  // Two managers of three are a majority: desired state still takes writes (a new leader if it led).
  await show(others[1]!, ['config', 'set', 'shop/replicas', '3']);
  await show(others[0]!, ['manager', 'ls']);

  step(`${victim.name} restarts with its data dir: same identity, rejoined; its agent removes its stale copies before anything else`);
  await victim.restart();
  await waitFor(async () => (await stateOf(others[0]!, victim.name)) === 'alive', { what: `${victim.name} to rejoin` });
  await waitFor(async () => !(await victim.dockerd!.mustDocker(['ps', '--format', '{{.Names}}'])).includes('web-1.shop'), { what: 'the stale web-1 to go' });

  step('a rolling redeploy: every container replaced one at a time, each keeping its name and address');
  await show(h1, ['stack', 'redeploy', 'shop']);
  await show(h2, ['ps']);
  await show(h1, ['events']);
  await show(h1, ['status', 'ipam']);
  await show(h3, ['stack', 'rm', 'shop']);
  ok = true;

  if (keep) {
    step(`the mesh keeps running; try: bin/weft --data-dir ${h1.dataDir} peers   (Ctrl-C ends it)`);
    await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  }
} catch (err) {
  process.stderr.write(`demo failed: ${(err as Error).message}\n${mesh.dumpLogs()}\n`);
} finally {
  await mesh.cleanup();
  process.stdout.write(`\nremoved the hosts, peers and files of the demo${ok ? '' : ' (after a failure)'}\n`);
}
process.exit(ok ? 0 : 1);
