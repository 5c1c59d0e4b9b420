// What a service gets for each key its stack file does not set: Tutum's defaults, and for what
// Tutum lacked (health checks, rolling updates, rescheduling), Docker's or swarm mode's.

import type { Autodestroy, Autorestart, DeploymentStrategy, UpdateConfig } from '../service/spec.ts';

/** Tutum's default: the node running the fewest containers, which spreads load without tags. */
export const DEFAULT_DEPLOYMENT_STRATEGY: DeploymentStrategy = 'EMPTIEST_NODE';

/** Tutum's and Docker's default: a stopped container stays stopped unless the file says so. */
export const DEFAULT_AUTORESTART: Autorestart = 'OFF';

/** Tutum's default: an exited container is kept (for its logs) and still counts. */
export const DEFAULT_AUTODESTROY: Autodestroy = 'OFF';

/** Tutum's and Compose's default: one container per service. */
export const DEFAULT_TARGET_NUM_CONTAINERS = 1;

/** Tutum's default: containers of a service are started in parallel. */
export const DEFAULT_SEQUENTIAL_DEPLOYMENT = false;

/** Issue 12: a dead node's containers wait 30 s before they are recreated elsewhere, long enough
 *  to ride out a reboot or a short partition without moving everything. */
export const DEFAULT_RESCHEDULE_AFTER_SECONDS = 30;

/** Swarm mode's defaults for a rolling update: one container at a time, no pause between, and
 *  stop (pause) on the first failure so that a bad image does not replace every container. */
export const DEFAULT_UPDATE: Readonly<UpdateConfig> = { parallelism: 1, delayMs: 0, onFailure: 'pause' };

/** Docker's defaults for a health check whose file sets only some of the timings. */
export const DEFAULT_HEALTH_INTERVAL_MS = 30_000;
export const DEFAULT_HEALTH_TIMEOUT_MS = 30_000;
export const DEFAULT_HEALTH_RETRIES = 3;
export const DEFAULT_HEALTH_START_PERIOD_MS = 0;

/** Docker's default CPU weight is 1024 per CPU; a Compose `cpus: 0.5` becomes shares 512. */
export const CPU_SHARES_PER_CPU = 1024;
