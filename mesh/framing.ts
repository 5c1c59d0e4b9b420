/**
 * Length-prefixed JSON frames, the wire format of every weft stream (mesh control,
 * replication, API). A 4-byte big-endian length, then that many bytes of UTF-8 JSON.
 * The decoder refuses a frame longer than its limit before buffering it, so a hostile
 * peer cannot make us allocate more than `maxFrameBytes`.
 */

/** Bytes of the length prefix. */
const HEADER_BYTES = 4;

export class FrameError extends Error {}

export function encodeFrame(value: unknown): Uint8Array {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, HEADER_BYTES);
  return out;
}

/** One frame pulled from a FrameDecoder: its value, or why it was refused. A fatal refusal
 *  (a length past the limit) leaves nothing to resynchronise on: the decoder reads no more. */
export type Decoded = { ok: true; value: unknown } | { ok: false; reason: string; fatal: boolean };

/** Incremental decoder: push bytes as they arrive, get whole decoded frames out. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Set by an oversized frame: what follows its header cannot be trusted to be frames (a
   *  hostile or desynchronised sender), so it is dropped as it arrives, never buffered. */
  private failed = false;
  private readonly maxFrameBytes: number;

  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held for frames not yet complete (or complete but not yet pulled with `next`). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Returns the frames completed by `data`. Throws FrameError on an oversized frame or bad
   *  JSON; the stream is then unusable and the caller closes it. */
  push(data: Uint8Array): unknown[] {
    this.write(data);
    const frames: unknown[] = [];
    for (let d = this.next(); d; d = this.next()) {
      if (!d.ok) throw new FrameError(d.reason);
      frames.push(d.value);
    }
    return frames;
  }

  /** Adds bytes without decoding them: a reader that applies back-pressure pulls frames one
   *  at a time with `next`, so it never holds more decoded frames than it is serving. */
  write(data: Uint8Array): void {
    if (this.failed || data.byteLength === 0) return;
    this.chunks.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    this.buffered += data.byteLength;
  }

  /** Whether `next` has something to return (a frame, or a refusal) without more bytes. */
  ready(): boolean {
    if (this.buffered < HEADER_BYTES) return false;
    const len = this.peek(HEADER_BYTES).readUInt32BE(0);
    return len > this.maxFrameBytes || this.buffered >= HEADER_BYTES + len;
  }

  /** The next whole frame, or undefined until more bytes arrive. A frame that is not JSON is
   *  consumed and refused, and the frames after it still decode; an oversized one is refused
   *  from its header alone, fatally. */
  next(): Decoded | undefined {
    if (this.buffered < HEADER_BYTES) return undefined;
    const len = this.peek(HEADER_BYTES).readUInt32BE(0);
    if (len > this.maxFrameBytes) {
      this.failed = true;
      this.chunks = [];
      this.buffered = 0;
      return { ok: false, fatal: true, reason: `frame of ${len} bytes exceeds the limit of ${this.maxFrameBytes}` };
    }
    if (this.buffered < HEADER_BYTES + len) return undefined;
    const whole = this.take(HEADER_BYTES + len);
    try {
      return { ok: true, value: JSON.parse(whole.toString('utf8', HEADER_BYTES)) };
    } catch {
      return { ok: false, fatal: false, reason: 'frame is not valid JSON' };
    }
  }

  private peek(n: number): Buffer {
    if ((this.chunks[0]?.length ?? 0) >= n) return this.chunks[0] as Buffer;
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined;
  }

  private take(n: number): Buffer {
    const joined = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const out = joined.subarray(0, n);
    const rest = joined.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered -= n;
    return out;
  }
}
