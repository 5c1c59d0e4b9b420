// API tokens against live peers on loopback (real libp2p, admission, the API over the mesh):
// what a token holder can and cannot do, and that no trick turns a token into membership.
import { API_TOKEN_PREFIX } from '../mesh/keyspace.ts';
import * as meshApi from '../mesh/api/contract.ts';
import net from 'node:net';
import { join } from 'node:path';
import { statSync, chmodSync, mkdirSync } from 'node:fs';
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { multiaddr } from '@multiformats/multiaddr';
import { afterEach, describe, expect, test } from 'vitest';
import { meshAdmission } from '../mesh/admission/admission.ts';
import { encodeFrame } from '../mesh/framing.ts';
import { deriveMeshKey } from '../mesh/admission/mesh-key.ts';
import { privateDataDir, type Peer } from '../mesh/peer.ts';
import { MEMBERSHIP_PROTOCOL } from '../mesh/membership/wire.ts';
import { SYNC_PROTOCOL } from '../mesh/replication/wire.ts';
import { parseApiToken } from '../mesh/admission/api-token.ts';
import { ApiServer } from '../mesh/api/server.ts';
import { API_PROTOCOL } from '../mesh/api/request.ts';
import { registerPeerMethods } from '../mesh/api/peer-methods.ts';
import { MethodTable } from '../mesh/api/table.ts';
import { logger } from '../mesh/log.ts';
import { ApiClient } from '../mesh/api/client.ts';
import { waitFor } from './harness/wait.ts';
import { addrOf as addr, LoopbackPeers } from './loopback-peers.ts';

const KEY = deriveMeshKey('api-token-test-password');
const loop = new LoopbackPeers({ key: KEY, net: '127.3', port: 7500, first: 10 });
const servers: ApiServer[] = [];
const clients: ApiClient[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => undefined);
  for (const s of servers.splice(0)) await s.close();
  for (const f of cleanups.splice(0)) await f();
  await loop.cleanup();
});

/** A peer serving its API over the mesh as `weft launch` does (authorization included). */
async function servingPeer(name: string, peers: string[] = []): Promise<Peer> {
  const p = await loop.start(loop.config(name, peers));
  const methods = new MethodTable();
  registerPeerMethods(methods, p);
  const api = new ApiServer(methods.handler((c) => p.tokens.accessOf(c)), logger('api'));
  await api.listenMesh(p.node, (conn) => p.tokens.credentialOf(conn));
  servers.push(api);
  return p;
}

async function asToken(p: Peer, token: string): Promise<ApiClient> {
  const c = await ApiClient.remote(addr(p), { apiToken: parseApiToken(token) });
  clients.push(c);
  return c;
}

async function asMember(p: Peer): Promise<ApiClient> {
  const c = await ApiClient.remote(addr(p), { key: KEY });
  clients.push(c);
  return c;
}

describe('what an API token may do', () => {
  test('an operator token reads the mesh and uses kv, but cannot connect, forget, rmpeer, reset or touch tokens', async () => {
    const a = await servingPeer('a');
    const { token } = await a.tokens.create('ops', 'operator');
    const op = await asToken(a, token);
    expect(await op.call(meshApi.status, {})).toMatchObject({ name: 'a' });
    await op.call(meshApi.kvPut, { key: 'k', value: 'v' });
    expect(await op.call(meshApi.kvGet, { key: 'k' })).toMatchObject([{ value: 'v' }]);
    for (const [method, params] of [
      ['connect', { address: '127.0.0.1:1' }], ['forget', { target: 'x' }], ['rmpeer', { peer: 'x' }],
      ['reset', {}], ['token.create', {}], ['token.revoke', { id: '0000000000000000' }],
    ] as const) {
      await expect(op.raw(method, params)).rejects.toThrow(/not allowed for an API token of scope operator/);
    }
    expect(a.tokens.list()).toHaveLength(1); // it made none
    expect(a.membership.members()).toEqual([]);
  });

  test('an admin token makes tokens no stronger than itself, never a join token, and they die with it', async () => {
    const a = await servingPeer('a');
    const { token, id } = await a.tokens.create('admin', 'admin');
    const admin = await asToken(a, token);
    await expect(admin.call(meshApi.tokenJoin, {})).rejects.toThrow(/cannot create join tokens/);
    await expect(admin.call(meshApi.tokenCreate, { scope: 'root' as never })).rejects.toThrow(/"scope" must be one of operator, admin/);
    const child = await admin.call(meshApi.tokenCreate, { name: 'child', scope: 'admin' });
    const grandchild = await (await asToken(a, child.token)).call(meshApi.tokenCreate, { name: 'gc', scope: 'operator' });
    const gc = await asToken(a, grandchild.token);
    expect(await gc.call(meshApi.status, {})).toMatchObject({ name: 'a' });
    // An operator token cannot mint, even below itself.
    await expect(gc.call(meshApi.tokenCreate, {})).rejects.toThrow(/not allowed|only an admin/);
    // The child may revoke itself and its own, not its maker.
    await expect((await asToken(a, child.token)).call(meshApi.tokenRevoke, { id })).rejects.toThrow(/only itself and the tokens it made/);

    // Revoke the root from the local socket: every token under it stops at once.
    await a.tokens.revoke(id);
    await waitFor(() => a.tokens.list().every((t) => t.revoked), { what: 'the whole chain to read as revoked' });
    await expect(gc.call(meshApi.status, {})).rejects.toThrow();
    await expect(asToken(a, grandchild.token)).rejects.toThrow(/refused our API token/);
  });
});

describe('a token never becomes membership', () => {
  test('a token holder that relays the peer\'s own dial to a member from its token connection\'s address stays API-only', async () => {
    // The attack of issue 8, item 2: the token holder T dials peer A from 127.3.250.7:P, then
    // listens on that same address and port and relays whatever arrives to the member B.
    // A is made to dial 127.3.250.7:P (as `weft connect` would): that connection is B's, and
    // when it closes, the old code dropped the mark of every connection from 127.3.250.7:P,
    // T's token connection included, which then got membership and replication channels.
    const a = await servingPeer('a');
    const b = await loop.start(loop.config('b'));
    const { token } = await a.tokens.create('attacker', 'admin');
    const host = '127.3.250.7';
    const port = 7390 + (process.pid % 50);
    const t = await createLibp2p({
      transports: [tcp({ dialOpts: { localAddress: host, localPort: port } as never })],
      connectionEncrypters: [noise()], streamMuxers: [yamux()],
      connectionProtector: meshAdmission({ apiToken: parseApiToken(token) }),
    });
    cleanups.push(() => t.stop());
    const at = multiaddr(`/ip4/${a.advertise.host}/tcp/${a.advertise.port}`);
    // A stream, so the listener finishes the upgrade (the dialer selects the muxer lazily).
    await t.dialProtocol(at, API_PROTOCOL);
    await waitFor(() => a.node.getConnections().some((c) => c.remoteAddr.toString().startsWith(`/ip4/${host}/tcp/${port}/`)), { what: 'A to hold the token connection from the relay address' });

    const relayed: net.Socket[] = [];
    const relay = net.createServer((inbound) => {
      const out = net.connect(b.advertise.port, b.advertise.host);
      relayed.push(inbound, out);
      inbound.pipe(out).pipe(inbound);
      inbound.on('error', () => out.destroy());
      out.on('error', () => inbound.destroy());
    });
    await new Promise<void>((r) => relay.listen({ host, port }, () => r()));
    cleanups.push(() => new Promise<void>((r) => relay.close(() => r())));

    expect(await a.connect(`${host}:${port}`)).toBe(b.identity.id);
    await a.forget(`${host}:${port}`);
    for (const s of relayed) s.destroy();
    // A's dial through the relay closes; T's token connection, from the same address and port, stays.
    await waitFor(() => a.node.getConnections().filter((c) => c.remoteAddr.toString().startsWith(`/ip4/${host}/tcp/${port}/`)).length === 1, { what: 'the relayed connection to close' });

    for (const protocol of [MEMBERSHIP_PROTOCOL, SYNC_PROTOCOL]) {
      // On T's token connection (by A's id: a new dial from the same port could not bind).
      const stream = await t.dialProtocol(a.node.peerId, protocol);
      try {
        stream.send(encodeFrame({ t: 'hb', inc: 1, sum: 0 }));
      } catch { /* already refused */ }
      await waitFor(() => stream.status !== 'open', { timeoutMs: 5000, intervalMs: 20, what: `${protocol} to be refused to the token holder` });
    }
    expect(a.membership.members().map((m) => m.id)).not.toContain(t.peerId.toString());
    // And the member that shares nothing with it is not locked out: B still joins A.
    await b.connect(addr(a));
    await waitFor(() => a.membership.members().some((m) => m.id === b.identity.id && m.state === 'alive'), { what: 'B to be a member of A' });
  });

  test('a member\'s CLI with the mesh password keeps full rights', async () => {
    const a = await servingPeer('a');
    const m = await asMember(a);
    const made = await m.call(meshApi.tokenJoin, {});
    expect(made.token).toMatch(/^weft1\./);
  });
});

describe('what a peer keeps at rest', () => {
  test('a token record holds a public key only, and the token text works while the record alone does not', async () => {
    const a = await servingPeer('a');
    const { token, id } = await a.tokens.create('t', 'operator');
    const [record] = a.replica.lookup(API_TOKEN_PREFIX + id);
    const stored = JSON.parse(record!.value!);
    expect(Object.keys(stored).sort()).toEqual(['created', 'name', 'publicKey', 'scope']);
    expect(token).not.toContain(stored.publicKey);
    const secretPart = token.split('.')[2]!;
    expect(record!.value).not.toContain(secretPart);
  });

  test('a data dir that others can read is closed at start, and the fix is logged naming it', async () => {
    const dir = join(loop.config('perm').dataDir, 'data');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    const lines: string[] = [];
    await privateDataDir(dir, { warn: (msg: string) => lines.push(msg) } as never);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(lines.join('\n')).toContain(dir);
    expect(lines.join('\n')).toMatch(/readable by others/);
  });
});
