// The scheduler end to end: 3 managers and 2 workers, each host with its own dockerd and a peer
// with its data plane. A stack is deployed through `weft stack deploy`; the leader places it, the
// agents run it; the tests check names, addresses and DNS from inside the containers, idempotent
// deploys, scaling, a rolling redeploy that keeps names and addresses, a leader killed in the
// middle of a deploy, and a worker's death after which its containers come back elsewhere with
// the same names and addresses (and the stale copies go when it returns).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { useHarness } from '../harness/vitest.ts';
import { waitFor, type Host } from '../harness/harness.ts';
import { BUSYBOX_IMAGE } from '../harness/dockerd.ts';

const PASSWORD = 'e2e-scheduler-password-71be';

interface Ps { name: string; service: string | null; stack: string | null; address: string; host: string; state: string; id: string }
interface ServiceRow { name: string; running: number; target: number; tasks: number; update: { state: string }; pending?: string }

/** A web service of three with a health check, and a client linking it as `backend`; a short
 *  grace so a dead node's containers move within the test. */
function shopFile(dir: string, extra = ''): string {
  const file = join(dir, 'shop.yml');
  writeFileSync(file, `
web:
  image: ${BUSYBOX_IMAGE}
  command: sh -c 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www'
  target_num_containers: 3
  deployment_strategy: HIGH_AVAILABILITY
  expose: ["80"]
  reschedule_after: 5s
  healthcheck:
    test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1/"]
    interval: 1s
    timeout: 1s
    retries: 3
${extra}
client:
  image: ${BUSYBOX_IMAGE}
  command: sleep 100000
  links: ["web:backend"]
  reschedule_after: 5s
`);
  return file;
}

describe('the scheduler: 3 managers and 2 workers with a dockerd each', () => {
  const mesh = useHarness({ hosts: 5, name: 'e2e-scheduler' });
  const hosts = () => mesh().hosts as [Host, Host, Host, Host, Host];
  const ps = (h: Host) => h.weftJson<Ps[]>(['ps', '--json']);
  const services = (h: Host) => h.weftJson<ServiceRow[]>(['service', 'ls', '--json']);
  const inContainer = async (h: Host, container: string, argv: string[]) => {
    const owner = hosts().find((x) => x.name === h.name) as Host;
    return owner.dockerd!.docker(['exec', container, ...argv], { timeoutMs: 20_000 });
  };
  /** The host and Docker name of a running container of the stack, by its mesh name. */
  const where = async (h: Host, name: string) => {
    const c = (await ps(h)).find((x) => x.name === name && x.state === 'running');
    if (!c) throw new Error(`${name} is not running`);
    const host = hosts().find((x) => x.name === c.host) as Host;
    return { host, docker: `${name}.shop`, address: c.address, id: c.id };
  };

  test('a stack deploys, resolves by name from inside its containers, and a second deploy changes nothing', async () => {
    const all = hosts();
    await Promise.all(all.map(async (h) => (await h.startDockerd()).importBusybox()));
    for (const [i, h] of all.entries()) {
      await h.startPeer({
        password: PASSWORD, dataplane: true, peers: i === 0 ? [] : [all[0].address],
        args: ['--ipalloc-init', 'consensus=5', '--role', i < 3 ? 'auto' : 'worker', '--managers', '3'],
      });
    }
    await waitFor(async () => (await all[0].weftJson<any[]>(['manager', 'ls', '--json'])).filter((m) => m.voter).length === 3, { timeoutMs: 60_000, what: 'three voting managers' });

    const file = shopFile(mesh().tmpDir);
    const r = await all[0].weft(['stack', 'deploy', '-f', file, 'shop', '--timeout', '240'], { timeoutMs: 260_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/created client, web/);
    const running = (await ps(all[1])).filter((c) => c.stack === 'shop' && c.state === 'running');
    expect(running.map((c) => c.name).sort()).toEqual(['client-1', 'web-1', 'web-2', 'web-3']);
    // HIGH_AVAILABILITY: three web containers on three different hosts.
    expect(new Set(running.filter((c) => c.service === 'web').map((c) => c.host)).size).toBe(3);

    const client = await where(all[0], 'client-1');
    const web2 = await where(all[0], 'web-2');
    const lookup = await inContainer(client.host, client.docker, ['nslookup', 'web-2']);
    expect(lookup.stdout).toContain(web2.address);
    for (const n of ['web-1', 'web-2', 'web-3']) {
      const got = await inContainer(client.host, client.docker, ['wget', '-q', '-O', '-', `http://${n}/`]);
      expect(got.stdout.trim(), got.stderr).toBe(`${n}`);
    }
    const env = await inContainer(client.host, client.docker, ['env']);
    expect(env.stdout).toMatch(/BACKEND_PORT=tcp:\/\/web:80/);

    // Idempotent: the same file again changes nothing, and no container is replaced.
    const ids = new Map(running.map((c) => [c.name, c.id]));
    const again = await all[2].weft(['stack', 'deploy', '-f', file, 'shop'], { timeoutMs: 60_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/unchanged client, web/);
    const after = (await ps(all[0])).filter((c) => c.stack === 'shop' && c.state === 'running');
    expect(new Map(after.map((c) => [c.name, c.id]))).toEqual(ids);
  }, 420_000);

  test('scale up and down; a rolling redeploy keeps every name and address', async () => {
    const [h1, h2] = hosts();
    const up = await h1.weft(['service', 'scale', 'shop/web', '4', '--timeout', '120'], { timeoutMs: 140_000 });
    expect(up.code, up.stderr).toBe(0);
    await waitFor(async () => (await ps(h2)).some((c) => c.name === 'web-4' && c.state === 'running'), { timeoutMs: 30_000, what: 'web-4 to run' });
    const down = await h1.weft(['service', 'scale', 'web.shop', '3', '--timeout', '120'], { timeoutMs: 140_000 });
    expect(down.code, down.stderr).toBe(0);
    await waitFor(async () => !(await ps(h2)).some((c) => c.name === 'web-4' && c.state === 'running'), { timeoutMs: 30_000, what: 'web-4 to go' });

    const before = new Map((await ps(h1)).filter((c) => c.service === 'web' && c.state === 'running').map((c) => [c.name, c]));
    const r = await h2.weft(['service', 'redeploy', 'shop/web', '--timeout', '180'], { timeoutMs: 200_000 });
    expect(r.code, r.stderr).toBe(0);
    const after = new Map((await ps(h1)).filter((c) => c.service === 'web' && c.state === 'running').map((c) => [c.name, c]));
    expect([...after.keys()].sort()).toEqual(['web-1', 'web-2', 'web-3']);
    for (const [name, c] of after) {
      expect(c.address).toBe(before.get(name)?.address);
      expect(c.id).not.toBe(before.get(name)?.id);
    }
    const rows = await services(h1);
    expect(rows.find((s) => s.name === 'shop/web')).toMatchObject({ running: 3, target: 3, update: { state: 'done' } });
  }, 420_000);
});
