// The scheduler's API methods (`weft service ...`, `weft stack ...`) as clients see them: names,
// access, parameter schemas and result types. The handlers are in api.ts.

import { method, NONE, text, v } from '../../mesh/api/method.ts';
import { MAX_SERVICES, MAX_TARGET_NUM_CONTAINERS } from '../stack/limits.ts';
import type { ServiceStatus } from '../reconciler/reconcile.ts';
import type { TaskState } from '../task/report.ts';
import { serviceSpecSchema } from './schema.ts';

/** A service is named `name` (in no stack) or `stack/name`; `name.stack` is accepted too, as
 *  its DNS name reads. */
const serviceRef = text(200);
const stackName = text(63);

/** A service's status as the reconciler's round gives it (target, running, tasks, active,
 *  pending, update) and what its object says. `name` is its object name: `stack/name`, or
 *  `name` in no stack. */
export interface ServiceRow extends ServiceStatus {
  service: string;
  stack: string;
  image: string;
  strategy: string;
  version: number;
  deployment: number;
  /** Stopped by `weft service stop`: its containers stay, stopped. */
  stopped: boolean;
}

export interface TaskRow {
  task: string;
  /** The container's mesh name, `web-2`. */
  name: string;
  service: string;
  stack: string;
  node: string;
  host: string;
  epoch: number;
  state: TaskState | 'assigned';
  health: string;
  address?: string;
  error?: string;
  /** While its image is pulled: how far. */
  progress?: string;
  /** Whether it runs the service's current spec. */
  current: boolean;
}

export interface StackRow {
  name: string;
  file: string;
  services: number;
  running: number;
  target: number;
}

export interface DeployResult {
  stack: string;
  created: string[];
  updated: string[];
  removed: string[];
  unchanged: string[];
}

export const stackDeploy = method<DeployResult>()({
  name: 'stack.deploy', access: 'operator',
  params: v.strictObject({ stack: stackName, file: text(4096), services: v.pipe(v.array(serviceSpecSchema), v.maxLength(MAX_SERVICES)) }),
});
export const stackList = method<StackRow[]>()({ name: 'stack.ls', access: 'operator', params: NONE });
export const stackInspect = method<{ name: string; file: string; services: ServiceRow[]; tasks: TaskRow[] }>()({
  name: 'stack.inspect', access: 'operator', params: v.strictObject({ name: stackName }),
});
export const stackRedeploy = method<{ redeployed: string[] }>()({
  name: 'stack.redeploy', access: 'operator', params: v.strictObject({ name: stackName }),
});
export const stackRemove = method<{ removed: string[] }>()({
  name: 'stack.rm', access: 'operator', params: v.strictObject({ name: stackName }),
});
export const serviceCreate = method<ServiceRow>()({
  name: 'service.create', access: 'operator', params: v.strictObject({ spec: serviceSpecSchema }),
});
export const serviceList = method<ServiceRow[]>()({
  name: 'service.ls', access: 'operator', params: v.strictObject({ stack: v.optional(stackName) }),
});
export const serviceInspect = method<{ service: ServiceRow; spec: unknown; previous: unknown; tasks: TaskRow[] }>()({
  name: 'service.inspect', access: 'operator', params: v.strictObject({ name: serviceRef }),
});
export const serviceScale = method<ServiceRow>()({
  name: 'service.scale', access: 'operator',
  params: v.strictObject({ name: serviceRef, count: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(MAX_TARGET_NUM_CONTAINERS)) }),
});
/** How a redeploy rolls; given, it becomes the service's update policy (as `update_config`). */
const rolling = {
  parallelism: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_TARGET_NUM_CONTAINERS))),
  delayMs: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(24 * 3600 * 1000))),
  onFailure: v.optional(v.picklist(['pause', 'continue', 'rollback'])),
};
export const serviceRedeploy = method<ServiceRow>()({
  name: 'service.redeploy', access: 'operator', params: v.strictObject({ name: serviceRef, ...rolling }),
});
/** Replaces a service's spec (its name and stack stay): a rolling redeploy follows when what
 *  its containers are made of changed; the old spec is kept for `weft service rollback`. */
export const serviceUpdate = method<ServiceRow>()({
  name: 'service.update', access: 'operator', params: v.strictObject({ name: serviceRef, spec: serviceSpecSchema, expect: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))) }),
});
/** Stops every container of a service (they stay, stopped) / starts them again. */
export const serviceStop = method<ServiceRow>()({
  name: 'service.stop', access: 'operator', params: v.strictObject({ name: serviceRef }),
});
export const serviceStart = method<ServiceRow>()({
  name: 'service.start', access: 'operator', params: v.strictObject({ name: serviceRef }),
});
export const serviceRollback = method<ServiceRow>()({
  name: 'service.rollback', access: 'operator', params: v.strictObject({ name: serviceRef }),
});
export const serviceRemove = method<{ removed: string }>()({
  name: 'service.rm', access: 'operator', params: v.strictObject({ name: serviceRef }),
});

/** One line of a container's output. */
export interface LogLine {
  /** The container's mesh name (`web-2`) and the host it runs on. */
  container: string;
  host: string;
  stream: 'stdout' | 'stderr';
  line: string;
}

/** A tail a person reads; `--tail` asks for more (Docker's own default is everything). */
const tail = v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(100_000)));

/** Streams the output of every container of a service, from every host it runs on. Without
 *  `follow` it ends once each container's log so far was sent. */
export const serviceLogs = method<null, LogLine>()({
  name: 'service.logs', access: 'operator', params: v.strictObject({ name: serviceRef, follow: v.optional(v.boolean()), tail }),
});
/** The same, of this host's containers only: what the peer asked by a user calls on each host. */
export const serviceLogsHere = method<null, LogLine>()({
  name: 'service.logs-here', access: 'member', accessReason: "peers gather a service's logs from each other",
  params: v.strictObject({ service: serviceRef, follow: v.optional(v.boolean()), tail }),
});
