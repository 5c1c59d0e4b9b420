// Mesh admission: only holders of the mesh password get a connection, and admitted
// connections carry bulk traffic. Real libp2p nodes over TCP on 127.0.0.1 (Noise + yamux);
// wire-format checks drive one end by hand over libp2p's in-memory connection pair.

import { createCipheriv, createHash, createHmac, generateKeyPairSync, hkdfSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { ristretto255, ristretto255_hasher } from '@noble/curves/ed25519.js';
import net from 'node:net';
import { inspect } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Connection, Libp2p, Stream } from '@libp2p/interface';
import { disable as disableLibp2pLogs, enable as enableLibp2pLogs } from '@libp2p/logger';
import { tcp } from '@libp2p/tcp';
import { byteStream, multiaddrConnectionPair } from '@libp2p/utils';
import { createLibp2p } from 'libp2p';
import { afterEach, describe, expect, test } from 'vitest';
import {
  ADMISSION_MAGIC,
  ADMISSION_REJECTED,
  ADMISSION_VERSION,
  HEADER_LENGTH,
  MAX_PENDING_INBOUND,
  MeshAdmissionError,
  meshAdmission,
  type AdmissionAdmittedInfo,
  type ApiTokenCredential,
  type AdmissionRejectedInfo,
} from '../mesh/admission/admission.ts';
import { deriveMeshKey } from '../mesh/admission/mesh-key.ts';

// Distinctive, so a leak into any captured text is unmistakable.
const PASSWORD = `weft-test-password-${randomBytes(6).toString('hex')}`;
const OTHER_PASSWORD = `weft-other-password-${randomBytes(6).toString('hex')}`;
const KEY = deriveMeshKey(PASSWORD);
const OTHER_KEY = deriveMeshKey(OTHER_PASSWORD);

const ECHO = '/weft/test/echo/1.0.0';
const BULK = '/weft/test/bulk/1.0.0';
const MiB = 1024 * 1024;
/** Sender-side queue the bulk test allows before it waits: a few chunks keep the pipe full. */
const SEND_QUEUE_BOUND = 2 * MiB;
/** Live buffer bytes allowed in the whole process during the 256 MiB run. Measured 6-110 MiB
 *  with or without admission on a loaded 2-core host (yamux windows of up to 16 MiB, Noise and
 *  socket queues on both peers); a sender whose queue grows with the transfer reaches 256+. */
const LIVE_BUFFER_BOUND = 160 * MiB;
/** Many small test connections from one address inside a second: lift libp2p's per-host
 *  inbound rate limit (default 5/s) so it never decides a test. */
const INBOUND_THRESHOLD = 1_000;

interface Events {
  rejected: AdmissionRejectedInfo[];
  admitted: AdmissionAdmittedInfo[];
}

const nodes: Libp2p[] = [];
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.allSettled(nodes.splice(0).map((node) => node.stop()));
});

async function startNode(key: Uint8Array | undefined, opts: { timeoutMs?: number; monitor?: boolean; apiToken?: ApiTokenCredential; apiTokenKey?: (id: string) => KeyObject | undefined } = {}): Promise<{ node: Libp2p; events: Events }> {
  const events: Events = { rejected: [], admitted: [] };
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { inboundConnectionThreshold: INBOUND_THRESHOLD, maxIncomingPendingConnections: MAX_PENDING_INBOUND },
    connectionMonitor: { enabled: opts.monitor ?? true },
    connectionProtector: meshAdmission({
      key,
      timeoutMs: opts.timeoutMs,
      apiToken: opts.apiToken,
      apiTokenKey: opts.apiTokenKey,
      onRejected: (info) => events.rejected.push(info),
      onAdmitted: (info) => events.admitted.push(info),
    }),
  });
  nodes.push(node);
  return { node, events };
}

function addrOf(node: Libp2p) {
  const addr = node.getMultiaddrs()[0];
  if (addr == null) throw new Error('node has no listen address');
  return addr;
}

function tcpPortOf(node: Libp2p): number {
  const port = addrOf(node).toString().match(/\/tcp\/(\d+)/)?.[1];
  if (port == null) throw new Error('node has no tcp port');
  return Number(port);
}

async function readAll(stream: Stream): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk.subarray());
  return Buffer.concat(chunks);
}

async function sendAll(stream: Stream, data: Uint8Array): Promise<void> {
  if (!stream.send(data)) await stream.onDrain();
}

/**
 * Sends a chunk and, when the stream says it is full, waits until its queue is below
 * SEND_QUEUE_BOUND. `await stream.onDrain()` alone is not enough with yamux: it fires 'drain'
 * on every window update while megabytes are still queued, so a sender that only awaits
 * onDrain() queues the whole transfer in memory (measured: 1 GiB queued for a 1 GiB send).
 */
async function sendBounded(stream: Stream, chunk: Uint8Array, flow: { waits: number; peakQueued: number }): Promise<void> {
  const full = !stream.send(chunk);
  flow.peakQueued = Math.max(flow.peakQueued, stream.writeBufferLength);
  if (!full) return;
  flow.waits++;
  while (stream.writeBufferLength > SEND_QUEUE_BOUND && stream.status === 'open') {
    await new Promise<void>((resolve) => {
      const events = ['drain', 'idle', 'close'] as const;
      const done = () => {
        for (const e of events) stream.removeEventListener(e, done);
        resolve();
      };
      for (const e of events) stream.addEventListener(e, done);
    });
  }
}

/** Full garbage collection, so live buffer bytes can be measured instead of garbage. */
function exposeGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function serveEcho(node: Libp2p, ran?: { count: number }): Promise<void> {
  return node.handle(ECHO, async (stream: Stream, _connection: Connection) => {
    if (ran != null) ran.count++;
    const request = await readAll(stream);
    await sendAll(stream, Buffer.concat([Buffer.from('echo: '), request]));
    await stream.close();
  });
}

async function echoThrough(from: Libp2p, to: Libp2p, message: string): Promise<string> {
  const stream = await from.dialProtocol(addrOf(to), ECHO);
  await sendAll(stream, Buffer.from(message));
  await stream.close();
  return (await readAll(stream)).toString();
}

/** Every string an error can print: message, stack, causes and aggregated errors. */
function errorText(err: unknown): string {
  return `${String(err)}\n${(err as Error)?.stack ?? ''}\n${inspect(err, { depth: 10 })}`;
}

describe('mesh key', () => {
  test('the same password gives every peer the same 32-byte key; another password does not', () => {
    expect(KEY.byteLength).toBe(32);
    expect(Buffer.from(deriveMeshKey(PASSWORD))).toEqual(Buffer.from(KEY));
    expect(Buffer.from(OTHER_KEY)).not.toEqual(Buffer.from(KEY));
  });

  test('an empty password is refused with a sentence saying so', () => {
    expect(() => deriveMeshKey('')).toThrow(/mesh password is empty/);
  });

  test('printing the key shows neither its bytes nor the password', () => {
    const hex = Buffer.from(KEY).toString('hex');
    for (const text of [String(KEY), `${KEY}`, JSON.stringify({ KEY }), inspect(KEY), inspect({ KEY })]) {
      expect(text).not.toContain(hex);
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toMatch(/\d+, \d+, \d+/); // no byte list either
    }
    expect(inspect(meshAdmission({ key: KEY })())).not.toMatch(/\d+, \d+, \d+/);
  });

  test('a key of the wrong size is refused before any connection', () => {
    expect(() => meshAdmission({ key: new Uint8Array(16) })).toThrow(/32 bytes/);
  });
});

describe('mesh admission over TCP', () => {
  test('two peers with the same password connect and exchange a message on a protocol', async () => {
    const a = await startNode(KEY);
    const b = await startNode(KEY);
    await serveEcho(b.node);

    expect(await echoThrough(a.node, b.node, 'hello mesh')).toBe('echo: hello mesh');

    expect(a.events.admitted).toEqual([{ remoteAddr: expect.stringContaining(`/tcp/${tcpPortOf(b.node)}`), direction: 'outbound', credential: 'mesh', connection: expect.anything() }]);
    await until('the listener to admit', () => b.events.admitted.length === 1);
    expect(b.events.admitted[0]?.direction).toBe('inbound');
    expect(a.events.rejected).toEqual([]);
    expect(b.events.rejected).toEqual([]);
    expect(b.node.getConnections(a.node.peerId)).toHaveLength(1);
  });

  test('bulk: 64 MiB then 256 MiB stream through one connection intact, in bounded memory', async () => {
    // The libp2p connection monitor pings every 10 s and aborts the connection when a ping
    // waits more than 5 s; with both peers and the bulk sender on two shared cores that
    // can happen under load, and it is libp2p's policy, not admission, so it is off here.
    const a = await startNode(KEY, { monitor: false });
    const b = await startNode(KEY, { monitor: false });
    await b.node.handle(BULK, async (stream: Stream) => {
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const chunk of stream) {
        const buf = chunk.subarray();
        hash.update(buf);
        bytes += buf.byteLength;
      }
      await sendAll(stream, Buffer.from(JSON.stringify({ bytes, sha256: hash.digest('hex') })));
      await stream.close();
    });

    const gc = exposeGc();
    const connection = await a.node.dial(addrOf(b.node));
    const base = randomBytes(MiB);
    for (const size of [64 * MiB, 256 * MiB]) {
      const stream = await connection.newStream(BULK);
      const sent = createHash('sha256');
      const flow = { waits: 0, peakQueued: 0 };
      gc();
      const baseline = process.memoryUsage().arrayBuffers;
      let peakLive = 0;
      const start = performance.now();
      for (let i = 0; i < size / MiB; i++) {
        // A fresh buffer per chunk (the muxer may hold it until written), numbered so a
        // reordered or repeated chunk changes the checksum.
        const chunk = Buffer.from(base);
        chunk.writeUInt32BE(i, 0);
        sent.update(chunk);
        await sendBounded(stream, chunk, flow);
        if (i % 32 === 31) {
          gc();
          peakLive = Math.max(peakLive, process.memoryUsage().arrayBuffers - baseline);
        }
      }
      await stream.close();
      const reply = JSON.parse((await readAll(stream)).toString()) as { bytes: number; sha256: string };
      const seconds = (performance.now() - start) / 1000;
      console.log(
        `admission bulk ${size / MiB} MiB: ${(size / MiB / seconds).toFixed(1)} MiB/s (${seconds.toFixed(2)} s; ` +
          `${flow.waits} back-pressure waits; peak ${(flow.peakQueued / MiB).toFixed(1)} MiB queued in the stream, ` +
          `peak ${(peakLive / MiB).toFixed(1)} MiB live buffers in the process)`,
      );
      expect(reply).toEqual({ bytes: size, sha256: sent.digest('hex') });
      expect(flow.waits).toBeGreaterThan(0);
      expect(flow.peakQueued).toBeLessThanOrEqual(SEND_QUEUE_BOUND + 2 * MiB);
      if (size === 256 * MiB) {
        // Both peers live in this process, so everything in flight (stream, muxer, Noise,
        // admission, socket queues, receiver) is counted.
        expect(peakLive).toBeLessThan(LIVE_BUFFER_BOUND);
      }
    }
    expect(a.node.getConnections()).toHaveLength(1);
  }, 50_000);

  test('wrong password: the dial fails, both sides say "wrong mesh password", nothing else runs', async () => {
    const a = await startNode(KEY);
    const b = await startNode(OTHER_KEY);
    const ran = { count: 0 };
    await serveEcho(b.node, ran);
    const opened: string[] = [];
    b.node.addEventListener('connection:open', (evt) => opened.push(evt.detail.remoteAddr.toString()));

    const dial = a.node.dialProtocol(addrOf(b.node), ECHO);
    const err = await dial.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).not.toBeNull();
    expect(errorText(err)).toContain('wrong mesh password');

    expect(a.events.rejected).toEqual([
      { remoteAddr: expect.stringContaining(`/ip4/127.0.0.1/tcp/${tcpPortOf(b.node)}`), direction: 'outbound', reason: ADMISSION_REJECTED.wrongPassword },
    ]);
    await until('the listener to reject', () => b.events.rejected.length === 1);
    expect(b.events.rejected).toEqual([
      { remoteAddr: expect.stringMatching(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/), direction: 'inbound', reason: ADMISSION_REJECTED.wrongPassword },
    ]);

    expect(a.events.admitted).toEqual([]);
    expect(b.events.admitted).toEqual([]);
    expect(b.node.getConnections()).toEqual([]);
    expect(a.node.getConnections()).toEqual([]);
    expect(await b.node.peerStore.has(a.node.peerId)).toBe(false);
    expect(opened).toEqual([]);
    expect(ran.count).toBe(0);
  });

  test('plain TCP clients sending garbage, another version or nothing are refused; good peers still get in', async () => {
    const b = await startNode(KEY, { timeoutMs: 400 });
    await serveEcho(b.node);
    const port = tcpPortOf(b.node);

    /** Connects, sends `payload` (if any), and returns what the node sent before closing. */
    const rawClient = (payload?: Uint8Array) =>
      new Promise<Buffer>((resolve, reject) => {
        const received: Buffer[] = [];
        const socket = net.connect(port, '127.0.0.1', () => {
          if (payload != null) socket.write(payload);
        });
        sockets.push(socket);
        socket.on('data', (buf) => received.push(buf));
        socket.on('error', () => {}); // a reset is one of the accepted endings
        socket.on('close', () => resolve(Buffer.concat(received)));
        setTimeout(() => reject(new Error('node never closed the raw connection')), 5_000).unref();
      });

    const http = await rawClient(Buffer.from('GET / HTTP/1.1\r\nHost: weft\r\n\r\n'));
    const future = await rawClient(Buffer.concat([ADMISSION_MAGIC, Buffer.from([ADMISSION_VERSION + 1]), randomBytes(32)]));
    const silent = await rawClient();

    // Whatever reached the client is the node's own header: magic, version, nonce.
    for (const reply of [http, future, silent]) {
      expect(reply.byteLength).toBeLessThanOrEqual(HEADER_LENGTH);
    }
    expect(silent.subarray(0, 5)).toEqual(Buffer.concat([ADMISSION_MAGIC, Buffer.from([ADMISSION_VERSION])]));
    expect(silent.byteLength).toBe(HEADER_LENGTH);

    await until('three rejections', () => b.events.rejected.length === 3);
    expect(b.events.rejected.map((r) => r.reason).sort()).toEqual(
      [ADMISSION_REJECTED.notWeft, ADMISSION_REJECTED.notWeft, ADMISSION_REJECTED.timedOut].sort(),
    );
    for (const r of b.events.rejected) {
      expect(r.direction).toBe('inbound');
      expect(r.remoteAddr).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/);
    }
    expect(b.node.status).toBe('started');
    expect(b.node.getConnections()).toEqual([]);

    const a = await startNode(KEY);
    expect(await echoThrough(a.node, b.node, 'still here?')).toBe('echo: still here?');
  });

  test('the password and key appear in no log line, callback or error, on success or refusal', async () => {
    const captured: string[] = [];
    const realWrite = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      captured.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
      return true;
    }) as typeof process.stderr.write;
    enableLibp2pLogs('libp2p:*');
    try {
      const a = await startNode(KEY);
      const b = await startNode(KEY);
      const c = await startNode(OTHER_KEY);
      await serveEcho(b.node);
      expect(await echoThrough(a.node, b.node, 'ok')).toBe('echo: ok');
      const err = await a.node.dial(addrOf(c.node)).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).not.toBeNull();
      await until('the other side to reject', () => c.events.rejected.length === 1);

      const texts = [
        ...captured,
        errorText(err),
        ...[a, b, c].map(({ events }) => JSON.stringify(events) + inspect(events, { depth: 10 })),
      ];
      const all = texts.join('\n');
      // The capture works: libp2p's debug log carries admission's own lines.
      expect(captured.join('')).toMatch(/admission.*refused outbound connection to .*wrong mesh password/);
      expect(captured.join('')).toMatch(/admission.*admitted inbound connection from/);
      for (const secret of [PASSWORD, OTHER_PASSWORD]) {
        expect(all).not.toContain(secret);
      }
      for (const key of [KEY, OTHER_KEY]) {
        expect(all).not.toContain(Buffer.from(key).toString('hex'));
        expect(all).not.toContain(Buffer.from(key).toString('base64'));
      }
    } finally {
      disableLibp2pLogs();
      process.stderr.write = realWrite;
    }
  });
});

// The handshake as the spec (the header of mesh/admission/admission.ts) words it, computed here with
// the curve library directly, independently of admission.ts and cpace.ts.
const Point = ristretto255.Point;
type RPoint = InstanceType<typeof Point>;
const lp = (b: Uint8Array) => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
const th = (...parts: Uint8Array[]) => {
  const h = createHash('sha512');
  for (const p of parts) h.update(lp(p));
  return h.digest();
};
const specGenerator = (key: Uint8Array, sid: Uint8Array) =>
  ristretto255_hasher.hashToCurve(Buffer.concat([lp(key), lp(sid)]), { DST: 'weft/admission/v2/cpace/generator' }) as RPoint;
const randomScalar = () => (BigInt(`0x${randomBytes(64).toString('hex')}`) % (Point.Fn.ORDER - 1n)) + 1n;
const specIsk = (k: Uint8Array, transcript: Uint8Array) => th(Buffer.from('weft/admission/v2/isk'), transcript, k).subarray(0, 32);
const specConfirm = (isk: Uint8Array, role: string, transcript: Uint8Array) => createHmac('sha256', isk).update(role).update(transcript).digest();
const specStream = (isk: Uint8Array, sid: Uint8Array, info: string) =>
  createCipheriv('chacha20', Buffer.from(hkdfSync('sha256', isk, sid, info, 32)), Buffer.alloc(16));
const header = (nonce: Uint8Array) => Buffer.concat([ADMISSION_MAGIC, Buffer.from([ADMISSION_VERSION]), nonce]);

/** A dialer driven by hand over the wire: headers, then a mesh hello under `key`. */
async function handDialer(wire: ReturnType<typeof byteStream>, key: Uint8Array) {
  const dialerNonce = randomBytes(32);
  await wire.write(header(dialerNonce));
  const listenerHeader = Buffer.from((await wire.read({ bytes: HEADER_LENGTH })).subarray());
  const sid = Buffer.concat([dialerNonce, listenerHeader.subarray(5)]);
  const y = randomScalar();
  const hello = Buffer.concat([Buffer.from([0x4d]), Buffer.alloc(8), specGenerator(key, sid).multiply(y).toBytes()]);
  await wire.write(hello);
  const share = Buffer.from((await wire.read({ bytes: 32 })).subarray());
  const transcript = th(header(dialerNonce), listenerHeader, hello, share);
  const isk = specIsk(Point.fromBytes(share).multiply(y).toBytes(), transcript);
  return { sid, transcript, isk, listenerHeader };
}

describe('admission wire format', () => {
  test('bytes the dialer sends right behind its confirmation reach the admitted stream, and the reply is encrypted per direction', async () => {
    const [dialerEnd, listenerEnd] = multiaddrConnectionPair();
    const admitted = meshAdmission({ key: KEY })().protect(listenerEnd);

    const wire = byteStream(dialerEnd);
    const { sid, transcript, isk, listenerHeader } = await handDialer(wire, KEY);
    expect(listenerHeader.subarray(0, 5)).toEqual(Buffer.concat([ADMISSION_MAGIC, Buffer.from([2])]));
    const toListener = specStream(isk, sid, 'weft/admission/v2/stream/dialer-to-listener');
    // Confirmation and first payload in ONE write, so they arrive together in the handshake's buffer.
    await wire.write(Buffer.concat([specConfirm(isk, 'D', transcript), toListener.update('first bytes after the confirmation')]));
    const listenerConfirm = Buffer.from((await wire.read({ bytes: 32 })).subarray());
    expect(listenerConfirm).toEqual(specConfirm(isk, 'L', transcript));

    const stream = await admitted;
    const received: Buffer[] = [];
    const gotIt = new Promise<void>((resolve) => {
      stream.addEventListener('message', (evt) => {
        received.push(Buffer.from(evt.data.subarray()));
        if (Buffer.concat(received).toString() === 'first bytes after the confirmation') resolve();
      });
    });
    await gotIt;

    stream.send(Buffer.from('reply from the listener'));
    const ciphertext = (await wire.read({ bytes: 'reply from the listener'.length })).subarray();
    expect(Buffer.from(ciphertext).toString()).not.toBe('reply from the listener');
    const fromListener = specStream(isk, sid, 'weft/admission/v2/stream/listener-to-dialer');
    expect(fromListener.update(ciphertext).toString()).toBe('reply from the listener');
  }, 10_000);

  test('a peer that sends the listener confirmation back as its own is refused', async () => {
    const [dialerEnd, listenerEnd] = multiaddrConnectionPair();
    const rejected: AdmissionRejectedInfo[] = [];
    const admitted = meshAdmission({ key: KEY, onRejected: (info) => rejected.push(info) })().protect(listenerEnd);
    admitted.catch(() => {});

    const wire = byteStream(dialerEnd);
    const { transcript, isk } = await handDialer(wire, KEY);
    await wire.write(specConfirm(isk, 'L', transcript)); // right key, wrong role

    await expect(admitted).rejects.toBeInstanceOf(MeshAdmissionError);
    expect(rejected.map((r) => r.reason)).toEqual([ADMISSION_REJECTED.wrongPassword]);
  }, 10_000);

  test('when the transport is full, send on the admitted stream reports it and drain follows', async () => {
    const [dialerEnd, listenerEnd] = multiaddrConnectionPair({ capacity: 2 });
    const [dialer, listener] = await Promise.all([
      meshAdmission({ key: KEY })().protect(dialerEnd),
      meshAdmission({ key: KEY })().protect(listenerEnd),
    ]);
    let received = 0;
    listener.addEventListener('message', (evt) => {
      received += evt.data.byteLength;
    });

    const chunk = randomBytes(256 * 1024); // four 64 KiB transport messages: over capacity
    expect(dialer.send(chunk)).toBe(false);
    expect(dialer.writableNeedsDrain).toBe(true);
    await dialer.onDrain();
    await until('the listener to receive everything', () => received === chunk.byteLength);
  }, 10_000);
});

// The attacker of issue 8, item 5: someone without the password who receives a member's
// connection (a token holder that asked a peer to `connect` to it) or who connects to one,
// records everything, and then tries a dictionary offline. With the old HMAC proof the real
// password was the one entry whose proof matched; here no entry can be told apart.
describe('no one without the password can test guesses offline', () => {
  const dictionary = [PASSWORD, 'password', 'hunter2', OTHER_PASSWORD].map((p) => ({ p, key: deriveMeshKey(p) }));

  /** Every offline check the recorded run allows: for each guess, the session key the attacker
   *  would compute under it, and whether the victim's confirmation verifies with it. */
  function offlineMatches(record: { transcript: Buffer; theirShare: Uint8Array; myScalar: bigint; myGuessKey: Uint8Array; sid: Buffer; theirConfirm: Buffer; role: string }): string[] {
    const hits: string[] = [];
    for (const { p, key } of dictionary) {
      // The attacker's share was y * G(its one guess). Under another guess g it knows no
      // scalar x with share = x * G(g); the best it has is its own y, tried against each guess.
      const ks = [Point.fromBytes(record.theirShare).multiply(record.myScalar).toBytes()];
      if (Buffer.from(key).equals(Buffer.from(record.myGuessKey))) ks.push(ks[0]!);
      for (const k of ks) {
        if (specConfirm(specIsk(k, record.transcript), record.role, record.transcript).equals(record.theirConfirm)) hits.push(p);
      }
      // Also the dumb check: the generator for this guess times the attacker's scalar.
      const k2 = specGenerator(key, record.sid).multiply(record.myScalar).toBytes();
      if (specConfirm(specIsk(k2, record.transcript), record.role, record.transcript).equals(record.theirConfirm)) hits.push(p);
    }
    return hits;
  }

  test('a listener that a member dials, playing along with a guessed password, can check only that one guess', async () => {
    const [dialerEnd, listenerEnd] = multiaddrConnectionPair();
    const rejected: AdmissionRejectedInfo[] = [];
    const member = meshAdmission({ key: KEY, onRejected: (i) => rejected.push(i) })().protect(dialerEnd);
    member.catch(() => {});
    const wire = byteStream(listenerEnd);
    const listenerNonce = randomBytes(32);
    await wire.write(header(listenerNonce));
    const dialerHeader = Buffer.from((await wire.read({ bytes: HEADER_LENGTH })).subarray());
    const sid = Buffer.concat([dialerHeader.subarray(5), listenerNonce]);
    const hello = Buffer.from((await wire.read({ bytes: 41 })).subarray());
    const guess = deriveMeshKey('hunter2');
    const y = randomScalar();
    const share = specGenerator(guess, sid).multiply(y).toBytes();
    await wire.write(share);
    const transcript = th(dialerHeader, header(listenerNonce), hello, share);
    const confirm = Buffer.from((await wire.read({ bytes: 32 })).subarray());
    // Everything a recording attacker has; the real password is not identifiable in it.
    const hits = offlineMatches({ transcript, theirShare: hello.subarray(9), myScalar: y, myGuessKey: guess, sid, theirConfirm: confirm, role: 'D' });
    expect(hits).not.toContain(PASSWORD);
    expect(hits).toEqual([]);
    await wire.write(randomBytes(32));
    await expect(member).rejects.toBeInstanceOf(MeshAdmissionError);
    expect(rejected.map((r) => r.reason)).toEqual([ADMISSION_REJECTED.wrongPassword]);
  }, 10_000);

  test('a stranger who connects gets only a share and random bytes: nothing to guess against', async () => {
    const peer = await startNode(KEY);
    const socket = net.connect(tcpPortOf(peer.node), '127.0.0.1');
    sockets.push(socket);
    const received: Buffer[] = [];
    socket.on('data', (d) => received.push(d));
    const myNonce = randomBytes(32);
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write(header(myNonce));
    await until('the listener header', () => Buffer.concat(received).length >= HEADER_LENGTH);
    // Nothing beyond the header until we say hello.
    await new Promise((r) => setTimeout(r, 200));
    expect(Buffer.concat(received).length).toBe(HEADER_LENGTH);
    const listenerHeader = Buffer.concat(received).subarray(0, HEADER_LENGTH);
    const sid = Buffer.concat([myNonce, listenerHeader.subarray(5)]);
    const guess = deriveMeshKey('password');
    const y = randomScalar();
    const hello = Buffer.concat([Buffer.from([0x4d]), Buffer.alloc(8), specGenerator(guess, sid).multiply(y).toBytes()]);
    socket.write(hello);
    await until('the listener share', () => Buffer.concat(received).length >= HEADER_LENGTH + 32);
    const share = Buffer.concat(received).subarray(HEADER_LENGTH, HEADER_LENGTH + 32);
    const transcript = th(header(myNonce), listenerHeader, hello, share);
    const isk = specIsk(Point.fromBytes(share).multiply(y).toBytes(), transcript);
    socket.write(specConfirm(isk, 'D', transcript));
    await until('the listener answer', () => Buffer.concat(received).length >= HEADER_LENGTH + 64);
    const answer = Buffer.concat(received).subarray(HEADER_LENGTH + 32, HEADER_LENGTH + 64);
    expect(offlineMatches({ transcript, theirShare: share, myScalar: y, myGuessKey: guess, sid, theirConfirm: answer, role: 'L' })).toEqual([]);
    await until('the refusal', () => peer.events.rejected.length === 1);
    expect(peer.events.rejected[0]?.reason).toBe(ADMISSION_REJECTED.wrongPassword);
  });
});

describe('API tokens', () => {
  const token = (() => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    return { id: '0123456789abcdef', privateKey, publicKey };
  })();

  test('a dialer signing with a valid token is admitted as that token, and its traffic flows; revoked, it is refused', async () => {
    let valid = true;
    const peer = await startNode(KEY, { apiTokenKey: (id) => (valid && id === token.id ? token.publicKey : undefined) });
    await serveEcho(peer.node);
    const client = await startNode(undefined, { apiToken: { id: token.id, privateKey: token.privateKey } });
    expect(await echoThrough(client.node, peer.node, 'via token')).toBe('echo: via token');
    await until('the listener to admit', () => peer.events.admitted.length === 1);
    expect(peer.events.admitted[0]?.credential).toBe(`api:${token.id}`);

    // Revoked: the next connection is refused as a wrong password on both sides.
    valid = false;
    await client.node.hangUp(peer.node.peerId);
    await expect(echoThrough(client.node, peer.node, 'again')).rejects.toThrow();
    await until('both sides to refuse', () => peer.events.rejected.length === 1 && client.events.rejected.length === 1);
    expect(peer.events.rejected[0]?.reason).toBe(ADMISSION_REJECTED.wrongPassword);
    expect(client.events.rejected[0]?.reason).toBe(ADMISSION_REJECTED.wrongPassword);
  });

  test('what a peer stores of a token (its public key) does not admit anyone', async () => {
    // An attacker who read the record signs with a key of its own under the token's id.
    const peer = await startNode(KEY, { apiTokenKey: (id) => (id === token.id ? token.publicKey : undefined) });
    const forger = generateKeyPairSync('ed25519');
    const client = await startNode(undefined, { apiToken: { id: token.id, privateKey: forger.privateKey } });
    await expect(client.node.dial(addrOf(peer.node))).rejects.toThrow();
    await until('the refusal', () => peer.events.rejected.length === 1);
    expect(peer.events.admitted).toEqual([]);
    expect(sign(null, Buffer.from('x'), forger.privateKey)).toBeDefined();
  });

  test('an API client admits nobody: a peer dialing a token holder is refused', async () => {
    const peer = await startNode(KEY);
    const tokenListener = await startNode(undefined, { apiToken: { id: token.id, privateKey: token.privateKey } });
    await expect(peer.node.dial(addrOf(tokenListener.node))).rejects.toThrow();
  });
});

describe('silent connections do not lock members out', () => {
  test('200 silent sockets from four addresses: a member still connects at once', async () => {
    const peer = await startNode(KEY, { timeoutMs: 5_000 });
    await serveEcho(peer.node);
    const port = tcpPortOf(peer.node);
    for (let i = 0; i < 200; i++) {
      // From 127.0.0.2-5; the member below dials from 127.0.0.1.
      const s = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (i % 4)}` });
      s.on('error', () => {});
      sockets.push(s);
    }
    await until('the silent sockets to connect', () => sockets.every((s) => !s.connecting), 10_000);
    // A member from another address of the same machine: its handshake is not queued behind them.
    const member = await startNode(KEY);
    const started = Date.now();
    expect(await echoThrough(member.node, peer.node, 'through the crowd')).toBe('echo: through the crowd');
    const took = Date.now() - started;
    // Not a timing assertion on the machine: the deadline of the silent ones is 5 s, so a member
    // queued behind them would take at least that. Logged for the note.
    console.log(`member admitted past 200 silent sockets in ${took} ms`);
    expect(took).toBeLessThan(5_000);
    expect(peer.events.rejected.some((r) => r.reason === ADMISSION_REJECTED.busy)).toBe(true);
  }, 30_000);
});
