// The attacker of the hostile-input battery (hostile.test.ts). Runs inside a harness host's
// network namespace, started by the test as `node hostile-attacker.ts <attack> '<json args>'`,
// and prints one JSON line on stdout: what it sent and what it saw (progress goes to stderr).
// It speaks to a live peer as an outsider (raw TCP on 6783), as a member (the mesh password),
// as an API token holder, and to the DNS ports; every loop is bounded in count and time.
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Libp2p, Stream } from '@libp2p/interface';
import { ADMISSION_MAGIC, ADMISSION_VERSION, HELLO_LENGTH, KIND_API, KIND_MESH, meshAdmission, NONCE_LENGTH } from '../../mesh/admission/admission.ts';
import { deriveMeshKey } from '../../mesh/admission/mesh-key.ts';
import { parseApiToken } from '../../mesh/admission/api-token.ts';
import { identityFromSeed, type Identity } from '../../mesh/admission/identity.ts';
import { encodeFrame, FrameDecoder } from '../../mesh/framing.ts';
import { parseHostPort, toMultiaddr } from '../../mesh/address.ts';
import { entrySigningBytes, type Entry, SYNC_PROTOCOL } from '../../mesh/replication/wire.ts';
import { API_PROTOCOL } from '../../mesh/api/request.ts';
import { MEMBERSHIP_PROTOCOL } from '../../mesh/membership/wire.ts';
import { IPAM_PROTOCOL } from '../../mesh/ipam/wire.ts';
import { MANAGER_PROTOCOL } from '../../scheduler/manager/wire.ts';
import { MAX_COMMAND_BYTES, MAX_ENTRIES_PER_MESSAGE, MAX_MEMBERS } from '../../scheduler/raft/wire.ts';
import { MAX_SNAPSHOT_CHARS, MAX_SNAPSHOT_CHUNK_CHARS } from '../../scheduler/raft/snapshot-transfer.ts';

type Args = Record<string, any>;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const note = (msg: string) => process.stderr.write(`attacker: ${msg}\n`);

/** Longest any one raw connection is watched: past the peer's 5 s admission deadline. */
const RAW_WATCH_MS = 8_000;
/** A member's stream is given this long to be read (and refused, or not) before the next one. */
const SETTLE_MS = 300;

// ---- raw TCP ---------------------------------------------------------------------------------

interface RawOutcome { name: string; closedByPeer: boolean; received: number; ms: number }

/** Opens a connection, writes each part in turn (a pause between them), and watches until the
 *  peer closes it or RAW_WATCH_MS pass. */
function rawTry(name: string, host: string, port: number, parts: Uint8Array[], opts: { localAddress?: string; gapMs?: number; watchMs?: number } = {}): Promise<RawOutcome> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const s = net.connect({ host, port, localAddress: opts.localAddress });
    let received = 0;
    let done = false;
    const finish = (closedByPeer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ name, closedByPeer, received, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), opts.watchMs ?? RAW_WATCH_MS);
    s.on('data', (b: Buffer) => { received += b.length; });
    s.on('error', () => finish(true));
    s.on('close', () => finish(true));
    s.on('connect', async () => {
      for (const p of parts) {
        if (done) return;
        s.write(p);
        if (opts.gapMs) await sleep(opts.gapMs);
      }
    });
  });
}

const header = (version = ADMISSION_VERSION) => Buffer.concat([Buffer.from(ADMISSION_MAGIC), Buffer.of(version), randomBytes(NONCE_LENGTH)]);

/** Outsider bytes at the admission handshake: garbage, mutated headers, lying hellos. */
async function handshake(a: Args): Promise<unknown> {
  const { host, port } = a as { host: string; port: number };
  const zeroShare = Buffer.alloc(32);
  const cases: Array<[string, Uint8Array[]]> = [
    ['empty then close', []],
    ['one byte', [Buffer.of(0x77)]],
    ['http request', [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]],
    ['tls client hello start', [Buffer.from('160301020001', 'hex'), randomBytes(512)]],
    ['magic, wrong version', [header(0x01)]],
    ['magic, version 255', [header(0xff)]],
    ['wrong magic', [Buffer.concat([Buffer.from('wefu'), Buffer.of(ADMISSION_VERSION), randomBytes(NONCE_LENGTH)])]],
    ['header only, then silence', [header()]],
    ['header, unknown kind', [header(), Buffer.concat([Buffer.of(0x5a), randomBytes(HELLO_LENGTH - 1)])]],
    ['header, mesh hello with zero share', [header(), Buffer.concat([Buffer.of(KIND_MESH), Buffer.alloc(8), zeroShare]), randomBytes(32)]],
    ['header, mesh hello, random share and confirm', [header(), Buffer.concat([Buffer.of(KIND_MESH), Buffer.alloc(8), randomBytes(32)]), randomBytes(32)]],
    ['header, api hello for an unknown token', [header(), Buffer.concat([Buffer.of(KIND_API), randomBytes(8), randomBytes(32)]), randomBytes(32 + 64)]],
    ['header, then 200 KiB of noise', [header(), randomBytes(200 * 1024)]],
    ['header, hello cut short', [header(), Buffer.of(KIND_MESH, 0, 0)]],
  ];
  for (let i = 0; i < 16; i++) cases.push([`random ${i}`, [randomBytes(1 + Math.floor(Math.random() * 4096))]]);
  // One valid header with a single bit flipped at each of its first bytes.
  for (let i = 0; i < 5; i++) {
    const h = header();
    h[i] = (h[i] as number) ^ 0x01;
    cases.push([`header with bit flipped at byte ${i}`, [h]]);
  }
  // All at once, spread over the attacker's addresses so that no address opens more than 10:
  // under the peer's 20 new connections and 16 handshakes per address, so each case is judged
  // by admission and not by those bounds.
  const from: string[] = a.from ?? [undefined];
  const out = await Promise.all(cases.map(([name, parts], i) => rawTry(name, host, port, parts, { gapMs: 50, localAddress: from[i % from.length] })));
  return { cases: out };
}

/** Records what a real member's dialer sends (through a local relay), then replays those bytes
 *  on a fresh connection: a recorded handshake must not admit anyone. */
async function replay(a: Args): Promise<unknown> {
  const { host, port, password } = a as { host: string; port: number; password: string };
  const recorded: Buffer[] = [];
  const relay = net.createServer((c) => {
    const up = net.connect({ host, port });
    c.on('data', (b: Buffer) => { recorded.push(Buffer.from(b)); up.write(b); });
    up.on('data', (b: Buffer) => c.write(b));
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
  const relayPort = (relay.address() as net.AddressInfo).port;
  const node = await libp2pNode({ key: deriveMeshKey(password) });
  let admitted = false;
  try {
    const s = await node.dialProtocol(toMultiaddr({ host: '127.0.0.1', port: relayPort }), API_PROTOCOL, { signal: AbortSignal.timeout(10_000) });
    admitted = true;
    await s.close().catch(() => undefined);
  } finally {
    await node.stop();
    relay.close();
  }
  const bytes = Buffer.concat(recorded);
  // Replay the dialer's bytes: all at once, and as they were sent (header, then the rest).
  const whole = await rawTry('replayed whole', host, port, [bytes]);
  const split = await rawTry('replayed in steps', host, port, [bytes.subarray(0, 37), bytes.subarray(37, 37 + HELLO_LENGTH), bytes.subarray(37 + HELLO_LENGTH)], { gapMs: 200 });
  return { admittedThroughRelay: admitted, recordedBytes: bytes.length, cases: [whole, split] };
}

/** Slow-loris: many connections from several source addresses that send nothing, or a byte a
 *  second, reopened when the peer closes them, for `holdMs`. Prints `holding N` when the first
 *  round is open. */
async function slowloris(a: Args): Promise<unknown> {
  const { host, port, addrs, perAddr, holdMs } = a as { host: string; port: number; addrs: string[]; perAddr: number; holdMs: number };
  const until = Date.now() + holdMs;
  const MAX_OPENS = 4000;
  let opens = 0;
  let open = 0;
  let peak = 0;
  let closedByPeer = 0;
  const slot = async (addr: string, k: number): Promise<void> => {
    while (Date.now() < until && opens < MAX_OPENS) {
      opens++;
      const closed = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host, port, localAddress: addr });
        let timer: NodeJS.Timeout | undefined;
        const hdr = header();
        let sent = 0;
        const end = (byPeer: boolean) => {
          clearInterval(timer);
          clearTimeout(stop);
          s.destroy();
          resolve(byPeer);
        };
        const stop = setTimeout(() => end(false), Math.max(0, until - Date.now()));
        s.on('connect', () => {
          open++;
          peak = Math.max(peak, open);
          s.once('close', () => open--);
          // A third say nothing, a third trickle their header a byte a second, a third send it
          // whole and stop there.
          if (k % 3 === 1) timer = setInterval(() => { if (sent < hdr.length) s.write(hdr.subarray(sent, ++sent)); }, 1000);
          if (k % 3 === 2) s.write(hdr);
        });
        s.on('error', () => undefined);
        s.on('close', () => end(true));
      });
      if (closed) {
        closedByPeer++;
        await sleep(200);
      }
    }
  };
  const slots: Promise<void>[] = [];
  for (const addr of addrs) for (let k = 0; k < perAddr; k++) slots.push(slot(addr, k));
  await sleep(1500);
  process.stdout.write(`holding ${open}\n`);
  await Promise.all(slots);
  return { opens, peak, closedByPeer };
}

// ---- libp2p: member and token holder ---------------------------------------------------------

async function libp2pNode(credential: { key: Uint8Array } | { apiToken: ReturnType<typeof parseApiToken> }, identity?: Identity): Promise<Libp2p> {
  return createLibp2p({
    ...(identity ? { privateKey: identity.libp2pKey } : {}),
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: meshAdmission(credential),
    connectionMonitor: { enabled: false },
  });
}

/** Sends bytes, waiting for room (bounded) when the stream says it is full. */
async function write(s: Stream, bytes: Uint8Array): Promise<void> {
  if (s.writeStatus !== 'writable') return;
  if (s.send(bytes)) return;
  await Promise.race([
    new Promise<void>((r) => { s.addEventListener('drain', () => r(), { once: true }); s.addEventListener('close', () => r(), { once: true }); }),
    sleep(5_000),
  ]);
}

function rawFrame(len: number, body: Uint8Array = new Uint8Array()): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(len >>> 0, 0);
  return Buffer.concat([h, body]);
}

interface StreamOutcome { name: string; opened: boolean; resetByPeer: boolean; error?: string }

/** Opens a fresh stream on `protocol`, sends `frames`, lets the peer read them, and reports
 *  whether the peer ended the stream. */
async function onStream(node: Libp2p, target: string, protocol: string, name: string, frames: Uint8Array[], settleMs = SETTLE_MS): Promise<StreamOutcome> {
  let s: Stream;
  try {
    s = await node.dialProtocol(toMultiaddr(parseHostPort(target)), protocol, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    return { name, opened: false, resetByPeer: false, error: (err as Error).message.slice(0, 200) };
  }
  let resetByPeer = false;
  s.addEventListener('close', (e) => { if (!e.local) resetByPeer = true; });
  // Drain whatever the peer writes back (outbound channel streams carry nothing).
  void (async () => { try { for await (const _ of s) { /* discard */ } } catch { /* reset */ } })();
  for (const f of frames) await write(s, f);
  await sleep(settleMs);
  resetByPeer ||= s.status !== 'open';
  // Reset, not close: the peer has read what we sent by now, and a stream we only half-close
  // stays open on its side and counts against the few inbound streams a connection may hold.
  s.abort(new Error('done'));
  return { name, opened: true, resetByPeer };
}

/** An entry owned and signed by `id`. */
function signed(id: Identity, key: string, version: number, value: string | null): Entry {
  const e = { owner: id.id, key, version, value };
  return { ...e, sig: id.sign(entrySigningBytes(e)) };
}

/** Control channel, as a member: garbage, oversized, and membership records about others
 *  (forged signatures, incarnations past the bound, tombstones, too many records). */
async function control(a: Args): Promise<unknown> {
  const { target, password, victim, other } = a as { target: string; password: string; victim: { id: string; name: string; inc: number }; other: { id: string; name: string; inc: number } };
  const node = await libp2pNode({ key: deriveMeshKey(password) });
  const rec = (m: { id: string; name: string }, inc: number, state: string) => ({
    id: m.id, name: m.name, addrs: ['10.9.9.9:6783'], tags: ['pwned'], role: 'manager', inc, state, sig: randomBytes(64).toString('base64'),
  });
  const f = (v: unknown) => encodeFrame(v);
  const out: StreamOutcome[] = [];
  try {
    out.push(await onStream(node, target, MEMBERSHIP_PROTOCOL, 'not JSON', [rawFrame(5, Buffer.from('{{{{{'))]));
    out.push(await onStream(node, target, MEMBERSHIP_PROTOCOL, 'frame claiming 4 GiB', [rawFrame(0xffffffff, randomBytes(1024))]));
    out.push(await onStream(node, target, MEMBERSHIP_PROTOCOL, 'frame of 2 MiB', [rawFrame(2 * 1024 * 1024, randomBytes(2 * 1024 * 1024))]));
    out.push(await onStream(node, target, MEMBERSHIP_PROTOCOL, 'wrong shapes', [
      f(null), f([]), f('hb'), f({ t: 'hb' }), f({ t: 'hb', inc: -1, sum: 0 }), f({ t: 'hb', inc: 2 ** 53, sum: 2 ** 40 }),
      f({ t: 'nope' }), f({ t: 'probe-req', target: 'x'.repeat(1000) }), f({ t: 'probe-ack', target: victim.id, heardAgoMs: -5, linked: 'yes' }),
      f({ t: 'members', records: 'all', forgotten: [] }), f({ t: '__proto__', records: [] }),
      f({ t: 'probe-ack', target: victim.id, heardAgoMs: null, linked: false, abstain: 'yes' }),
      // Well formed but answering no probe (replayed, or made up): ignored.
      f({ t: 'probe-ack', target: victim.id, heardAgoMs: null, linked: false, abstain: true }),
      // About a peer nobody knows: answered with an abstention, nothing else.
      f({ t: 'probe-req', target: `12D3KooW${'u'.repeat(44)}` }),
    ]));
    out.push(await onStream(node, target, MEMBERSHIP_PROTOCOL, 'forged records about the victim and a member', [
      f({ t: 'update', records: [rec(victim, victim.inc + 1, 'dead'), rec(other, other.inc + 1, 'dead')], forgotten: [] }),
      f({ t: 'members', records: [rec(victim, victim.inc, 'left'), rec(other, other.inc, 'left')], forgotten: [] }),
      f({ t: 'update', records: [rec(other, 2 ** 31 - 1, 'alive')], forgotten: [] }),
    ]));
    out.push(await onStream(node, target, MEMBERSHIP_PROTOCOL, 'pings and acks carrying forged, malformed and oversized piggyback', [
      f({ t: 'hb', inc: 1, sum: 0, records: [rec(victim, victim.inc + 1, 'dead')], forgotten: [{ id: other.id, inc: 2 ** 31 - 1 }] }),
      f({ t: 'hb', inc: 1, sum: 0, ack: true, records: [rec(other, other.inc, 'left'), rec(victim, 2 ** 31 - 1, 'suspect')] }),
      f({ t: 'hb', inc: 1, sum: 0, records: 'all' }), f({ t: 'hb', inc: 1, sum: 0, forgotten: [{ id: 5 }] }),
      f({ t: 'hb', inc: 1, sum: 0, ack: true, records: Array.from({ length: 513 }, (_, i) => rec({ id: `12D3KooW${String(i).padStart(44, 'z')}`, name: `ghost-${i}` }, 1, 'alive')) }),
    ]));
    out.push(await onStream(node, target, MEMBERSHIP_PROTOCOL, 'incarnations past the bound', [
      f({ t: 'update', records: [rec(other, 2 ** 53 - 1, 'dead')], forgotten: [] }),
      f({ t: 'update', records: [], forgotten: [{ id: other.id, inc: 2 ** 53 - 1 }] }),
    ]));
    out.push(await onStream(node, target, MEMBERSHIP_PROTOCOL, 'tombstones above what the subjects signed', [
      f({ t: 'update', records: [], forgotten: [{ id: victim.id, inc: 2 ** 31 - 1 }, { id: other.id, inc: 2 ** 31 - 1 }] }),
    ]));
    out.push(await onStream(node, target, MEMBERSHIP_PROTOCOL, '513 records', [
      f({ t: 'members', records: Array.from({ length: 513 }, (_, i) => rec({ id: `12D3KooW${String(i).padStart(44, 'x')}`, name: `ghost-${i}` }, 1, 'alive')), forgotten: [] }),
    ]));
    out.push(await onStream(node, target, MEMBERSHIP_PROTOCOL, '512 ghost records, badly signed', [
      f({ t: 'members', records: Array.from({ length: 512 }, (_, i) => rec({ id: `12D3KooW${String(i).padStart(44, 'y')}`, name: `ghost-${i}` }, 1, 'alive')), forgotten: [] }),
    ]));
  } finally {
    await node.stop();
  }
  return { streams: out };
}

/** Sync channel, as a member: forged digests (rows about the victim and about others, huge
 *  levels), entries of others with our signature, a snapshot that would erase another owner's
 *  entries, oversized lists, and a flood of entries of our own past the quota. */
async function sync(a: Args): Promise<unknown> {
  const { target, password, victim, other, flood } = a as { target: string; password: string; victim: string; other: string; flood: number };
  const me = await identityFromSeed(randomBytes(32));
  const node = await libp2pNode({ key: deriveMeshKey(password) }, me);
  const f = (v: unknown) => encodeFrame(v);
  const forgedAs = (owner: string, key: string, version: number, value: string | null): Entry => {
    const e = { owner, key, version, value };
    return { ...e, sig: me.sign(entrySigningBytes(e)) };
  };
  const out: StreamOutcome[] = [];
  let flooded = 0;
  try {
    out.push(await onStream(node, target, SYNC_PROTOCOL, 'not JSON', [rawFrame(3, Buffer.from('\xff\xfe\x00'))]));
    out.push(await onStream(node, target, SYNC_PROTOCOL, 'frame claiming 4 GiB', [rawFrame(0xffffffff, randomBytes(4096))]));
    out.push(await onStream(node, target, SYNC_PROTOCOL, 'unknown types and versions', [
      f({ t: 'digest', v: 2, digest: {} }), f({ t: 'gossip', v: 1 }), f({ t: 'push', v: 1, entries: 'x' }), f(42),
    ]));
    out.push(await onStream(node, target, SYNC_PROTOCOL, 'digest: row about the victim at 2^53-1', [
      f({ t: 'digest', v: 1, digest: { [victim]: { complete: 2 ** 53 - 1, floor: 0 } } }),
    ]));
    out.push(await onStream(node, target, SYNC_PROTOCOL, 'digest: rows about the victim and a member at the highest level', [
      f({ t: 'digest', v: 1, digest: { [victim]: { complete: 2 ** 48, floor: 2 ** 48 }, [other]: { complete: 2 ** 48, floor: 2 ** 48, hash: 7 } } }),
      f({ t: 'digest', v: 1, reply: true, digest: { [victim]: { complete: 2 ** 48 - 1, floor: 0 }, [other]: { complete: 2 ** 48 - 1, floor: 0 } } }),
    ]));
    out.push(await onStream(node, target, SYNC_PROTOCOL, 'digest: 4097 owners', [
      f({ t: 'digest', v: 1, digest: Object.fromEntries(Array.from({ length: 4097 }, (_, i) => [`owner-${i}`, { complete: 1, floor: 0 }])) }),
    ]));
    out.push(await onStream(node, target, SYNC_PROTOCOL, 'entries of the victim and a member, signed by us', [
      f({ t: 'push', v: 1, entries: [forgedAs(victim, 'kv/hostile-forged', 2 ** 40, 'forged'), forgedAs(other, 'kv/base-h2', 2 ** 40, 'forged')] }),
      f({ t: 'push', v: 1, entries: [forgedAs(other, 'kv/base-h2', 2 ** 40, null)] }),
    ]));
    out.push(await onStream(node, target, SYNC_PROTOCOL, 'entries at version 2^53-1 and past the bound', [
      f({ t: 'push', v: 1, entries: [signed(me, 'kv/hostile-huge', 2 ** 53 - 1, 'x')] }),
      f({ t: 'push', v: 1, entries: [signed(me, 'kv/hostile-huge', 2 ** 48 + 1, 'x')] }),
    ]));
    out.push(await onStream(node, target, SYNC_PROTOCOL, 'snapshots and deltas that would erase others\' entries', [
      f({ t: 'snapshot', v: 1, owner: other, level: 2 ** 48, floor: 2 ** 48, replace: true, keys: { from: '', to: null }, entries: [] }),
      f({ t: 'snapshot', v: 1, owner: victim, level: 2 ** 48, floor: 2 ** 48, replace: true, keys: { from: '', to: null }, entries: [] }),
      f({ t: 'delta', v: 1, owner: other, from: 0, to: 2 ** 48, keys: { from: '', to: null }, entries: [] }),
      f({ t: 'delta', v: 1, owner: victim, from: 0, to: 2 ** 48, keys: { from: '', to: null }, entries: [] }),
    ]));
    // The scheduler's agent report (agent/state): junk, huge and lying reports of our own, and
    // one in the victim's name. The reconciler must read none of them as a node's state.
    const hugeReport = JSON.stringify({ v: 1, docker: 'ok', memoryBytes: 2 ** 53, tasks: Array.from({ length: 5000 }, (_, i) => ({ task: `shop/web/${i}`, epoch: 1, config: 'x', state: 'running', health: 'none', since: 0 })) });
    out.push(await onStream(node, target, SYNC_PROTOCOL, 'agent reports: junk, oversized, lying, and one in the victim\'s name', [
      f({ t: 'push', v: 1, entries: [signed(me, 'agent/state', 1, '{not json')] }),
      f({ t: 'push', v: 1, entries: [signed(me, 'agent/state', 2, JSON.stringify({ v: 9, docker: 'ok', memoryBytes: -1, tasks: 'all' }))] }),
      f({ t: 'push', v: 1, entries: [signed(me, 'agent/state', 3, hugeReport)] }),
      f({ t: 'push', v: 1, entries: [signed(me, 'agent/state', 4, JSON.stringify({ v: 1, docker: 'ok', memoryBytes: 1e12, tasks: [{ task: 'shop/web/1', epoch: 2 ** 53 - 1, config: 'x', state: 'running', health: 'healthy', since: 0 }] }))] }),
      f({ t: 'push', v: 1, entries: [forgedAs(victim, 'agent/state', 2 ** 40, JSON.stringify({ v: 1, docker: 'unavailable', memoryBytes: 0, tasks: [] }))] }),
    ]));
    out.push(await onStream(node, target, SYNC_PROTOCOL, '4097 entries in one push', [
      f({ t: 'push', v: 1, entries: Array.from({ length: 4097 }, (_, i) => signed(me, `kv/hostile-list-${i}`, i + 1, 'v')) }),
    ]));
    // The quota flood: our own, validly signed kv entries, far past the kv quota.
    const PER_MESSAGE = 2000;
    const frames: Uint8Array[] = [];
    for (let i = 0; i < flood; i += PER_MESSAGE) {
      const entries: Entry[] = [];
      for (let j = i; j < Math.min(flood, i + PER_MESSAGE); j++) entries.push(signed(me, `kv/hostile-flood/${j}`, j + 1, 'x'.repeat(32)));
      frames.push(f({ t: 'push', v: 1, entries }));
      flooded += entries.length;
    }
    // Given time to be read whole: every message costs the victim its signature checks.
    out.push(await onStream(node, target, SYNC_PROTOCOL, `flood of ${flooded} own entries`, frames, 8_000));
  } finally {
    await sleep(1000);
    await node.stop();
  }
  return { attacker: me.id, flooded, streams: out };
}

/** IPAM channel, as a member: malformed messages, a ring of another genesis, hints about the
 *  victim, wants for addresses outside the range. `removal` sends only a removal record
 *  naming the victim dead (run last: it is the one that could take the victim's space). */
async function ipam(a: Args): Promise<unknown> {
  const { target, password, victim, range, removal, want } = a as { target: string; password: string; victim: string; range: string; removal?: boolean; want?: boolean };
  const me = await identityFromSeed(randomBytes(32));
  const node = await libp2pNode({ key: deriveMeshKey(password) }, me);
  const f = (v: unknown) => encodeFrame(v);
  const state = (extra: Record<string, unknown>) => ({ t: 'state', v: 1, range, ring: null, removed: [], hints: [], hash: 'x', resHash: 'y', ...extra });
  const out: StreamOutcome[] = [];
  try {
    if (removal) {
      out.push(await onStream(node, target, IPAM_PROTOCOL, 'removal of the victim, with us as heir', [
        f(state({ removed: [{ dead: victim, claims: [me.id], acks: [me.id], heir: null }] })),
        f(state({ removed: [{ dead: victim, claims: [], acks: [], heir: me.id }] })),
      ]));
      return { attacker: me.id, streams: out };
    }
    if (want) {
      // A plain request for space, from a peer id that never joined the membership.
      out.push(await onStream(node, target, IPAM_PROTOCOL, 'want from a non-member', [f({ t: 'want', v: 1, range })]));
      return { attacker: me.id, streams: out };
    }
    out.push(await onStream(node, target, IPAM_PROTOCOL, 'not JSON', [rawFrame(4, Buffer.from('nope'))]));
    out.push(await onStream(node, target, IPAM_PROTOCOL, 'frame claiming 4 GiB', [rawFrame(0xffffffff, randomBytes(4096))]));
    out.push(await onStream(node, target, IPAM_PROTOCOL, 'wrong version, range and shapes', [
      f({ t: 'state', v: 2, range }), f(state({ range: '10.0.0.0/8' })), f(state({ ring: 'all' })), f({ t: 'res', v: 1, range, items: [['id', -1, 0, 'x']] }),
      f({ t: 'boot', v: 1, range, m: { t: 'accept', b: [1, me.id], value: { members: [], by: [1, me.id] } } }), f({ t: 'mystery', v: 1, range }),
    ]));
    out.push(await onStream(node, target, IPAM_PROTOCOL, 'a ring of another genesis that gives us everything', [
      f(state({ ring: { genesis: 'forged-genesis', peers: [me.id], tokens: [0, 0, 0] } })),
    ]));
    out.push(await onStream(node, target, IPAM_PROTOCOL, 'hints about the victim, huge numbers', [
      f(state({ hints: [[victim, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER], [me.id, Number.MAX_SAFE_INTEGER, 1]] })),
    ]));
    out.push(await onStream(node, target, IPAM_PROTOCOL, 'wants outside the range', [
      f({ t: 'want', v: 1, range, addr: Number.MAX_SAFE_INTEGER, identity: 'x' }), f({ t: 'want', v: 1, range, addr: 2 ** 40, identity: 'y'.repeat(10_000) }),
    ]));
    out.push(await onStream(node, target, IPAM_PROTOCOL, 'a state with 4097 hints', [
      f(state({ hints: Array.from({ length: 4097 }, (_, i) => [`p${i}`, 1, 1]) })),
    ]));
  } finally {
    await node.stop();
  }
  return { attacker: me.id, streams: out };
}

// ---- the managers' channel (Raft and forwarded requests) -------------------------------------

interface ManagerReply { id: string; ok: boolean; value?: unknown; error?: string }

/** A member's node that also takes the manager channel: the victim answers forwarded requests
 *  (and Raft messages) on a stream of its own to us, which this collects. */
async function managerNode(password: string, me: Identity) {
  const node = await libp2pNode({ key: deriveMeshKey(password) }, me);
  const replies = new Map<string, ManagerReply>();
  const raft: Array<Record<string, unknown>> = [];
  let frames = 0;
  await node.handle(MANAGER_PROTOCOL, (stream: Stream) => {
    void (async () => {
      const dec = new FrameDecoder(64 * 1024 * 1024);
      try {
        for await (const chunk of stream) {
          for (const m of dec.push(chunk instanceof Uint8Array ? chunk : chunk.subarray()) as Array<Record<string, any>>) {
            frames++;
            if (m?.k === 'res' && typeof m.id === 'string') replies.set(m.id, { id: m.id, ok: m.ok === true, value: m.value, error: m.error });
            else if (m?.k === 'raft' && raft.length < 100) raft.push(m.m);
          }
        }
      } catch { /* reset */ }
    })();
  }, { maxInboundStreams: 8 });
  return { node, replies, raft, get frames() { return frames; } };
}

/** One long-lived stream to the victim's manager channel, for requests: frames go out as fast
 *  as the stream takes them (bounded waits when it is full). */
async function managerStream(node: Libp2p, target: string): Promise<Stream> {
  const s = await node.dialProtocol(toMultiaddr(parseHostPort(target)), MANAGER_PROTOCOL, { signal: AbortSignal.timeout(10_000) });
  void (async () => { try { for await (const _ of s) { /* nothing comes back on it */ } } catch { /* reset */ } })();
  return s;
}

async function waitReplies(replies: Map<string, ManagerReply>, ids: string[], ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until && !ids.every((id) => replies.has(id))) await sleep(50);
}

/** The managers' channel, as a member. `mode`:
 *  - refused: garbage, non-objects, unknown kinds and ops, Raft messages with a forged sender,
 *    malformed Raft messages (at a term far above the victim's, so that any the shell let
 *    through would show as a new term), well-formed ones a leader ignores or answers, snapshot
 *    chunks with bad offsets to a peer that is not a manager (`follower`), and forwarded
 *    requests that are invalid or name nothing: each refused or answered with an error.
 *  - flood: `count` requests with distinct ids, as fast as the victim reads them.
 *  - term: one heartbeat at term 2^53-1 (a Byzantine member: Raft cannot refuse it).
 *  - change: a forwarded promotion of a peer id no member has.
 *  - snapshot: a well-formed snapshot whose data is not desired state, to `follower`. */
async function manager(a: Args): Promise<unknown> {
  const { target, password, mode, victim, other, follower, count } = a as {
    target: string; password: string; mode: 'refused' | 'flood' | 'term' | 'change' | 'snapshot';
    victim: { id: string; term: number; commit: number }; other: { id: string };
    follower?: { target: string; id: string; term: number }; count?: number;
  };
  const me = await identityFromSeed(randomBytes(32));
  const m = await managerNode(password, me);
  const { node, replies } = m;
  const f = (v: unknown) => encodeFrame(v);
  // The victim's cluster id (cluster-id.ts), when the test knows it: without it a peer that
  // holds Raft state refuses every Raft message as another cluster's before its core sees it.
  const cluster = a.cluster as string | undefined;
  const raft = (msg: Record<string, unknown>, to = victim.id) => f({ k: 'raft', ...(cluster ? { c: cluster } : {}), m: { from: me.id, to, ...msg } });
  const out: StreamOutcome[] = [];
  const result: Record<string, unknown> = { attacker: me.id, streams: out };
  const T = victim.term;
  const C = victim.commit;
  const HIGH = T + 1000;
  const put = (name: string, spec: unknown = 'hostile', extra: Record<string, unknown> = {}) => ({ op: 'put', kind: 'config', name, spec, req: `hostile-${name}`, ...extra });
  try {
    if (mode === 'term') {
      out.push(await onStream(node, target, MANAGER_PROTOCOL, 'heartbeat at term 2^53-1', [raft({ type: 'heartbeat', term: Number.MAX_SAFE_INTEGER, commit: 0 })], 1000));
      return result;
    }
    if (mode === 'snapshot') {
      const fl = follower!;
      out.push(await onStream(node, fl.target, MANAGER_PROTOCOL, 'a snapshot of junk data', [
        raft({ type: 'snap', term: fl.term + 1, index: 1_000_000, snapTerm: 1, membership: { voters: [me.id], learners: [] }, offset: 0, total: 4, chunk: 'junk' }, fl.id),
      ], 1000));
      return result;
    }
    if (mode === 'change') {
      const s = await managerStream(node, target);
      const ids = ['change-junk-promote', 'change-junk-demote'];
      await write(s, f({ k: 'req', id: ids[0], op: 'change', change: 'promote', peer: 'ZZZhostileNoSuchPeer' }));
      await write(s, f({ k: 'req', id: ids[1], op: 'change', change: 'demote', peer: `12D3KooW${'h'.repeat(44)}` }));
      await waitReplies(replies, ids, 8_000);
      result.replies = ids.map((id) => replies.get(id) ?? null);
      s.abort(new Error('done'));
      return result;
    }
    if (mode === 'flood') {
      const n = count ?? 4000;
      const s = await managerStream(node, target);
      const t0 = Date.now();
      const ops = [
        { op: 'read-index' }, { op: 'managers' }, { op: 'query', query: { q: 'get', kind: 'config', name: 'hostile-none' }, consistent: true },
        { op: 'transfer', to: 'ZZZhostileNoSuchPeer' }, { op: 'query', query: { q: 'list', kind: 'config', prefix: 'hostile-none/' }, consistent: false },
      ];
      let sent = 0;
      for (let i = 0; i < n && Date.now() - t0 < 20_000 && s.writeStatus === 'writable'; i++) {
        // Distinct ids, and as many answers to nothing the victim asked.
        await write(s, f({ k: 'req', id: `flood-${i}-${randomBytes(8).toString('hex')}`, ...ops[i % ops.length] }));
        await write(s, f({ k: 'res', id: `nobody-${i}`, ok: true, value: 'x'.repeat(512) }));
        sent++;
      }
      const sentMs = Date.now() - t0;
      // Answers keep coming (bounded wait): how many of them, not which.
      const until = Date.now() + 10_000;
      while (Date.now() < until && replies.size < sent) await sleep(100);
      result.flood = { sent, sentMs, answered: replies.size, ok: [...replies.values()].filter((r) => r.ok).length, ms: Date.now() - t0 };
      s.abort(new Error('done'));
      return result;
    }

    // ---- refused ----
    out.push(await onStream(node, target, MANAGER_PROTOCOL, 'not JSON', [rawFrame(6, Buffer.from('{"k":['))]));
    out.push(await onStream(node, target, MANAGER_PROTOCOL, 'frame claiming 4 GiB', [rawFrame(0xffffffff, randomBytes(4096))]));
    out.push(await onStream(node, target, MANAGER_PROTOCOL, 'frame claiming 33 MiB, past the limit', [rawFrame(33 * 1024 * 1024, randomBytes(64 * 1024))]));
    out.push(await onStream(node, target, MANAGER_PROTOCOL, 'random bytes', [randomBytes(3000)]));
    out.push(await onStream(node, target, MANAGER_PROTOCOL, 'non-objects', [f(null), f([]), f('raft'), f(42), f(true), f([{ k: 'raft' }])]));
    out.push(await onStream(node, target, MANAGER_PROTOCOL, 'unknown kinds and ops', [
      f({}), f({ k: 'nope' }), f({ k: '__proto__' }), f({ k: 'constructor' }), f({ k: 'raft' }), f({ k: 'raft', m: 'hb' }),
      f({ k: 'req' }), f({ k: 'req', id: '', op: 'managers' }), f({ k: 'req', id: 'x'.repeat(65), op: 'managers' }), f({ k: 'req', id: 5, op: 'managers' }),
      f({ k: 'req', id: 'u1', op: 'nope' }), f({ k: 'req', id: 'u2', op: '__proto__' }), f({ k: 'req', id: 'u3', op: 'toString' }),
      f({ k: 'res', id: 'nobody', ok: 'maybe' }), f({ k: 'res', id: 'nobody', ok: true, value: { x: 1 } }), f({ k: 'res', id: 'nobody', ok: false, error: 'e'.repeat(100_000) }),
    ]));
    // Raft messages naming another sender (the victim itself, a member): the shell refuses them
    // whatever they say. At a term far above the victim's, and with an entry that would write.
    const forged: Uint8Array[] = [];
    for (const from of [victim.id, other.id]) {
      const fm = (msg: Record<string, unknown>) => f({ k: 'raft', m: { from, to: victim.id, ...msg } });
      forged.push(
        fm({ type: 'heartbeat', term: HIGH, commit: C }),
        fm({ type: 'vote', term: HIGH, pre: false, lastIndex: 2 ** 40, lastTerm: HIGH }),
        fm({ type: 'app', term: HIGH, prevIndex: C, prevTerm: 0, commit: C + 1, entries: [{ index: C + 1, term: HIGH, data: JSON.stringify(put('hostile-forged-raft')) }] }),
        fm({ type: 'timeout-now', term: T }),
        fm({ type: 'snap', term: HIGH, index: C + 100, snapTerm: 1, membership: { voters: [me.id], learners: [] }, offset: 0, total: 4, chunk: 'junk' }),
        fm({ type: 'app-resp', term: T, index: 2 ** 40, hint: 0, reject: false }),
      );
    }
    out.push(await onStream(node, target, MANAGER_PROTOCOL, 'raft messages with a forged sender', forged));
    // Malformed, from us: each refused by the wire checks. At a term far above the victim's.
    const e = (i: number, extra: Record<string, unknown> = {}) => ({ index: C + 1 + i, term: HIGH, data: null, ...extra });
    const members = (n: number) => Array.from({ length: n }, (_, i) => `12D3KooW${String(i).padStart(44, 'm')}`);
    const snap = (extra: Record<string, unknown>) => ({ type: 'snap', term: HIGH, index: C + 100, snapTerm: 1, membership: { voters: [me.id], learners: [] }, offset: 0, total: 4, chunk: 'junk', ...extra });
    const app = (extra: Record<string, unknown>) => ({ type: 'app', term: HIGH, prevIndex: C, prevTerm: 0, commit: C, entries: [], ...extra });
    const malformed: Array<[string, Record<string, unknown>]> = [
      ['term -1', { type: 'heartbeat', term: -1, commit: 0 }], ['term 2^53', { type: 'heartbeat', term: 2 ** 53, commit: 0 }],
      ['term 1.5', { type: 'heartbeat', term: 1.5, commit: 0 }], ['term as text', { type: 'heartbeat', term: String(HIGH), commit: 0 }],
      ['no type', { term: HIGH }], ['unknown type', { type: 'install', term: HIGH }], ['__proto__ type', { type: '__proto__', term: HIGH }],
      ['vote without pre', { type: 'vote', term: HIGH, lastIndex: 0, lastTerm: 0 }], ['vote transfer "yes"', { type: 'vote', term: HIGH, pre: false, lastIndex: 2 ** 40, lastTerm: HIGH, transfer: 'yes' }],
      ['heartbeat with a 129-character ctx', { type: 'heartbeat', term: HIGH, commit: 0, ctx: 'c'.repeat(129) }], ['heartbeat without commit', { type: 'heartbeat', term: HIGH }],
      ['app prevTerm above its term', app({ prevTerm: HIGH + 1 })], ['app entries not a list', app({ entries: 'all' })],
      [`app with ${MAX_ENTRIES_PER_MESSAGE + 1} entries`, app({ entries: Array.from({ length: MAX_ENTRIES_PER_MESSAGE + 1 }, (_, i) => e(i)) })],
      ['app entries with a gap', app({ entries: [e(0), e(2)] })], ['app entry term above the message', app({ entries: [e(0, { term: HIGH + 1 })] })],
      ['app entry terms decreasing', app({ prevTerm: 5, entries: [e(0, { term: 4 })] })], ['app entry not an object', app({ entries: [null] })],
      [`app entry command of ${MAX_COMMAND_BYTES + 1} bytes`, app({ entries: [e(0, { data: 'x'.repeat(MAX_COMMAND_BYTES + 1) })] })],
      ['app entry command not a string', app({ entries: [e(0, { data: { op: 'put' } })] })],
      [`app membership of ${MAX_MEMBERS + 1}`, app({ entries: [e(0, { conf: { voters: members(MAX_MEMBERS + 1), learners: [] } })] })],
      ['app membership listing one twice', app({ entries: [e(0, { conf: { voters: [me.id], learners: [me.id] } })] })],
      ['app membership with no voter', app({ entries: [e(0, { conf: { voters: [], learners: [me.id] } })] })],
      ['app membership entry carrying a command', app({ entries: [e(0, { data: 'x', conf: { voters: [me.id], learners: [] } })] })],
      ['snap index 0', snap({ index: 0 })], ['snap snapTerm above its term', snap({ snapTerm: HIGH + 1 })],
      ['snap chunk past its total', snap({ offset: 2, total: 4 })], ['snap offset past its total', snap({ offset: 10, total: 4 })],
      ['snap negative offset', snap({ offset: -1 })], [`snap total above ${MAX_SNAPSHOT_CHARS}`, snap({ total: MAX_SNAPSHOT_CHARS + 1 })],
      [`snap chunk of ${MAX_SNAPSHOT_CHUNK_CHARS + 1} characters`, snap({ total: MAX_SNAPSHOT_CHUNK_CHARS + 1, chunk: 's'.repeat(MAX_SNAPSHOT_CHUNK_CHARS + 1) })],
      ['snap empty chunk', snap({ chunk: '', total: 4 })], ['snap chunk not a string', snap({ chunk: 1234 })], ['snap without membership', snap({ membership: undefined })],
      ['snap-resp offset past the bound', { type: 'snap-resp', term: HIGH, index: 1, offset: MAX_SNAPSHOT_CHARS + 1, reject: false }],
      ['from too long', { type: 'heartbeat', term: HIGH, commit: 0, from: 'f'.repeat(129) }], ['to missing', { type: 'heartbeat', term: HIGH, commit: 0, to: undefined }],
    ];
    out.push(await onStream(node, target, MANAGER_PROTOCOL, 'malformed raft messages', malformed.map(([, msg]) => raft(msg)), 1000));
    // 4096 entries (as many as a message may hold) of 7 KB each, with a gap at the very end:
    // ~28 MiB read and checked whole, then refused.
    const big = Array.from({ length: MAX_ENTRIES_PER_MESSAGE }, (_, i) => e(i, { data: 'y'.repeat(7000) }));
    (big[MAX_ENTRIES_PER_MESSAGE - 1] as Record<string, unknown>).index = C + MAX_ENTRIES_PER_MESSAGE + 5;
    out.push(await onStream(node, target, MANAGER_PROTOCOL, '28 MiB append with a gap at its end', [raft(app({ entries: big }))], 3000));
    // Well formed, from us (not a manager), at or below the leader's term: ignored, or answered
    // with a refusal.
    out.push(await onStream(node, target, MANAGER_PROTOCOL, 'well-formed raft from a non-member at the leader\'s term', [
      raft({ type: 'app', term: T, prevIndex: C, prevTerm: T, commit: C + 1, entries: [{ index: C + 1, term: T, data: JSON.stringify(put('hostile-same-term')) }] }),
      raft({ type: 'heartbeat', term: T, commit: C + 1000 }), raft({ type: 'timeout-now', term: T }),
      raft({ type: 'app-resp', term: T, index: 2 ** 40, hint: 0, reject: false }), raft({ type: 'app-resp', term: T, index: 0, hint: 0, reject: true }),
      raft({ type: 'heartbeat-resp', term: T, ctx: 'nobody' }), raft({ type: 'vote-resp', term: T, pre: false, granted: true }),
      raft({ type: 'snap-resp', term: T, index: C, offset: 100, reject: true }),
      raft({ type: 'vote', term: T + 1, pre: true, lastIndex: 2 ** 40, lastTerm: HIGH }),
      raft({ type: 'vote', term: Math.max(0, T - 1), pre: false, lastIndex: 2 ** 40, lastTerm: Math.max(0, T - 1) }),
      raft({ type: 'app', term: Math.max(0, T - 1), prevIndex: C, prevTerm: 0, commit: C + 1, entries: [] }),
    ], 1000));
    // Snapshot chunks that do not follow one another, to a peer that is not a manager (a leader
    // ignores chunks): none completes a snapshot. At that peer's own term.
    if (follower) {
      const ft = Math.max(1, follower.term);
      const s = (extra: Record<string, unknown>) => raft({
        type: 'snap', term: ft, index: 1_000_000, snapTerm: ft, membership: { voters: [me.id], learners: [] }, offset: 0, total: 100, chunk: 'a'.repeat(10), ...extra,
      }, follower.id);
      out.push(await onStream(node, follower.target, MANAGER_PROTOCOL, 'snapshot chunks out of order', [
        s({ offset: 50 }), s({}), s({ offset: 60, chunk: 'b'.repeat(40) }), s({ offset: 5 }), s({ offset: 10, total: 200 }),
        s({ offset: 90, chunk: 'c'.repeat(10), index: 999_999 }), s({ offset: 20, chunk: 'd'.repeat(20), total: 100 }),
      ], 1000));
    }
    // Forwarded requests: invalid ones are refused unanswered; the rest answered with an error
    // or a read, none writes.
    const rs = await managerStream(node, target);
    const refusedReqs: Array<Record<string, unknown>> = [
      { op: 'propose', cmd: null }, { op: 'propose', cmd: 'put' }, { op: 'propose', cmd: put('../etc') }, { op: 'propose', cmd: put('') },
      { op: 'propose', cmd: put('hostile-kind', 'v', { kind: 'secret' }) }, { op: 'propose', cmd: put('hostile-spec', 5) },
      { op: 'propose', cmd: put('hostile-big', 'v'.repeat(64 * 1024 + 1)) }, { op: 'propose', cmd: put('hostile-extra', 'v', { owner: 'x' }) },
      { op: 'propose', cmd: put('hostile-req', 'v', { req: '' }) }, { op: 'propose', cmd: put('hostile-req2', 'v', { req: 'r'.repeat(201) }) },
      { op: 'propose', cmd: put('hostile-expect', 'v', { expect: -1 }) }, { op: 'propose', cmd: { op: 'drop', kind: 'config', name: 'x', req: 'r' } },
      { op: 'propose', cmd: put('hostile-node-role', 'admin', { kind: 'node-role' }) },
      { op: 'propose', cmd: { op: 'restore', data: 'junk', req: 'hostile-restore-1' } },
      { op: 'propose', cmd: { op: 'restore', data: JSON.stringify({ applied: 1, objects: [{ kind: 'config', name: 'base', spec: 5, version: 1, index: 1 }], recent: [] }), req: 'hostile-restore-2' } },
      { op: 'propose', cmd: { op: 'restore', data: 'z'.repeat(901 * 1024), req: 'hostile-restore-3' } },
      { op: 'query', query: { q: 'get', kind: 'config', name: 'n'.repeat(254) }, consistent: true }, { op: 'query', query: { q: 'list', kind: 'secret', prefix: '' }, consistent: false },
      { op: 'query', query: { q: 'drop' }, consistent: false }, { op: 'query', query: null, consistent: false }, { op: 'query', query: { q: 'backup' } },
      { op: 'change', change: 'promote', peer: 'x'.repeat(129) }, { op: 'change', change: 'promote', peer: '../..' }, { op: 'change', change: 'maybe', peer: other.id },
      { op: 'change', change: 'demote', peer: '' }, { op: 'transfer', to: 'x'.repeat(129) }, { op: 'transfer', to: 'h2; rm -rf /' }, { op: 'transfer', to: 7 },
    ];
    const answeredReqs: Array<Record<string, unknown>> = [
      { op: 'query', query: { q: 'get', kind: 'config', name: 'hostile-none' }, consistent: true },
      { op: 'query', query: { q: 'list', kind: 'config', prefix: 'hostile-none/' }, consistent: false },
      { op: 'transfer', to: 'ZZZhostileNoSuchPeer' }, { op: 'transfer', to: other.id }, { op: 'transfer' }, { op: 'read-index' }, { op: 'managers' },
    ];
    const refusedIds = refusedReqs.map((_, i) => `refused-${i}`);
    const answeredIds = answeredReqs.map((_, i) => `answered-${i}`);
    for (const [i, r] of refusedReqs.entries()) await write(rs, f({ k: 'req', id: refusedIds[i], ...r }));
    for (const [i, r] of answeredReqs.entries()) await write(rs, f({ k: 'req', id: answeredIds[i], ...r }));
    await waitReplies(replies, answeredIds, 8_000);
    await sleep(500);
    result.refusedAnswers = refusedIds.map((id, i) => (replies.has(id) ? { req: JSON.stringify(refusedReqs[i]).slice(0, 120), reply: replies.get(id) } : null)).filter(Boolean);
    result.answers = answeredIds.map((id, i) => ({ req: answeredReqs[i], reply: replies.get(id) ?? null }));
    result.streamOpen = rs.status === 'open';
    rs.abort(new Error('done'));
    result.raftAnswers = m.raft.map((x) => `${x.type} term ${x.term}${x.reject ? ' reject' : ''}${x.granted === false ? ' refused' : ''}`);
  } finally {
    await node.stop();
  }
  return result;
}

interface Reply { id?: unknown; result?: unknown; error?: { message?: string } }

/** One API stream with a reader: `call` sends a request and waits (bounded) for its reply. */
async function apiStream(node: Libp2p, target: string) {
  const s = await node.dialProtocol(toMultiaddr(parseHostPort(target)), API_PROTOCOL, { signal: AbortSignal.timeout(10_000) });
  const dec = new FrameDecoder(64 * 1024 * 1024);
  const waiting = new Map<number, (r: Reply) => void>();
  /** Error replies to no request of ours (id -1): what the peer says about a frame it refused. */
  const refusals: string[] = [];
  let closed = false;
  const ended = (async () => {
    try {
      for await (const chunk of s) {
        for (const r of dec.push(chunk instanceof Uint8Array ? chunk : chunk.subarray()) as Reply[]) {
          const w = waiting.get(r.id as number);
          if (w) w(r);
          else if (r.error?.message) refusals.push(r.error.message);
        }
      }
    } catch { /* reset */ }
    closed = true;
    for (const w of waiting.values()) w({ error: { message: 'stream closed' } });
  })();
  let next = 1;
  return {
    stream: s,
    refusals,
    get closed() { return closed || s.status !== 'open'; },
    /** Resolves true once the peer ended the stream, false if it did not within `ms`. */
    endedWithin: (ms: number) => Promise.race([ended.then(() => true), sleep(ms).then(() => false)]),
    async call(method: string, params: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<Reply> {
      const id = next++;
      const got = new Promise<Reply>((r) => waiting.set(id, r));
      await write(s, encodeFrame({ id, method, params }));
      return Promise.race([got, sleep(timeoutMs).then(() => ({ error: { message: `no reply within ${timeoutMs} ms` } }))]);
    },
    async close() { await s.close({ signal: AbortSignal.timeout(2_000) }).catch(() => s.abort(new Error('done'))); },
  };
}

/** Pipelines `count` requests on each of `streams` streams and never reads a reply, for `holdMs`
 *  (the test watches the victim's memory meanwhile). */
async function pipeline(node: Libp2p, target: string, streams: number, count: number, method: string, params: Record<string, unknown>, holdMs: number): Promise<{ written: number }> {
  let written = 0;
  const opened: Stream[] = [];
  for (let k = 0; k < streams; k++) {
    const s = await node.dialProtocol(toMultiaddr(parseHostPort(target)), API_PROTOCOL, { signal: AbortSignal.timeout(10_000) });
    // Never read: the replies must wait in the victim (bounded), not here.
    s.pause();
    opened.push(s);
  }
  const until = Date.now() + holdMs;
  await Promise.all(opened.map(async (s) => {
    for (let i = 0; i < count && Date.now() < until && s.writeStatus === 'writable'; i++) {
      // Never wait for long: a victim that stops reading is what we want to see.
      if (!s.send(encodeFrame({ id: i + 1, method, params }))) await Promise.race([new Promise((r) => s.addEventListener('drain', r, { once: true })), sleep(200)]);
      written++;
    }
  }));
  process.stdout.write(`pipelined ${written}\n`);
  await sleep(Math.max(0, until - Date.now()));
  for (const s of opened) s.abort(new Error('done'));
  return { written };
}

/** The API, as a member or a token holder: forbidden methods, member channels, malformed,
 *  oversized and pipelined requests. */
async function api(a: Args): Promise<unknown> {
  const { target, password, token, forbidden, channels, bigValueKey, pipelineCount, pipelineStreams, holdMs } = a as {
    target: string; password?: string; token?: string; forbidden: Array<[string, Record<string, unknown>]>; channels: boolean;
    bigValueKey?: string; pipelineCount: number; pipelineStreams: number; holdMs: number;
  };
  const node = await libp2pNode(password ? { key: deriveMeshKey(password) } : { apiToken: parseApiToken(token as string) });
  const result: Record<string, unknown> = {};
  try {
    const c = await apiStream(node, target);
    result.status = (await c.call('status')).result !== undefined;
    result.forbidden = [];
    for (const [method, params] of forbidden) {
      const r = await c.call(method, params);
      (result.forbidden as unknown[]).push({ method, error: r.error?.message ?? null, result: r.result ?? null });
    }
    result.malformed = [];
    for (const req of [{ id: 'x', method: 5 }, { method: 'status' }, { id: 1e300, method: 'status', params: 'no' }, { id: 2, method: 'nope', params: {} }, { id: 3, method: '__proto__', params: {} }]) {
      await write(c.stream, encodeFrame(req));
    }
    await sleep(SETTLE_MS);
    result.afterMalformed = (await c.call('status')).result !== undefined;
    await c.close();
    // A request of 2 MiB, and a length of 4 GiB: each refused with a reason, then the stream
    // is ended by the peer (nothing after such a length can be trusted to be a request).
    const big = await apiStream(node, target);
    await write(big.stream, encodeFrame({ id: 1, method: 'kv.put', params: { key: 'hostile-oversized', value: 'x'.repeat(2 * 1024 * 1024) } }));
    result.oversized = { ended: await big.endedWithin(10_000), refusals: big.refusals };
    await big.close();
    const lie = await apiStream(node, target);
    await write(lie.stream, rawFrame(0xfffffff0, randomBytes(8192)));
    result.hugeLength = { ended: await lie.endedWithin(10_000), refusals: lie.refusals };
    await lie.close();
    if (channels) {
      const f = encodeFrame({ t: 'hb', inc: 1, sum: 0 });
      result.channels = [
        await onStream(node, target, MEMBERSHIP_PROTOCOL, 'control', [f]),
        await onStream(node, target, SYNC_PROTOCOL, 'sync', [encodeFrame({ t: 'digest', v: 1, digest: {} })]),
        await onStream(node, target, IPAM_PROTOCOL, 'ipam', [encodeFrame({ t: 'want', v: 1, range: '10.32.0.0/12' })]),
        await onStream(node, target, MANAGER_PROTOCOL, 'manager', [encodeFrame({ k: 'req', id: 'token-1', op: 'managers' })]),
      ];
    }
    if (bigValueKey) {
      result.pipeline = await pipeline(node, target, pipelineStreams, pipelineCount, 'kv.get', { key: bigValueKey }, holdMs);
    }
    // Still served on a new stream of the same connection after all of it.
    const after = await apiStream(node, target);
    result.afterAll = (await after.call('status')).result !== undefined;
    await after.close();
  } finally {
    await node.stop();
  }
  return result;
}

// ---- DNS -----------------------------------------------------------------------------------------

function dnsQuery(name: string, id = Math.floor(Math.random() * 65536), qtype = 1): Buffer {
  const labels = name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.of(l.length), Buffer.from(l)]));
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2);
  h.writeUInt16BE(1, 4);
  return Buffer.concat([h, ...labels, Buffer.of(0), Buffer.from([0, qtype, 0, 1])]);
}

/** UDP from many source ports (every one of 1..65535 with `allPorts`): valid, truncated,
 *  random and oversized datagrams, each port sending one. Port 0 needs a raw socket: the test
 *  sends it with python3. */
async function dnsUdp(a: Args): Promise<unknown> {
  const { host, port, names, from, to } = a as { host: string; port: number; names: string[]; from: number; to: number };
  const ports = Array.from({ length: to - from + 1 }, (_, i) => from + i);
  const kinds = (i: number): Buffer => {
    const q = dnsQuery(names[i % names.length] as string);
    switch (i % 6) {
      case 0: return q;
      case 1: return q.subarray(0, 1 + (i % (q.length - 1)));
      case 2: return randomBytes(1 + (i % 512));
      case 3: { const m = Buffer.from(q); m[2] = 0xff; m[3] = 0xff; m.writeUInt16BE(0xffff, 4); return m; }
      case 4: return Buffer.concat([q, randomBytes(4096)]);
      default: return Buffer.alloc(0);
    }
  };
  let sent = 0;
  let failed = 0;
  // 64 sockets at a time: each binds one source port, sends one datagram, closes.
  for (let i = 0; i < ports.length; i += 64) {
    await Promise.all(ports.slice(i, i + 64).map((sp, j) => new Promise<void>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.on('error', () => { failed++; s.close(); resolve(); });
      s.bind(sp, () => s.send(kinds(i + j), port, host, (err) => { if (err) failed++; else sent++; s.close(); resolve(); }));
    })));
  }
  // Oversized: the largest datagram IPv4 carries.
  const big = dgram.createSocket('udp4');
  await new Promise<void>((r) => big.send(Buffer.concat([dnsQuery(names[0] as string), randomBytes(65507 - 64)]).subarray(0, 65507), port, host, () => r()));
  big.close();
  return { sent, failed };
}

/** TCP DNS: lengths that lie (65535 with a short body, held open), zero lengths, garbage,
 *  many connections at once, pipelines never read, abrupt resets. */
async function dnsTcp(a: Args): Promise<unknown> {
  const { host, port, name } = a as { host: string; port: number; name: string };
  const q = dnsQuery(name);
  const len = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n, 0); return b; };
  const cases: Array<[string, Uint8Array[]]> = [
    ['length 65535, 10 bytes, then silence', [len(65535), randomBytes(10)]],
    ['length 0', [len(0), len(0), len(0)]],
    ['length 1, one byte', [len(1), Buffer.of(0)]],
    ['one byte of length', [Buffer.of(0xff)]],
    ['a query cut short', [len(q.length), q.subarray(0, 5)]],
    ['garbage of 64 KiB', [randomBytes(65536)]],
    ['length 65535 and 65535 bytes of noise', [len(65535), randomBytes(65535)]],
    ['200 pipelined queries, never read', [Buffer.concat(Array.from({ length: 200 }, () => Buffer.concat([len(q.length), q])))]],
  ];
  // Watched for 3 s each: the server may keep an idle connection longer; what matters is that
  // it keeps answering others meanwhile (the test checks) and never exits.
  const [out, many] = await Promise.all([
    Promise.all(cases.map(([n, parts]) => rawTry(n, host, port, parts, { gapMs: 20, watchMs: 3_000 }))),
    // 100 connections at once holding a length of 65535 and nothing more.
    Promise.all(Array.from({ length: 100 }, (_, i) => rawTry(`held ${i}`, host, port, [len(65535)], { watchMs: 3_000 }))),
  ]);
  // Resets mid-query.
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((r) => {
      const s = net.connect({ host, port }, () => { s.write(Buffer.concat([len(q.length), q])); s.resetAndDestroy(); r(); });
      s.on('error', () => r());
    });
  }
  return { cases: out, held: { count: many.length, closedByPeer: many.filter((m) => m.closedByPeer).length } };
}

/** The A records of the first answer to `name`, over UDP and over TCP (empty on no answer). */
async function dnsCheck(a: Args): Promise<unknown> {
  const { host, port, names } = a as { host: string; port: number; names: string[] };
  const ips = (r: Buffer | undefined): string[] => {
    if (!r || r.length < 12) return [];
    const an = r.readUInt16BE(6);
    let o = 12;
    while (o < r.length && r[o] !== 0) o += (r[o] as number) + 1;
    o += 5;
    const out: string[] = [];
    for (let i = 0; i < an && o + 12 <= r.length; i++) {
      while (o < r.length && r[o] !== 0 && (r[o]! & 0xc0) !== 0xc0) o += r[o]! + 1;
      o += o < r.length && (r[o]! & 0xc0) === 0xc0 ? 2 : 1;
      if (o + 10 > r.length) break;
      const type = r.readUInt16BE(o);
      const rdlen = r.readUInt16BE(o + 8);
      if (type === 1 && rdlen === 4) out.push([...r.subarray(o + 10, o + 14)].join('.'));
      o += 10 + rdlen;
    }
    return out;
  };
  const udp = (q: Buffer) => new Promise<Buffer | undefined>((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => { s.close(); resolve(undefined); }, 3_000);
    s.on('message', (m) => { clearTimeout(t); s.close(); resolve(m); });
    s.send(q, port, host);
  });
  const tcpQ = (q: Buffer) => new Promise<Buffer | undefined>((resolve) => {
    const s = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const t = setTimeout(() => { s.destroy(); resolve(undefined); }, 3_000);
    s.on('connect', () => { const l = Buffer.alloc(2); l.writeUInt16BE(q.length); s.write(Buffer.concat([l, q])); });
    s.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) { clearTimeout(t); s.destroy(); resolve(buf.subarray(2)); }
    });
    s.on('error', () => { clearTimeout(t); resolve(undefined); });
  });
  const out: Record<string, { udp: string[]; tcp: string[] }> = {};
  for (const n of names) out[n] = { udp: ips(await udp(dnsQuery(n))), tcp: ips(await tcpQ(dnsQuery(n))) };
  return out;
}

/** A stand-in upstream resolver: answers every question with one A record, 192.0.2.53. */
async function upstream(a: Args): Promise<unknown> {
  const { host, port } = a as { host: string; port: number };
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => {
    if (m.length < 12) return;
    // Header and question only (any EDNS record of the query is left out), then the answer.
    let o = 12;
    while (o < m.length && m[o] !== 0) o += (m[o] as number) + 1;
    const reply = Buffer.from(m.subarray(0, Math.min(m.length, o + 5)));
    reply[2] = 0x81;
    reply[3] = 0x80;
    reply.writeUInt16BE(1, 6);
    reply.writeUInt16BE(0, 8);
    reply.writeUInt16BE(0, 10);
    const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 53]);
    s.send(Buffer.concat([reply, answer]), r.port, r.address);
  });
  s.on('error', (e) => note(`upstream: ${e.message}`));
  await new Promise<void>((r) => s.bind(port, host, () => r()));
  note(`upstream listening on ${host}:${port}`);
  await new Promise(() => undefined);
  return {};
}

const attacks: Record<string, (a: Args) => Promise<unknown>> = {
  handshake, replay, slowloris, control, sync, ipam, api, manager, 'dns-udp': dnsUdp, 'dns-tcp': dnsTcp, 'dns-check': dnsCheck, upstream,
};

const [name, json] = process.argv.slice(2);
const attack = attacks[name ?? ''];
if (!attack) {
  process.stderr.write(`usage: hostile-attacker.ts <${Object.keys(attacks).join('|')}> '<json args>'\n`);
  process.exit(2);
}
// The attacker must not die of what the victim does to it either (resets, refusals).
process.on('unhandledRejection', (e) => note(`unhandled rejection: ${(e as Error)?.message ?? String(e)}`));
attack(JSON.parse(json ?? '{}')).then(
  (r) => { process.stdout.write(`${JSON.stringify(r)}\n`); process.exit(0); },
  (e) => { process.stderr.write(`attacker: ${name} failed: ${(e as Error)?.stack ?? String(e)}\n`); process.exit(1); },
);
