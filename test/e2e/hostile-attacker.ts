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
  handshake, replay, slowloris, control, sync, ipam, api, 'dns-udp': dnsUdp, 'dns-tcp': dnsTcp, 'dns-check': dnsCheck, upstream,
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
