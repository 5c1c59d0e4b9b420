import type { Libp2p, Stream, Connection } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { encodeFrame, FrameDecoder } from '../framing.ts';
import { errorText, type Logger } from '../log.ts';

/**
 * A message channel between mesh members over one libp2p protocol: one long-lived
 * outbound stream per peer for what we send, the peer's inbound stream for what it sends.
 * Separate channels (control vs bulk replication) keep heartbeats from queueing behind a
 * large state transfer: yamux gives each stream its own flow-control window.
 */
export interface ChannelOptions {
  protocol: string;
  /** Largest frame we accept from a peer. */
  maxFrameBytes: number;
  /** Largest backlog we keep for one slow peer before dropping messages. Dropping is safe:
   *  control messages are periodic and replication is repaired by anti-entropy. */
  maxQueueBytes: number;
  /** May return a promise while it cannot take more from this peer: the read loop waits for
   *  it, so a fast sender is slowed by the stream's flow control instead of losing messages. */
  onMessage(from: string, msg: unknown, conn: Connection): void | Promise<void>;
  /** Whether a connection may use this channel at all (API-token clients may not). */
  accept?(conn: Connection): boolean;
  /** A peer opened its side of the channel to us. */
  onInbound?(from: string, conn: Connection): void;
}

/** What we let sit in a stream's own write buffer before waiting: yamux fires 'drain' on
 *  every window update while data is still queued, so `send() === false` alone would let a
 *  large state transfer pile up whole in memory. A few frames keep the pipe full. */
const STREAM_HIGH_WATER_BYTES = 2 * 1024 * 1024;
/** A stream that makes no room for this long is stuck; the flush gives up on it and the
 *  caller's periodic traffic (heartbeats, anti-entropy) retries on a fresh stream. */
const STALL_TIMEOUT_MS = 30_000;

/** Resolves once the stream's write buffer is under the high-water mark, or it closed. */
async function waitForRoom(stream: Stream): Promise<void> {
  const deadline = Date.now() + STALL_TIMEOUT_MS;
  while (stream.writeBufferLength > STREAM_HIGH_WATER_BYTES && stream.writeStatus === 'writable') {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`stream made no room for ${STALL_TIMEOUT_MS / 1000} s`);
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stream.removeEventListener('drain', done);
        stream.removeEventListener('close', done);
        resolve();
      };
      // Re-check at least every second: events are the fast path, not the only one.
      const timer = setTimeout(done, Math.min(left, 1000));
      stream.addEventListener('drain', done);
      stream.addEventListener('close', done);
    });
  }
}

interface Outbound {
  stream?: Stream;
  opening?: Promise<Stream | undefined>;
  queue: Uint8Array[];
  queuedBytes: number;
  flushing: boolean;
}

export interface ChannelStats {
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  dropped: number;
  rejected: number;
}

export class Channel {
  private readonly out = new Map<string, Outbound>();
  readonly stats: ChannelStats = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, rejected: 0 };
  private readonly node: Libp2p;
  private readonly opts: ChannelOptions;
  private readonly log: Logger;
  private readonly inbound = new Set<Stream>();
  private stopping = false;

  constructor(node: Libp2p, opts: ChannelOptions, log: Logger) {
    this.node = node;
    this.opts = opts;
    this.log = log;
  }

  async start(): Promise<void> {
    await this.node.handle(this.opts.protocol, (stream, conn) => this.readLoop(stream, conn), {
      // One stream per direction per peer is all we use; a few spare for reconnect races.
      maxInboundStreams: 4,
      maxOutboundStreams: 4,
    });
  }

  /** Queues `msg` for `to`; never blocks. Returns false when it had to drop it. */
  send(to: string, msg: unknown): boolean {
    const frame = encodeFrame(msg);
    let o = this.out.get(to);
    if (!o) {
      o = { queue: [], queuedBytes: 0, flushing: false };
      this.out.set(to, o);
    }
    if (o.queuedBytes + frame.length > this.opts.maxQueueBytes && o.queue.length > 0) {
      this.stats.dropped++;
      return false;
    }
    o.queue.push(frame);
    o.queuedBytes += frame.length;
    void this.flush(to, o);
    return true;
  }

  /** Forgets the outbound stream to a peer (its connection closed). */
  reset(peer: string): void {
    const o = this.out.get(peer);
    if (!o) return;
    this.out.delete(peer);
    o.stream?.abort(new Error('peer disconnected'));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const peer of [...this.out.keys()]) this.reset(peer);
    for (const s of this.inbound) s.abort(new Error('peer stopping'));
    await this.node.unhandle(this.opts.protocol).catch(() => undefined);
  }

  private async flush(to: string, o: Outbound): Promise<void> {
    if (o.flushing) return;
    o.flushing = true;
    try {
      while (o.queue.length > 0) {
        const stream = o.stream && o.stream.writeStatus === 'writable' ? o.stream : await this.open(to, o);
        if (!stream) {
          // Not connected: drop the backlog; the caller resends what matters on reconnect.
          this.stats.dropped += o.queue.length;
          o.queue = [];
          o.queuedBytes = 0;
          return;
        }
        const frame = o.queue.shift() as Uint8Array;
        o.queuedBytes -= frame.length;
        this.stats.messagesOut++;
        this.stats.bytesOut += frame.length;
        if (!stream.send(frame)) await waitForRoom(stream);
      }
    } catch (err) {
      this.log.debug('send failed', { peer: to, protocol: this.opts.protocol, err: errorText(err) });
      this.reset(to);
    } finally {
      o.flushing = false;
    }
  }

  private async open(to: string, o: Outbound): Promise<Stream | undefined> {
    o.stream = undefined;
    try {
      // Over a connection we have, never by dialing: connecting to members is the dialer's
      // job (it knows their addresses and backs off). Asking libp2p to dial a peer id it has
      // no address for throws after a peer-routing lookup, and with a probe every 200 ms to
      // members not yet connected that was a visible share of a joining peer's CPU.
      const conn = this.node.getConnections(peerIdFromString(to)).find((c) => c.status === 'open');
      if (!conn) return undefined;
      const stream = await conn.newStream(this.opts.protocol, { signal: AbortSignal.timeout(5000) });
      o.stream = stream;
      // We never read from our outbound stream; drain anything the remote writes.
      void (async () => {
        try {
          for await (const _ of stream) { /* outbound streams carry no replies */ }
        } catch { /* closed */ }
      })();
      return stream;
    } catch (err) {
      this.log.debug('cannot open stream', { peer: to, protocol: this.opts.protocol, err: errorText(err) });
      return undefined;
    }
  }

  private async readLoop(stream: Stream, conn: Connection): Promise<void> {
    const from = conn.remotePeer.toString();
    if (this.opts.accept && !this.opts.accept(conn)) {
      this.stats.rejected++;
      this.log.warn('refused mesh traffic from an API client', { peer: from, protocol: this.opts.protocol });
      stream.abort(new Error('API clients may not take part in the mesh'));
      return;
    }
    const decoder = new FrameDecoder(this.opts.maxFrameBytes);
    this.inbound.add(stream);
    try {
      // Inside the try: whatever a callback throws on a peer's input ends this stream, with a
      // logged reason, and never the peer.
      this.opts.onInbound?.(from, conn);
      for await (const chunk of stream) {
        const bytes = chunk instanceof Uint8Array ? chunk : chunk.subarray();
        this.stats.bytesIn += bytes.byteLength;
        for (const msg of decoder.push(bytes)) {
          this.stats.messagesIn++;
          const wait = this.opts.onMessage(from, msg, conn);
          if (wait) await wait;
        }
      }
    } catch (err) {
      if (this.stopping || stream.status === 'reset' || stream.status === 'aborted') return;
      this.stats.rejected++;
      this.log.warn('closing stream from peer', { peer: from, protocol: this.opts.protocol, reason: errorText(err) });
      stream.abort(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.inbound.delete(stream);
    }
  }
}
