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

/** Incremental decoder: push bytes as they arrive, get whole decoded frames out. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly maxFrameBytes: number;

  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Returns the frames completed by `data`. Throws FrameError on an oversized frame or bad
   *  JSON; the stream is then unusable and the caller closes it. */
  push(data: Uint8Array): unknown[] {
    this.chunks.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    this.buffered += data.byteLength;
    const frames: unknown[] = [];
    for (;;) {
      if (this.buffered < HEADER_BYTES) break;
      const head = this.peek(HEADER_BYTES);
      const len = head.readUInt32BE(0);
      if (len > this.maxFrameBytes) {
        throw new FrameError(`frame of ${len} bytes exceeds the limit of ${this.maxFrameBytes}`);
      }
      if (this.buffered < HEADER_BYTES + len) break;
      const whole = this.take(HEADER_BYTES + len);
      try {
        frames.push(JSON.parse(whole.toString('utf8', HEADER_BYTES)));
      } catch {
        throw new FrameError('frame is not valid JSON');
      }
    }
    return frames;
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
