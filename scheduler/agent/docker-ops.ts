// The agent's hands on its node's dockerd, over dockerode: list weft's containers, pull, create,
// start, stop-and-remove, read logs. It decides nothing about which containers should exist
// (the agent does), and it touches only containers carrying SCHEDULED_LABEL=true: a container
// weft did not create is never stopped, replaced or removed.

import { StringDecoder } from 'node:string_decoder';
import type Docker from 'dockerode';
import { errorText, type Logger } from '../../mesh/log.ts';
import { CONFIG_LABEL, EPOCH_LABEL, SCHEDULED_LABEL, TASK_LABEL } from '../task/task.ts';

export type ContainerState = 'created' | 'running' | 'restarting' | 'paused' | 'exited' | 'dead' | 'removing';
const STATES: ReadonlySet<string> = new Set<ContainerState>(['created', 'running', 'restarting', 'paused', 'exited', 'dead', 'removing']);

export interface LocalContainer {
  id: string;
  dockerName: string;
  /** TASK_LABEL ('' when missing: no task matches it, so the agent removes it). */
  task: string;
  /** EPOCH_LABEL (0 when missing or not a number). */
  epoch: number;
  config: string;
  state: ContainerState;
  /** The last run's exit code, for exited and restarting containers. */
  exitCode?: number;
  /** Of a running container; 'none' when it has no check or does not run. */
  health: 'healthy' | 'unhealthy' | 'starting' | 'none';
  /** When a running or paused container last started (ms since the epoch; within 2 s after a
   *  restart by dockerd's restart policy, exact otherwise). */
  startedAt?: number;
}

export interface PullProgress {
  /** The layer (or tag, for the first and last lines) a line is about. */
  layer?: string;
  status: string;
  current?: number;
  total?: number;
}

/** What create() does with a leftover weft container of the same name (an agent that crashed
 *  between removing and creating): stop it with Docker's own default grace before removing it. */
const LEFTOVER_STOP_GRACE_S = 10;

/** list()'s Status text gives a running container's uptime to the second for its first minute
 *  ("Up 12 seconds"); a start time further than this from it is an earlier run's (dockerd
 *  restarted the container between two lists) and is read again from inspect. 1 s of rounding
 *  (Docker truncates) plus the list call's own latency. */
const STARTED_AT_TOLERANCE_MS = 2_000;

/** A log line longer than this is passed on in pieces: a program writing without newlines
 *  must not grow the agent's memory. */
const MAX_LOG_LINE_CHARS = 64 * 1024;

export class DockerOps {
  private readonly docker: Docker;
  private readonly log: Logger;
  /** Start times of running containers, by id, so that list() inspects a container once per
   *  run rather than on every call. */
  private readonly startedAt = new Map<string, number>();

  constructor(docker: Docker, log: Logger) {
    this.docker = docker;
    this.log = log;
  }

  /** Only containers carrying SCHEDULED_LABEL=true, running or not; never any other container.
   *  One list call (the agent calls this every half second on every node); an inspect only for
   *  a container that started since the last call. */
  async list(): Promise<LocalContainer[]> {
    const infos = await this.docker.listContainers({ all: true, filters: { label: [`${SCHEDULED_LABEL}=true`] } });
    const now = Date.now();
    const out: LocalContainer[] = [];
    const seen = new Set<string>();
    for (const c of infos) {
      if (!isScheduled(c.Labels)) continue; // the filter did it; a second check costs nothing
      seen.add(c.Id);
      const labels = c.Labels ?? {};
      const state: ContainerState = STATES.has(c.State) ? (c.State as ContainerState) : 'dead'; // unknown: not serving
      const status = c.Status ?? '';
      const epoch = Number(labels[EPOCH_LABEL]);
      const lc: LocalContainer = {
        id: c.Id,
        // A legacy link adds names like /other/alias; the container's own has one slash.
        dockerName: (c.Names?.find((n) => n.lastIndexOf('/') === 0) ?? c.Names?.[0] ?? '').replace(/^\//, ''),
        task: labels[TASK_LABEL] ?? '',
        epoch: Number.isSafeInteger(epoch) ? epoch : 0,
        config: labels[CONFIG_LABEL] ?? '',
        state,
        health: state === 'running' ? healthOf(status) : 'none',
      };
      const exit = /^(?:Exited|Restarting) \((-?\d+)\)/.exec(status);
      if (exit && (state === 'exited' || state === 'restarting')) lc.exitCode = Number(exit[1]);
      if (state === 'running' || state === 'paused') {
        const startedAt = await this.startTime(c.Id, status, now);
        if (startedAt !== undefined) lc.startedAt = startedAt;
      } else {
        this.startedAt.delete(c.Id); // its next start is a new run
      }
      out.push(lc);
    }
    for (const id of this.startedAt.keys()) if (!seen.has(id)) this.startedAt.delete(id);
    return out;
  }

  /** docker info's MemTotal. */
  async memoryBytes(): Promise<number> {
    const info = (await this.docker.info()) as { MemTotal?: unknown };
    if (typeof info.MemTotal !== 'number' || !(info.MemTotal > 0)) throw new Error(`docker info gave no memory size (MemTotal ${String(info.MemTotal)})`);
    return info.MemTotal;
  }

  /** Uses the image when present (no registry needed then); otherwise pulls it, reporting
   *  progress; throws one Error with Docker's message on failure. A reference without a tag
   *  means :latest. */
  async ensureImage(image: string, onProgress?: (p: PullProgress) => void): Promise<void> {
    const ref = withDefaultTag(image);
    if (await this.hasImage(ref)) return;
    this.log.info('pulling image', { image: ref });
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await this.docker.pull(ref)) as NodeJS.ReadableStream;
    } catch (e) {
      // Refused before any output: dockerd answers an unreachable registry or a bad reference
      // with an HTTP error (500, 400) rather than a line of the stream.
      throw new Error(`cannot pull image ${ref}: ${dockerMessage(e)}`);
    }
    // dockerd reports a failure during the pull as a line of the stream, not as a status.
    const failure = await new Promise<string | undefined>((resolve) => {
      let error: string | undefined;
      const lines = new LineSplitter((line) => {
        let m: { id?: unknown; status?: unknown; error?: unknown; errorDetail?: { message?: unknown }; progressDetail?: { current?: unknown; total?: unknown } };
        try {
          m = JSON.parse(line);
        } catch {
          return; // not Docker's JSON: nothing to report
        }
        if (m.error !== undefined || m.errorDetail !== undefined) {
          error ??= String(m.errorDetail?.message ?? m.error);
          return;
        }
        if (typeof m.status !== 'string' || !onProgress) return;
        const p: PullProgress = { status: m.status };
        if (typeof m.id === 'string') p.layer = m.id;
        if (typeof m.progressDetail?.current === 'number') p.current = m.progressDetail.current;
        if (typeof m.progressDetail?.total === 'number') p.total = m.progressDetail.total;
        onProgress(p);
      });
      let done = false;
      const finish = (extra?: string) => {
        if (done) return;
        done = true;
        lines.end();
        resolve(error ?? extra);
      };
      stream.on('data', (chunk: Buffer) => lines.push(chunk.toString('utf8')));
      stream.on('end', () => finish());
      stream.on('close', () => finish());
      stream.on('error', (e: unknown) => finish(`the connection to dockerd failed during the pull: ${errorText(e)}`));
    });
    if (failure !== undefined) throw new Error(`cannot pull image ${ref}: ${failure}`);
    if (!(await this.hasImage(ref))) throw new Error(`cannot pull image ${ref}: dockerd reported success, but has no such image`);
    this.log.info('pulled image', { image: ref });
  }

  /** Creates (does not start) a weft container. A leftover weft container of the same name is
   *  removed first; a container of that name that weft did not create is left alone, and this
   *  throws. Returns the id. */
  async create(opts: Docker.ContainerCreateOptions): Promise<string> {
    const name = opts.name;
    if (!name) throw new Error('a weft container needs a name');
    // Without the label list() would never see it again, and nothing would remove it.
    if (!isScheduled(opts.Labels)) throw new Error(`container ${name}: weft creates only containers labelled ${SCHEDULED_LABEL}=true`);
    const existing = await this.inspect(name);
    // Docker also finds a container by a prefix of its id; only an exact name is a clash.
    if (existing !== undefined && existing.Name === `/${name}`) {
      if (!isScheduled(existing.Config?.Labels)) {
        throw new Error(`a container named ${name} exists that weft did not create (no ${SCHEDULED_LABEL}=true label); weft leaves it alone: remove or rename it`);
      }
      this.log.info('replacing leftover container', { name, id: existing.Id.slice(0, 12) });
      await this.remove(existing.Id, LEFTOVER_STOP_GRACE_S);
    }
    try {
      const c = await this.docker.createContainer(opts);
      return c.id;
    } catch (e) {
      throw new Error(`cannot create container ${name}: ${dockerMessage(e)}`);
    }
  }

  /** Starts a weft container (one already running is not an error). */
  async start(id: string): Promise<void> {
    const info = await this.inspect(id);
    if (info === undefined) throw new Error(`cannot start container ${id}: no such container`);
    refuseForeign(info, 'start');
    try {
      await this.docker.getContainer(info.Id).start();
    } catch (e) {
      if (statusOf(e) !== 304) throw new Error(`cannot start container ${info.Name.replace(/^\//, '')}: ${dockerMessage(e)}`);
    }
  }

  /** Stops a weft container, keeping it (`weft service stop`); a stopped one is not an error. */
  async stop(id: string, stopGraceSeconds: number): Promise<void> {
    const info = await this.inspect(id);
    if (info === undefined) return;
    refuseForeign(info, 'stop');
    try {
      await this.docker.getContainer(info.Id).stop({ t: Math.max(0, Math.round(stopGraceSeconds)) });
    } catch (e) {
      if (statusOf(e) !== 304 && statusOf(e) !== 404) throw new Error(`cannot stop container ${info.Name.replace(/^\//, '')}: ${dockerMessage(e)}`);
    }
  }

  /** Stops (SIGTERM, then SIGKILL after the grace) and removes a weft container, with its
   *  anonymous volumes (named ones stay). A container already gone is not an error; one weft
   *  did not create is refused. */
  async remove(id: string, stopGraceSeconds: number): Promise<void> {
    const info = await this.inspect(id);
    if (info === undefined) return;
    refuseForeign(info, 'remove');
    const c = this.docker.getContainer(info.Id);
    const name = info.Name.replace(/^\//, '');
    try {
      await c.stop({ t: Math.max(0, Math.round(stopGraceSeconds)) });
    } catch (e) {
      // 304: not running; 404: gone meanwhile. Otherwise the grace is lost, not the removal.
      if (statusOf(e) !== 304 && statusOf(e) !== 404) this.log.warn('cannot stop container; removing it by force', { name, err: dockerMessage(e) });
    }
    try {
      // force: a restart policy may have started it again between the stop and now.
      await c.remove({ v: true, force: true });
    } catch (e) {
      if (statusOf(e) === 404) return;
      // Someone else is removing it: the outcome is the one asked for.
      if (statusOf(e) === 409 && /already in progress/i.test(dockerMessage(e))) return;
      throw new Error(`cannot remove container ${name}: ${dockerMessage(e)}`);
    }
    this.startedAt.delete(info.Id);
  }

  /** The container's logs as lines (stdout and stderr apart), following when asked. Resolves
   *  with a function that stops following (no callback is called after it). onEnd is called
   *  once, when the logs end (the container stopped, when following) or the stream fails.
   *  Without follow, every line and onEnd come before this resolves. */
  async logs(
    id: string,
    opts: { follow: boolean; tail?: number },
    onLine: (line: string, stream: 'stdout' | 'stderr') => void,
    onEnd: (err?: Error) => void,
  ): Promise<() => void> {
    const c = this.docker.getContainer(id);
    const query = { stdout: true, stderr: true, ...(opts.tail !== undefined ? { tail: opts.tail } : {}) };
    let data: unknown;
    try {
      data = opts.follow ? await c.logs({ ...query, follow: true }) : await c.logs({ ...query, follow: false });
    } catch (e) {
      throw new Error(`cannot read the logs of container ${id}: ${dockerMessage(e)}`);
    }
    let stopped = false;
    let ended = false;
    const demux = new LogDemuxer((line, stream) => {
      if (!stopped) onLine(line, stream);
    });
    const end = (err?: Error) => {
      if (stopped || ended) return;
      ended = true;
      demux.end();
      onEnd(err);
    };
    if (!opts.follow || Buffer.isBuffer(data) || typeof data === 'string') {
      demux.push(Buffer.isBuffer(data) ? data : Buffer.from(typeof data === 'string' ? data : ''));
      end();
      return () => {
        stopped = true;
      };
    }
    const stream = data as NodeJS.ReadableStream & { destroy(): void };
    stream.on('data', (chunk: Buffer) => demux.push(chunk));
    stream.on('end', () => end());
    stream.on('close', () => end());
    stream.on('error', (e: unknown) => end(e instanceof Error ? e : new Error(String(e))));
    return () => {
      stopped = true;
      stream.destroy();
    };
  }

  /** docker inspect, or undefined when there is no such container. */
  private async inspect(idOrName: string): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      return await this.docker.getContainer(idOrName).inspect();
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw new Error(`cannot inspect container ${idOrName}: ${dockerMessage(e)}`);
    }
  }

  private async hasImage(ref: string): Promise<boolean> {
    try {
      await this.docker.getImage(ref).inspect();
      return true;
    } catch (e) {
      if (statusOf(e) === 404) return false;
      throw new Error(`cannot inspect image ${ref}: ${dockerMessage(e)}`);
    }
  }

  /** A running container's start time: the cached one, unless the uptime in its Status text
   *  says it started again since; then (and the first time) from inspect. */
  private async startTime(id: string, status: string, now: number): Promise<number | undefined> {
    const cached = this.startedAt.get(id);
    const up = uptimeSeconds(status);
    if (cached !== undefined && (up === undefined || Math.abs(now - up * 1000 - cached) <= STARTED_AT_TOLERANCE_MS)) return cached;
    try {
      const startedAt = Date.parse((await this.docker.getContainer(id).inspect()).State.StartedAt);
      if (!(startedAt > 0)) return undefined;
      this.startedAt.set(id, startedAt);
      return startedAt;
    } catch (e) {
      this.log.debug('cannot read start time', { id: id.slice(0, 12), err: errorText(e) }); // removed meanwhile
      return undefined;
    }
  }
}

function isScheduled(labels: Record<string, string> | undefined | null): boolean {
  return labels?.[SCHEDULED_LABEL] === 'true';
}

function refuseForeign(info: Docker.ContainerInspectInfo, what: string): void {
  if (!isScheduled(info.Config?.Labels)) {
    throw new Error(`refusing to ${what} container ${info.Name.replace(/^\//, '')}: weft did not create it (no ${SCHEDULED_LABEL}=true label)`);
  }
}

/** `busybox` → `busybox:latest`, as `docker pull` does; a tag or digest is kept. The last path
 *  component carries the tag: `127.0.0.1:5000/busybox` has a port, not a tag. */
export function withDefaultTag(image: string): string {
  if (image.includes('@')) return image;
  const last = image.slice(image.lastIndexOf('/') + 1);
  return last.includes(':') ? image : `${image}:latest`;
}

/** Health from list()'s Status text: "Up 3 minutes (healthy)", "(unhealthy)", "(health: starting)". */
function healthOf(status: string): LocalContainer['health'] {
  const m = /\((healthy|unhealthy|health: starting)\)\s*$/.exec(status);
  if (!m) return 'none';
  return m[1] === 'health: starting' ? 'starting' : (m[1] as 'healthy' | 'unhealthy');
}

/** Uptime from "Up Less than a second" / "Up 1 second" / "Up 12 seconds" (Docker's wording for
 *  the first minute); undefined once Docker rounds to minutes. */
function uptimeSeconds(status: string): number | undefined {
  if (/^Up Less than a second\b/.test(status)) return 0;
  const m = /^Up (\d+) seconds?\b/.exec(status);
  return m ? Number(m[1]) : undefined;
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Docker's own words from a dockerode error, without dockerode's "(HTTP code 404) no such
 *  container - " prefix. */
function dockerMessage(e: unknown): string {
  const json = (e as { json?: { message?: unknown } } | null)?.json;
  if (typeof json?.message === 'string') return json.message.trim();
  return errorText(e).replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}

/** Splits text into lines as it comes; a last line without a newline is given at end(). */
class LineSplitter {
  private partial = '';
  private readonly onLine: (line: string) => void;

  constructor(onLine: (line: string) => void) {
    this.onLine = onLine;
  }

  push(text: string): void {
    this.partial += text;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl).replace(/\r$/, '');
      this.partial = this.partial.slice(nl + 1);
      this.onLine(line);
    }
    while (this.partial.length > MAX_LOG_LINE_CHARS) {
      this.onLine(this.partial.slice(0, MAX_LOG_LINE_CHARS));
      this.partial = this.partial.slice(MAX_LOG_LINE_CHARS);
    }
  }

  end(): void {
    if (this.partial !== '') this.onLine(this.partial);
    this.partial = '';
  }
}

/**
 * Docker's multiplexed log stream (a container without a TTY, as weft creates them): frames of
 * an 8-byte header (stream: 1 stdout, 2 stderr; 3 bytes 0; a big-endian 32-bit size) and the
 * payload. Frames split anywhere across chunks; lines split anywhere across frames.
 */
class LogDemuxer {
  private pending: Buffer = Buffer.alloc(0);
  private readonly streams: Record<'stdout' | 'stderr', { decoder: StringDecoder; lines: LineSplitter }>;

  constructor(onLine: (line: string, stream: 'stdout' | 'stderr') => void) {
    const one = (s: 'stdout' | 'stderr') => ({ decoder: new StringDecoder('utf8'), lines: new LineSplitter((l) => onLine(l, s)) });
    this.streams = { stdout: one('stdout'), stderr: one('stderr') };
  }

  push(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      const s = this.streams[this.pending[0] === 2 ? 'stderr' : 'stdout'];
      s.lines.push(s.decoder.write(this.pending.subarray(8, 8 + size)));
      this.pending = this.pending.subarray(8 + size);
    }
  }

  end(): void {
    for (const s of Object.values(this.streams)) {
      s.lines.push(s.decoder.end());
      s.lines.end();
    }
  }
}
