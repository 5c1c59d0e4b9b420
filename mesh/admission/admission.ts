// Mesh admission: a libp2p ConnectionProtector that lets a connection through only when the
// dialer proves a credential the listener accepts (the mesh key, or an API token) and the
// listener proves it took part in the same run, then encrypts every byte with ChaCha20 so
// non-members never see the Noise handshake or peer ids. Replaces @libp2p/pnet, whose
// WebAssembly xsalsa20 grows memory until it fails under bulk transfer; Node's native cipher
// streams.
//
// Wire format, version 2 (sid = dialerNonce || listenerNonce; th = transcript hash of every
// message before the confirmations):
//
//   header     both     MAGIC "weft" (4) || VERSION 0x02 (1) || nonce (32)          37 bytes
//   hello      D -> L   kind (1: 'M' mesh | 'A' API token) || token id (8) || Yd (32)  41 bytes
//   share      L -> D   Yl (32)
//   confirm    D -> L   HMAC(ISK, 'D' || th) (32) [|| Ed25519 signature over th (64) for 'A']
//   confirm    L -> D   HMAC(ISK, 'L' || th) (32), or 32 random bytes when refusing
//   then       ChaCha20 stream, one key per direction: HKDF-SHA256(ISK, sid, STREAM_INFO_*), IV 0
//
// For 'M' the shares are CPace (cpace.ts): Y = y * G where G hashes the mesh key and sid onto
// ristretto255, ISK = H(y_mine * Y_theirs, th). A party without the mesh key, dialing us or
// dialed by us (a token holder who asks a peer to `connect` to it, anyone on the path, whoever
// later holds an old --peers address), learns nothing it can test password guesses against
// offline: each run tests at most the one guess it committed to, against a peer that logs it.
// For 'A' the shares are plain ephemeral Diffie-Hellman on the base point and the dialer signs
// the transcript with the token's private key; peers store only the public key, so what they
// keep at rest (or replicate) cannot be used to log in. The listener judges the dialer first
// and answers a failure with random bytes, so both sides log "wrong mesh password" and a
// refused dialer is never told which part was wrong. A side that rejects closes gracefully.

import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import type { Cipheriv, Decipheriv } from 'node:crypto';
import type { AbortOptions, ConnectionProtector, MessageStream } from '@libp2p/interface';
import { AbstractMessageStream, byteStream } from '@libp2p/utils';
import type { SendResult } from '@libp2p/utils';
import { MESH_KEY_LENGTH } from './mesh-key.ts';
import { basePoint, decoyShare, ephemeral, generator, SHARE_LENGTH, sharedSecret, transcriptHash } from './cpace.ts';

/** First bytes on every weft mesh connection: anything else is not a weft peer. */
export const ADMISSION_MAGIC = Uint8Array.from([0x77, 0x65, 0x66, 0x74]); // "weft"
/** Bumped on any change to the handshake or the stream cipher; peers must match exactly.
 *  2: CPace instead of an HMAC proof (a proof could be guessed against offline). */
export const ADMISSION_VERSION = 2;
/** 256 bits of randomness per side: both nonces make the session id, so a repeat on either
 *  side alone still gives a fresh generator and fresh keys. */
export const NONCE_LENGTH = 32;
export const HEADER_LENGTH = ADMISSION_MAGIC.length + 1 + NONCE_LENGTH;
/** Credential kinds in the hello. */
export const KIND_MESH = 0x4d; // 'M'
export const KIND_API = 0x41; // 'A'
/** API token ids are 8 bytes (api-token.ts); mesh hellos carry zeros. */
export const TOKEN_ID_LENGTH = 8;
export const HELLO_LENGTH = 1 + TOKEN_ID_LENGTH + SHARE_LENGTH;
/** HMAC-SHA256 output, sent untruncated. */
export const CONFIRM_LENGTH = 32;
/** Ed25519 signature of an API token holder over the transcript. */
export const SIGNATURE_LENGTH = 64;
/** Role bytes inside the confirmations so a listener's can never be replayed as a dialer's
 *  (a reflecting peer fails). */
export const ROLE_DIALER = 0x44; // 'D'
export const ROLE_LISTENER = 0x4c; // 'L'
/** Domain separation for every hash, key and signature of this handshake. */
const ISK_LABEL = 'weft/admission/v2/isk';
const API_SIGNATURE_LABEL = 'weft/admission/v2/api-token-signature';
/** HKDF info strings, one per direction so the two ChaCha20 keystreams never coincide. */
export const STREAM_INFO_DIALER_TO_LISTENER = 'weft/admission/v2/stream/dialer-to-listener';
export const STREAM_INFO_LISTENER_TO_DIALER = 'weft/admission/v2/stream/listener-to-dialer';
/** Node's 'chacha20' takes a 16-byte IV (32-bit counter || 96-bit nonce). All zero is safe:
 *  each connection has its own keys. */
const STREAM_IV = new Uint8Array(16);

/** Three round trips on a loaded host across a continent take well under a second; 5 s leaves
 *  room for a stalled event loop, and stays under libp2p's 10 s inbound-upgrade and dial
 *  timeouts so our reason wins. Silent connections cost little while they wait: what keeps
 *  them from crowding members out is MAX_PENDING_PER_HOST, not this deadline. */
export const DEFAULT_ADMISSION_TIMEOUT_MS = 5_000;
/** After rejecting a peer we have talked to, wait this long for a clean close so it can read
 *  our answer and see "wrong mesh password" itself; a clean close takes one round trip. */
export const REJECT_CLOSE_GRACE_MS = 1_000;
/** Before admission the only bytes a peer may send are its header, hello, confirmation and
 *  the first Noise message (at most 2 + 65535 bytes); anything beyond this is not a weft peer. */
export const HANDSHAKE_READ_LIMIT = 128 * 1024;
/** Handshakes in progress from one address. A peer makes one connection to another at a
 *  time (a few while both dial at once); a host running several peers or CLIs stays well
 *  under 16. Someone holding silent or slow connections open therefore occupies at most
 *  this many slots per address, and every other address, members among them, gets in at once. */
export const MAX_PENDING_PER_HOST = 16;
/** libp2p's bound on pending inbound connections (its default, 10, lets ten silent sockets
 *  lock every member out). One address holds at most MAX_PENDING_PER_HOST, so this is reached
 *  only by hundreds of addresses at once; each costs a few KiB until the deadline frees it. */
export const MAX_PENDING_INBOUND = 1024;
/** New inbound connections accepted per address per second (libp2p's default is 5): above
 *  what a host running a few peers and CLIs opens, below a flood. */
export const INBOUND_CONNECTIONS_PER_SECOND = 20;

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
  busy: 'too many handshakes at once from this address',
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
  /** 'mesh' when the remote proved the mesh key, else 'api:<token id>'. */
  credential: string;
  /** The raw connection libp2p handed us (its `maConn`): the one thing that identifies this
   *  connection for good. Marks must hang on it, never on an address another connection
   *  can share. */
  connection: object;
}

/** An API token as its holder has it: the id and the Ed25519 private key. */
export interface ApiTokenCredential {
  id: string;
  privateKey: KeyObject;
}

export interface MeshAdmissionInit {
  /** The 32-byte mesh key from deriveMeshKey(): members dial with it and admit others with
   *  it. Absent for an API client, which admits nobody. */
  key?: Uint8Array;
  /** Dial as an API client with this token instead of the mesh key. */
  apiToken?: ApiTokenCredential;
  /** The public key of a token that is valid now, by id (asked on every handshake so that a
   *  revoked token stops working at once). */
  apiTokenKey?: (id: string) => KeyObject | undefined;
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
  if (init.key !== undefined && (!(init.key instanceof Uint8Array) || init.key.byteLength !== MESH_KEY_LENGTH)) {
    throw new Error(`the mesh key must be ${MESH_KEY_LENGTH} bytes: derive it from the mesh password with deriveMeshKey()`);
  }
  if (init.key === undefined && init.apiToken === undefined) throw new Error('mesh admission needs the mesh key or an API token');
  if (init.apiToken !== undefined && !/^[0-9a-f]{16}$/.test(init.apiToken.id)) throw new Error('an API token id is 16 hex digits');
  const timeoutMs = init.timeoutMs ?? DEFAULT_ADMISSION_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new Error(`admission timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
  }
  // Our own unpooled copy: a caller reusing or wiping its buffer must not change live
  // connections, and the key must not share a Buffer pool slab with unrelated data.
  let key: Buffer | undefined;
  if (init.key) {
    key = Buffer.alloc(MESH_KEY_LENGTH);
    key.set(init.key);
  }
  const settings: AdmissionSettings = {
    key, apiToken: init.apiToken, apiTokenKey: init.apiTokenKey, timeoutMs,
    onRejected: init.onRejected, onAdmitted: init.onAdmitted, pending: new Map(),
  };
  return () => new MeshAdmission(settings);
}

interface AdmissionSettings {
  readonly key: Buffer | undefined;
  readonly apiToken: ApiTokenCredential | undefined;
  readonly apiTokenKey: MeshAdmissionInit['apiTokenKey'];
  readonly timeoutMs: number;
  readonly onRejected: MeshAdmissionInit['onRejected'];
  readonly onAdmitted: MeshAdmissionInit['onAdmitted'];
  /** Inbound handshakes in progress, by remote host. */
  readonly pending: Map<string, number>;
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
    const host = direction === 'inbound' ? remoteHost(connection) : undefined;
    const pending = this.#settings.pending;
    if (host !== undefined) {
      const n = pending.get(host) ?? 0;
      if (n >= MAX_PENDING_PER_HOST) {
        const info: AdmissionRejectedInfo = { remoteAddr, direction, reason: ADMISSION_REJECTED.busy };
        notify(this.#settings.onRejected, info, log);
        connection.abort(new Error(`mesh admission refused: ${info.reason}`));
        throw new MeshAdmissionError(info);
      }
      pending.set(host, n + 1);
    }
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
    } finally {
      if (host !== undefined) {
        const n = (pending.get(host) ?? 1) - 1;
        if (n <= 0) pending.delete(host);
        else pending.set(host, n);
      }
    }

    log('admitted %s connection %s %s', direction, direction === 'outbound' ? 'to' : 'from', remoteAddr);
    notify(this.#settings.onAdmitted, { remoteAddr, direction, credential, connection }, log);
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
  const read = async (n: number): Promise<Buffer> => Buffer.from((await bytes.read({ bytes: n, signal })).subarray());

  const localNonce = randomBytes(NONCE_LENGTH);
  const localHeader = concat(ADMISSION_MAGIC, Uint8Array.of(ADMISSION_VERSION), localNonce);
  const sentHeader = send(localHeader);

  // Check magic and version before waiting for the nonce, so garbage is refused at once.
  const preamble = await read(ADMISSION_MAGIC.length + 1);
  if (!startsWithMagicAndVersion(preamble)) {
    throw new Rejection(ADMISSION_REJECTED.notWeft, looksLikeWeft(preamble));
  }
  const remoteNonce = await read(NONCE_LENGTH);
  if (timingSafeEqual(remoteNonce, localNonce)) {
    // Our own header came back: an echo, not a peer.
    throw new Rejection(ADMISSION_REJECTED.notWeft, false);
  }
  await sentHeader;
  const remoteHeader = concat(preamble, remoteNonce);

  const dialerNonce = isDialer ? localNonce : remoteNonce;
  const listenerNonce = isDialer ? remoteNonce : localNonce;
  const sid = concat(dialerNonce, listenerNonce);
  const headers = isDialer ? [localHeader, remoteHeader] : [remoteHeader, localHeader];

  let isk: Buffer;
  let credential: string;
  if (isDialer) {
    const token = settings.key ? undefined : settings.apiToken;
    const g = token ? basePoint() : generator(settings.key!, sid);
    const mine = ephemeral(g, randomBytes);
    const hello = concat(Uint8Array.of(token ? KIND_API : KIND_MESH), token ? Buffer.from(token.id, 'hex') : new Uint8Array(TOKEN_ID_LENGTH), mine.share);
    await send(hello);
    const theirs = await read(SHARE_LENGTH);
    const th = transcriptHash(...headers, hello, theirs);
    const k = sharedSecret(mine, theirs);
    if (!k) throw new Rejection(ADMISSION_REJECTED.wrongPassword, true);
    isk = sessionKey(k, th);
    const confirm = confirmation(isk, ROLE_DIALER, th);
    await send(token ? concat(confirm, sign(null, concat(Buffer.from(API_SIGNATURE_LABEL), th), token.privateKey)) : confirm);
    if (!timingSafeEqual(await read(CONFIRM_LENGTH), confirmation(isk, ROLE_LISTENER, th))) {
      throw new Rejection(ADMISSION_REJECTED.wrongPassword, true);
    }
    credential = token ? `api:${token.id}` : 'mesh';
  } else {
    const hello = await read(HELLO_LENGTH);
    const kind = hello[0];
    if (kind !== KIND_MESH && kind !== KIND_API) throw new Rejection(ADMISSION_REJECTED.notWeft, true);
    const tokenId = hello.subarray(1, 1 + TOKEN_ID_LENGTH).toString('hex');
    const tokenKey = kind === KIND_API ? settings.apiTokenKey?.(tokenId) : undefined;
    // A credential we cannot check still gets a share that looks like any other, then a
    // refusal at the confirmation: the dialer learns neither which tokens exist nor anything
    // about the mesh key.
    const usable = kind === KIND_MESH ? settings.key !== undefined : tokenKey !== undefined;
    const mine = usable ? ephemeral(kind === KIND_MESH ? generator(settings.key!, sid) : basePoint(), randomBytes) : undefined;
    const share = mine ? mine.share : decoyShare(randomBytes);
    await send(share);
    const th = transcriptHash(...headers, hello, share);
    const confirm = await read(CONFIRM_LENGTH);
    const signature = kind === KIND_API ? await read(SIGNATURE_LENGTH) : undefined;
    const k = mine ? sharedSecret(mine, hello.subarray(1 + TOKEN_ID_LENGTH)) : undefined;
    const key = k ? sessionKey(k, th) : undefined;
    const confirmed = key !== undefined && timingSafeEqual(confirm, confirmation(key, ROLE_DIALER, th));
    const signed = kind === KIND_MESH || (tokenKey !== undefined && signature !== undefined && verifySignature(tokenKey, th, signature));
    if (!key || !confirmed || !signed) {
      // Random bytes, not a confirmation: the dialer judges them wrong, and learns nothing.
      await send(randomBytes(CONFIRM_LENGTH)).catch(() => undefined);
      throw new Rejection(ADMISSION_REJECTED.wrongPassword, true);
    }
    isk = key;
    credential = kind === KIND_MESH ? 'mesh' : `api:${tokenId}`;
    await send(confirmation(isk, ROLE_LISTENER, th));
  }

  const dialerToListener = streamKey(isk, sid, STREAM_INFO_DIALER_TO_LISTENER);
  const listenerToDialer = streamKey(isk, sid, STREAM_INFO_LISTENER_TO_DIALER);
  isk.fill(0);
  const encipher = createCipheriv('chacha20', isDialer ? dialerToListener : listenerToDialer, STREAM_IV);
  const decipher = createDecipheriv('chacha20', isDialer ? listenerToDialer : dialerToListener, STREAM_IV);
  dialerToListener.fill(0);
  listenerToDialer.fill(0);

  // Attach our reader before handing back unread bytes (the remote's first Noise message
  // may already sit behind its confirmation); unwrap() re-emits them asynchronously, in order.
  const admitted = new AdmittedStream(connection, encipher, decipher);
  bytes.unwrap();
  return { stream: admitted, credential };
}

/** The session key: the CPace (or DH) element bound to everything both sides said. */
function sessionKey(k: Uint8Array, th: Uint8Array): Buffer {
  return transcriptHash(Buffer.from(ISK_LABEL), th, k).subarray(0, 32);
}

function confirmation(isk: Buffer, role: number, th: Uint8Array): Buffer {
  return createHmac('sha256', isk).update(Uint8Array.of(role)).update(th).digest();
}

function verifySignature(key: KeyObject, th: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, concat(Buffer.from(API_SIGNATURE_LABEL), th), key, signature);
  } catch {
    return false;
  }
}

function streamKey(key: Buffer, salt: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key, salt, info, 32));
}

/** The remote's IP, for counting its handshakes; undefined when the transport gives none. */
function remoteHost(connection: MessageStream): string | undefined {
  const addr: unknown = (connection as Partial<{ remoteAddr: unknown }>).remoteAddr;
  return addr == null ? undefined : /^\/ip[46]\/([^/]+)/.exec(String(addr))?.[1];
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
