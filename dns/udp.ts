// The UDP path, shared by the main thread and the UDP worker threads: bind a socket, and for
// each datagram decode, answer from the zone and send, or hand the question on (to the
// forwarder, possibly in another thread). Counters live in a Float64Array so that a worker's
// can sit in shared memory and the main thread can add them up without messages.

import dgram from 'node:dgram';
import net from 'node:net';
import { logger } from '../mesh/log.ts';
import { LogOnce } from '../mesh/log-once.ts';
import { type Answer, answerFromZone, reply } from './answer.ts';
import { type Query, RCODE, headerOnlyReply, parseQuery, udpLimit } from './packet.ts';
import type { Zone } from './zone.ts';

/** Slots of a counters array. PORT0 counts datagrams from source port 0 (also in DROPPED). */
export const STAT = { UDP: 0, TCP: 1, TRUNCATED: 2, DROPPED: 3, PORT0: 4, RCODE: 8 } as const;
export const STAT_SLOTS = STAT.RCODE + 32;

/** Asked of the kernel for each UDP socket (it caps this at net.core.rmem_max): room for
 *  bursts while the event loop is busy, instead of drops. */
const UDP_RECV_BUFFER = 4 * 1024 * 1024;

const log = logger('dns');

/** Failed sends and handler failures, said once a minute per kind: the sender chooses the
 *  addresses we reply to, so one line per datagram would let anyone flood the log. */
const sendFailures = new LogOnce();

/** The callback of every UDP reply: a send that fails asynchronously (an address we may not
 *  send to, a full buffer) costs that reply and a rate-limited line, never the socket. One
 *  function for all sends, so the hot path allocates no closure. */
export function onUdpSent(err: Error | null): void {
  if (!err) return;
  const code = (err as NodeJS.ErrnoException).code ?? err.message;
  const n = sendFailures.shouldLog(`send:${code}`, Date.now());
  if (n !== undefined) log.warn('a DNS reply could not be sent', { error: err.message, ...(n ? { repeats: n } : {}) });
}

/**
 * Sends a UDP reply without ever throwing: node:dgram throws synchronously for a port it
 * will not send to (0) or a socket already closed, and a throw here would escape the
 * 'message' handler and end the process.
 */
export function sendUdp(sock: dgram.Socket, bytes: Uint8Array, port: number, address: string): void {
  try {
    sock.send(bytes, port, address, onUdpSent);
  } catch (err) {
    onUdpSent(err as Error);
  }
}

/** The last line of defence around a handler of network input: a bug costs that input and a
 *  rate-limited line, never the process. */
export function handlerFailed(what: string, err: unknown): void {
  const e = err as Error;
  const n = sendFailures.shouldLog(`handler:${what}:${e?.message}`, Date.now());
  if (n !== undefined) log.error(`DNS ${what} failed; dropped`, { error: e?.stack ?? String(err), ...(n ? { repeats: n } : {}) });
}

export interface UdpContext {
  zone: Zone;
  maxUdp: number;
  random: () => number;
  counters: Float64Array;
  malformed: LogOnce;
  /** A question the zone does not answer: reply later with `send`. */
  delegate(q: Query, msg: Buffer, limit: number, sock: dgram.Socket, rinfo: dgram.RemoteInfo): void;
}

/** Calls back at once for an IP literal: node:dgram otherwise defers every send through
 *  dns.lookup and process.nextTick, a measurable share of an answer's cost. */
function literalLookup(host: string, family: number, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, host, family);
}

/** Binds a UDP socket for DNS; rejects with the bind error (the caller words it). */
export function bindUdp(host: string, port: number, reusePort: boolean, onMessage: (sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo) => void): Promise<dgram.Socket> {
  const sock = dgram.createSocket({
    type: net.isIPv6(host) ? 'udp6' : 'udp4',
    recvBufferSize: UDP_RECV_BUFFER,
    reusePort,
    lookup: literalLookup as unknown as dgram.SocketOptions['lookup'],
  });
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      try {
        sock.close();
      } catch {
        // never bound
      }
      reject(err);
    };
    sock.once('error', onError);
    sock.bind({ port, address: host, exclusive: true }, () => {
      sock.off('error', onError);
      sock.on('error', (err) => onUdpSent(err));
      sock.on('message', (msg, rinfo) => {
        try {
          onMessage(sock, msg, rinfo);
        } catch (err) {
          handlerFailed('UDP datagram', err);
        }
      });
      resolve(sock);
    });
  });
}

/** One datagram: the hot path, kept free of closures and of anything but the answer. */
export function onUdpMessage(ctx: UdpContext, sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
  const counters = ctx.counters;
  counters[STAT.UDP]!++;
  if (rinfo.port === 0) {
    // Nothing can receive a reply at port 0 (node:dgram refuses to send there): only a raw
    // socket sends from it, and its sender gets nothing, not even a forwarded question.
    counters[STAT.PORT0]!++;
    counters[STAT.DROPPED]!++;
    return;
  }
  const q = parseQuery(msg);
  if ('reject' in q) {
    const n = ctx.malformed.shouldLog(`${q.reject}:${q.reason}`, Date.now());
    if (n !== undefined) log.debug('malformed DNS message', { from: rinfo.address, reason: q.reason, ...(n ? { repeats: n } : {}) });
    if (q.reject === 'drop') {
      counters[STAT.DROPPED]!++;
      return;
    }
    const rcode = q.reject === 'notimp' ? RCODE.NOTIMP : RCODE.FORMERR;
    counters[STAT.RCODE + rcode]!++;
    sendUdp(sock, headerOnlyReply(msg, rcode), rinfo.port, rinfo.address);
    return;
  }
  const limit = udpLimit(q.edns, ctx.maxUdp);
  let a: Answer | undefined;
  try {
    a = answerFromZone(ctx.zone, q, msg, limit, ctx.maxUdp, ctx.random);
  } catch (err) {
    // A bug must cost one answer, not the server (and never send a mesh name upstream).
    log.error('DNS answer failed', { error: (err as Error).message });
    a = reply(q, msg, RCODE.SERVFAIL, false, limit, ctx.maxUdp);
  }
  if (a === undefined) {
    ctx.delegate(q, msg, limit, sock, rinfo);
    return;
  }
  counters[STAT.RCODE + a.rcode]!++;
  if (a.truncated) counters[STAT.TRUNCATED]!++;
  sendUdp(sock, a.bytes, rinfo.port, rinfo.address);
}
