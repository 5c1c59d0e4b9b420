// The peer's shell with real libp2p over TCP on loopback (no namespaces, no root needed):
// bulk state transfer through admission, hostile replication traffic, persistence.
import * as meshApi from '../mesh/api/contract.ts';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { peerIdFromString } from '@libp2p/peer-id';
import { afterEach, describe, expect, test } from 'vitest';
import { meshAdmission } from '../mesh/admission/admission.ts';
import { encodeFrame } from '../mesh/framing.ts';
import { deriveMeshKey } from '../mesh/admission/mesh-key.ts';
import { Peer } from '../mesh/peer.ts';
import { SYNC_PROTOCOL, entrySigningBytes } from '../mesh/replication/wire.ts';
import type { PeerConfig } from '../mesh/config.ts';
import { setLogSink } from '../mesh/log.ts';
import { waitFor } from './harness/wait.ts';
import { addrOf as addr, LoopbackPeers } from './loopback-peers.ts';

const KEY = deriveMeshKey('peer-test-password');
const MiB = 1024 * 1024;
const loop = new LoopbackPeers({ key: KEY, net: '127.0', port: 7100, first: 10 });
const config = (name: string, peers: string[] = []): PeerConfig => loop.config(name, peers);
const start = (c: PeerConfig): Promise<Peer> => loop.start(c);

afterEach(async () => {
  await loop.cleanup();
  setLogSink({ write: (l) => process.stderr.write(l) });
});

describe('replication through the admitted mesh', () => {
  test('a 64 MiB state transfer reaches a new member whole', async () => {
    const a = await start(config('a'));
    const VALUES = 512;
    const VALUE_BYTES = 128 * 1024; // 512 x 128 KiB = 64 MiB
    const sent = createHash('sha256');
    for (let i = 0; i < VALUES; i++) {
      // base64 of random bytes: incompressible and valid in JSON as it is.
      const value = randomBytes((VALUE_BYTES * 3) / 4).toString('base64');
      sent.update(`${i}:${value}\n`);
      await a.replica.put(`bulk/${String(i).padStart(4, '0')}`, value);
    }
    const b = await start(config('b', [addr(a)]));
    await waitFor(() => b.replica.lookup('bulk/', true).length === VALUES, { timeoutMs: 120_000, intervalMs: 500, what: 'b to hold all 512 values' });
    const got = createHash('sha256');
    b.replica.lookup('bulk/', true)
      .sort((x, y) => x.key.localeCompare(y.key))
      .forEach((e, i) => got.update(`${i}:${e.value}\n`));
    expect(got.digest('hex')).toBe(sent.digest('hex'));
  });

  test('forged, malformed and oversized replication messages are rejected and change nothing', async () => {
    const lines: string[] = [];
    setLogSink({ write: (l) => lines.push(l) });
    const a = await start(config('a'));
    const b = await start(config('b', [addr(a)]));
    await waitFor(() => a.membership.members().some((m) => m.state === 'alive'), { what: 'a and b to meet' });
    await b.replica.put('owned-by-b', 'genuine');
    await waitFor(() => a.replica.lookup('owned-by-b').length === 1, { what: 'a to receive b\'s entry' });

    // An intruder that holds the mesh password (so admission lets it in) but not b's key.
    const intruder = await createLibp2p({
      transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()],
      connectionProtector: meshAdmission({ key: KEY }),
    });
    try {
      const { multiaddr } = await import('@multiformats/multiaddr');
      const stream = await intruder.dialProtocol(multiaddr(`/ip4/${a.advertise.host}/tcp/${a.advertise.port}`), SYNC_PROTOCOL);
      const forged = { owner: b.identity.id, key: 'owned-by-b', version: 99, value: 'forged' };
      const sig = Buffer.from(entrySigningBytes(forged)).toString('base64'); // not a signature by b
      stream.send(encodeFrame({ t: 'push', entries: [{ ...forged, sig }] }));
      stream.send(encodeFrame({ t: 'push', entries: 'not a list' }));
      stream.send(encodeFrame({ t: 'nonsense' }));
      await waitFor(() => a.replica.stats().rejected >= 3, { what: 'a to reject the three messages' });
      // A frame announcing more than the limit: the stream is closed before it is buffered.
      const huge = Buffer.alloc(4);
      huge.writeUInt32BE(512 * MiB);
      stream.send(huge);
      await waitFor(() => lines.some((l) => /closing stream from peer.*exceeds the limit/.test(l)), { what: 'a to close the oversized stream' });
    } finally {
      await intruder.stop();
    }
    expect(a.replica.lookup('owned-by-b').map((e) => e.value)).toEqual(['genuine']);
    expect(lines.some((l) => /rejected replicat/.test(l))).toBe(true);
    // a is still healthy: b's next write still arrives.
    await b.replica.put('owned-by-b', 'second');
    await waitFor(() => a.replica.lookup('owned-by-b')[0]?.value === 'second', { what: 'a to take b\'s next write' });
    expect(peerIdFromString(b.identity.id).toString()).toBe(b.identity.id);
  });

  test('an API-token client may call the API but may not join membership or replication', async () => {
    const a = await start(config('a'));
    const { token } = await a.tokens.create('test', 'admin');
    const { parseApiToken } = await import('../mesh/admission/api-token.ts');
    const { MEMBERSHIP_PROTOCOL } = await import('../mesh/membership/wire.ts');
    const client = await createLibp2p({
      transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()],
      connectionProtector: meshAdmission({ apiToken: parseApiToken(token) }),
    });
    try {
      const { multiaddr } = await import('@multiformats/multiaddr');
      const at = multiaddr(`/ip4/${a.advertise.host}/tcp/${a.advertise.port}`);
      for (const protocol of [MEMBERSHIP_PROTOCOL, SYNC_PROTOCOL]) {
        const stream = await client.dialProtocol(at, protocol);
        try {
          stream.send(encodeFrame({ t: 'hb', inc: 1, sum: 0 }));
        } catch { /* already refused */ }
        // The peer ends the stream at once, without reading what we sent.
        await waitFor(() => stream.status !== 'open', { timeoutMs: 5000, intervalMs: 20, what: `${protocol} to be refused` });
      }
      await waitFor(() => a.replica.stats().rejected >= 1, { what: 'a to count the refused sync stream' });
      expect(a.membership.members()).toEqual([]);
    } finally {
      await client.stop();
    }
  });

  test('events --follow streams membership events over the local API as they happen', async () => {
    const ca = config('a');
    const a = await start(ca);
    const { ApiServer } = await import('../mesh/api/server.ts');
    const { registerPeerMethods } = await import('../mesh/api/peer-methods.ts');
    const { MethodTable } = await import('../mesh/api/table.ts');
    const { ApiClient } = await import('../mesh/api/client.ts');
    const { logger } = await import('../mesh/log.ts');
    const methods = new MethodTable();
    registerPeerMethods(methods, a);
    const api = new ApiServer(methods.handler(() => 'member'), logger('api'));
    await api.listenUnix(join(ca.dataDir, 'weft.sock'));
    const client = await ApiClient.local(ca.dataDir);
    try {
      const seen: { type: string; peer?: { name: string } }[] = [];
      void client.call(meshApi.events, { follow: true }, (e) => seen.push(e)).catch(() => undefined);
      const b = await start(config('b', [addr(a)]));
      await waitFor(() => seen.some((e) => e.type === 'joined' && e.peer?.name === 'b'), { what: 'a joined event for b' });
      await loop.stop(b);
      await waitFor(() => seen.some((e) => e.type === 'left' && e.peer?.name === 'b'), { what: 'a left event for b' });
      // An unknown method is one clear error, and the connection stays usable.
      await expect(client.raw('no.such.method')).rejects.toThrow(/unknown API method "no.such.method"/);
      expect(await client.call(meshApi.status, {})).toMatchObject({ name: 'a' });
    } finally {
      await client.close();
      await api.close();
    }
  });

  test('identity, acknowledged writes and known peers survive a restart', async () => {
    const ca = config('a');
    const a = await start(ca);
    const b = await start(config('b'));
    // Neither was launched knowing the other: a learns b by `weft connect`, which it must keep.
    await a.connect(addr(b));
    await a.replica.put('persisted', 'yes');
    await waitFor(() => b.membership.members().some((m) => m.state === 'alive'), { what: 'b to see a' });
    const id = a.identity.id;
    await loop.stop(a);
    await waitFor(() => b.membership.members().every((m) => m.state !== 'alive'), { what: 'b to see a leave' });
    const again = await start(ca);
    expect(again.identity.id).toBe(id);
    expect(again.replica.lookup('persisted').map((e) => e.value)).toEqual(['yes']);
    // a was started with no --peers: it finds b again from what it remembered.
    await waitFor(() => again.membership.members().some((m) => m.id === b.identity.id && m.state === 'alive'), { what: 'a to reconnect to b by itself' });
  });
});
