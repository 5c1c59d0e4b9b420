// A small MessagePack codec, just enough for Serf's RPC protocol (bench/lib/serf.ts): maps,
// arrays, strings, byte strings, integers, floats, booleans and nil. Serf's agent speaks the
// old spec on input (no str8), so strings and byte strings are written as fixstr/str16/str32,
// which every decoder accepts; everything the new spec defines is read.

export type Value = null | boolean | number | string | Uint8Array | Value[] | { [k: string]: Value };

/** Encodes one value. Byte strings are written as raw strings (old spec), which Go decodes
 *  into []byte. */
export function encode(v: Value): Buffer {
  const parts: Buffer[] = [];
  write(v, parts);
  return Buffer.concat(parts);
}

function write(v: Value, out: Buffer[]): void {
  if (v === null) out.push(Buffer.from([0xc0]));
  else if (typeof v === 'boolean') out.push(Buffer.from([v ? 0xc3 : 0xc2]));
  else if (typeof v === 'number') writeNumber(v, out);
  else if (typeof v === 'string') writeRaw(Buffer.from(v, 'utf8'), out);
  else if (v instanceof Uint8Array) writeRaw(Buffer.from(v), out);
  else if (Array.isArray(v)) {
    writeLength(v.length, 0x90, 0xdc, out);
    for (const x of v) write(x, out);
  } else {
    const keys = Object.keys(v);
    writeLength(keys.length, 0x80, 0xde, out);
    for (const k of keys) {
      write(k, out);
      write(v[k] as Value, out);
    }
  }
}

function writeNumber(n: number, out: Buffer[]): void {
  if (!Number.isInteger(n)) {
    const b = Buffer.alloc(9);
    b[0] = 0xcb;
    b.writeDoubleBE(n, 1);
    out.push(b);
  } else if (n >= 0 && n < 0x80) out.push(Buffer.from([n]));
  else if (n < 0 && n >= -32) out.push(Buffer.from([n & 0xff]));
  else if (n >= 0 && n <= 0xffffffff) {
    const b = Buffer.alloc(5);
    b[0] = 0xce;
    b.writeUInt32BE(n, 1);
    out.push(b);
  } else if (n < 0 && n >= -0x80000000) {
    const b = Buffer.alloc(5);
    b[0] = 0xd2;
    b.writeInt32BE(n, 1);
    out.push(b);
  } else {
    const b = Buffer.alloc(9);
    b[0] = n >= 0 ? 0xcf : 0xd3;
    if (n >= 0) b.writeBigUInt64BE(BigInt(n), 1);
    else b.writeBigInt64BE(BigInt(n), 1);
    out.push(b);
  }
}

function writeRaw(bytes: Buffer, out: Buffer[]): void {
  const n = bytes.length;
  if (n < 32) out.push(Buffer.from([0xa0 | n]));
  else if (n <= 0xffff) {
    const b = Buffer.alloc(3);
    b[0] = 0xda;
    b.writeUInt16BE(n, 1);
    out.push(b);
  } else {
    const b = Buffer.alloc(5);
    b[0] = 0xdb;
    b.writeUInt32BE(n, 1);
    out.push(b);
  }
  out.push(bytes);
}

function writeLength(n: number, fix: number, code16: number, out: Buffer[]): void {
  if (n < 16) out.push(Buffer.from([fix | n]));
  else if (n <= 0xffff) {
    const b = Buffer.alloc(3);
    b[0] = code16;
    b.writeUInt16BE(n, 1);
    out.push(b);
  } else {
    const b = Buffer.alloc(5);
    b[0] = code16 + 1;
    b.writeUInt32BE(n, 1);
    out.push(b);
  }
}

/** Thrown inside the decoder when the buffer ends mid-value; the Reader waits for more. */
class Underflow extends Error {}

/** Limit for one value: Serf's replies are a few KiB (a member list of 200 is ~40 KiB). */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

/** Decodes a stream of concatenated values as bytes arrive (one socket, many messages). */
export class Reader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.buf.length > MAX_BUFFERED_BYTES) throw new Error(`msgpack: more than ${MAX_BUFFERED_BYTES} bytes without a complete value`);
  }

  /** The next complete value, or undefined until more bytes arrive. */
  next(): Value | undefined {
    if (this.buf.length === 0) return undefined;
    const cur = { buf: this.buf, pos: 0 };
    let v: Value;
    try {
      v = read(cur);
    } catch (e) {
      if (e instanceof Underflow) return undefined;
      throw e;
    }
    this.buf = this.buf.subarray(cur.pos);
    return v;
  }
}

interface Cursor {
  buf: Buffer;
  pos: number;
}

function take(c: Cursor, n: number): Buffer {
  if (c.pos + n > c.buf.length) throw new Underflow();
  const b = c.buf.subarray(c.pos, c.pos + n);
  c.pos += n;
  return b;
}

const u8 = (c: Cursor) => take(c, 1).readUInt8(0);
const u16 = (c: Cursor) => take(c, 2).readUInt16BE(0);
const u32 = (c: Cursor) => take(c, 4).readUInt32BE(0);

function read(c: Cursor): Value {
  const t = u8(c);
  if (t < 0x80) return t;
  if (t >= 0xe0) return t - 0x100;
  if (t >= 0x80 && t <= 0x8f) return readMap(c, t & 0x0f);
  if (t >= 0x90 && t <= 0x9f) return readArray(c, t & 0x0f);
  if (t >= 0xa0 && t <= 0xbf) return take(c, t & 0x1f).toString('utf8');
  switch (t) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return Buffer.from(take(c, u8(c)));
    case 0xc5: return Buffer.from(take(c, u16(c)));
    case 0xc6: return Buffer.from(take(c, u32(c)));
    case 0xc7: { const n = u8(c); take(c, 1); return Buffer.from(take(c, n)); }
    case 0xc8: { const n = u16(c); take(c, 1); return Buffer.from(take(c, n)); }
    case 0xc9: { const n = u32(c); take(c, 1); return Buffer.from(take(c, n)); }
    case 0xca: return take(c, 4).readFloatBE(0);
    case 0xcb: return take(c, 8).readDoubleBE(0);
    case 0xcc: return u8(c);
    case 0xcd: return u16(c);
    case 0xce: return u32(c);
    case 0xcf: return Number(take(c, 8).readBigUInt64BE(0));
    case 0xd0: return take(c, 1).readInt8(0);
    case 0xd1: return take(c, 2).readInt16BE(0);
    case 0xd2: return take(c, 4).readInt32BE(0);
    case 0xd3: return Number(take(c, 8).readBigInt64BE(0));
    case 0xd4: take(c, 1); return Buffer.from(take(c, 1));
    case 0xd5: take(c, 1); return Buffer.from(take(c, 2));
    case 0xd6: take(c, 1); return Buffer.from(take(c, 4));
    case 0xd7: take(c, 1); return Buffer.from(take(c, 8));
    case 0xd8: take(c, 1); return Buffer.from(take(c, 16));
    case 0xd9: return take(c, u8(c)).toString('utf8');
    case 0xda: return take(c, u16(c)).toString('utf8');
    case 0xdb: return take(c, u32(c)).toString('utf8');
    case 0xdc: return readArray(c, u16(c));
    case 0xdd: return readArray(c, u32(c));
    case 0xde: return readMap(c, u16(c));
    case 0xdf: return readMap(c, u32(c));
    default: throw new Error(`msgpack: unknown type byte 0x${t.toString(16)}`);
  }
}

function readArray(c: Cursor, n: number): Value[] {
  const a: Value[] = [];
  for (let i = 0; i < n; i++) a.push(read(c));
  return a;
}

function readMap(c: Cursor, n: number): { [k: string]: Value } {
  const m: { [k: string]: Value } = {};
  for (let i = 0; i < n; i++) {
    const k = read(c);
    m[typeof k === 'string' ? k : String(k)] = read(c);
  }
  return m;
}
