// The main job: a local mesh of three hosts on this machine. Each host is a network
// namespace with its own weft peer; the script shows the mesh from one of them, replicates a
// value, crashes a peer and shows it found dead and then rejoining, and cleans up.
// `--keep` leaves the mesh running until Ctrl-C.
import { Harness, waitFor, type Host } from '../test/harness/harness.ts';

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
  step(`three hosts: ${mesh.hosts.map((h) => `${h.name} ${h.ip}`).join(', ')} (network namespaces on one switch)`);
  await h1.startPeer({ password: PASSWORD });
  await h2.startPeer({ password: PASSWORD, peers: [h1.address] });
  await h3.startPeer({ password: PASSWORD, peers: [h1.address] });
  for (const h of [h1, h2, h3]) await waitFor(async () => (await alive(h)) === 2, { what: `${h.name} to see both others` });

  step('the mesh seen from h1');
  await show(h1, ['status']);
  await show(h1, ['peers']);

  step('a value written on h2 is replicated to every peer');
  await show(h2, ['kv', 'put', 'greeting', 'hello from h2']);
  await waitFor(async () => (await h3.weftJson<unknown[]>(['kv', 'get', 'greeting', '--json'])).length === 1, { what: 'h3 to receive it' });
  await show(h3, ['kv', 'get', 'greeting']);

  step('h3 is killed with -9: the others mark it dead');
  const t0 = Date.now();
  await h3.kill();
  await waitFor(async () => (await stateOf(h1, 'h3')) === 'dead' && (await stateOf(h2, 'h3')) === 'dead', { intervalMs: 100, what: 'h1 and h2 to mark h3 dead' });
  process.stdout.write(`(seen dead on h1 and h2 within ${((Date.now() - t0) / 1000).toFixed(1)} s, CLI polling included)\n`);
  await show(h1, ['peers']);

  step('h3 restarts with its data dir: same identity, rejoined');
  await h3.restart();
  await waitFor(async () => (await stateOf(h1, 'h3')) === 'alive', { what: 'h3 to rejoin' });
  await show(h1, ['events']);
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
