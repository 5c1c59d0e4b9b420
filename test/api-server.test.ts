// The API server against hostile and careless clients, over its two real transports: a libp2p
// stream between two plain nodes (TCP on 127.0.0.1, Noise, yamux, no admission) and a unix
// socket in a temporary directory. The clients here speak the wire format by hand so that they
// can pipeline, stop reading and send garbage. After each attack the server answers a normal
// request, and what it holds (its stats) is back to nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Libp2p, Stream } from '@libp2p/interface';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ApiServer } from '../mesh/api/server.ts';
import { API_PROTOCOL } from '../mesh/api/request.ts';
import { UserError, type ApiHandler } from '../mesh/api/request.ts';
import {
  MAX_QUEUED_BYTES_PER_STREAM, MAX_REQUEST_BYTES, MAX_REQUESTS_PER_CALLER, MAX_REQUESTS_PER_STREAM,
} from '../mesh/api/limits.ts';
import { encodeFrame, FrameDecoder } from '../mesh/framing.ts';
import { formatLine, type Logger } from '../mesh/log.ts';
import { waitFor } from './harness/wait.ts';

const KiB = 1024;
/** The largest `kv get` reply: a value at the replica's 256 KiB bound. */
const BIG_REPLY_CHARS = 256 * KiB;
const PIPELINED = 400;

interface Reply { id: number; result?: unknown; error?: { message: string }; event?: unknown }

/** A client that speaks the API's framing by hand over one connection. */
interface RawClient {
  send(frame: unknown): void;
  sendBytes(bytes: Uint8Array): void;
  readonly replies: Reply[];
  /** Stops taking bytes from the connection (the transport's own back-pressure applies). */
  stopReading(): void;
  startReading(): void;
  isOpen(): boolean;
  /** The server has ended its side (or the whole connection). */
  ended(): boolean;
  close(): Promise<void>;
}

function decodeInto(replies: Reply[]): (bytes: Uint8Array) => void {
  const decoder = new FrameDecoder(64 * 1024 * 1024);
  return (bytes) => { for (const f of decoder.push(bytes)) replies.push(f as Reply); };
}

async function meshClient(node: Libp2p, server: Libp2p): Promise<RawClient> {
  const stream: Stream = await node.dialProtocol(server.getMultiaddrs()[0]!, API_PROTOCOL);
  const replies: Reply[] = [];
  const take = decodeInto(replies);
  let open = true;
  stream.addEventListener('message', (e) => take(e.data instanceof Uint8Array ? e.data : e.data.subarray()));
  stream.addEventListener('close', () => { open = false; });
  return {
    send: (f) => { stream.send(encodeFrame(f)); },
    sendBytes: (b) => { stream.send(b); },
    replies,
    stopReading: () => stream.pause(),
    startReading: () => stream.resume(),
    isOpen: () => open && stream.status === 'open',
    ended: () => !open || stream.remoteWriteStatus === 'closed',
    close: async () => { if (stream.status === 'open') await stream.close().catch(() => stream.abort(new Error('test done'))); },
  };
}

async function unixClient(path: string): Promise<RawClient> {
  const sock: Socket = connect(path);
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  const replies: Reply[] = [];
  let open = true;
  let ended = false;
  sock.on('data', decodeInto(replies));
  sock.on('end', () => { ended = true; });
  sock.on('close', () => { open = false; });
  sock.on('error', () => undefined);
  return {
    send: (f) => { sock.write(encodeFrame(f)); },
    sendBytes: (b) => { sock.write(b); },
    replies,
    stopReading: () => sock.pause(),
    startReading: () => sock.resume(),
    isOpen: () => open && !sock.destroyed,
    ended: () => ended || !open,
    close: async () => { sock.destroy(); },
  };
}

/** Requests 1..n of `method`, pipelined in one buffer. */
function batch(n: number, method: string): Buffer {
  return Buffer.concat(Array.from({ length: n }, (_, i) => encodeFrame({ id: i + 1, method })));
}

function plainNode(listen: boolean): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()],
  });
}

/** The methods the tests call: the shapes of `kv get`, a slow request and `events --follow`. */
class TestMethods {
  started = 0;
  running = 0;
  maxRunning = 0;
  followersClosed = 0;
  /** 'hold' requests wait here until the test opens it. */
  openGate!: () => void;
  private readonly gate = new Promise<void>((r) => (this.openGate = r));
  readonly handler: ApiHandler = async (req, ctx) => {
    this.started++;
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      switch (req.method) {
        case 'echo': return req.params;
        case 'big': return 'v'.repeat(BIG_REPLY_CHARS);
        case 'hold':
          await this.gate;
          return req.id;
        case 'tick':
          await new Promise((r) => setImmediate(r));
          return req.id;
        case 'follow': {
          // Emits 16 KiB events, bounded in count, until the client goes away.
          let gone = false;
          void ctx.closed.then(() => { gone = true; });
          for (let i = 0; i < 1000 && !gone; i++) {
            ctx.emit({ i, pad: 'e'.repeat(16 * KiB) });
            await new Promise((r) => setImmediate(r));
          }
          await ctx.closed;
          this.followersClosed++;
          return null;
        }
        default: throw new UserError(`unknown API method "${req.method}"`);
      }
    } finally {
      this.running--;
    }
  };
}

let dir: string;
let lines: string[];
let methods: TestMethods;
let api: ApiServer;
let serverNode: Libp2p;
const clientNodes: Libp2p[] = [];
const clients: RawClient[] = [];

const log: Logger = {
  debug: (m, f) => lines.push(formatLine('debug', 'api', m, f)),
  info: (m, f) => lines.push(formatLine('info', 'api', m, f)),
  warn: (m, f) => lines.push(formatLine('warn', 'api', m, f)),
  error: (m, f) => lines.push(formatLine('error', 'api', m, f)),
  child: () => log,
};

async function newNode(): Promise<Libp2p> {
  const n = await plainNode(false);
  clientNodes.push(n);
  return n;
}

type Via = 'mesh' | 'unix';

/** A new client connection; over the mesh, on `node` (one caller) or on a new node (a new caller). */
async function client(via: Via, node?: Libp2p): Promise<RawClient> {
  const c = via === 'mesh' ? await meshClient(node ?? await newNode(), serverNode) : await unixClient(join(dir, 'api.sock'));
  clients.push(c);
  return c;
}

async function replyTo(c: RawClient, id: number, what: string): Promise<Reply> {
  return waitFor(() => c.replies.find((r) => r.id === id && !('event' in r)), { intervalMs: 20, timeoutMs: 20_000, what });
}

/** The check after every attack: a fresh client gets a normal answer. */
async function stillAnswers(via: Via): Promise<void> {
  const c = await client(via);
  c.send({ id: 1, method: 'echo', params: { ok: true } });
  expect((await replyTo(c, 1, 'a normal request to be answered')).result).toEqual({ ok: true });
  await c.close();
}

/** Waits until the server has stopped moving: the same stats and the same number of requests
 *  started, 300 ms apart (room for an unbounded server to show itself). */
async function stalled(): Promise<void> {
  let last = '';
  await waitFor(() => {
    const now = JSON.stringify([api.stats(), methods.started]);
    const same = now === last;
    last = now;
    return same;
  }, { intervalMs: 300, what: 'the server to stop running ahead' });
}

/** Waits until the server holds nothing for anyone. */
async function settled(): Promise<void> {
  await waitFor(() => { const s = api.stats(); return s.requestsInFlight === 0 && s.bytesQueued === 0; }, { intervalMs: 20, what: 'the server to hold nothing' });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-api-'));
  lines = [];
  methods = new TestMethods();
  api = new ApiServer(methods.handler, log);
  serverNode = await plainNode(true);
  await api.listenMesh(serverNode);
  await api.listenUnix(join(dir, 'api.sock'));
});

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  await api.close();
  await Promise.allSettled([serverNode, ...clientNodes.splice(0)].map((n) => n.stop()));
  rmSync(dir, { recursive: true, force: true });
});

describe.each<Via>(['mesh', 'unix'])('the API over %s', (via) => {
  test('400 pipelined 256 KiB replies that are never read stay bounded on the server, then all arrive in order', async () => {
    const greedy = await client(via);
    greedy.stopReading();
    // In one write, so that the server has every request in hand before its first reply stalls.
    greedy.sendBytes(batch(PIPELINED, 'big'));
    // The server fills the stream's request slots and then stops: it does not run the other
    // ~390 requests and does not queue their replies.
    await waitFor(() => api.stats().bytesQueued > 0, { intervalMs: 20, what: 'the replies to back up' });
    await stalled();
    const held = api.stats();
    expect(held.requestsInFlight).toBeLessThanOrEqual(MAX_REQUESTS_PER_STREAM);
    expect(held.bytesQueued).toBeLessThanOrEqual(MAX_QUEUED_BYTES_PER_STREAM);
    // Some replies leave with the client's yamux window (256 KiB to 16 MiB), the rest wait for
    // it: nowhere near the 400 an unbounded server runs.
    expect(methods.started).toBeLessThan(PIPELINED / 4);

    // Another client, meanwhile, is answered: on the mesh one of the same caller and one of another.
    if (via === 'mesh') {
      const sameCaller = await client(via, clientNodes[0]);
      sameCaller.send({ id: 1, method: 'echo', params: { who: 'same' } });
      expect((await replyTo(sameCaller, 1, 'the same caller\'s second stream to be answered')).result).toEqual({ who: 'same' });
    }
    const other = await client(via);
    other.send({ id: 1, method: 'echo', params: { who: 'other' } });
    expect((await replyTo(other, 1, 'a second client to be answered')).result).toEqual({ who: 'other' });

    greedy.startReading();
    await waitFor(() => greedy.replies.length === PIPELINED, { timeoutMs: 60_000, intervalMs: 50, what: 'all 400 replies' });
    expect(greedy.replies.map((r) => r.id)).toEqual(Array.from({ length: PIPELINED }, (_, i) => i + 1));
    expect(greedy.replies.every((r) => typeof r.result === 'string' && r.result.length === BIG_REPLY_CHARS)).toBe(true);
    greedy.replies.length = 0; // 100 MiB the test no longer needs
    await settled();
    await stillAnswers(via);
  });

  test('an events follower that never reads is dropped with a logged reason, not buffered forever', async () => {
    const follower = await client(via);
    follower.stopReading();
    follower.send({ id: 1, method: 'follow' });
    await waitFor(() => lines.some((l) => /dropped API client.*does not read its replies/.test(l)), { intervalMs: 20, what: 'the stalled follower to be dropped' });
    // The subscription ended with the client: the handler saw `closed`.
    await waitFor(() => methods.followersClosed === 1, { intervalMs: 20, what: 'the follow handler to end' });
    await settled();
    expect(api.stats().sessions).toBe(0);
    // The client learns it was cut off (a unix client only once it reads up to the end).
    follower.startReading();
    await waitFor(() => !follower.isOpen(), { intervalMs: 20, what: 'the follower to see its connection end' });
    expect(follower.replies.length).toBeLessThan(1000);
    await stillAnswers(via);
  });

  test('an oversized request gets one error, the requests before it their answers, and then the connection ends', async () => {
    const c = await client(via);
    c.send({ id: 1, method: 'tick' });
    const huge = 2 * MAX_REQUEST_BYTES;
    const head = Buffer.alloc(4);
    head.writeUInt32BE(huge);
    c.sendBytes(head);
    // The body arrives in pieces and is dropped as it comes; a request after it is not read.
    for (let i = 0; i < huge / (64 * KiB); i++) c.sendBytes(Buffer.alloc(64 * KiB, 0x7b));
    c.send({ id: 2, method: 'tick' });
    await waitFor(() => c.ended(), { intervalMs: 20, what: 'the server to end the connection' });
    expect(c.replies.find((r) => r.id === 1)?.result).toBe(1);
    expect(c.replies.filter((r) => r.error)).toEqual([{
      id: -1, error: { message: `frame of ${huge} bytes exceeds the limit of ${MAX_REQUEST_BYTES}; no further requests are read on this connection` },
    }]);
    expect(c.replies.some((r) => r.id === 2)).toBe(false);
    expect(methods.started).toBe(1);
    await settled();
    await stillAnswers(via);
  });

  test('garbage frames each get one error reply and do not disturb the requests around them', async () => {
    const c = await client(via);
    const notJson = Buffer.from('not json {');
    const head = Buffer.alloc(4);
    head.writeUInt32BE(notJson.length);
    c.send({ id: 1, method: 'tick' });
    c.sendBytes(Buffer.concat([head, notJson]));
    c.send({ id: 2, method: 5 });            // not a request: the error carries its id
    c.send('not an object');
    c.send({ id: 3, method: 'tick' });
    await replyTo(c, 3, 'the request after the garbage');
    await replyTo(c, 1, 'the request before the garbage');
    expect(c.replies.find((r) => r.id === 2)?.error?.message).toBe('request method must be a short string');
    expect(c.replies.filter((r) => r.id === -1).map((r) => r.error?.message).sort())
      .toEqual(['frame is not valid JSON', 'request is not an object']);
    expect(c.isOpen()).toBe(true);
    // A flood of garbage: each frame answered, the log told once per kind of fault.
    c.sendBytes(Buffer.concat(Array.from({ length: 1000 }, () => Buffer.concat([head, notJson]))));
    c.send({ id: 4, method: 'tick' });
    await replyTo(c, 4, 'the request after 1000 garbage frames');
    expect(c.replies.filter((r) => r.id === -1)).toHaveLength(1002);
    expect(lines.filter((l) => /rejected API request/.test(l)).length).toBeLessThanOrEqual(3);
    await settled();
    await stillAnswers(via);
  });

  test('10,000 tiny pipelined requests are all answered, at most 8 at a time', async () => {
    const c = await client(via);
    const N = 10_000;
    c.sendBytes(batch(N, 'tick'));
    await waitFor(() => c.replies.length === N, { timeoutMs: 60_000, intervalMs: 50, what: '10,000 replies' });
    expect(new Set(c.replies.map((r) => r.result)).size).toBe(N);
    expect(c.replies.every((r) => r.result === r.id)).toBe(true);
    expect(methods.maxRunning).toBeLessThanOrEqual(MAX_REQUESTS_PER_STREAM);
    await settled();
    await stillAnswers(via);
  });
});

describe('the API over the mesh, per caller', () => {
  test('one caller\'s streams run at most its 32 requests at once; another caller is answered meanwhile', async () => {
    const hog = await newNode();
    const streams: RawClient[] = [];
    const PER_STREAM = 20;
    for (let s = 0; s < 5; s++) {
      const c = await client('mesh', hog);
      c.sendBytes(batch(PER_STREAM, 'hold'));
      streams.push(c);
    }
    // 5 streams × 8 would be 40 held requests; the caller's budget stops at 32.
    await waitFor(() => methods.running >= MAX_REQUESTS_PER_CALLER, { intervalMs: 20, what: 'the caller to fill its budget' });
    await stalled();
    expect(methods.running).toBe(MAX_REQUESTS_PER_CALLER);
    expect(api.stats().requestsInFlight).toBe(MAX_REQUESTS_PER_CALLER);
    expect(methods.maxRunning).toBe(MAX_REQUESTS_PER_CALLER);

    const other = await client('mesh');
    other.send({ id: 1, method: 'echo', params: { who: 'other' } });
    expect((await replyTo(other, 1, 'another caller to be answered')).result).toEqual({ who: 'other' });

    methods.openGate();
    await waitFor(() => streams.every((c) => c.replies.length === PER_STREAM), { intervalMs: 50, what: 'every held stream to get all its replies' });
    for (const c of streams) expect(c.replies.map((r) => r.id)).toEqual(Array.from({ length: PER_STREAM }, (_, i) => i + 1));
    await settled();
    await stillAnswers('mesh');
  });
});

describe('the request size bound', () => {
  test('a request header claiming 4 GiB is refused from its header alone; nothing after it is buffered', () => {
    const d = new FrameDecoder(MAX_REQUEST_BYTES);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(0xffffffff);
    d.write(head);
    expect(d.ready()).toBe(true);
    expect(d.next()).toEqual({ ok: false, fatal: true, reason: `frame of ${0xffffffff} bytes exceeds the limit of ${MAX_REQUEST_BYTES}` });
    for (let i = 0; i < 32; i++) d.write(Buffer.alloc(64 * KiB));
    d.write(encodeFrame({ id: 1, method: 'echo' }));
    expect(d.bufferedBytes).toBe(0);
    expect(d.ready()).toBe(false);
    expect(d.next()).toBeUndefined();
  });
});
