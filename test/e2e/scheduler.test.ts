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
  command: sh -c 'mkdir -p /www && echo $(hostname) $(cat /proc/sys/kernel/random/uuid) > /www/index.html && httpd -f -p 80 -h /www & trap "exit 0" TERM; wait'
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
        // The workers carry a deploy tag (Compose's node.labels.disk == ssd asks for it).
        args: ['--ipalloc-init', 'consensus=5', '--role', i < 3 ? 'auto' : 'worker', '--managers', '3', ...(i >= 3 ? ['--tags', 'disk=ssd'] : [])],
      });
    }
    await waitFor(async () => (await all[0].weftJson<any[]>(['manager', 'ls', '--json'])).filter((m) => m.voter).length === 3, { timeoutMs: 60_000, what: 'three voting managers' });

    const file = shopFile(mesh().tmpDir);
    const r = await all[0].weft(['stack', 'deploy', '-f', file, 'shop', '--timeout', '120'], { timeoutMs: 140_000 });
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
      expect(got.stdout.trim().split(' ')[0], got.stderr).toBe(`${n}`);
    }
    // The link's alias answers with every web container (dynamic: no container is touched).
    const backend = await inContainer(client.host, client.docker, ['nslookup', 'backend']);
    for (const c of running.filter((x) => x.service === 'web')) expect(backend.stdout).toContain(c.address);
    const env = await inContainer(client.host, client.docker, ['env']);
    expect(env.stdout).toMatch(/BACKEND_PORT=tcp:\/\/web:80/);

    // Logs of every container of a service, from every host, by container name: httpd logs
    // nothing, so the client's own lines (written through docker exec to PID 1's output).
    for (const n of ['web-1', 'web-2', 'web-3']) {
      const w = await where(all[0], n);
      await inContainer(w.host, w.docker, ['sh', '-c', `echo "log line of ${n}" > /proc/1/fd/1`]);
    }
    const logs = await all[3].weft(['service', 'logs', 'web.shop'], { timeoutMs: 30_000 });
    expect(logs.code, logs.stderr).toBe(0);
    for (const n of ['web-1', 'web-2', 'web-3']) expect(logs.stdout).toMatch(new RegExp(`^${n} +\\| log line of ${n}$`, 'm'));

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
    const r = await h2.weft(['service', 'redeploy', 'shop/web', '--parallelism', '2', '--timeout', '180'], { timeoutMs: 200_000 });
    expect(r.code, r.stderr).toBe(0);
    // The flag became the service's update policy.
    expect((await h1.weftJson<{ spec: { update: { parallelism: number } } }>(['service', 'inspect', 'shop/web', '--json'])).spec.update.parallelism).toBe(2);
    const after = new Map((await ps(h1)).filter((c) => c.service === 'web' && c.state === 'running').map((c) => [c.name, c]));
    expect([...after.keys()].sort()).toEqual(['web-1', 'web-2', 'web-3']);
    for (const [name, c] of after) {
      expect(c.address).toBe(before.get(name)?.address);
      expect(c.id).not.toBe(before.get(name)?.id);
    }
    const rows = await services(h1);
    expect(rows.find((s) => s.name === 'shop/web')).toMatchObject({ running: 3, target: 3, update: { state: 'done' } });

    // A peer restarted (SIGTERM, then launched again) adopts its containers: none is replaced.
    const web = (await ps(h1)).filter((c) => c.service === 'web' && c.state === 'running');
    const restarted = hosts().find((h) => h.name === web[0]!.host) as Host;
    const ids = new Set((await restarted.dockerd!.mustDocker(['ps', '-q', '--no-trunc'])).split('\n').filter(Boolean));
    await restarted.restart();
    await waitFor(async () => (await restarted.weftJson<{ peers: { alive: number } }>(['status', '--json'])).peers.alive === 4, { timeoutMs: 60_000, what: `${restarted.name} to rejoin` });
    await new Promise((r) => setTimeout(r, 3000)); // a few agent rounds
    const idsAfter = new Set((await restarted.dockerd!.mustDocker(['ps', '-q', '--no-trunc'])).split('\n').filter(Boolean));
    expect(idsAfter).toEqual(ids);
  }, 420_000);

  const leaderHost = async (): Promise<Host> => {
    for (const h of hosts()) {
      if (!h.peer?.running) continue;
      try {
        const rows = await h.weftJson<{ name: string; leader: boolean }[]>(['manager', 'ls', '--json'], { timeoutMs: 10_000 });
        const l = rows.find((r) => r.leader);
        if (l) return hosts().find((x) => x.name === l.name) as Host;
      } catch {
        // ask the next
      }
    }
    throw new Error('no leader known');
  };

  test('kill -9 the leader in the middle of a stack deploy: the new leader finishes it', async () => {
    const leader = await leaderHost();
    const other = hosts().find((h) => h !== leader && h.peer?.running) as Host;
    const file = join(mesh().tmpDir, 'batch.yml');
    writeFileSync(file, `job:\n  image: ${BUSYBOX_IMAGE}\n  command: sleep 100000\n  target_num_containers: 6\n  sequential_deployment: true\n`);
    const r = await other.weft(['stack', 'deploy', '-f', file, 'batch', '--detach'], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    // Sequential: one container at a time, so the kill lands mid-deploy.
    await waitFor(async () => (await ps(other)).some((c) => c.stack === 'batch' && c.state === 'running'), { timeoutMs: 60_000, what: 'the first job container' });
    await leader.kill();
    const done = await other.weft(['stack', 'deploy', '-f', file, 'batch', '--timeout', '180'], { timeoutMs: 200_000 });
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(/unchanged job/);
    expect(await leaderHost()).not.toBe(leader);
    await leader.restart();
    // If the deploy outlasted the grace, the old leader's containers were made again elsewhere:
    // back, its agent removes its stale copies.
    const names = async () => (await ps(other)).filter((c) => c.stack === 'batch' && c.state === 'running').map((c) => c.name).sort().join(' ');
    await waitFor(async () => (await names()) === 'job-1 job-2 job-3 job-4 job-5 job-6', { timeoutMs: 60_000, what: 'one copy of each job' });
    const rm = await other.weft(['stack', 'rm', 'batch'], { timeoutMs: 60_000 });
    expect(rm.code, rm.stderr).toBe(0);
    await waitFor(async () => !(await ps(other)).some((c) => c.stack === 'batch' && c.state === 'running'), { timeoutMs: 60_000, what: 'the batch stack to go' });
  }, 420_000);

  test("a dead node's containers come back elsewhere with the same names and addresses; its stale copies go when it returns", async () => {
    const leader = await leaderHost();
    const viewer = leader;
    // A web container on a host that is not the leader.
    const victimRow = (await ps(viewer)).find((c) => c.service === 'web' && c.state === 'running' && c.host !== leader.name) as Ps;
    const victim = hosts().find((h) => h.name === victimRow.host) as Host;
    const moved = (await ps(viewer)).filter((c) => c.stack === 'shop' && c.state === 'running' && c.host === victim.name);
    await victim.kill();
    for (const c of moved) {
      await waitFor(async () => (await ps(viewer)).some((x) => x.name === c.name && x.state === 'running' && x.host !== victim.name && x.address === c.address),
        { timeoutMs: 90_000, what: `${c.name} to run again elsewhere at ${c.address}` });
    }
    await victim.restart();
    // Its agent removes the stale copies (an older epoch) as soon as it reads desired state.
    for (const c of moved) {
      await waitFor(async () => !(await victim.dockerd!.mustDocker(['ps', '--format', '{{.Names}}'])).split('\n').includes(`${c.name}.shop`),
        { timeoutMs: 60_000, what: `the stale ${c.name} on ${victim.name} to be removed` });
    }
    const web = (await ps(viewer)).filter((c) => c.service === 'web' && c.state === 'running');
    expect(web.map((c) => c.name).sort()).toEqual(['web-1', 'web-2', 'web-3']);
  }, 420_000);

  test('a partitioned node: its containers move after the grace, and once a new copy has answered, the old one never does', async () => {
    const leader = await leaderHost();
    const row = (await ps(leader)).find((c) => c.service === 'web' && c.state === 'running' && c.host !== leader.name) as Ps;
    const victim = hosts().find((h) => h.name === row.host) as Host;
    const clientRow = (await ps(leader)).find((c) => c.name === 'client-1' && c.state === 'running') as Ps;
    if (clientRow.host === victim.name) throw new Error('the client shares the victim host; the test needs them apart');
    const client = hosts().find((h) => h.name === clientRow.host) as Host;
    let lastError = '';
    const fetch = async () => {
      // (busybox-static's wget crashes with -T; its timeout applet bounds the fetch instead.)
      const r = await client.dockerd!.docker(['exec', 'client-1.shop', 'timeout', '3', 'wget', '-q', '-O', '-', `http://${row.address}/`], { timeoutMs: 10_000 });
      if (r.code !== 0) lastError = `${r.code} ${r.stderr}`;
      return r.code === 0 ? r.stdout.trim() : undefined;
    };
    let old: string | undefined;
    await waitFor(async () => (old = await fetch()) !== undefined, { timeoutMs: 30_000, what: `client-1 to reach ${row.name} at ${row.address}` })
      .catch((err) => { throw new Error(`${(err as Error).message}: ${lastError}`); });
    expect(old?.startsWith(`${row.name} `)).toBe(true);
    await victim.cut();
    let fresh: string | undefined;
    await waitFor(async () => {
      const got = await fetch();
      if (got && got !== old) fresh = got;
      return fresh !== undefined;
    }, { timeoutMs: 90_000, what: `a new ${row.name} to answer at ${row.address}` });
    await victim.heal();
    // Watch through the heal: the old copy must never answer again, and it is removed.
    const deadline = Date.now() + 20_000;
    const seen = new Set<string>();
    while (Date.now() < deadline) {
      const got = await fetch();
      if (got) seen.add(got);
      expect(got === undefined || got === fresh, `after the move, ${row.address} answered ${got}`).toBe(true);
    }
    expect(seen.has(fresh as string)).toBe(true);
    await waitFor(async () => !(await victim.dockerd!.mustDocker(['ps', '--format', '{{.Names}}'])).split('\n').includes(`${row.name}.shop`),
      { timeoutMs: 60_000, what: `the stale ${row.name} on ${victim.name} to be removed` });
  }, 420_000);

  test('a Compose file deploys unchanged: constraints as tags, global mode on every node; a service no node suits is pending and says why; an invalid file changes nothing', async () => {
    const [h1, h2] = hosts();
    const compose = join(mesh().tmpDir, 'ops.yml');
    writeFileSync(compose, `
services:
  cache:
    image: ${BUSYBOX_IMAGE}
    command: ["sleep", "100000"]
    deploy:
      replicas: 2
      placement:
        constraints: ["node.labels.disk == ssd", "node.role == worker"]
  agent:
    image: ${BUSYBOX_IMAGE}
    command: ["sleep", "100000"]
    deploy:
      mode: global
  gpu:
    image: ${BUSYBOX_IMAGE}
    command: ["sleep", "100000"]
    deploy:
      placement:
        constraints: ["node.labels.gpu == yes"]
`);
    // docker-compose itself accepts it (the stack reader's promise is for such files).
    const check = await h1.exec(['docker-compose', '-f', compose, 'config', '-q']);
    expect(check.code, check.stderr).toBe(0);
    const r = await h1.weft(['stack', 'deploy', '-f', compose, 'ops', '--detach'], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const running = async () => (await ps(h2)).filter((c) => c.stack === 'ops' && c.state === 'running');
    await waitFor(async () => (await running()).length === 2 + hosts().length, { timeoutMs: 120_000, what: 'cache on the two workers and agent on every node' });
    const now = await running();
    // The constraints: only the two workers (tagged disk=ssd) take cache.
    expect(now.filter((c) => c.service === 'cache').every((c) => ['h4', 'h5'].includes(c.host))).toBe(true);
    expect(now.filter((c) => c.service === 'agent').map((c) => c.host).sort()).toEqual(['h1', 'h2', 'h3', 'h4', 'h5']);
    const gpu = (await services(h2)).find((s) => s.name === 'ops/gpu');
    expect(gpu?.pending).toBe('no node carries tags gpu=yes');

    // An invalid file: every error named by file, service and key; desired state untouched.
    const before = JSON.stringify(await h1.weftJson(['state', 'backup', join(mesh().tmpDir, 'before.json'), '--json']));
    const bad = join(mesh().tmpDir, 'bad.yml');
    writeFileSync(bad, `services:\n  cache:\n    image: ${BUSYBOX_IMAGE}\n    deploy:\n      replicas: -1\n  web:\n    image: 5\n    ports: ["http"]\n`);
    const refused = await h1.weft(['stack', 'deploy', '-f', bad, 'ops'], { timeoutMs: 30_000 });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/bad\.yml.*cache.*replicas/);
    expect(refused.stderr).toMatch(/bad\.yml.*web.*ports/);
    const after = await h1.weftJson<{ index: number }>(['state', 'backup', join(mesh().tmpDir, 'after.json'), '--json']);
    expect(after.index).toBe(JSON.parse(before).index);
    expect((await running()).length).toBe(2 + hosts().length);
    const rm = await h1.weft(['stack', 'rm', 'ops'], { timeoutMs: 30_000 });
    expect(rm.code, rm.stderr).toBe(0);
  }, 420_000);

  test('a service in no stack from the command line: created, resolvable, updated (rolling), stopped and started, a failed update paused and rolled back, removed; autodestroy', async () => {
    const [h1, h2] = hosts();
    const r = await h1.weft(['service', 'create', '--name', 'solo', '--replicas', '2', '--tag', 'disk=ssd', BUSYBOX_IMAGE, 'sleep', '100000'], { timeoutMs: 150_000 });
    expect(r.code, r.stderr).toBe(0);
    const solo = (await ps(h2)).filter((c) => c.service === 'solo' && c.state === 'running');
    expect(solo.map((c) => c.name).sort()).toEqual(['solo-1', 'solo-2']);
    expect(solo.every((c) => c.stack === null && ['h4', 'h5'].includes(c.host))).toBe(true);
    const dns = await h2.weftJson<{ records: { type: string; data: string }[] }>(['dns', 'lookup', 'solo.weft.local', '--json']);
    expect(dns.records.filter((x) => x.type === 'A').map((x) => x.data).sort()).toEqual(solo.map((c) => c.address).sort());
    // An update: a new variable (a rolling redeploy) and one more container.
    const up = await h2.weft(['service', 'update', 'solo', '-e', 'COLOUR=blue', '--replicas', '3', '--timeout', '150'], { timeoutMs: 170_000 });
    expect(up.code, up.stderr).toBe(0);
    const three = (await ps(h1)).filter((c) => c.service === 'solo' && c.state === 'running');
    expect(three.map((c) => c.name).sort()).toEqual(['solo-1', 'solo-2', 'solo-3']);
    for (const c of solo) expect(three.find((x) => x.name === c.name)?.address).toBe(c.address);
    const host3 = hosts().find((h) => h.name === three[0]!.host) as Host;
    expect((await host3.dockerd!.mustDocker(['exec', `${three[0]!.name}`, 'env'])).includes('COLOUR=blue')).toBe(true);
    // Stopped: kept, not running; started: the same containers run again.
    const stop = await h1.weft(['service', 'stop', 'solo', '--timeout', '120'], { timeoutMs: 140_000 });
    expect(stop.code, stop.stderr).toBe(0);
    const runningSolo = async (h: Host) => (await h.dockerd!.mustDocker(['ps', '--format', '{{.Names}}'])).split('\n').filter((n) => n.startsWith('solo-'));
    for (const h of [hosts()[3], hosts()[4]]) expect(await runningSolo(h)).toEqual([]);
    const start = await h1.weft(['service', 'start', 'solo', '--timeout', '120'], { timeoutMs: 140_000 });
    expect(start.code, start.stderr).toBe(0);
    const again = (await ps(h1)).filter((c) => c.service === 'solo' && c.state === 'running');
    expect(new Map(again.map((c) => [c.name, c.id]))).toEqual(new Map(three.map((c) => [c.name, c.id])));
    // An update whose image cannot be pulled (a registry port on the host's loopback that is
    // closed): the rolling redeploy pauses at the first container and says which and why; a
    // rollback brings the service back.
    const broken = await h1.weft(['service', 'update', 'solo', '--image', '127.0.0.1:5999/none:1', '--timeout', '120'], { timeoutMs: 140_000 });
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/update paused: solo\/\d+ failed: cannot pull image 127\.0\.0\.1:5999\/none:1/);
    const back = await h2.weft(['service', 'rollback', 'solo', '--timeout', '120'], { timeoutMs: 140_000 });
    expect(back.code, back.stderr).toBe(0);
    expect((await ps(h1)).filter((c) => c.service === 'solo' && c.state === 'running').map((c) => c.name).sort()).toEqual(['solo-1', 'solo-2', 'solo-3']);

    // autodestroy: containers that finish are removed and the count goes down to 0.
    const once = await h1.weft(['service', 'create', '--name', 'once', '--replicas', '2', '--autodestroy', 'ON_SUCCESS', '--detach', BUSYBOX_IMAGE, '--', 'sh', '-c', 'sleep 2'], { timeoutMs: 60_000 });
    expect(once.code, once.stderr).toBe(0);
    await waitFor(async () => {
      const row = (await services(h2)).find((x) => x.name === 'once');
      return row !== undefined && row.target === 0 && row.tasks === 0;
    }, { timeoutMs: 90_000, what: 'once to finish and be destroyed' });
    expect((await h1.weft(['service', 'rm', 'once'])).code).toBe(0);
    const bad = await h1.weft(['service', 'create', '--replicas', '-2', BUSYBOX_IMAGE]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/target_num_containers -2 is not a whole number/);
    const rm = await h2.weft(['service', 'rm', 'solo']);
    expect(rm.code, rm.stderr).toBe(0);
    await waitFor(async () => !(await ps(h1)).some((c) => c.service === 'solo' && c.state === 'running'), { timeoutMs: 60_000, what: 'solo to go' });
  }, 300_000);
});
