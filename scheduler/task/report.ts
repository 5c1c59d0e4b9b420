// What each node's agent reports of itself in gossip (observed state, AGENT_STATE_KEY): whether
// it can run containers, how much memory placement may use on it, and the state of every task
// container it holds. The leader's reconciler reads these to know what runs, what failed and
// why; `weft ps` and `weft service inspect` show them. Signed by the node's own peer like every
// replicated entry, so only a node says what runs on it. Pure: the record and its bounded
// decoder.

export const TASK_STATES = ['pulling', 'creating', 'starting', 'running', 'exited', 'failed', 'removing'] as const;
export type TaskState = (typeof TASK_STATES)[number];

export interface TaskReport {
  /** The task's name (`shop/web/2`) and the epoch and configuration its container runs. */
  task: string;
  epoch: number;
  config: string;
  state: TaskState;
  /** Docker's health (`none` without a health check). */
  health: 'healthy' | 'unhealthy' | 'starting' | 'none';
  /** Set when exited. */
  exitCode?: number;
  /** Why it failed (an image that cannot be pulled, a create Docker refused), in Docker's words. */
  error?: string;
  /** Docker's container id, when there is one. */
  container?: string;
  /** While pulling: how far, in words (`12.3 of 45.0 MB`). */
  progress?: string;
  /** ms since the epoch when it entered this state (the agent's clock). */
  since: number;
}

export interface AgentReport {
  v: 1;
  /** `ok`: Docker answers and containers can be placed here; otherwise why not. */
  docker: 'ok' | 'unavailable';
  error?: string;
  /** What placement may reserve here: the host's memory, bytes. */
  memoryBytes: number;
  /** The host's architecture as Docker names it (`x86_64`, `aarch64`): a node carries the tag
   *  `arch=<it>` (Compose's `node.platform.arch` constraint). */
  arch?: string;
  tasks: TaskReport[];
}

/** A replicated entry is at most 256 KiB; ~250 bytes per task keeps 300 tasks well inside it,
 *  far above what one host of this kind runs (the rest are counted, not listed). */
export const MAX_REPORTED_TASKS = 300;
const MAX_ERROR = 512;

/** Decodes a gossiped report; undefined when it is not one (a newer or hostile peer's). */
export function decodeReport(raw: string): AgentReport | undefined {
  let x: unknown;
  try {
    x = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof x !== 'object' || x === null) return undefined;
  const r = x as Record<string, unknown>;
  if (r.v !== 1 || (r.docker !== 'ok' && r.docker !== 'unavailable') || !Number.isSafeInteger(r.memoryBytes) || (r.memoryBytes as number) < 0) return undefined;
  if (!Array.isArray(r.tasks) || r.tasks.length > MAX_REPORTED_TASKS) return undefined;
  const tasks: TaskReport[] = [];
  for (const t of r.tasks as unknown[]) {
    const d = decodeTask(t);
    if (!d) return undefined;
    tasks.push(d);
  }
  return {
    v: 1,
    docker: r.docker,
    ...(typeof r.error === 'string' ? { error: r.error.slice(0, MAX_ERROR) } : {}),
    memoryBytes: r.memoryBytes as number,
    ...(typeof r.arch === 'string' && /^[a-z0-9_]{1,32}$/.test(r.arch) ? { arch: r.arch } : {}),
    tasks,
  };
}

function decodeTask(x: unknown): TaskReport | undefined {
  if (typeof x !== 'object' || x === null) return undefined;
  const t = x as Record<string, unknown>;
  if (typeof t.task !== 'string' || t.task.length > 300 || !Number.isSafeInteger(t.epoch) || typeof t.config !== 'string' || t.config.length > 64) return undefined;
  if (!(TASK_STATES as readonly unknown[]).includes(t.state)) return undefined;
  if (!['healthy', 'unhealthy', 'starting', 'none'].includes(t.health as string)) return undefined;
  if (!Number.isSafeInteger(t.since)) return undefined;
  return {
    task: t.task,
    epoch: t.epoch as number,
    config: t.config,
    state: t.state as TaskState,
    health: t.health as TaskReport['health'],
    ...(Number.isSafeInteger(t.exitCode) ? { exitCode: t.exitCode as number } : {}),
    ...(typeof t.error === 'string' ? { error: t.error.slice(0, MAX_ERROR) } : {}),
    ...(typeof t.container === 'string' && /^[0-9a-f]{1,64}$/.test(t.container) ? { container: t.container } : {}),
    ...(typeof t.progress === 'string' ? { progress: t.progress.slice(0, 64) } : {}),
    since: t.since as number,
  };
}
