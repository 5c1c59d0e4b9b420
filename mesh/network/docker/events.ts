// Follows a dockerd's container events, reconnecting with backoff when the daemon is not there
// yet or restarts. After every (re)connect it asks for a full resync, since events that
// happened while disconnected are lost.

import Docker from 'dockerode';
import { errorText, type Logger } from '../../log.ts';

export type ContainerEvent =
  | { type: 'start' | 'die' | 'destroy'; id: string }
  /** The container joined or left a Docker network (at its start, `docker network connect`,
   *  `disconnect`). */
  | { type: 'network'; id: string }
  | { type: 'health'; id: string; status: string };

/** How long to wait for the daemon between attempts: short at first (a daemon starting next
 *  to us), capped so a missing daemon costs one attempt every few seconds. */
const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 5_000;

/** `unix:///path`, `tcp://host:port`, `http://host:port` or a bare socket path. */
export function dockerClient(url: string | undefined): Docker {
  const u = url ?? process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  if (u.startsWith('unix://')) return new Docker({ socketPath: u.slice('unix://'.length) });
  if (u.startsWith('/')) return new Docker({ socketPath: u });
  const m = /^(?:tcp|http):\/\/([^:/]+):(\d+)\/?$/.exec(u);
  if (!m) throw new Error(`--docker-host "${u}" is not unix:///path or tcp://host:port`);
  return new Docker({ host: m[1], port: Number(m[2]), protocol: 'http' });
}

export class DockerEvents {
  private readonly docker: Docker;
  private readonly log: Logger;
  private readonly onEvent: (e: ContainerEvent) => void;
  private readonly onConnected: () => void;
  private stream?: NodeJS.ReadableStream & { destroy?: () => void };
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private attempt = 0;
  private lastError = '';
  connected = false;

  constructor(docker: Docker, opts: { log: Logger; onEvent(e: ContainerEvent): void; onConnected(): void }) {
    this.docker = docker;
    this.log = opts.log;
    this.onEvent = opts.onEvent;
    this.onConnected = opts.onConnected;
  }

  start(): void {
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stream?.destroy?.();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    try {
      const stream = (await this.docker.getEvents({
        filters: { type: ['container', 'network'], event: ['start', 'die', 'destroy', 'health_status', 'connect', 'disconnect'] },
      })) as NodeJS.ReadableStream & { destroy?: () => void };
      if (this.stopped) {
        stream.destroy?.();
        return;
      }
      this.stream = stream;
      this.connected = true;
      this.attempt = 0;
      this.lastError = '';
      this.log.info('following docker events');
      let buf = '';
      stream.on('data', (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        // Bounded: a line longer than this is not an event, drop it.
        if (buf.length > 1024 * 1024) buf = '';
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          try {
            this.parse(line);
          } catch (err) {
            // What dockerd sends (or a handler does with it) costs one event, never the peer.
            this.log.error('docker event not handled', { err: errorText(err) });
          }
        }
      });
      const lost = (why: string) => {
        if (this.stream !== stream) return;
        this.stream = undefined;
        this.connected = false;
        if (!this.stopped) this.log.warn('lost docker events; reconnecting', { why });
        this.retry();
      };
      stream.on('end', () => lost('end'));
      stream.on('error', (err: Error) => lost(errorText(err)));
      this.onConnected();
    } catch (err) {
      const text = errorText(err);
      if (text !== this.lastError) this.log.warn('cannot reach dockerd; retrying', { err: text });
      this.lastError = text;
      this.retry();
    }
  }

  private retry(): void {
    if (this.stopped) return;
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.attempt++, 10));
    this.timer = setTimeout(() => void this.connect(), delay);
  }

  private parse(line: string): void {
    let e: any;
    try {
      e = JSON.parse(line);
    } catch {
      return;
    }
    const action = String(e?.Action ?? e?.status ?? '');
    if (e?.Type === 'network') {
      // A network event names the network; the container is an attribute.
      const container = e?.Actor?.Attributes?.container;
      if ((action === 'connect' || action === 'disconnect') && typeof container === 'string') this.onEvent({ type: 'network', id: container });
      return;
    }
    const id = e?.Actor?.ID ?? e?.id;
    if (typeof id !== 'string') return;
    if (action === 'start' || action === 'die' || action === 'destroy') this.onEvent({ type: action, id });
    else if (action.startsWith('health_status')) this.onEvent({ type: 'health', id, status: action.split(':')[1]?.trim() ?? '' });
  }
}
