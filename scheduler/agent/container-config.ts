// What the agent asks dockerd to create for a task: the service's container configuration,
// plus the labels that make the container weft's (the agent touches only containers carrying
// SCHEDULED_LABEL) and give the mesh its identity (stack/service/index → a reserved address).
// Pure: the spec in, dockerode's create options out; docker-ops.ts sends them.

import type Docker from 'dockerode';
import type { Autorestart, ServiceSpec } from '../service/spec.ts';
import {
  CONFIG_LABEL, EPOCH_LABEL, INDEX_LABEL, SCHEDULED_LABEL, SERVICE_LABEL, STACK_LABEL, TASK_LABEL,
  dockerName, type TaskSpec,
} from '../task/task.ts';

/** The mesh attaches containers carrying this label set to true when they start
 *  (mesh/network/docker/container-info.ts's ATTACH_LABEL; scheduler/ may not import it). */
export const ATTACH_LABEL = 'weft.attach';

export interface TaskContainer {
  /** The task's object name (`shop/web/2`). */
  taskName: string;
  spec: ServiceSpec;
  task: TaskSpec;
  /** Docker-link variables for the service's links (link-env.ts). */
  linkEnv: Record<string, string>;
}

/** dockerd restarts containers itself; the agent does not reimplement restart policies. */
const RESTART_POLICY: Record<Autorestart, string> = { OFF: 'no', ON_FAILURE: 'on-failure', ALWAYS: 'always' };

/** Named volumes live on the node, in Docker's own driver (ServiceSpec names no other). */
const VOLUME_DRIVER = 'local';

/** Docker's health-check durations are nanoseconds; the spec's are milliseconds. */
const NS_PER_MS = 1_000_000;

export function createOptions(t: TaskContainer): Docker.ContainerCreateOptions {
  const { spec, task } = t;
  const opts: Docker.ContainerCreateOptions = {
    name: dockerName(spec, task.index),
    Image: spec.image,
    Hostname: `${spec.name}-${task.index}`,
    Env: environment(spec.environment, t.linkEnv),
    Labels: labels(t),
    ExposedPorts: Object.fromEntries(spec.ports.map((p) => [`${p.container}/${p.protocol}`, {}])),
    HostConfig: hostConfig(spec),
  };
  // Only when set: an absent key keeps the image's own; an empty list would clear it.
  if (spec.command !== undefined) opts.Cmd = [...spec.command];
  if (spec.entrypoint !== undefined) opts.Entrypoint = [...spec.entrypoint];
  if (spec.healthcheck !== undefined) {
    const h = spec.healthcheck;
    opts.Healthcheck = {
      Test: [...h.test],
      Interval: h.intervalMs * NS_PER_MS,
      Timeout: h.timeoutMs * NS_PER_MS,
      StartPeriod: h.startPeriodMs * NS_PER_MS,
      Retries: h.retries,
    };
  }
  return opts;
}

/** The service's variables, then the link variables, each sorted by name (equal specs give
 *  equal containers). A name in both keeps the service's value, as Docker does for a legacy
 *  link (the container's own environment replaces the link's), and appears once. */
function environment(env: Record<string, string>, linkEnv: Record<string, string>): string[] {
  const own = Object.keys(env).sort().map((k) => `${k}=${env[k]}`);
  const links = Object.keys(linkEnv).filter((k) => !Object.hasOwn(env, k)).sort().map((k) => `${k}=${linkEnv[k]}`);
  return [...own, ...links];
}

/** The service's labels, then weft's, which win: a label of the service must not make a
 *  container look like another task's, or not weft's. */
function labels(t: TaskContainer): Record<string, string> {
  const { spec, task } = t;
  return {
    ...spec.labels,
    [SCHEDULED_LABEL]: 'true',
    [ATTACH_LABEL]: 'true',
    [TASK_LABEL]: t.taskName,
    [EPOCH_LABEL]: String(task.epoch),
    [CONFIG_LABEL]: task.config,
    ...(spec.stack ? { [STACK_LABEL]: spec.stack } : {}),
    [SERVICE_LABEL]: spec.name,
    [INDEX_LABEL]: String(task.index),
  };
}

function hostConfig(spec: ServiceSpec): Docker.HostConfig {
  const hc: Docker.HostConfig = { RestartPolicy: { Name: RESTART_POLICY[spec.autorestart] } };
  const published = spec.ports.filter((p) => p.host !== undefined);
  if (published.length > 0) {
    hc.PortBindings = {};
    for (const p of published) {
      const key = `${p.container}/${p.protocol}`;
      (hc.PortBindings[key] ??= []).push({ HostPort: String(p.host) });
    }
  }
  if (spec.memoryBytes > 0) hc.Memory = spec.memoryBytes;
  if (spec.cpuShares > 0) hc.CpuShares = spec.cpuShares;
  if (spec.volumes.length > 0) hc.Mounts = spec.volumes.map((v) => mount(spec.stack, v));
  return hc;
}

/** `name:/path[:ro]` → a volume mount. The volume is the stack's (`shop_data`), as Compose
 *  names it, so that two stacks that both call a volume `data` do not share it by accident.
 *  The driver is named (`local`, Docker's default): without one, dockerd looks for the name
 *  in every volume plugin before creating a new volume, and a plugin socket left in
 *  /run/docker/plugins by a stopped process (a weft peer's network plugin, say) costs 15 s
 *  of activation retries per new volume (measured on dockerd 20.10). NoCopy false: a new
 *  volume starts with the image's files at that path, as with `docker run -v`. */
function mount(stack: string, volume: string): Docker.MountSettings {
  const [name, target, mode] = volume.split(':') as [string, string, string | undefined];
  return {
    Type: 'volume',
    Source: stack ? `${stack}_${name}` : name,
    Target: target,
    ReadOnly: mode === 'ro',
    VolumeOptions: { NoCopy: false, Labels: {}, DriverConfig: { Name: VOLUME_DRIVER, Options: {} } },
  };
}
