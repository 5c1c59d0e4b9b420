// Containers started the Docker-native way on a weft network (`docker run --network weftnet`,
// `docker-compose up` with the weft network as its default) resolve mesh names with no extra
// flags, as label-attached ones do; `weft reset` gives them Docker's resolver back and leaves
// Docker's own settings as they were. Two hosts with a dockerd and a peer each; names outside
// the mesh go to a stub upstream on h1 (never the machine's resolver).
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { useHarness } from '../harness/vitest.ts';
import { waitFor, type Host } from '../harness/harness.ts';
import { BUSYBOX_IMAGE } from '../harness/dockerd.ts';
import { run } from '../harness/run.ts';
import { addressOf, pingFrom, ps, startNetworkMesh } from './network-helpers.ts';

const STUB = fileURLToPath(new URL('../dns/fake-upstream-main.ts', import.meta.url));
const STUB_PORT = 5353;
/** What the stub upstream answers for the one outside name. */
const OUTSIDE = { name: 'outside.example', addr: '192.0.2.77' };
const NET = 'weftnet';
const TIMEOUT = { timeoutMs: 60_000 };

describe('containers on a weft Docker network resolve mesh names', () => {
  const mesh = useHarness({ hosts: 2, name: 'e2e-plugin-dns' });
  const docker = (h: Host, args: string[]) => h.dockerd!.mustDocker(args, TIMEOUT);
  const resolvOf = (h: Host, c: string) => docker(h, ['exec', c, 'cat', '/etc/resolv.conf']);
  /** The A records busybox nslookup printed for `name` from container `c` (the first name of
   *  the search list that had any), sorted; [] when none did. */
  async function lookup(h: Host, c: string, name: string): Promise<string[]> {
    // busybox nslookup goes on through the search list for AAAA after finding the A records,
    // and may exit 1 then: what it printed is read, not its exit code.
    const r = await h.dockerd!.docker(['exec', c, 'nslookup', '-type=a', name], { timeoutMs: 15_000 });
    const answers = r.stdout.split(/\n\s*\n/).filter((b) => /^Name:/m.test(b));
    return answers.flatMap((b) => [...b.matchAll(/^Address: ([\d.]+)$/gm)].map((m) => m[1] as string)).sort();
  }
  /** The address busybox ping (libc's resolver, search list and all) resolved `name` to. */
  async function pingedAddress(h: Host, c: string, name: string): Promise<string> {
    const r = await h.dockerd!.docker(['exec', c, 'ping', '-c', '1', '-W', '2', name], { timeoutMs: 15_000 });
    return /^PING \S+ \(([\d.]+)\)/m.exec(r.stdout)?.[1] ?? '';
  }
  const resolves = (h: Host, c: string, name: string, want: string[]) =>
    waitFor(async () => JSON.stringify(await lookup(h, c, name)) === JSON.stringify([...want].sort()),
      { timeoutMs: 20_000, what: `${c} on ${h.name} to resolve ${name} to ${want.join(',')}` });

  /** What `weft reset` must leave as it found: each dockerd's config file and process. */
  const settings = (h: Host) => ({
    config: createHash('sha256').update(readFileSync(join(h.dockerd!.dir, 'daemon.json'))).digest('hex'),
    pid: h.dockerd!.process.pid,
  });
  let before: ReturnType<typeof settings>[] = [];

  test('docker run --network weftnet: short names, name.weft.local, a service to all its containers, outside names', async () => {
    const [h1, h2] = mesh().hosts as [Host, Host];
    await h1.spawn('upstream', [process.execPath, '--disable-warning=ExperimentalWarning', STUB, h1.ip, String(STUB_PORT), `${OUTSIDE.name}=${OUTSIDE.addr}`]);
    await startNetworkMesh([h1, h2], ['--dns-upstream', `${h1.ip}:${STUB_PORT}`]);
    before = [settings(h1), settings(h2)];
    for (const h of [h1, h2]) {
      const driver = `weft-${h.ns}`;
      await docker(h, ['network', 'create', '-d', driver, '--ipam-driver', driver, NET]);
    }
    const shop = (service: string) => ['--label', 'weft.stack=shop', '--label', `weft.service=${service}`];
    await docker(h1, ['run', '-d', '--network', NET, '--name', 'p1', BUSYBOX_IMAGE, 'sleep', '100000']);
    await docker(h2, ['run', '-d', '--network', NET, '--name', 'p2', BUSYBOX_IMAGE, 'sleep', '100000']);
    await docker(h1, ['run', '-d', '--network', NET, '--name', 'web-a', ...shop('web'), BUSYBOX_IMAGE, 'sleep', '100000']);
    await docker(h2, ['run', '-d', '--network', NET, '--name', 'web-b', ...shop('web'), BUSYBOX_IMAGE, 'sleep', '100000']);
    await docker(h2, ['run', '-d', '--network', NET, '--name', 'client', ...shop('client'), BUSYBOX_IMAGE, 'sleep', '100000']);
    const p1 = await addressOf(h2, 'p1');
    const p2 = await addressOf(h1, 'p2');
    const webA = await addressOf(h2, 'web-a');
    const webB = await addressOf(h1, 'web-b');

    // The resolver is the peer's DNS, searching the stack first, then the mesh domain.
    await waitFor(async () => (await resolvOf(h2, 'client')).includes('search shop.weft.local weft.local'), { timeoutMs: 20_000, what: "client's resolver to be the peer's" });
    expect(await resolvOf(h2, 'client')).toMatch(/^nameserver 169\.254\.53\.1$/m);
    expect(await resolvOf(h1, 'p1')).toMatch(/^search weft\.local$/m);

    // Across hosts, by the names a user would type.
    await resolves(h1, 'p1', 'p2', [p2]);
    await resolves(h2, 'p2', 'p1.weft.local', [p1]);
    await resolves(h2, 'client', 'web', [webA, webB]);
    await resolves(h2, 'client', 'web-a', [webA]);
    // A dotted name: busybox's nslookup skips the search list for those, libc does not.
    await waitFor(async () => [webA, webB].includes(await pingedAddress(h1, 'p1', 'web.shop')), { timeoutMs: 20_000, what: 'p1 to reach web.shop' });
    await resolves(h1, 'p1', 'web-b.shop.weft.local', [webB]);
    await resolves(h1, 'p1', OUTSIDE.name, [OUTSIDE.addr]);
    await waitFor(() => pingFrom(h1, 'p1', 'p2'), { timeoutMs: 20_000, what: 'p1 to ping p2 by name' });
    // Round robin: the first address of web alternates between the two.
    const firsts = new Set<string>();
    for (let i = 0; i < 6 && firsts.size < 2; i++) {
      const r = await h2.dockerd!.docker(['exec', 'client', 'nslookup', '-type=a', 'web.shop.weft.local'], { timeoutMs: 15_000 });
      const first = /^Address: ([\d.]+)$/m.exec(r.stdout.split(/^Name:/m)[1] ?? '')?.[1];
      if (first) firsts.add(first);
    }
    expect(firsts).toEqual(new Set([webA, webB]));
  });

  test('docker-compose up with the weft network as its default: the project is a stack', async () => {
    const [h1, h2] = mesh().hosts as [Host, Host];
    const file = join(h1.dir, 'compose.yml');
    writeFileSync(file, [
      'version: "2.4"',
      'services:',
      '  web:',
      `    image: ${BUSYBOX_IMAGE}`,
      '    command: ["sleep", "100000"]',
      '    scale: 2',
      '  client:',
      `    image: ${BUSYBOX_IMAGE}`,
      '    command: ["sleep", "100000"]',
      'networks:',
      '  default:',
      '    external: true',
      `    name: ${NET}`,
      '',
    ].join('\n'));
    const up = await run(['docker-compose', '-p', 'cmp', '-f', file, 'up', '-d'], {
      timeoutMs: 120_000, env: { ...process.env, DOCKER_HOST: `unix://${h1.dockerd!.socket}`, COMPOSE_INTERACTIVE_NO_CLI: '1' },
    });
    expect(up.code, up.stderr).toBe(0);
    // Compose 1.29 names its containers cmp_web_1; weft names them as `docker compose` does.
    const web1 = await addressOf(h2, 'web-1');
    const web2 = await addressOf(h2, 'web-2');
    const client = (await docker(h1, ['ps', '-q', '--filter', 'label=com.docker.compose.service=client'])).trim();
    expect(client).not.toBe('');
    await resolves(h1, client, 'web', [web1, web2]);
    await resolves(h1, client, 'web-2', [web2]);
    await resolves(h1, client, 'p2', [await addressOf(h1, 'p2')]);
    await resolves(h1, client, OUTSIDE.name, [OUTSIDE.addr]);
  });

  test('a container also on another Docker network keeps Docker\'s resolver, and is in the mesh', async () => {
    const [h1, h2] = mesh().hosts as [Host, Host];
    await docker(h2, ['network', 'create', 'plain']);
    await docker(h2, ['run', '-d', '--network', 'plain', '--name', 'both', BUSYBOX_IMAGE, 'sleep', '100000']);
    const dockers = await resolvOf(h2, 'both');
    await docker(h2, ['network', 'connect', NET, 'both']);
    const addr = await addressOf(h1, 'both', 'both (connected to weftnet while running) in the registry');
    await waitFor(() => pingFrom(h1, 'p1', addr), { timeoutMs: 20_000, what: 'p1 to ping both' });
    expect(await resolvOf(h2, 'both')).toBe(dockers);
    expect(readFileSync(h2.peer!.logFile, 'utf8')).toMatch(/container keeps Docker's resolver.*container=both networks=plain/);
  });

  test('weft reset gives the containers Docker\'s resolver back; Docker\'s settings are as before', async () => {
    const [h1, h2] = mesh().hosts as [Host, Host];
    const dockers = await resolvOf(h2, 'both'); // what Docker writes on this host
    expect(dockers).not.toContain('written by weft');
    expect(await resolvOf(h2, 'p2')).toContain('written by weft');
    const r = await h2.weftJson<any>(['reset', '--json']);
    expect(r.containers).toBe(0); // none attached by label: the network's containers are Docker's
    for (const c of ['p2', 'client', 'web-b']) expect(await resolvOf(h2, c)).toBe(dockers);
    expect([settings(h1), settings(h2)]).toEqual(before);
    await waitFor(async () => !(await ps(h1)).some((c) => c.host === 'h2'), { timeoutMs: 20_000, what: "h2's containers to leave the registry" });
  });
});
