// What the agent asks dockerd to create for a task: every field of the service's spec in
// Docker's terms, and the labels that make the container weft's and give it its identity.

import { describe, expect, test } from 'vitest';
import { ATTACH_LABEL, createOptions, type TaskContainer } from '../../scheduler/agent/container-config.ts';
import type { ServiceSpec } from '../../scheduler/service/spec.ts';
import {
  CONFIG_LABEL, EPOCH_LABEL, INDEX_LABEL, SCHEDULED_LABEL, SERVICE_LABEL, STACK_LABEL, TASK_LABEL, type TaskSpec,
} from '../../scheduler/task/task.ts';

function service(over: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    name: 'web', stack: 'shop', image: 'nginx:1.27', environment: {}, ports: [], targetNumContainers: 1, tags: [],
    deploymentStrategy: 'EMPTIEST_NODE', autorestart: 'OFF', autodestroy: 'OFF', sequentialDeployment: false, links: [],
    memoryBytes: 0, cpuShares: 0, labels: {}, volumes: [], rescheduleAfterSeconds: 30,
    update: { parallelism: 1, delayMs: 0, onFailure: 'pause' },
    ...over,
  };
}

function container(spec: ServiceSpec, over: Partial<TaskSpec> = {}, linkEnv: Record<string, string> = {}): TaskContainer {
  const task: TaskSpec = { service: `${spec.stack}/${spec.name}`, index: 2, node: 'peer-a', epoch: 7, config: '0123456789abcdef', ...over };
  return { taskName: `${spec.stack ? `${spec.stack}/` : ''}${spec.name}/${task.index}`, spec, task, linkEnv };
}

describe('container options for a task', () => {
  test('a minimal service: its image under its Docker name and hostname, the image\'s own command and entrypoint', () => {
    const o = createOptions(container(service()));
    expect(o.name).toBe('web-2.shop');
    expect(o.Image).toBe('nginx:1.27');
    expect(o.Hostname).toBe('web-2');
    expect(o.Env).toEqual([]);
    expect(o.ExposedPorts).toEqual({});
    expect('Cmd' in o).toBe(false);
    expect('Entrypoint' in o).toBe(false);
    expect('Healthcheck' in o).toBe(false);
    expect(o.HostConfig).toEqual({ RestartPolicy: { Name: 'no' } });
  });

  test('a service in no stack is named without one and carries no stack label', () => {
    const o = createOptions(container(service({ stack: '' }), { service: '/web', index: 1 }));
    expect(o.name).toBe('web-1');
    expect(o.Hostname).toBe('web-1');
    expect(o.Labels).not.toHaveProperty(STACK_LABEL);
    expect(o.Labels?.[TASK_LABEL]).toBe('web/1');
  });

  test('command and entrypoint are passed as given', () => {
    const o = createOptions(container(service({ command: ['sh', '-c', 'echo hi'], entrypoint: ['/bin/tini', '--'] })));
    expect(o.Cmd).toEqual(['sh', '-c', 'echo hi']);
    expect(o.Entrypoint).toEqual(['/bin/tini', '--']);
  });

  test('weft\'s labels mark the container as scheduled, attached, and name its task, epoch, configuration and identity', () => {
    const o = createOptions(container(service({ labels: { team: 'payments', 'com.example.tier': 'front' } })));
    expect(o.Labels).toEqual({
      team: 'payments',
      'com.example.tier': 'front',
      [SCHEDULED_LABEL]: 'true',
      [ATTACH_LABEL]: 'true',
      [TASK_LABEL]: 'shop/web/2',
      [EPOCH_LABEL]: '7',
      [CONFIG_LABEL]: '0123456789abcdef',
      [STACK_LABEL]: 'shop',
      [SERVICE_LABEL]: 'web',
      [INDEX_LABEL]: '2',
    });
    expect(ATTACH_LABEL).toBe('weft.attach');
  });

  test('a service\'s label cannot override weft\'s: the container stays weft\'s and keeps its identity', () => {
    const o = createOptions(container(service({
      labels: { [SCHEDULED_LABEL]: 'false', [ATTACH_LABEL]: 'no', [TASK_LABEL]: 'other/db/1', [EPOCH_LABEL]: '99', [INDEX_LABEL]: '5', [SERVICE_LABEL]: 'db', [STACK_LABEL]: 'x', keep: 'me' },
    })));
    expect(o.Labels).toMatchObject({
      [SCHEDULED_LABEL]: 'true', [ATTACH_LABEL]: 'true', [TASK_LABEL]: 'shop/web/2', [EPOCH_LABEL]: '7',
      [INDEX_LABEL]: '2', [SERVICE_LABEL]: 'web', [STACK_LABEL]: 'shop', keep: 'me',
    });
  });

  test('environment: the service\'s variables, then the link variables, each sorted by name; the service\'s value wins a clash', () => {
    const o = createOptions(container(
      service({ environment: { ZED: 'z', ALPHA: 'a=b', DB_PORT: 'mine' } }),
      {},
      { DB_PORT_5432_TCP: 'tcp://db:5432', DB_PORT: 'tcp://db:5432', DB_NAME: '/web-2/db' },
    ));
    expect(o.Env).toEqual(['ALPHA=a=b', 'DB_PORT=mine', 'ZED=z', 'DB_NAME=/web-2/db', 'DB_PORT_5432_TCP=tcp://db:5432']);
  });

  test('equal specs built in a different key order give equal options', () => {
    const a = createOptions(container(service({ environment: { A: '1', B: '2' } }), {}, { X_NAME: 'x', W_NAME: 'w' }));
    const b = createOptions(container(service({ environment: { B: '2', A: '1' } }), {}, { W_NAME: 'w', X_NAME: 'x' }));
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });

  test('every port is exposed; only those with a host port are published', () => {
    const o = createOptions(container(service({
      ports: [{ container: 80, protocol: 'tcp', host: 8080 }, { container: 53, protocol: 'udp' }, { container: 443, protocol: 'tcp' }, { container: 53, protocol: 'tcp', host: 5353 }],
    })));
    expect(o.ExposedPorts).toEqual({ '80/tcp': {}, '53/udp': {}, '443/tcp': {}, '53/tcp': {} });
    expect(o.HostConfig?.PortBindings).toEqual({ '80/tcp': [{ HostPort: '8080' }], '53/tcp': [{ HostPort: '5353' }] });
  });

  test.each([
    ['OFF', 'no'],
    ['ON_FAILURE', 'on-failure'],
    ['ALWAYS', 'always'],
  ] as const)('autorestart %s is Docker\'s restart policy "%s"', (autorestart, name) => {
    expect(createOptions(container(service({ autorestart }))).HostConfig?.RestartPolicy).toEqual({ Name: name });
  });

  test('memory and CPU shares are set when positive, left to Docker\'s defaults when 0', () => {
    const set = createOptions(container(service({ memoryBytes: 64 * 1024 * 1024, cpuShares: 512 }))).HostConfig;
    expect(set?.Memory).toBe(67_108_864);
    expect(set?.CpuShares).toBe(512);
    const unset = createOptions(container(service())).HostConfig;
    expect(unset).not.toHaveProperty('Memory');
    expect(unset).not.toHaveProperty('CpuShares');
  });

  test('a health check\'s timings go to Docker in nanoseconds', () => {
    const o = createOptions(container(service({
      healthcheck: { test: ['CMD-SHELL', 'wget -q -O- localhost || exit 1'], intervalMs: 1500, timeoutMs: 2000, retries: 4, startPeriodMs: 10_000 },
    })));
    expect(o.Healthcheck).toEqual({
      Test: ['CMD-SHELL', 'wget -q -O- localhost || exit 1'],
      Interval: 1_500_000_000,
      Timeout: 2_000_000_000,
      StartPeriod: 10_000_000_000,
      Retries: 4,
    });
  });

  test('named volumes are the stack\'s (as Compose names them), read-only when asked', () => {
    const o = createOptions(container(service({ volumes: ['data:/var/lib/data', 'conf:/etc/app:ro', 'logs:/logs:rw'] })));
    // The local driver by name: dockerd then asks no volume plugin about a new volume.
    const local = { NoCopy: false, Labels: {}, DriverConfig: { Name: 'local', Options: {} } };
    expect(o.HostConfig?.Mounts).toEqual([
      { Type: 'volume', Source: 'shop_data', Target: '/var/lib/data', ReadOnly: false, VolumeOptions: local },
      { Type: 'volume', Source: 'shop_conf', Target: '/etc/app', ReadOnly: true, VolumeOptions: local },
      { Type: 'volume', Source: 'shop_logs', Target: '/logs', ReadOnly: false, VolumeOptions: local },
    ]);
    const alone = createOptions(container(service({ stack: '', volumes: ['data:/data'] })));
    expect(alone.HostConfig?.Mounts).toEqual([{ Type: 'volume', Source: 'data', Target: '/data', ReadOnly: false, VolumeOptions: local }]);
  });

  test('the options do not share arrays with the spec (desired state stays untouched)', () => {
    const spec = service({ command: ['a'], entrypoint: ['b'], healthcheck: { test: ['CMD', 'true'], intervalMs: 1, timeoutMs: 1, retries: 1, startPeriodMs: 0 } });
    const o = createOptions(container(spec));
    (o.Cmd as string[]).push('x');
    (o.Entrypoint as string[]).push('x');
    o.Healthcheck?.Test?.push('x');
    expect(spec.command).toEqual(['a']);
    expect(spec.entrypoint).toEqual(['b']);
    expect(spec.healthcheck?.test).toEqual(['CMD', 'true']);
  });
});
