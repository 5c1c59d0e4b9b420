import { createServer, connect, type Server, type Socket } from 'node:net';
import { chmod, unlink } from 'node:fs/promises';
import type { Connection, Libp2p, Stream, StreamCloseEvent } from '@libp2p/interface';
import type { Logger } from '../log.ts';
import { API_PROTOCOL, type ApiHandler } from './request.ts';
import { ApiSession, type ApiTransport } from './session.ts';
import { CallerBudget } from './limits.ts';
import { LogOnce } from '../log-once.ts';


/** Concurrent API streams one connection may open: a CLI opens one; a few for scripts. */
const MAX_STREAMS_PER_CONNECTION = 16;

/** What the server holds for its clients right now (for tests and metrics). */
export interface ApiServerStats {
  /** Open client connections: unix sockets and libp2p streams. */
  sessions: number;
  /** Requests started whose final reply has not yet been handed to a transport. */
  requestsInFlight: number;
  /** Reply bytes written or queued that clients have not taken yet. */
  bytesQueued: number;
}

/** Serves the API on a unix socket (local CLI) and on the mesh's libp2p host (remote CLI).
 *  Each connection is an ApiSession, which bounds what its client can make us hold. */
export class ApiServer {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<ApiSession>();
  private readonly budget = new CallerBudget();
  private readonly rejections = new LogOnce();
  private readonly handler: ApiHandler;
  private readonly log: Logger;

  constructor(handler: ApiHandler, log: Logger) {
    this.handler = handler;
    this.log = log;
  }

  async listenUnix(path: string): Promise<void> {
    await removeStaleSocket(path);
    // Half-open so that a client that sends its requests and then ends its side still gets
    // its replies.
    const server = createServer({ allowHalfOpen: true }, (sock) => this.serveSocket(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    // The socket is the root of trust for the local CLI: only its owner may use it.
    await chmod(path, 0o600);
    this.server = server;
  }

  /** `callerOf` names who is calling: an API token's id, or the remote peer id. Requests in
   *  flight and queued replies are bounded per caller across all of its streams. */
  async listenMesh(node: Libp2p, callerOf: (conn: Connection) => string = (c) => c.remotePeer.toString()): Promise<void> {
    await node.handle(API_PROTOCOL, (stream, conn) => this.serveStream(stream, callerOf(conn)), {
      maxInboundStreams: MAX_STREAMS_PER_CONNECTION,
    });
  }

  stats(): ApiServerStats {
    let requestsInFlight = 0;
    let bytesQueued = 0;
    for (const s of this.sessions) {
      requestsInFlight += s.requestsInFlight;
      bytesQueued += s.bytesQueued;
    }
    return { sessions: this.sessions.size, requestsInFlight, bytesQueued };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private open(transport: ApiTransport, caller: string): ApiSession {
    const session = new ApiSession({
      transport, caller, budget: this.budget, handler: this.handler, log: this.log, rejections: this.rejections,
    });
    this.sessions.add(session);
    return session;
  }

  private serveSocket(sock: Socket): void {
    this.sockets.add(sock);
    const transport: ApiTransport = {
      write: (b) => (sock.destroyed || !sock.writable ? true : sock.write(b)),
      drained: () => new Promise<void>((resolve) => {
        if (!sock.writableNeedDrain || sock.destroyed) return resolve();
        const done = () => {
          sock.off('drain', done);
          sock.off('close', done);
          resolve();
        };
        sock.on('drain', done);
        sock.on('close', done);
      }),
      buffered: () => sock.writableLength,
      pauseReading: () => sock.pause(),
      resumeReading: () => sock.resume(),
      finish: () => sock.end(),
      abort: () => sock.destroy(),
    };
    const session = this.open(transport, 'local');
    sock.on('data', (data) => session.receive(data));
    sock.on('end', () => session.endOfInput());
    sock.on('close', () => {
      this.sockets.delete(sock);
      this.sessions.delete(session);
      session.onClose();
    });
    sock.on('error', () => undefined);
  }

  private serveStream(stream: Stream, caller: string): void {
    const transport: ApiTransport = {
      write: (b) => {
        if (stream.writeStatus !== 'writable') return true; // closing: 'close' follows
        try {
          return stream.send(b);
        } catch {
          return true;
        }
      },
      drained: () => streamDrained(stream),
      buffered: () => stream.writeBufferLength,
      pauseReading: () => { if (stream.readStatus === 'readable') stream.pause(); },
      resumeReading: () => { if (stream.readStatus === 'paused') stream.resume(); },
      finish: () => void stream.close().catch((err: Error) => stream.abort(err)),
      abort: (reason) => stream.abort(new Error(reason)),
    };
    const session = this.open(transport, caller);
    const closed = (e?: StreamCloseEvent) => {
      // libp2p resets a stream whose client sent more than its read buffer (4 MiB) while we
      // held its requests; our own drops are logged where they are decided.
      if (e?.local && e.error?.name === 'StreamBufferError') {
        this.log.warn('dropped API client', { caller, reason: `it sent more than the stream buffers while its requests waited: ${e.error.message}` });
      }
      this.sessions.delete(session);
      session.onClose();
    };
    stream.addEventListener('message', (e) => session.receive(e.data instanceof Uint8Array ? e.data : e.data.subarray()));
    stream.addEventListener('end', () => session.endOfInput());
    stream.addEventListener('close', closed);
    if (stream.status !== 'open') closed();
    else if (stream.readableEnded) session.endOfInput();
  }
}

/** Resolves once the stream has handed everything written to the connection (or is closed).
 *  Not `onDrain` alone: a stream also gets 'drain' when the shared connection drains while its
 *  own yamux window is still shut, and writing on each of those would let a client that never
 *  reads grow the stream's buffer by one reply per drain of its other streams. */
function streamDrained(stream: Stream): Promise<void> {
  const ready = () => stream.writeStatus !== 'writable' || (stream.writeBufferLength === 0 && !stream.writableNeedsDrain);
  if (ready()) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const check = () => {
      if (!ready()) return;
      stream.removeEventListener('drain', check);
      stream.removeEventListener('idle', check);
      stream.removeEventListener('close', check);
      resolve();
    };
    stream.addEventListener('drain', check);
    stream.addEventListener('idle', check);
    stream.addEventListener('close', check);
  });
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
