import { connect } from 'node:net';
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Libp2p, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { join } from 'node:path';
import { meshAdmission, type ApiTokenCredential } from '../admission/admission.ts';
import { API_PROTOCOL } from './request.ts';
import { encodeFrame, FrameDecoder } from '../framing.ts';
import { parseHostPort, toMultiaddr, formatHostPort } from '../address.ts';
import type { EventOf, MethodSpec, ParamsOf, ParamsSchema, ResultOf } from './method.ts';

/** Replies can be large (`weft peers` on a big mesh); bounded all the same. */
const MAX_REPLY_BYTES = 64 * 1024 * 1024;
/** A peer answers in milliseconds; a silent one should not hang the terminal. */
const CONNECT_TIMEOUT_MS = 5000;

/** A call that failed: the peer's refusal or error, or the connection, in one sentence. */
export class ApiCallError extends Error {}

interface Transport {
  write(bytes: Uint8Array): void;
  onData(fn: (bytes: Uint8Array) => void): void;
  onClose(fn: () => void): void;
  close(): Promise<void>;
}

/** Talks to a peer's API, over the local unix socket or over the mesh: the one client the
 *  CLI, the tests and the benchmarks share. `call` takes a method's spec (mesh/api/contract.ts,
 *  dns/api-contract.ts) and is typed by it. */
export class ApiClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; onEvent?: (e: unknown) => void }>();
  private readonly transport: Transport;
  private readonly decoder = new FrameDecoder(MAX_REPLY_BYTES);

  private constructor(transport: Transport) {
    this.transport = transport;
    transport.onData((bytes) => {
      for (const f of this.decoder.push(bytes)) this.onFrame(f as Record<string, unknown>);
    });
    transport.onClose(() => {
      for (const p of this.pending.values()) p.reject(new ApiCallError('the peer closed the connection'));
      this.pending.clear();
    });
  }

  static async local(dataDir: string): Promise<ApiClient> {
    const path = join(dataDir, 'weft.sock');
    const sock = connect(path);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', (err: NodeJS.ErrnoException) => reject(new ApiCallError(
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? `no weft peer is running with data dir ${dataDir} (start one with \`weft launch\`, or give --data-dir or --peer)`
          : err.code === 'EACCES'
            ? `permission denied on ${path} (the API socket is for the peer's owner: run as root)`
            : `cannot reach the peer at ${path}: ${err.message}`)));
    });
    return new ApiClient({
      write: (b) => sock.write(b),
      onData: (fn) => sock.on('data', fn),
      onClose: (fn) => sock.on('close', fn),
      close: async () => { sock.end(); sock.destroy(); },
    });
  }

  /** `credential` says what `key` is, for the error when the peer refuses it. */
  static async remote(address: string, credential: { key: Uint8Array } | { apiToken: ApiTokenCredential }): Promise<ApiClient> {
    const target = formatHostPort(parseHostPort(address));
    let refusal: string | undefined;
    const node: Libp2p = await createLibp2p({
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionProtector: meshAdmission({ ...credential, onRejected: ({ reason }) => { refusal = reason; } }),
    });
    let stream: Stream;
    try {
      stream = await node.dialProtocol(toMultiaddr(parseHostPort(target)), API_PROTOCOL, { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) });
    } catch (err) {
      await Promise.resolve(node.stop()).catch(() => undefined);
      if (refusal === 'wrong mesh password') {
        throw new ApiCallError('apiToken' in credential
          ? `cannot reach ${target}: the peer refused our API token (unknown or revoked: see weft token ls)`
          : `cannot reach ${target}: the peer refused our mesh password (check --password-file or WEFT_PASSWORD)`);
      }
      if (refusal) throw new ApiCallError(`cannot reach ${target}: ${refusal}`);
      const msg = (err as Error).message;
      if (/ECONNREFUSED/.test(msg)) throw new ApiCallError(`cannot reach ${target}: connection refused (is a weft peer listening there?)`);
      if (/abort|timeout/i.test(msg)) throw new ApiCallError(`cannot reach ${target}: no answer within ${CONNECT_TIMEOUT_MS / 1000} s`);
      throw new ApiCallError(`cannot reach ${target}: ${msg}`);
    }
    return ApiClient.overStream(stream, async () => {
      await Promise.resolve(node.stop()).catch(() => undefined);
    });
  }

  /** A client from one peer to another member over the mesh connection it already has (its
   *  node's identity is a member's: it calls with member access), e.g. to gather a service's
   *  logs from the hosts its containers run on. */
  static async overMesh(node: Libp2p, peerId: string): Promise<ApiClient> {
    const stream = await node.dialProtocol(peerIdFromString(peerId), API_PROTOCOL, { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) });
    return ApiClient.overStream(stream, async () => {});
  }

  private static overStream(stream: Stream, after: () => Promise<void>): ApiClient {
    let closeFn: (() => void) | undefined;
    const dataFns: ((b: Uint8Array) => void)[] = [];
    void (async () => {
      try {
        for await (const chunk of stream) {
          const b = chunk instanceof Uint8Array ? chunk : chunk.subarray();
          for (const fn of dataFns) fn(b);
        }
      } catch { /* reported through close */ }
      closeFn?.();
    })();
    return new ApiClient({
      write: (b) => { stream.send(b); },
      onData: (fn) => dataFns.push(fn),
      onClose: (fn) => { closeFn = fn; },
      close: async () => {
        await stream.close().catch(() => undefined);
        await after();
      },
    });
  }

  /** Calls a method; for streaming methods, `onEvent` receives each event until the call ends. */
  call<M extends MethodSpec<ParamsSchema, unknown, unknown>>(spec: M, params: ParamsOf<M>, onEvent?: (e: EventOf<M>) => void): Promise<ResultOf<M>> {
    return this.raw(spec.name, params as Record<string, unknown>, onEvent as ((e: unknown) => void) | undefined) as Promise<ResultOf<M>>;
  }

  /** Any method by name with any parameters, unchecked: for tests of what the peer does with
   *  requests no typed client would send. */
  raw(method: string, params: Record<string, unknown> = {}, onEvent?: (e: unknown) => void): Promise<unknown> {
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onEvent });
      this.transport.write(encodeFrame({ id, method, params }));
    });
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  private onFrame(f: Record<string, unknown>): void {
    if (f.id === -1 && f.error) {
      // An error the peer could not tie to a request (one too large to read): it is about
      // what we sent last, and the peer reads nothing more on this connection.
      const err = new ApiCallError(String((f.error as { message?: unknown }).message));
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      return;
    }
    const p = this.pending.get(f.id as number);
    if (!p) return;
    if ('event' in f) {
      p.onEvent?.(f.event);
      return;
    }
    this.pending.delete(f.id as number);
    if (f.error) p.reject(new ApiCallError(String((f.error as { message?: unknown }).message)));
    else p.resolve(f.result);
  }
}
