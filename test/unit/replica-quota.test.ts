// Quotas on replicated entries: what a user is told when this peer's space is full, what is
// refused from other owners, and that a refused write leaves nothing on disk.

import { CONTAINER_PREFIX, DATAPLANE_PREFIX, DNS_EXTRA_PREFIX, API_TOKEN_PREFIX, API_TOKEN_REVOKED_PREFIX } from '../../mesh/keyspace.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

import { identityFromSeed, verifySignature } from '../../mesh/admission/identity.ts';
import { logger } from '../../mesh/log.ts';
import { type Entry, entryWireBytes } from '../../mesh/replication/wire.ts';
import { KINDS, OWNER_MAX_BYTES, OWNER_MAX_TOMBSTONE_BYTES, QuotaError, REMOTE_SLACK, Usage, kindOf, localRefusal, remoteRefusal } from '../../mesh/replication/quota.ts';
import { Replica } from '../../mesh/replication/replica.ts';
import { ReplicaShell } from '../../mesh/replication/shell.ts';
import { Store } from '../../mesh/store.ts';
import { fakeCrypto } from '../sim/replica-world.ts';

function entry(key: string, value: string | null, owner = 'p0001'): Entry {
  return { owner, key, version: 1, value, sig: 's'.repeat(88) };
}

describe('kinds', () => {
  test('the prefixes are the ones their writers use', () => {
    const prefixes = KINDS.map((k) => k.prefix);
    for (const p of [CONTAINER_PREFIX, DATAPLANE_PREFIX, API_TOKEN_PREFIX, API_TOKEN_REVOKED_PREFIX, DNS_EXTRA_PREFIX, 'kv/']) expect(prefixes).toContain(p);
    // apitoken-revoked/ must not be read as apitoken/.
    expect(kindOf(`${API_TOKEN_REVOKED_PREFIX}abc`).prefix).toBe(API_TOKEN_REVOKED_PREFIX);
    expect(kindOf('something/else').name).toBe('other');
  });
});

describe('a full space is refused at its owner with one clear sentence', () => {
  test('the 10,001st kv entry: refused, nothing stored, and a deletion or an overwrite still works', () => {
    const r = new Replica('p0000', fakeCrypto('p0000'));
    for (let i = 0; i < 10_000; i++) r.write(`kv/k${i}`, 'v', 0);
    const version = r.lastVersion();
    expect(() => r.write('kv/one-more', 'v', 0)).toThrow(QuotaError);
    expect(() => r.write('kv/one-more', 'v', 0)).toThrow('the replicated kv space of this peer is full (10,000 entries): remove some with weft kv rm');
    expect(r.lastVersion()).toBe(version);
    expect(r.get('p0000', 'kv/one-more')).toBeUndefined();
    // Other kinds have their own space.
    expect(r.write('dns/extra/db.weft.local/10.0.0.5', '{}', 0).entry.version).toBe(version + 1);
    // Overwriting and deleting never need room, and a deletion makes some.
    r.write('kv/k1', 'changed', 0);
    r.write('kv/k2', null, 0);
    expect(r.write('kv/one-more', 'v', 0).entry.value).toBe('v');
    expect(() => r.write('kv/two-more', 'v', 0)).toThrow(/kv space of this peer is full/);
  });

  test('each kind names its own remedy', () => {
    const full = new Usage();
    for (const k of KINDS) full.live.set(k.name, k.quota);
    expect(localRefusal(full, entry('container/abc', '{}'), undefined)).toBe('the replicated container space of this peer is full (4,096 entries): remove stopped containers with docker rm');
    expect(localRefusal(full, entry('dns/extra/a.weft.local/10.0.0.1', '{}'), undefined)).toBe('the replicated DNS space of this peer is full (10,000 entries): remove some with weft dns remove');
    expect(localRefusal(full, entry('container/abc', null), undefined)).toBeUndefined();
  });

  test('values that would pass the byte quota are refused, deleting still works', () => {
    const u = new Usage();
    u.liveBytes = OWNER_MAX_BYTES - 100;
    expect(localRefusal(u, entry('kv/big', 'x'.repeat(1000)), undefined)).toBe("this peer's replicated entries would exceed 96 MiB: write smaller values, or remove some with weft kv rm");
    expect(localRefusal(u, entry('kv/big', null), undefined)).toBeUndefined();
  });
});

describe('what other owners may make this peer hold', () => {
  test('twice the quota of a kind, by count and by bytes; tombstones bounded by bytes', () => {
    const u = new Usage();
    u.live.set('kv', 10_000);
    u.liveCount = 10_000;
    // Past the local quota but within the slack: taken (it may be an honest owner's new key
    // arriving before the deletion that made room for it).
    expect(remoteRefusal(u, entry('kv/x', 'v'), undefined)).toBeUndefined();
    u.live.set('kv', 10_000 * REMOTE_SLACK);
    expect(remoteRefusal(u, entry('kv/x', 'v'), undefined)).toMatch(/owner p0001 is past the quota of 20,000 kv entries/);
    // Replacing a held key never grows the count.
    expect(remoteRefusal(u, entry('kv/x', 'v2'), entry('kv/x', 'v'))).toBeUndefined();
    const b = new Usage();
    b.liveBytes = OWNER_MAX_BYTES * REMOTE_SLACK;
    expect(remoteRefusal(b, entry('kv/x', 'v'), undefined)).toMatch(/past the quota of 192 MiB/);
    const t = new Usage();
    t.tombBytes = OWNER_MAX_TOMBSTONE_BYTES;
    expect(remoteRefusal(t, entry('kv/gone', null), undefined)).toMatch(/of deletions/);
    // A deletion of a key held is always taken.
    expect(remoteRefusal(t, entry('kv/x', null), entry('kv/x', 'v'))).toBeUndefined();
    expect(entryWireBytes(entry('kv/x', null))).toBeGreaterThan(0);
  });
});

describe('the replica shell over a real store', () => {
  test('a write past the quota is refused with the sentence and leaves nothing on disk; the peer keeps its counter after a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-replica-quota-'));
    let store: Store | undefined;
    try {
      store = await Store.open(dir);
      const identity = await identityFromSeed(new Uint8Array(32).fill(7));
      const open = (s: Store) => ReplicaShell.open({ store: s, identity, verify: verifySignature, log: logger('replica-test') });
      let shell = await open(store);
      const quota = kindOf(DATAPLANE_PREFIX).quota;
      for (let i = 0; i < quota; i++) await shell.put(`${DATAPLANE_PREFIX}${i}`, 'rec');
      await expect(shell.put(`${DATAPLANE_PREFIX}more`, 'rec')).rejects.toThrow(`the replicated data plane space of this peer is full (${quota} entries): restart the peer`);
      expect((await shell.put(`${DATAPLANE_PREFIX}0`, null)).version).toBe(quota + 1);
      await shell.stop();
      await store.close();
      store = undefined;
      store = await Store.open(dir);
      shell = await open(store);
      expect(shell.lookup(`${DATAPLANE_PREFIX}more`)).toEqual([]);
      expect(shell.lookup(DATAPLANE_PREFIX, true).length).toBe(quota - 1);
      expect((await shell.put(`${DATAPLANE_PREFIX}more`, 'rec')).version).toBe(quota + 2);
      await shell.stop();
    } finally {
      await store?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
