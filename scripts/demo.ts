// The main job: a local mesh of three hosts on this machine, with a sample stack. Each host is a
// network namespace with its own dockerd and weft peer (encrypted data plane). The script shows
// the mesh, runs a stack `shop` (two `web` containers serving HTTP on h1 and h2, a client on h3),
// shows the containers' mesh-wide addresses and dynamic-link DNS (`web` answers both, each
// container its own name; the client fetches through `web` round-robin), crashes a peer and
// shows its containers keep working and it rejoining, and cleans up. Along the way: the three
// peers' managers elect a leader and commit a setting written through any of them, also while
// one is dead.
// `--keep` leaves the mesh running until Ctrl-C.
import { Harness, waitFor, type Host } from '../test/harness/harness.ts';
import { BUSYBOX_IMAGE } from '../test/harness/dockerd.ts';

const PASSWORD = `demo-${process.pid}-${Date.now()}`;
const keep = process.argv.includes('--keep');

function step(text: string): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);
}

async function show(h: Host, args: string[]): Promise<void> {
  process.stdout.write(`$ weft ${args.join(' ')}    # on ${h.name} (${h.ip})\n`);
  const r = await h.weft(args);
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

  step('a sample stack "shop": web-1 on h1, web-2 on h2 (busybox httpd), a client on h3');
  const labels = (service: string) => ['--label', 'weft.attach=true', '--label', 'weft.stack=shop', '--label', `weft.service=${service}`];
  for (const [h, name] of [[h1, 'web-1'], [h2, 'web-2']] as const) {
    const page = `hello from ${name} on ${h.name}`;
    await h.dockerd!.mustDocker(['run', '-d', '--network', 'none', '--name', name, '--hostname', name, ...labels('web'), '--expose', '80/tcp', BUSYBOX_IMAGE,
      'sh', '-c', `mkdir -p /www && echo '${page}' > /www/index.html && httpd -f -p 80 -h /www`]);
  }
  await h3.dockerd!.mustDocker(['run', '-d', '--network', 'none', '--name', 'client', ...labels('client'), BUSYBOX_IMAGE, 'sleep', '100000']);
  await waitFor(async () => (await h1.weftJson<unknown[]>(['ps', '--json'])).length === 3, { what: 'three containers attached' });
  await show(h1, ['ps']);
  await waitFor(async () => (await h3.weftJson<any>(['dns', 'lookup', 'web.shop.weft.local', '--json'])).records.filter((r: any) => r.type === 'A').length === 2, { what: 'web to answer both' });
  await show(h3, ['dns', 'lookup', 'web.shop.weft.local']);
  await show(h3, ['dns', 'lookup', 'web-2.shop.weft.local']);
  // The name through the container's own resolver (the peer's DNS, search shop.weft.local).
  // (busybox's static wget crashes in this image, so HTTP by hand with nc)
  const fetchScript = String.raw`ip=$(ping -c 1 -W 1 web | sed -n '1s/.*(\([0-9.]*\)).*/\1/p'); echo "web is $ip: $(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 $ip 80 | tail -n 1)"`;
  const fetch = async () => (await h3.dockerd!.mustDocker(['exec', 'client', 'sh', '-c', fetchScript])).trim();
  await waitFor(async () => (await fetch()).includes('hello'), { what: 'the client to reach web' });
  const pages: string[] = [];
  for (let i = 0; i < 6; i++) pages.push(await fetch());
  process.stdout.write(`$ docker exec client sh -c 'ip=$(ping -c1 web ...); GET http://$ip/'    # 6 times, on h3: web's answers are shuffled\n${pages.join('\n')}\n`);

  step('h3 is killed with -9: the others mark it dead');
  const t0 = Date.now();
  await h3.kill();
  await waitFor(async () => (await stateOf(h1, 'h3')) === 'dead' && (await stateOf(h2, 'h3')) === 'dead', { intervalMs: 100, what: 'h1 and h2 to mark h3 dead' });
  process.stdout.write(`(seen dead on h1 and h2 within ${((Date.now() - t0) / 1000).toFixed(1)} s, CLI polling included)\n`);
  await show(h1, ['peers']);
  // The overlay is kernel state and outlives the peer; names need the peer (its DNS), so by address.
  const web1 = (await h1.weftJson<{ name: string; address: string }[]>(['ps', '--json'])).find((c) => c.name === 'web-1')!.address;
  const direct = (await h3.dockerd!.mustDocker(['exec', 'client', 'sh', '-c', `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 ${web1} 80 | tail -n 1`])).trim();
  process.stdout.write(`the client on h3 still reaches web-1 at ${web1} while its peer is down: ${direct}\n`);
  // Two managers of three are a majority: desired state still takes writes (a new leader if h3 led).
  await show(h2, ['config', 'set', 'shop/replicas', '3']);
  await show(h1, ['manager', 'ls']);

  step('h3 restarts with its data dir: same identity, rejoined');
  await h3.restart();
  await waitFor(async () => (await stateOf(h1, 'h3')) === 'alive', { what: 'h3 to rejoin' });
  await show(h1, ['events']);
  await show(h1, ['status', 'ipam']);
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
