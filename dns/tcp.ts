// The TCP path of the DNS server: its listeners and the per-connection loop. Clients use TCP
// when a UDP answer came back truncated, so this path is rare but open to anyone who can
// reach the address; every connection is bounded in time (idle, and per message), in
// questions waiting for an answer, and in answers written but not yet read. Answering itself
// is the server's (`answer`, the same path as UDP); this file only frames, reads and writes.

import net from 'node:net';
import { errorText, logger } from '../mesh/log.ts';
import type { LogOnce } from '../mesh/log-once.ts';
import type { Answer } from './answer.ts';
import { MAX_MESSAGE, type Query, RCODE, headerOnlyReply, parseQuery } from './packet.ts';
import { FrameReader, frame } from './tcp-frames.ts';
import { STAT, handlerFailed } from './udp.ts';

/** RFC 7766 §6.2.3 recommends a few seconds idle; a container's resolver reconnects cheaply. */
export const TCP_IDLE_MS = 10_000;
/** A message must arrive whole within this time of its first octet (a client dribbling one
 *  octet at a time would otherwise hold a connection forever). */
export const TCP_MESSAGE_DEADLINE_MS = 5_000;
/** TCP clients at once; UDP is the normal path, TCP is for truncated answers. */
export const MAX_TCP_CONNECTIONS = 256;
/** Unanswered queries per TCP connection before we stop reading from it. */
export const MAX_TCP_PIPELINE = 32;
/** Answers written to one TCP connection and not yet taken by its client, beyond which the
 *  connection is closed: a client that asks and never reads would otherwise have us buffer
 *  without limit (questions of 35 octets can ask for answers of 64 KiB). Room for several
 *  largest answers to a client that reads slowly; 256 connections at most hold 64 MiB. */
export const MAX_TCP_UNSENT_BYTES = 256 * 1024;

const log = logger('dns');

/** What a connection needs of the server. */
export interface TcpContext {
  /** The server's counters (udp.ts's STAT slots); TCP counts queries, drops and error replies. */
  counters: Float64Array;
  /** Rate limit for lines about malformed messages, shared with the UDP path. */
  malformed: LogOnce;
  /** Answers a decoded query within `maxSize` octets, now or later, through `send`. */
  answer(q: Query, msg: Buffer, maxSize: number, send: (a: Answer) => void): void;
}

/** The server's TCP listeners and the connections they accepted. */
export class TcpListeners {
  private readonly ctx: TcpContext;
  private readonly servers: net.Server[] = [];
  private readonly conns = new Set<net.Socket>();
  private accepted = 0;

  constructor(ctx: TcpContext) {
    this.ctx = ctx;
  }

  /** Connections accepted since the start. */
  get connections(): number {
    return this.accepted;
  }

  /** Answers written to clients and not yet taken by them, in octets. */
  unsentBytes(): number {
    return [...this.conns].reduce((n, c) => n + c.writableLength, 0);
  }

  /** Listens on one address; rejects with the listen error (the caller words it). */
  listen(host: string, port: number): Promise<void> {
    const server = net.createServer((s) => this.onConnection(s));
    server.maxConnections = MAX_TCP_CONNECTIONS;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', (err) => log.warn('DNS TCP listener error', { error: errorText(err) }));
        this.servers.push(server);
        resolve();
      });
    });
  }

  /** Ends every connection at once (their clients retry elsewhere). */
  dropConnections(): void {
    for (const c of this.conns) c.destroy();
  }

  /** Closes the listeners; resolves when each has closed. */
  close(): Promise<void>[] {
    return this.servers.map((s) => new Promise<void>((r) => s.close(() => r())));
  }

  private onConnection(socket: net.Socket): void {
    this.accepted++;
    this.conns.add(socket);
    socket.on('close', () => this.conns.delete(socket));
    serveConnection(socket, this.ctx);
  }
}

/** Reads questions from one connection and writes their answers, within the bounds above. */
function serveConnection(socket: net.Socket, ctx: TcpContext): void {
  socket.setNoDelay(true);
  socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
  socket.on('error', () => {}); // resets and timeouts end the connection; nothing to report
  const counters = ctx.counters;
  const reader = new FrameReader();
  let outstanding = 0;
  let messageStarted = 0;
  // Reading stops (the socket is paused, and messages already read wait in the reader)
  // while MAX_TCP_PIPELINE questions are unanswered or the client has not taken what was
  // written: a client that never reads costs one read chunk and MAX_TCP_UNSENT_BYTES.
  let blocked = false;
  const from = socket.remoteAddress ?? 'unknown';
  const write = (bytes: Buffer) => {
    if (socket.destroyed) return;
    if (socket.writableLength + bytes.length > MAX_TCP_UNSENT_BYTES + MAX_MESSAGE + 2) {
      // It has not read the answers it already has: it is no DNS client.
      socket.destroy();
      return;
    }
    socket.write(bytes);
  };
  const handle = (msg: Buffer, now: number) => {
    counters[STAT.TCP]!++;
    const q = parseQuery(msg);
    if ('reject' in q) {
      const n = ctx.malformed.shouldLog(`${q.reject}:${q.reason}`, now);
      if (n !== undefined) log.debug('malformed DNS message', { from, reason: q.reason, transport: 'tcp' });
      if (q.reject === 'drop') {
        counters[STAT.DROPPED]!++;
        return void socket.destroy(); // not a query: this is no DNS client
      }
      const rcode = q.reject === 'notimp' ? RCODE.NOTIMP : RCODE.FORMERR;
      counters[STAT.RCODE + rcode]!++;
      return write(frame(headerOnlyReply(msg, rcode)));
    }
    outstanding++;
    ctx.answer(q, msg, MAX_MESSAGE, (a) => {
      outstanding--;
      write(frame(a.bytes));
      // An answer that came later (from upstream) may let us read again.
      if (blocked) pump(Date.now());
    });
  };
  let pumping = false;
  /** Answers the messages read so far, as far as the bounds allow. Not re-entered: an
   *  answer given at once calls back into here, and the loop running already goes on. */
  const pump = (now: number) => {
    if (pumping) return;
    pumping = true;
    try {
      pumpLoop(now);
    } finally {
      pumping = false;
    }
  };
  const pumpLoop = (now: number) => {
    while (!socket.destroyed) {
      if (outstanding >= MAX_TCP_PIPELINE || socket.writableLength >= MAX_TCP_UNSENT_BYTES || socket.writableNeedDrain) {
        if (!blocked) {
          blocked = true;
          socket.pause();
        }
        return;
      }
      const msg = reader.next();
      if (msg === undefined) break;
      messageStarted = now;
      handle(msg, now);
    }
    if (blocked && !socket.destroyed) {
      blocked = false;
      socket.resume();
    }
  };
  socket.on('drain', () => {
    try {
      if (blocked) pump(Date.now());
    } catch (err) {
      handlerFailed('TCP message', err);
      socket.destroy();
    }
  });
  socket.on('data', (chunk: Buffer) => {
    try {
      const now = Date.now();
      if (reader.pending === 0) messageStarted = now;
      else if (now - messageStarted > TCP_MESSAGE_DEADLINE_MS) return void socket.destroy();
      reader.add(chunk);
      pump(now);
    } catch (err) {
      handlerFailed('TCP message', err);
      socket.destroy();
    }
  });
}
