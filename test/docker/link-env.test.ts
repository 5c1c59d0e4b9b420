// Docker-links compatibility: the link variables weft computes for a linked service are the
// ones Docker itself sets for a legacy link (checked against a real dockerd on a harness
// host), plus Tutum's per-container variables for services of several containers.

import { describe, expect, test } from 'vitest';
import { linkEnvironment, envName } from '../../scheduler/agent/link-env.ts';
import { Harness } from '../harness/harness.ts';

describe('link environment variables', () => {
  test('a service of two containers: service-wide variables at its DNS name, per-container ones at each', () => {
    const env = linkEnvironment({
      alias: 'db', linker: 'web-1', serviceAddr: 'db',
      containers: [
        { addr: 'db-2', number: 2, ports: [{ port: 5432, proto: 'tcp' }], env: ['FOO=two'] },
        { addr: 'db-1', number: 1, ports: [{ port: 5432, proto: 'tcp' }], env: { FOO: 'one', PATH: '/bin', HOME: '/' } },
      ],
    });
    expect(env).toEqual({
      DB_PORT: 'tcp://db:5432',
      DB_PORT_5432_TCP: 'tcp://db:5432', DB_PORT_5432_TCP_ADDR: 'db', DB_PORT_5432_TCP_PORT: '5432', DB_PORT_5432_TCP_PROTO: 'tcp',
      DB_NAME: '/web-1/db',
      DB_ENV_FOO: 'one',
      DB_1_PORT: 'tcp://db-1:5432',
      DB_1_PORT_5432_TCP: 'tcp://db-1:5432', DB_1_PORT_5432_TCP_ADDR: 'db-1', DB_1_PORT_5432_TCP_PORT: '5432', DB_1_PORT_5432_TCP_PROTO: 'tcp',
      DB_1_ENV_FOO: 'one',
      DB_2_PORT: 'tcp://db-2:5432',
      DB_2_PORT_5432_TCP: 'tcp://db-2:5432', DB_2_PORT_5432_TCP_ADDR: 'db-2', DB_2_PORT_5432_TCP_PORT: '5432', DB_2_PORT_5432_TCP_PROTO: 'tcp',
      DB_2_ENV_FOO: 'two',
    });
  });

  test('aliases become variable names as Docker makes them; a service without ports has only NAME and ENV', () => {
    expect(envName('my-db')).toBe('MY_DB');
    expect(linkEnvironment({ alias: 'cache', linker: '/app', containers: [{ addr: '10.32.0.5', ports: [], env: [] }], perContainer: false }))
      .toEqual({ CACHE_NAME: '/app/cache' });
  });

  test('the same variables as Docker sets for a legacy link on a real dockerd', async () => {
    const mesh = await Harness.create({ hosts: 1, name: 'dns-link-env' });
    try {
      // Legacy links (and their variables) exist only on Docker's default bridge: this
      // dockerd gets one (the harness's default is --bridge=none), in the host's namespace.
      const d = await mesh.hosts[0]!.startDockerd({ args: ['--bridge=', '--bip=172.31.250.1/24'] });
      const image = await d.importBusybox();
      const expose = ['5432/tcp', '5432/udp', '8000-8002/tcp', '9000/tcp'];
      await d.mustDocker(['run', '-d', '--name', 'db', ...expose.flatMap((e) => ['--expose', e]), '-e', 'FOO=bar', '-e', 'EMPTY=', image, 'sleep', '600']);
      const addr = await d.mustDocker(['inspect', '-f', '{{.NetworkSettings.Networks.bridge.IPAddress}}', 'db']);
      const dbEnv = JSON.parse(await d.mustDocker(['inspect', '-f', '{{json .Config.Env}}', 'db'])) as string[];
      const out = await d.mustDocker(['run', '--rm', '--name', 'web', '--link', 'db:db', image, 'env']);
      const docker = Object.fromEntries(out.split('\n').filter((l) => l.startsWith('DB_')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      expect(Object.keys(docker).length).toBeGreaterThan(20); // the link really was made

      const ours = linkEnvironment({
        alias: 'db', linker: 'web', perContainer: false,
        containers: [{ addr, env: dbEnv, ports: [{ port: 5432, proto: 'tcp' }, { port: 5432, proto: 'udp' }, { port: 8000, proto: 'tcp' }, { port: 8001, proto: 'tcp' }, { port: 8002, proto: 'tcp' }, { port: 9000, proto: 'tcp' }] }],
      });
      expect(ours).toEqual(docker);
    } finally {
      await mesh.cleanup();
    }
  });
});
