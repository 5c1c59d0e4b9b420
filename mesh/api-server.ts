import { createServer, connect, type Server, type Socket } from 'node:net';
import { chmod, unlink } from 'node:fs/promises';
import type { Connection, Libp2p, Stream } from '@libp2p/interface';
import { encodeFrame, FrameDecoder } from './framing.ts';
import { errorText, type Logger } from './log.ts';

/** The libp2p protocol remote CLIs use; the connection is admitted by the mesh secret. */
export const API_PROTOCOL = '/weft/api/1.0.0';
/** API requests are small; this bounds what one client can make us buffer. */
const MAX_REQUEST_BYTES = 1024 * 1024;

/** A request: `{ id, method, params }`. Replies: `{ id, result }`, `{ id, error }`, or for
 *  streaming methods any number of `{ id, event }` and then `{ id, end: true }`. */
export interface ApiRequest {
  id: number;
  method: string;
  params: Record<string, unknown>;
}

export interface ApiContext {
  /** Streams one event to the client (for `events --follow`). */
  emit(event: unknown): void;
  /** Resolves when the client goes away. */
  closed: Promise<void>;
  /** 'local' for the unix socket, else the remote peer id. */
  caller: string;
}

export type ApiHandler = (req: ApiRequest, ctx: ApiContext) => Promise<unknown>;

/** An error whose message is meant for the user of the CLI as it is. */
export class UserError extends Error {}

interface Duplex {
  send(frame: unknown): void;
  close(): void;
}

function parseRequest(u: unknown): ApiRequest | string {
  if (typeof u !== 'object' || u === null) return 'request is not an object';
  const r = u as Record<string, unknown>;
  if (typeof r.id !== 'number' || !Number.isSafeInteger(r.id)) return 'request id must be an integer';
  if (typeof r.method !== 'string' || r.method.length > 64) return 'request method must be a short string';
  const params = r.params ?? {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return 'request params must be an object';
  return { id: r.id, method: r.method, params: params as Record<string, unknown> };
}

/** Serves the API on a unix socket (local CLI) and on the mesh's libp2p host (remote CLI). */
export class ApiServer {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private readonly handler: ApiHandler;
  private readonly log: Logger;

  constructor(handler: ApiHandler, log: Logger) {
    this.handler = handler;
    this.log = log;
  }

  async listenUnix(path: string): Promise<void> {
    await removeStaleSocket(path);
    const server = createServer((sock) => this.serveSocket(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    // The socket is the root of trust for the local CLI: only its owner may use it.
    await chmod(path, 0o600);
    this.server = server;
  }

  /** `callerOf` names who is calling: an API token's id, or the remote peer id. */
  async listenMesh(node: Libp2p, callerOf: (conn: Connection) => string = (c) => c.remotePeer.toString()): Promise<void> {
    await node.handle(API_PROTOCOL, (stream, conn) => this.serveStream(stream, callerOf(conn)), {
      maxInboundStreams: 16,
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private serveSocket(sock: Socket): void {
    this.sockets.add(sock);
    let closedResolve!: () => void;
    const closed = new Promise<void>((r) => (closedResolve = r));
    sock.on('close', () => {
      this.sockets.delete(sock);
      closedResolve();
    });
    sock.on('error', () => undefined);
    const duplex: Duplex = {
      send: (f) => { if (!sock.destroyed) sock.write(encodeFrame(f)); },
      close: () => sock.end(),
    };
    const decoder = new FrameDecoder(MAX_REQUEST_BYTES);
    sock.on('data', (data) => {
      let frames: unknown[];
      try {
        frames = decoder.push(data);
      } catch (err) {
        this.log.warn('rejected API request', { caller: 'local', reason: errorText(err) });
        sock.destroy();
        return;
      }
      for (const f of frames) void this.dispatch(f, duplex, closed, 'local');
    });
  }

  private async serveStream(stream: Stream, caller: string): Promise<void> {
    let closedResolve!: () => void;
    const closed = new Promise<void>((r) => (closedResolve = r));
    const duplex: Duplex = {
      send: (f) => { if (stream.writeStatus === 'writable') stream.send(encodeFrame(f)); },
      close: () => void stream.close().catch(() => undefined),
    };
    const decoder = new FrameDecoder(MAX_REQUEST_BYTES);
    try {
      for await (const chunk of stream) {
        for (const f of decoder.push(chunk instanceof Uint8Array ? chunk : chunk.subarray())) {
          void this.dispatch(f, duplex, closed, caller);
        }
      }
    } catch (err) {
      this.log.warn('rejected API request', { caller, reason: errorText(err) });
      stream.abort(err instanceof Error ? err : new Error(String(err)));
    } finally {
      closedResolve();
    }
  }

  private async dispatch(frame: unknown, duplex: Duplex, closed: Promise<void>, caller: string): Promise<void> {
    const req = parseRequest(frame);
    if (typeof req === 'string') {
      duplex.send({ id: -1, error: { message: req } });
      return;
    }
    try {
      const result = await this.handler(req, { emit: (event) => duplex.send({ id: req.id, event }), closed, caller });
      duplex.send({ id: req.id, result: result ?? null });
    } catch (err) {
      if (!(err instanceof UserError)) this.log.error('API request failed', { method: req.method, err: errorText(err) });
      duplex.send({ id: req.id, error: { message: errorText(err) } });
    }
  }
}

/** A socket file left by a peer that died is removed; one that answers belongs to a live peer. */
async function removeStaleSocket(path: string): Promise<void> {
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
  if (live) throw new Error(`another weft peer is serving ${path} (stop it first, or choose another --data-dir)`);
  await unlink(path).catch(() => undefined);
}
