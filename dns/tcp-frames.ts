// DNS over TCP frames every message with a two-octet length (RFC 1035 §4.2.2, RFC 7766).
// Pure: bytes in, whole messages out. Memory is bounded by one message (at most 65,535
// octets) plus the chunk being pushed; chunks are joined once per message, so a client that
// sends one octet at a time costs linear, not quadratic, work.

import { MAX_MESSAGE } from './packet.ts';

export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Length of the message being read, or -1 while its prefix is incomplete. */
  private need = -1;

  /** Octets held and not yet taken as messages (0 between messages). */
  get pending(): number {
    return this.buffered;
  }

  /** Feeds bytes; returns the messages they complete, in order. */
  push(chunk: Buffer): Buffer[] {
    this.add(chunk);
    const out: Buffer[] = [];
    for (let m = this.next(); m !== undefined; m = this.next()) out.push(m);
    return out;
  }

  /** Feeds bytes without taking messages out (a server that takes them one at a time, as it
   *  can answer them, holds at most what it has read). */
  add(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next whole message, or undefined until more bytes come. */
  next(): Buffer | undefined {
    if (this.need < 0) {
      if (this.buffered < 2) return undefined;
      const head = this.take(2);
      this.need = (head[0]! << 8) | head[1]!;
    }
    if (this.buffered < this.need) return undefined;
    const m = this.take(this.need);
    this.need = -1;
    return m;
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    let result: Buffer;
    if (first.length >= n) {
      result = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks, this.buffered);
      result = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return result;
  }
}

/** A message with its length prefix, ready to write. */
export function frame(message: Buffer): Buffer {
  if (message.length > MAX_MESSAGE) throw new Error(`DNS message of ${message.length} octets exceeds ${MAX_MESSAGE}`);
  const out = Buffer.allocUnsafe(message.length + 2);
  out[0] = message.length >>> 8;
  out[1] = message.length & 0xff;
  message.copy(out, 2);
  return out;
}
