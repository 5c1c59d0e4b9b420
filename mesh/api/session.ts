/**
 * One API client connection (a unix socket or a libp2p stream): decodes its requests one at
 * a time, runs at most MAX_REQUESTS_PER_STREAM of them (and no more than its caller's budget
 * allows), and sends replies only as fast as the client takes them. When it cannot start a
 * request it stops reading, so a client that pipelines without reading is held back by its
 * own transport instead of by our memory. The transport adapters live in server.ts.
 */
import { encodeFrame, FrameDecoder, type Decoded } from '../framing.ts';
import { errorText, type Logger } from '../log.ts';
import { LogOnce } from '../log-once.ts';
import { parseRequest, UserError, type ApiContext, type ApiHandler } from './request.ts';
import {
  CallerBudget, MAX_QUEUED_BYTES_PER_STREAM, MAX_REQUEST_BYTES, MAX_REQUESTS_PER_STREAM,
} from './limits.ts';

/** What a session needs of its connection. */
export interface ApiTransport {
  /** Hands bytes on; false when the transport wants no more until `drained` resolves. */
  write(bytes: Uint8Array): boolean;
  /** Resolves when the transport takes bytes again, or when it has closed. */
  drained(): Promise<void>;
  /** Bytes the transport holds that the client has not taken yet. */
  buffered(): number;
  pauseReading(): void;
  resumeReading(): void;
  /** Ends our side once everything written has been sent. */
  finish(): void;
  /** Ends the connection now, dropping what is unsent. */
  abort(reason: string): void;
}

interface Queued {
  bytes: Uint8Array;
  /** The request whose slot frees once these bytes are handed to the transport. */
  final: boolean;
}

export class ApiSession {
  readonly caller: string;
  /** Resolves when the client is gone or has sent its last byte (what ApiContext.closed says). */
  readonly closed: Promise<void>;
  private readonly transport: ApiTransport;
  private readonly budget: CallerBudget;
  private readonly handler: ApiHandler;
  private readonly log: Logger;
  private readonly rejections: LogOnce;
  private readonly decoder = new FrameDecoder(MAX_REQUEST_BYTES);
  private resolveClosed!: () => void;
  /** Requests started whose final reply has not yet been handed to the transport. */
  private running = 0;
  private readonly queue: Queued[] = [];
  private queuedBytes = 0;
  private waitingForDrain = false;
  private readingPaused = false;
  private inputEnded = false;
  private finished = false;
  private gone = false;
  private pumpScheduled = false;
  private readonly wake = (): void => this.schedulePump();

  /** `rejections` is shared by the server's sessions, so that a client sending garbage on many
   *  streams costs one log line a minute, not one per frame. */
  constructor(opts: {
    transport: ApiTransport; caller: string; budget: CallerBudget; handler: ApiHandler; log: Logger;
    rejections?: LogOnce;
  }) {
    this.transport = opts.transport;
    this.caller = opts.caller;
    this.budget = opts.budget;
    this.handler = opts.handler;
    this.log = opts.log;
    this.rejections = opts.rejections ?? new LogOnce();
    this.closed = new Promise<void>((r) => (this.resolveClosed = r));
  }

  /** Requests started and not yet answered to the transport. */
  get requestsInFlight(): number {
    return this.running;
  }

  /** Reply bytes held for a client that has not taken them: ours and the transport's. */
  get bytesQueued(): number {
    return this.gone ? 0 : this.queuedBytes + this.transport.buffered();
  }

  /** Bytes from the client. */
  receive(bytes: Uint8Array): void {
    if (this.gone) return;
    this.decoder.write(bytes);
    this.pump();
  }

  /** The client will send nothing more: answer what it sent, then end our side. (Also what
   *  a fatal framing error amounts to.) */
  endOfInput(): void {
    if (this.inputEnded) return;
    this.inputEnded = true;
    this.resolveClosed();
    this.pump();
  }

  /** The connection is closed (by the client, by us, or by the transport failing). */
  onClose(): void {
    if (this.gone) return;
    this.gone = true;
    this.resolveClosed();
    this.budget.forget(this.caller, this.wake);
    const dropped = this.queue.splice(0);
    this.budget.removeBytes(this.caller, this.queuedBytes);
    this.queuedBytes = 0;
    for (const q of dropped) if (q.final) this.releaseSlot();
  }

  /** Starts requests while the bounds allow, else stops reading until they do. */
  private pump(): void {
    while (!this.gone) {
      if (this.inputEnded && !this.decoder.ready()) {
        // Whatever still arrives is dropped unread, so keep taking it rather than buffer it.
        this.resumeReading();
        return this.maybeFinish();
      }
      if (this.waitingForDrain || this.running >= MAX_REQUESTS_PER_STREAM) return this.pauseReading();
      if (!this.decoder.ready()) return this.resumeReading();
      // Take the caller's slot before decoding, so a frame is never decoded and then held.
      if (!this.budget.acquire(this.caller, this.wake)) return this.pauseReading();
      const next = this.decoder.next() as Decoded; // ready() said there is one
      this.running++;
      if (next.ok) {
        void this.serve(next.value);
      } else if (!next.fatal) {
        this.refuse(-1, next.reason);
      } else {
        // Nothing after a length past the limit can be trusted to be a request: answer the
        // requests already running, then end the connection. Bytes that still come are
        // dropped by the decoder, and reading goes on so that they are not buffered either.
        this.refuse(-1, `${next.reason}; no further requests are read on this connection`);
        this.inputEnded = true;
        this.resolveClosed();
      }
    }
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.gone) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** A malformed frame gets one error reply; the requests around it are served as usual. */
  private refuse(id: number, reason: string): void {
    const repeats = this.rejections.shouldLog(`${this.caller} ${reason.replace(/\d+/g, 'N')}`, Date.now());
    if (repeats !== undefined) this.log.warn('rejected API request', { caller: this.caller, reason, repeats: repeats || undefined });
    this.enqueue({ id, error: { message: reason } }, true);
  }

  private async serve(frame: unknown): Promise<void> {
    const req = parseRequest(frame);
    if (typeof req === 'string') {
      const id = (frame as { id?: unknown } | null)?.id;
      return this.refuse(typeof id === 'number' && Number.isSafeInteger(id) ? id : -1, req);
    }
    let done = false;
    const ctx: ApiContext = {
      emit: (event) => { if (!done) this.enqueue({ id: req.id, event }, false); },
      closed: this.closed,
      caller: this.caller,
    };
    let reply: unknown;
    try {
      reply = { id: req.id, result: (await this.handler(req, ctx)) ?? null };
    } catch (err) {
      if (!(err instanceof UserError)) this.log.error('API request failed', { method: req.method, err: errorText(err) });
      reply = { id: req.id, error: { message: errorText(err) } };
    }
    done = true;
    this.enqueue(reply, true);
  }

  /** Sends a reply frame now if the transport takes it, else queues it within the bounds. */
  private enqueue(frame: unknown, final: boolean): void {
    if (this.gone) {
      if (final) this.releaseSlot();
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame(frame);
    } catch (err) {
      // A result JSON cannot carry (a cycle, a BigInt) is the handler's bug, not the client's.
      this.log.error('API reply cannot be encoded', { caller: this.caller, err: errorText(err) });
      if (!final) return;
      bytes = encodeFrame({ id: (frame as { id: number }).id, error: { message: 'the peer could not encode its reply' } });
    }
    if (!this.waitingForDrain && this.queue.length === 0) {
      this.writeNow({ bytes, final });
      return;
    }
    if (this.queuedBytes + bytes.byteLength > MAX_QUEUED_BYTES_PER_STREAM) {
      return this.drop(`it does not read its replies (${this.queuedBytes + bytes.byteLength} bytes queued on one stream, limit ${MAX_QUEUED_BYTES_PER_STREAM})`, final);
    }
    if (!this.budget.addBytes(this.caller, bytes.byteLength)) {
      return this.drop('it does not read its replies (its queued replies across streams passed the limit)', final);
    }
    this.queue.push({ bytes, final });
    this.queuedBytes += bytes.byteLength;
  }

  private drop(reason: string, final: boolean): void {
    this.log.warn('dropped API client', { caller: this.caller, reason });
    if (final) this.releaseSlot();
    this.transport.abort(`dropped: ${reason}`);
    this.onClose();
  }

  private writeNow(q: Queued): void {
    const more = this.transport.write(q.bytes);
    if (q.final) this.releaseSlot();
    if (!more && !this.gone) this.awaitDrain();
  }

  private awaitDrain(): void {
    this.waitingForDrain = true;
    this.pauseReading();
    void this.transport.drained().then(() => {
      this.waitingForDrain = false;
      this.flush();
    });
  }

  private flush(): void {
    while (!this.gone && !this.waitingForDrain && this.queue.length > 0) {
      const q = this.queue.shift() as Queued;
      this.queuedBytes -= q.bytes.byteLength;
      this.budget.removeBytes(this.caller, q.bytes.byteLength);
      this.writeNow(q);
    }
    this.schedulePump();
  }

  private releaseSlot(): void {
    this.running--;
    this.budget.release(this.caller);
    this.schedulePump();
  }

  private maybeFinish(): void {
    if (this.finished || this.gone || this.running > 0 || this.queue.length > 0 || this.waitingForDrain) return;
    this.finished = true;
    this.transport.finish();
  }

  private pauseReading(): void {
    if (this.readingPaused || this.gone) return;
    this.readingPaused = true;
    this.transport.pauseReading();
  }

  private resumeReading(): void {
    if (!this.readingPaused || this.gone) return;
    this.readingPaused = false;
    this.transport.resumeReading();
  }
}
