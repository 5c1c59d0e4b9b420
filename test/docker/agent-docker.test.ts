// The agent's Docker side on a real dockerd: one harness host (h1) with its own dockerd (with a
// default bridge, so containers start with the options exactly as the agent makes them) and,
// for pulls, a local registry (Debian's docker-registry) on the host's loopback. No traffic
// leaves the host's namespace.

import fs from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createOptions, type TaskContainer } from '../../scheduler/agent/container-config.ts';
import { DockerOps, type LocalContainer, type PullProgress } from '../../scheduler/agent/docker-ops.ts';
import type { ServiceSpec } from '../../scheduler/service/spec.ts';
import { logger } from '../../mesh/log.ts';
import { BUSYBOX_IMAGE, type Dockerd } from '../harness/dockerd.ts';
import type { HostProcess } from '../harness/process.ts';
import { useHarness } from '../harness/vitest.ts';
import { waitFor } from '../harness/wait.ts';

/** Where the registry listens, inside h1's namespace (its own loopback: no port clash with
 *  anything else on the machine). dockerd allows plain HTTP to 127.0.0.0/8 by default. */
const REGISTRY = '127.0.0.1:5000';

function service(over: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    name: 'web', stack: 'shop', image: BUSYBOX_IMAGE, command: ['sleep', '600'], environment: {}, ports: [],
    targetNumContainers: 1, tags: [], deploymentStrategy: 'EMPTIEST_NODE', autorestart: 'OFF', autodestroy: 'OFF',
    sequentialDeployment: false, links: [], memoryBytes: 0, cpuShares: 0, labels: {}, volumes: [], rescheduleAfterSeconds: 30,
    update: { parallelism: 1, delayMs: 0, onFailure: 'pause' },
    ...over,
  };
}

function task(spec: ServiceSpec, index = 1, epoch = 3, linkEnv: Record<string, string> = {}): TaskContainer {
  const taskName = `${spec.stack ? `${spec.stack}/` : ''}${spec.name}/${index}`;
  return { taskName, spec, linkEnv, task: { service: `${spec.stack}/${spec.name}`, index, node: 'h1', epoch, config: 'c0ffee00c0ffee00' } };
}

describe('the agent\'s Docker operations on a real dockerd (one host, h1)', () => {
  const mesh = useHarness({ hosts: 1, name: 'agent-docker' });
  let d: Dockerd;
  let ops: DockerOps;
  let docker: Docker;

  beforeAll(async () => {
    // A default bridge of its own (the harness's default is --bridge=none), in h1's namespace.
    d = await mesh().hosts[0]!.startDockerd({ args: ['--bridge=', '--bip=172.31.251.1/24'] });
    await d.importBusybox();
    docker = new Docker({ socketPath: d.socket });
    ops = new DockerOps(docker, logger('agent-docker-test'));
  });

  afterEach(async () => {
    await d.removeAllContainers();
  });

  const inspect = (id: string) => docker.getContainer(id).inspect();
  const byName = async (name: string): Promise<LocalContainer | undefined> => (await ops.list()).find((c) => c.dockerName === name);

  test('a task\'s container carries what the service asked for: labels, environment, restart policy, health check, limits, ports, volumes', async () => {
    const spec = service({
      environment: { GREETING: 'hello', DB_PORT: 'mine' },
      labels: { team: 'payments' },
      autorestart: 'ALWAYS',
      memoryBytes: 64 * 1024 * 1024,
      cpuShares: 512,
      ports: [{ container: 80, protocol: 'tcp', host: 8080 }, { container: 53, protocol: 'udp' }],
      healthcheck: { test: ['CMD', 'true'], intervalMs: 1500, timeoutMs: 1000, retries: 2, startPeriodMs: 500 },
      volumes: ['data:/data', 'conf:/conf:ro'],
    });
    const id = await ops.create(createOptions(task(spec, 2, 5, { DB_PORT: 'tcp://db:5432', DB_NAME: '/web-2/db' })));
    await ops.start(id);
    const i = await inspect(id);
    expect(i.Name).toBe('/web-2.shop');
    expect(i.Config.Hostname).toBe('web-2');
    expect(i.Config.Labels).toMatchObject({
      team: 'payments', 'weft.scheduled': 'true', 'weft.attach': 'true', 'weft.task': 'shop/web/2', 'weft.epoch': '5',
      'weft.config': 'c0ffee00c0ffee00', 'weft.stack': 'shop', 'weft.service': 'web', 'weft.index': '2',
    });
    // The service's variables first, then the links' (the service's DB_PORT wins), then the image's PATH.
    expect(i.Config.Env.filter((e) => !e.startsWith('PATH='))).toEqual(['DB_PORT=mine', 'GREETING=hello', 'DB_NAME=/web-2/db']);
    expect(i.HostConfig.RestartPolicy).toMatchObject({ Name: 'always' });
    expect(i.Config.Healthcheck).toEqual({ Test: ['CMD', 'true'], Interval: 1_500_000_000, Timeout: 1_000_000_000, StartPeriod: 500_000_000, Retries: 2 });
    expect(i.HostConfig.Memory).toBe(64 * 1024 * 1024);
    expect(i.HostConfig.CpuShares).toBe(512);
    expect(i.Config.ExposedPorts).toEqual({ '80/tcp': {}, '53/udp': {} });
    expect(i.HostConfig.PortBindings).toEqual({ '80/tcp': [{ HostIp: '', HostPort: '8080' }] });
    expect(i.Mounts.map((m) => [m.Type, m.Name, m.Driver, m.Destination, m.RW]).sort()).toEqual([['volume', 'shop_conf', 'local', '/conf', false], ['volume', 'shop_data', 'local', '/data', true]]);
    expect(i.State.Running).toBe(true);
  });

  test('list() returns weft\'s containers with their task, epoch, configuration, state and health, and no other container', async () => {
    const running = await ops.create(createOptions(task(service({
      healthcheck: { test: ['CMD', 'true'], intervalMs: 200, timeoutMs: 1000, retries: 1, startPeriodMs: 0 },
    }), 1, 4)));
    await ops.start(running);
    const created = await ops.create(createOptions(task(service(), 2, 9)));
    await d.mustDocker(['create', '--name', 'plain', BUSYBOX_IMAGE, 'sleep', '600']);
    await d.mustDocker(['run', '-d', '--name', 'fake', '--label', 'weft.scheduled=false', BUSYBOX_IMAGE, 'sleep', '600']);
    const failing = await ops.create(createOptions(task(service({
      name: 'sick', healthcheck: { test: ['CMD', 'false'], intervalMs: 200, timeoutMs: 1000, retries: 1, startPeriodMs: 0 },
    }), 1, 1)));
    await ops.start(failing);

    const list = await waitFor(async () => {
      const l = await ops.list();
      const web = l.find((c) => c.id === running);
      const sick = l.find((c) => c.id === failing);
      return web?.health === 'healthy' && sick?.health === 'unhealthy' ? l : undefined;
    }, { what: 'web-1 healthy and sick-1 unhealthy', intervalMs: 100 });
    expect(list.map((c) => c.dockerName).sort()).toEqual(['sick-1.shop', 'web-1.shop', 'web-2.shop']);
    const web1 = list.find((c) => c.id === running)!;
    const started = Date.parse((await inspect(running)).State.StartedAt);
    expect(web1).toEqual({ id: running, dockerName: 'web-1.shop', task: 'shop/web/1', epoch: 4, config: 'c0ffee00c0ffee00', state: 'running', health: 'healthy', startedAt: started });
    expect(list.find((c) => c.id === created)).toEqual({ id: created, dockerName: 'web-2.shop', task: 'shop/web/2', epoch: 9, config: 'c0ffee00c0ffee00', state: 'created', health: 'none' });

    // A container stopped by hand is still listed (exited, with its code) until the agent removes it.
    await docker.getContainer(running).kill({ signal: 'SIGKILL' });
    const killed = await waitFor(async () => {
      const c = await byName('web-1.shop');
      return c?.state === 'exited' ? c : undefined;
    }, { what: 'web-1 exited' });
    expect(killed).toMatchObject({ state: 'exited', exitCode: 137, health: 'none' });
    expect(killed.startedAt).toBeUndefined();
  });

  test('remove() refuses a container weft did not create, and stops and removes one it did (twice is not an error)', async () => {
    const plain = await d.mustDocker(['run', '-d', '--name', 'plain', BUSYBOX_IMAGE, 'sleep', '600']);
    await expect(ops.remove(plain, 1)).rejects.toThrow('refusing to remove container plain: weft did not create it (no weft.scheduled=true label)');
    await expect(ops.remove('plain', 1)).rejects.toThrow(/refusing to remove/);
    expect((await inspect(plain)).State.Running).toBe(true); // untouched

    const ours = await ops.create(createOptions(task(service())));
    await ops.start(ours);
    const t0 = Date.now();
    await ops.remove(ours, 2);
    // busybox sleep as pid 1 ignores SIGTERM: the grace runs out, then SIGKILL.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_500);
    await expect(inspect(ours)).rejects.toMatchObject({ statusCode: 404 });
    await ops.remove(ours, 2);
    expect(await ops.list()).toEqual([]);

    const paused = await ops.create(createOptions(task(service(), 2)));
    await ops.start(paused);
    await docker.getContainer(paused).pause();
    expect((await ops.list()).map((c) => c.state)).toEqual(['paused']);
    await ops.remove(paused, 1);
    await expect(inspect(paused)).rejects.toMatchObject({ statusCode: 404 });
  });

  test('create() replaces weft\'s own container of the same name, and refuses to replace anyone else\'s', async () => {
    // A container that stops on SIGTERM, so that the replacement does not wait out a grace.
    const polite = service({ command: ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 0.2; done'] });
    const first = await ops.create(createOptions(task(polite, 1, 1)));
    await ops.start(first);
    const second = await ops.create(createOptions(task(polite, 1, 2)));
    expect(second).not.toBe(first);
    await expect(inspect(first)).rejects.toMatchObject({ statusCode: 404 });
    expect((await ops.list()).map((c) => [c.id, c.epoch, c.state])).toEqual([[second, 2, 'created']]);

    const other = await d.mustDocker(['create', '--name', 'web-1', BUSYBOX_IMAGE, 'sleep', '600']);
    await expect(ops.create(createOptions(task(service({ stack: '' }), 1)))).rejects.toThrow(
      'a container named web-1 exists that weft did not create (no weft.scheduled=true label); weft leaves it alone: remove or rename it',
    );
    expect((await inspect(other)).Name).toBe('/web-1');
    await expect(ops.start(other)).rejects.toThrow(/refusing to start container web-1/);
  });

  test('a container with autorestart ON_FAILURE that exits 1 is restarted by dockerd, and list() follows its new start', async () => {
    const id = await ops.create(createOptions(task(service({ autorestart: 'ON_FAILURE', command: ['sh', '-c', 'sleep 3; exit 1'] }))));
    await ops.start(id);
    const firstStart = await waitFor(async () => (await byName('web-1.shop'))?.startedAt, { what: 'web-1 running', intervalMs: 100 });
    const restarted = await waitFor(async () => ((await inspect(id)).RestartCount >= 1 ? inspect(id) : undefined), { what: 'a restart', intervalMs: 100 });
    expect(restarted.State.ExitCode).toBe(1);
    const secondStart = await waitFor(async () => {
      const c = await byName('web-1.shop');
      return c?.state === 'running' && c.startedAt !== firstStart ? c.startedAt : undefined;
    }, { what: 'list() to see the second start', intervalMs: 100 });
    expect(secondStart).toBe(Date.parse((await inspect(id)).State.StartedAt));
  });

  test('ensureImage of an image dockerd has needs no registry and reports no progress', async () => {
    const progress: PullProgress[] = [];
    await ops.ensureImage('weft-test/busybox', (p) => progress.push(p)); // no tag: :latest
    await ops.ensureImage(BUSYBOX_IMAGE, (p) => progress.push(p));
    expect(progress).toEqual([]);
  });

  test('memoryBytes() is the machine\'s memory, as docker info says', async () => {
    const bytes = await ops.memoryBytes();
    expect(bytes).toBe(Number(await d.mustDocker(['info', '--format', '{{.MemTotal}}'])));
    expect(bytes).toBeGreaterThan(256 * 1024 * 1024);
  });

  test('logs(): a container\'s lines in order, stdout and stderr apart; following ends when it stops; stopping ends the following', async () => {
    const script = 'i=1; while [ $i -le 200 ]; do echo line$i; i=$((i+1)); done; echo oops >&2; sleep 1; echo late; echo -n last';
    const id = await ops.create(createOptions(task(service({ command: ['sh', '-c', script] }))));
    await ops.start(id);

    const followed: string[] = [];
    const ended = new Promise<Error | undefined>((resolve) => {
      void ops.logs(id, { follow: true }, (line, stream) => followed.push(`${stream}:${line}`), resolve);
    });
    expect(await ended).toBeUndefined();
    const stdout = [...Array.from({ length: 200 }, (_, i) => `stdout:line${i + 1}`), 'stdout:late'];
    // stdout and stderr are separate pipes: only the order within each is Docker's to keep.
    // A last line without a newline ("last") is in the logs, but dockerd 20.10 ends a followed
    // stream without it (`docker logs -f` shows the same); a newer dockerd may send it.
    expect([stdout, [...stdout, 'stdout:last']]).toContainEqual(followed.filter((l) => l.startsWith('stdout:')));
    expect(followed.filter((l) => l.startsWith('stderr:'))).toEqual(['stderr:oops']);

    const tail: string[] = [];
    let tailEnded = false;
    await ops.logs(id, { follow: false, tail: 2 }, (line, stream) => tail.push(`${stream}:${line}`), () => (tailEnded = true));
    expect(tailEnded).toBe(true);
    expect(tail).toEqual(['stdout:late', 'stdout:last']); // a second after the rest: no race between the pipes

    const sleeper = await ops.create(createOptions(task(service({ command: ['sh', '-c', 'echo a; echo b; exec sleep 600'] }), 2)));
    await ops.start(sleeper);
    const lines: string[] = [];
    let endCalls = 0;
    const stop = await ops.logs(sleeper, { follow: true }, (line) => lines.push(line), () => endCalls++);
    await waitFor(() => lines.length === 2, { what: 'two lines', intervalMs: 50 });
    stop();
    await new Promise((r) => setTimeout(r, 300));
    expect(lines).toEqual(['a', 'b']);
    expect(endCalls).toBe(0);
    await expect(ops.logs('no-such-container', { follow: false }, () => {}, () => {})).rejects.toThrow(/no-such-container/);
  });

  describe('with a local registry on h1\'s loopback', () => {
    let registry: HostProcess | undefined;

    beforeAll(async () => {
      if (!fs.existsSync('/usr/bin/docker-registry')) throw new Error('docker-registry is missing: install the Debian package docker-registry (scripts/setup.sh)');
      const h1 = mesh().hosts[0]!;
      const dir = path.join(h1.dir, 'registry');
      fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
      const config = path.join(dir, 'config.yml');
      fs.writeFileSync(config, [
        'version: 0.1',
        'log: { level: warn }',
        `storage: { filesystem: { rootdirectory: ${JSON.stringify(path.join(dir, 'data'))} } }`,
        `http: { addr: "${REGISTRY}" }`,
        '',
      ].join('\n'));
      // Spawned by the harness: in h1's namespace and cgroup, so cleanup kills it even if we do not.
      registry = await h1.spawn('registry', ['docker-registry', 'serve', config]);
      await waitFor(async () => {
        if (!registry?.running) throw new Error(`docker-registry exited (${JSON.stringify(registry?.exit)}); see ${registry?.logFile}`);
        return (await h1.exec(['busybox', 'wget', '-q', '-O', '/dev/null', `http://${REGISTRY}/v2/`], { timeoutMs: 5_000 })).code === 0;
      }, { what: 'the registry to answer', intervalMs: 100 });
    });

    afterAll(async () => {
      await registry?.kill(); // the harness's cgroup sweep would get it too, even after a crash
    });

    test('ensureImage pulls an image dockerd lacks from the registry, reporting progress', async () => {
      const remote = `${REGISTRY}/weft/busybox`;
      await d.mustDocker(['tag', BUSYBOX_IMAGE, `${remote}:latest`]);
      await d.mustDocker(['push', `${remote}:latest`], { timeoutMs: 60_000 });
      // Every tag of the image goes, so that the pull has its layer to fetch, not only a name.
      await d.mustDocker(['rmi', `${remote}:latest`, BUSYBOX_IMAGE]);
      expect((await d.docker(['image', 'inspect', `${remote}:latest`])).code).not.toBe(0);
      try {
        const progress: PullProgress[] = [];
        await ops.ensureImage(remote, (p) => progress.push(p)); // no tag: :latest
        expect(progress.length).toBeGreaterThan(0);
        expect(progress.some((p) => p.status === 'Pull complete' && p.layer !== undefined)).toBe(true);
        expect(progress.some((p) => p.status === 'Downloading' && p.current !== undefined && p.total !== undefined)).toBe(true);
        expect((await d.docker(['image', 'inspect', `${remote}:latest`])).code).toBe(0);
        // And it runs.
        const id = await ops.create(createOptions(task(service({ image: remote, command: ['echo', 'pulled'] }))));
        await ops.start(id);
        await waitFor(async () => (await inspect(id)).State.Status === 'exited', { what: 'the pulled image to run' });
        expect((await inspect(id)).State.ExitCode).toBe(0);
      } finally {
        await d.mustDocker(['tag', `${remote}:latest`, BUSYBOX_IMAGE]).catch(async () => {
          await d.importBusybox(); // the other tests' image, whatever happened
        });
      }
    });

    test('ensureImage of an image the registry lacks throws one error naming it', async () => {
      const progress: PullProgress[] = [];
      const err = await ops.ensureImage(`${REGISTRY}/weft/missing:1.0`, (p) => progress.push(p)).then(() => undefined, (e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err?.message).toMatch(/^cannot pull image 127\.0\.0\.1:5000\/weft\/missing:1\.0: manifest for 127\.0\.0\.1:5000\/weft\/missing:1\.0 not found/);
      expect(progress.filter((p) => p.status.includes('Pull complete'))).toEqual([]);
    });

    test('ensureImage of a reference Docker cannot parse throws one error naming it', async () => {
      await expect(ops.ensureImage('Weft/Busybox')).rejects.toThrow(/Weft\/Busybox:latest: .*invalid reference format: repository name must be lowercase/);
    });

    test('ensureImage from a registry that is not there throws with Docker\'s reason', async () => {
      const err = await ops.ensureImage('127.0.0.1:5999/weft/busybox').then(() => undefined, (e: Error) => e);
      expect(err?.message).toMatch(/^cannot pull image 127\.0\.0\.1:5999\/weft\/busybox:latest: .*connection refused/);
    });
  });
});
