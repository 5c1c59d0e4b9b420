// Mesh admission: a libp2p ConnectionProtector that lets a connection through only when both
// ends prove they hold the mesh key, then encrypts every byte with ChaCha20 so non-members
// never see the Noise handshake or peer ids. Replaces @libp2p/pnet, whose WebAssembly
// xsalsa20 grows memory until it fails under bulk transfer; Node's native cipher streams.
//
// Wire format, version 1:
//
//   header  = MAGIC "weft" (4) || VERSION 0x01 (1) || nonce (32)                  37 bytes
//   proof   = HMAC-SHA256(key, PROOF_LABEL || role || dialerNonce || listenerNonce) 32 bytes
//             role = 0x44 'D' for the dialer's proof, 0x4c 'L' for the listener's
//   then    ChaCha20 stream, one key per direction:
//             HKDF-SHA256(key, salt = dialerNonce || listenerNonce, info = STREAM_INFO_*), IV 0
//
// Both sides send their header at once. The dialer then sends its proof; the listener judges
// it first and only then answers with its own. This lets the listener accept more than one
// key (the mesh key, or an API token's key for remote CLIs, which never learn the mesh key)
// by finding the key the dialer's proof verifies under, and it means a stranger who merely
// connects never receives a proof to guess the password from offline: a rejected dialer gets
// 32 random bytes instead, which it judges as a wrong proof, so both sides still log
// "wrong mesh password". A side that rejects closes gracefully (FIN, not RST).

import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Cipheriv, Decipheriv } from 'node:crypto';
import type { AbortOptions, ConnectionProtector, MessageStream } from '@libp2p/interface';
import { AbstractMessageStream, byteStream } from '@libp2p/utils';
import type { SendResult } from '@libp2p/utils';
import { MESH_KEY_LENGTH } from './mesh-key.ts';

/** First bytes on every weft mesh connection: anything else is not a weft peer. */
export const ADMISSION_MAGIC = Uint8Array.from([0x77, 0x65, 0x66, 0x74]); // "weft"
/** Bumped on any change to the handshake or the stream cipher; peers must match exactly. */
export const ADMISSION_VERSION = 1;
/** 256 bits of randomness per side: both nonces salt the stream keys, so a repeat on either
 *  side alone still gives fresh keys. */
export const NONCE_LENGTH = 32;
export const HEADER_LENGTH = ADMISSION_MAGIC.length + 1 + NONCE_LENGTH;
/** HMAC-SHA256 output, sent untruncated. */
export const PROOF_LENGTH = 32;
/** Domain separation: the mesh key proves membership here and nowhere else. */
export const PROOF_LABEL = 'weft/admission/v1/proof';
/** Role bytes inside the proof so a listener's proof can never be replayed as a dialer's
 *  (a reflecting peer fails). */
export const ROLE_DIALER = 0x44; // 'D'
export const ROLE_LISTENER = 0x4c; // 'L'
/** HKDF info strings, one per direction so the two ChaCha20 keystreams never coincide. */
export const STREAM_INFO_DIALER_TO_LISTENER = 'weft/admission/v1/stream/dialer-to-listener';
export const STREAM_INFO_LISTENER_TO_DIALER = 'weft/admission/v1/stream/listener-to-dialer';
/** Node's 'chacha20' takes a 16-byte IV (32-bit counter || 96-bit nonce). All zero is safe:
 *  each connection has its own keys. */
const STREAM_IV = new Uint8Array(16);

/** Two round trips on a loaded host across a continent take well under a second; 5 s leaves
 *  room for a stalled event loop yet frees a silent or slow-loris connection quickly, and
 *  stays under libp2p's 10 s inbound-upgrade and dial timeouts so our reason wins. */
export const DEFAULT_ADMISSION_TIMEOUT_MS = 5_000;
/** After rejecting a peer we have talked to, wait this long for a clean close so it can read
 *  our proof and see "wrong mesh password" itself; a clean close takes one round trip. */
export const REJECT_CLOSE_GRACE_MS = 1_000;
/** Before admission the only bytes a peer may send are its header, its proof and the first
 *  Noise message (at most 2 + 65535 bytes); anything beyond this is not a weft peer. */
export const HANDSHAKE_READ_LIMIT = 128 * 1024;

/** Largest write handed to the transport at once: one Noise frame (at most 2 + 65535 + 16
 *  bytes), as the TCP transport writes without admission. Bigger writes let megabytes queue
 *  inside the socket beyond back-pressure; smaller ones split frames into more syscalls. */
export const SEND_BATCH_BYTES = 64 * 1024;

/** Every reason a connection is refused, worded for the log line the shell prints. */
export const ADMISSION_REJECTED = {
  notWeft: 'not a weft peer or incompatible version',
  wrongPassword: 'wrong mesh password',
  timedOut: 'admission handshake timed out',
  closed: 'connection closed during the admission handshake',
  aborted: 'admission handshake aborted',
} as const;
export type AdmissionRejectReason = (typeof ADMISSION_REJECTED)[keyof typeof ADMISSION_REJECTED];

export type AdmissionDirection = 'inbound' | 'outbound';

export interface AdmissionRejectedInfo {
  remoteAddr: string;
  direction: AdmissionDirection;
  reason: AdmissionRejectReason;
}

export interface AdmissionAdmittedInfo {
  remoteAddr: string;
  direction: AdmissionDirection;
  /** 'mesh' when the remote proved the mesh key, else the id of the extra key it proved. */
  credential: string;
}

/** A key other than the mesh key that an inbound dialer may prove (an API token's). */
export interface ExtraKey {
  id: string;
  key: Uint8Array;
}

export interface MeshAdmissionInit {
  /** The 32-byte key this side proves: the mesh key from deriveMeshKey(), or for an API
   *  client the key of its API token. */
  key: Uint8Array;
  /** Keys an inbound dialer may prove instead of the mesh key; asked on every handshake so
   *  that a revoked token stops working at once. */
  extraKeys?: () => ExtraKey[];
  /** Whole handshake deadline. Default DEFAULT_ADMISSION_TIMEOUT_MS. */
  timeoutMs?: number;
  onRejected?: (info: AdmissionRejectedInfo) => void;
  onAdmitted?: (info: AdmissionAdmittedInfo) => void;
}

/** Thrown from protect() when a connection is refused. Carries no key material. */
export class MeshAdmissionError extends Error {
  override name = 'MeshAdmissionError';
  readonly reason: AdmissionRejectReason;
  readonly remoteAddr: string;
  readonly direction: AdmissionDirection;

  constructor(info: AdmissionRejectedInfo) {
    const where = info.direction === 'outbound' ? `to ${info.remoteAddr}` : `from ${info.remoteAddr}`;
    super(`mesh admission ${where} refused: ${info.reason}`);
    this.reason = info.reason;
    this.remoteAddr = info.remoteAddr;
    this.direction = info.direction;
  }
}

/** Pass the result as `connectionProtector` to createLibp2p. */
export function meshAdmission(init: MeshAdmissionInit): () => ConnectionProtector {
  if (!(init.key instanceof Uint8Array) || init.key.byteLength !== MESH_KEY_LENGTH) {
    throw new Error(`the mesh key must be ${MESH_KEY_LENGTH} bytes: derive it from the mesh password with deriveMeshKey()`);
  }
  const timeoutMs = init.timeoutMs ?? DEFAULT_ADMISSION_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new Error(`admission timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
  }
  // Our own unpooled copy: a caller reusing or wiping its buffer must not change live
  // connections, and the key must not share a Buffer pool slab with unrelated data.
  const key = Buffer.alloc(MESH_KEY_LENGTH);
  key.set(init.key);
  const settings: AdmissionSettings = { key, timeoutMs, onRejected: init.onRejected, onAdmitted: init.onAdmitted, extraKeys: init.extraKeys };
  return () => new MeshAdmission(settings);
}

interface AdmissionSettings {
  readonly key: Buffer;
  readonly timeoutMs: number;
  readonly onRejected: MeshAdmissionInit['onRejected'];
  readonly onAdmitted: MeshAdmissionInit['onAdmitted'];
  readonly extraKeys: MeshAdmissionInit['extraKeys'];
}

/** A rejection decided inside the handshake; `graceful` when the remote spoke our protocol
 *  and deserves to read everything we sent before we hang up. */
class Rejection extends Error {
  readonly reason: AdmissionRejectReason;
  readonly graceful: boolean;

  constructor(reason: AdmissionRejectReason, graceful: boolean) {
    super(reason);
    this.reason = reason;
    this.graceful = graceful;
  }
}

class MeshAdmission implements ConnectionProtector {
  readonly [Symbol.toStringTag] = 'weft/mesh-admission';
  // A #private field: util.inspect, console.log and JSON.stringify never show it, so the
  // key cannot leak by printing the protector.
  readonly #settings: AdmissionSettings;

  constructor(settings: AdmissionSettings) {
    this.#settings = settings;
  }

  async protect(connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    const direction = connection.direction;
    const remoteAddr = describeRemote(connection);
    const log = connection.log.newScope('admission');
    const deadline = AbortSignal.timeout(this.#settings.timeoutMs);
    const signal = options?.signal == null ? deadline : AbortSignal.any([deadline, options.signal]);

    let admitted: MessageStream;
    let credential: string;
    try {
      ({ stream: admitted, credential } = await handshake(connection, this.#settings, direction, signal));
    } catch (err) {
      const rejection = classify(err, deadline);
      const info: AdmissionRejectedInfo = { remoteAddr, direction, reason: rejection.reason };
      log('refused %s connection %s %s: %s', direction, direction === 'outbound' ? 'to' : 'from', remoteAddr, rejection.reason);
      notify(this.#settings.onRejected, info, log);
      await hangUp(connection, rejection);
      throw new MeshAdmissionError(info);
    }

    log('admitted %s connection %s %s', direction, direction === 'outbound' ? 'to' : 'from', remoteAddr);
    notify(this.#settings.onAdmitted, { remoteAddr, direction, credential }, log);
    return admitted;
  }
}

async function handshake(connection: MessageStream, settings: AdmissionSettings, direction: AdmissionDirection, signal: AbortSignal): Promise<{ stream: MessageStream; credential: string }> {
  const isDialer = direction === 'outbound';
  const bytes = byteStream(connection, { maxBufferSize: HANDSHAKE_READ_LIMIT });
  // Once we give up, a pending drain wait must not surface as an unhandled rejection.
  const send = (data: Uint8Array): Promise<void> => {
    const sent = bytes.write(data, { signal });
    sent.catch(() => {});
    return sent;
  };

  const localNonce = randomBytes(NONCE_LENGTH);
  const sentHeader = send(concat(ADMISSION_MAGIC, Uint8Array.of(ADMISSION_VERSION), localNonce));

  // Check magic and version before waiting for the nonce, so garbage is refused at once.
  const preamble = (await bytes.read({ bytes: ADMISSION_MAGIC.length + 1, signal })).subarray();
  if (!startsWithMagicAndVersion(preamble)) {
    throw new Rejection(ADMISSION_REJECTED.notWeft, looksLikeWeft(preamble));
  }
  const remoteNonce = Buffer.from((await bytes.read({ bytes: NONCE_LENGTH, signal })).subarray());
  if (timingSafeEqual(remoteNonce, localNonce)) {
    // Our own header came back: an echo, not a peer.
    throw new Rejection(ADMISSION_REJECTED.notWeft, false);
  }
  await sentHeader;

  const dialerNonce = isDialer ? localNonce : remoteNonce;
  const listenerNonce = isDialer ? remoteNonce : localNonce;
  const readProof = async () => Buffer.from((await bytes.read({ bytes: PROOF_LENGTH, signal })).subarray());

  let key: Buffer;
  let credential = 'mesh';
  if (isDialer) {
    await send(proof(settings.key, ROLE_DIALER, dialerNonce, listenerNonce));
    if (!timingSafeEqual(await readProof(), proof(settings.key, ROLE_LISTENER, dialerNonce, listenerNonce))) {
      throw new Rejection(ADMISSION_REJECTED.wrongPassword, true);
    }
    key = settings.key;
  } else {
    const theirs = await readProof();
    const candidates: ExtraKey[] = [{ id: 'mesh', key: settings.key }, ...(settings.extraKeys?.() ?? [])];
    // Every candidate is checked, in constant time each, so timing does not tell which matched.
    let match: ExtraKey | undefined;
    for (const c of candidates) {
      if (c.key.byteLength === MESH_KEY_LENGTH && timingSafeEqual(theirs, proof(Buffer.from(c.key), ROLE_DIALER, dialerNonce, listenerNonce))) match ??= c;
    }
    if (!match) {
      // Random bytes, not a proof: the dialer judges them wrong, and learns nothing to guess with.
      await send(randomBytes(PROOF_LENGTH)).catch(() => undefined);
      throw new Rejection(ADMISSION_REJECTED.wrongPassword, true);
    }
    key = Buffer.from(match.key);
    credential = match.id;
    await send(proof(key, ROLE_LISTENER, dialerNonce, listenerNonce));
  }

  const salt = concat(dialerNonce, listenerNonce);
  const dialerToListener = streamKey(key, salt, STREAM_INFO_DIALER_TO_LISTENER);
  const listenerToDialer = streamKey(key, salt, STREAM_INFO_LISTENER_TO_DIALER);
  const encipher = createCipheriv('chacha20', isDialer ? dialerToListener : listenerToDialer, STREAM_IV);
  const decipher = createDecipheriv('chacha20', isDialer ? listenerToDialer : dialerToListener, STREAM_IV);
  dialerToListener.fill(0);
  listenerToDialer.fill(0);

  // Attach our reader before handing back unread bytes (the remote's first Noise message
  // may already sit behind its proof); unwrap() re-emits them asynchronously, in order.
  const admitted = new AdmittedStream(connection, encipher, decipher);
  bytes.unwrap();
  return { stream: admitted, credential };
}

function proof(key: Buffer, role: number, dialerNonce: Uint8Array, listenerNonce: Uint8Array): Buffer {
  return createHmac('sha256', key)
    .update(PROOF_LABEL)
    .update(Uint8Array.of(role))
    .update(dialerNonce)
    .update(listenerNonce)
    .digest();
}

function streamKey(key: Buffer, salt: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key, salt, info, 32));
}

function startsWithMagicAndVersion(preamble: Uint8Array): boolean {
  return looksLikeWeft(preamble) && preamble[ADMISSION_MAGIC.length] === ADMISSION_VERSION;
}

/** Right magic, any version: another weft release, worth a clean goodbye. */
function looksLikeWeft(preamble: Uint8Array): boolean {
  return ADMISSION_MAGIC.every((b, i) => preamble[i] === b);
}

function classify(err: unknown, deadline: AbortSignal): Rejection {
  if (err instanceof Rejection) {
    return err;
  }
  if (deadline.aborted) {
    return new Rejection(ADMISSION_REJECTED.timedOut, false);
  }
  const name = err instanceof Error || err instanceof DOMException ? err.name : '';
  if (name === 'TimeoutError') {
    return new Rejection(ADMISSION_REJECTED.timedOut, false);
  }
  if (name === 'AbortError') {
    return new Rejection(ADMISSION_REJECTED.aborted, false);
  }
  if (name === 'StreamBufferError') {
    // More bytes than any weft peer sends before admission.
    return new Rejection(ADMISSION_REJECTED.notWeft, false);
  }
  // UnexpectedEOFError, a reset, a socket error: the remote went away mid-handshake.
  return new Rejection(ADMISSION_REJECTED.closed, false);
}

/** Close so the remote can still read what we sent (it decides "wrong mesh password" from our
 *  proof), falling back to a reset if it does not close its side within the grace period. */
async function hangUp(connection: MessageStream, rejection: Rejection): Promise<void> {
  const err = new Error(`mesh admission refused: ${rejection.reason}`);
  if (rejection.graceful && connection.status === 'open') {
    try {
      await connection.close({ signal: AbortSignal.timeout(REJECT_CLOSE_GRACE_MS) });
      return;
    } catch {
      // fall through to abort
    }
  }
  connection.abort(err);
}

function notify<T>(callback: ((info: T) => void) | undefined, info: T, log: MessageStream['log']): void {
  try {
    callback?.(info);
  } catch (err) {
    log.error('admission callback threw - %e', err);
  }
}

function describeRemote(connection: MessageStream): string {
  const remoteAddr: unknown = (connection as Partial<{ remoteAddr: unknown }>).remoteAddr;
  return remoteAddr == null ? 'an unknown address' : String(remoteAddr);
}

function concat(...parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts);
}

/** The list type the installed @libp2p/utils hands to sendData (taken from it, not imported
 *  from uint8arraylist, whose top-level copy is an older major version). */
type ByteList = Parameters<AbstractMessageStream['sendData']>[0];

/** Runs a list through the cipher into one buffer. */
function update(cipher: Cipheriv | Decipheriv, data: ByteList): Buffer {
  const out = Buffer.allocUnsafe(data.byteLength);
  let offset = 0;
  for (const chunk of data) {
    offset += cipher.update(chunk).copy(out, offset);
  }
  return out;
}

/** The admitted connection: ChaCha20 on every byte each way, flow control passed through. */
class AdmittedStream extends AbstractMessageStream {
  private readonly inner: MessageStream;
  private readonly encipher: Cipheriv;
  private readonly decipher: Decipheriv;

  constructor(inner: MessageStream, encipher: Cipheriv, decipher: Decipheriv) {
    super({
      log: inner.log.newScope('admitted'),
      inactivityTimeout: inner.inactivityTimeout,
      maxReadBufferLength: inner.maxReadBufferLength,
      direction: inner.direction,
    });
    this.inner = inner;
    this.encipher = encipher;
    this.decipher = decipher;

    inner.addEventListener('message', (evt) => {
      // onData buffers while paused or before anyone listens, so nothing is dropped.
      this.onData(this.decrypt(evt.data));
    });
    inner.addEventListener('close', (evt) => {
      if (evt.error != null) {
        if (evt.local === true) {
          this.abort(evt.error);
        } else {
          this.onRemoteReset();
        }
      } else {
        this.onTransportClosed();
      }
    });
    inner.addEventListener('drain', () => {
      this.safeDispatchEvent('drain');
    });
    inner.addEventListener('remoteCloseWrite', () => {
      this.onRemoteCloseWrite();
    });
  }

  private decrypt(data: Uint8Array | ByteList): Uint8Array {
    // The transport delivers plain buffers; lists only appear for bytes handed back by
    // unwrap(), once per connection, so joining them costs nothing that matters.
    return data instanceof Uint8Array ? this.decipher.update(data) : update(this.decipher, data);
  }

  /**
   * Encrypts and sends in batches of about SEND_BATCH_BYTES, stopping as soon as the transport
   * says it is full: the rest stays queued here as plaintext (the keystream only advances over
   * bytes actually sent) and goes out on 'drain'. Sending everything at once would let
   * megabytes pile up in the socket, past back-pressure.
   */
  sendData(data: ByteList): SendResult {
    let sentBytes = 0;
    let canSendMore = true;
    let batch: Buffer[] = [];
    let batchBytes = 0;
    for (const chunk of data) {
      batch.push(this.encipher.update(chunk));
      batchBytes += chunk.byteLength;
      if (batchBytes >= SEND_BATCH_BYTES) {
        canSendMore = this.inner.send(batch.length === 1 ? batch[0]! : Buffer.concat(batch, batchBytes));
        sentBytes += batchBytes;
        batch = [];
        batchBytes = 0;
        if (!canSendMore) {
          break;
        }
      }
    }
    if (batchBytes > 0) {
      canSendMore = this.inner.send(batch.length === 1 ? batch[0]! : Buffer.concat(batch, batchBytes));
      sentBytes += batchBytes;
    }
    return { sentBytes, canSendMore };
  }

  async close(options?: AbortOptions): Promise<void> {
    await this.inner.close(options);
  }

  sendReset(err: Error): void {
    this.inner.abort(err);
  }

  sendPause(): void {
    this.inner.pause();
  }

  sendResume(): void {
    this.inner.resume();
  }
}
