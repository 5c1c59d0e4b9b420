// The IPAM shell on real peers over libp2p on loopback: a ring agreed by the expected peers,
// concurrent allocation on every peer without a duplicate, state kept across a restart, rmpeer
// refused while the peer is alive and done once it is gone.
import { afterEach, describe, expect, test } from 'vitest';
import { deriveMeshKey } from '../mesh/admission/mesh-key.ts';
import type { Peer } from '../mesh/peer.ts';
import type { PeerConfig } from '../mesh/config.ts';
import { waitFor } from './harness/wait.ts';
import { addrOf as addr, LoopbackPeers } from './loopback-peers.ts';

const peers = new LoopbackPeers({ key: deriveMeshKey('ipam-shell-test'), net: '127.1', port: 7300, first: 20 });
const config = (name: string, bootstrap: string[]): PeerConfig => peers.config(name, bootstrap, { ipallocRange: '10.40.0.0/22', ipallocInit: 3 });
const start = (c: PeerConfig): Promise<Peer> => peers.start(c);

afterEach(() => peers.cleanup());

describe('IPAM on real peers', () => {
  test('a lone peer: 500 allocations one after another, each awaited, none lost between drains', async () => {
    const c = config('solo', []);
    c.ipallocInit = 1;
    const a = await start(c);
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) seen.add(await a.ipam.allocate(`one-${i}`, undefined, 5_000));
    expect(seen.size).toBe(500);
    for (let i = 0; i < 500; i += 2) await a.ipam.release(`one-${i}`);
    expect(a.ipam.status().inUse).toBe(250);
  });

  test('three peers agree on one ring and allocate 300 addresses concurrently, none twice; a restart keeps them', async () => {
    const a = await start(config('a', []));
    const cb = config('b', [addr(a)]);
    const b = await start(cb);
    const c = await start(config('c', [addr(a)]));
    const all = [a, b, c];
    // The first ring is made lazily, at the first allocation anywhere (as Weave Net does).
    expect(a.ipam.status().state).toBe('bootstrapping');
    const jobs = all.flatMap((p, i) => Array.from({ length: 100 }, (_, k) => p.ipam.allocate(`c${i}-${k}`)));
    const addrs = await Promise.all(jobs);
    expect(new Set(addrs).size).toBe(300);
    for (const x of addrs) expect(x).toMatch(/^10\.40\.[0-3]\.\d+$/);
    // Idempotent per handle.
    expect(await b.ipam.allocate('c1-7')).toBe(addrs[107]);
    // b restarts: its allocations come back from disk.
    const before = b.ipam.core.allocations().length;
    await peers.stop(b);
    const b2 = await start(cb);
    expect(b2.ipam.core.allocations().length).toBe(before);
    expect(b2.ipam.lookup('c1-7')).toBe(addrs[107]);
    expect(await b2.ipam.release('c1-7')).toBe(addrs[107]);
    expect(b2.ipam.lookup('c1-7')).toBeUndefined();
    const st = a.ipam.status();
    expect(st.inUse).toBe(100);
    expect(st.owned).toBeGreaterThan(0);
  });

  test('rmpeer is refused while the peer is alive and takes its space once it is gone', async () => {
    const a = await start(config('a', []));
    const b = await start(config('b', [addr(a)]));
    const c = await start(config('c', [addr(a)]));
    await c.ipam.allocate('on-c');
    await waitFor(() => [a, b, c].every((p) => p.ipam.status().state === 'ready'), { timeoutMs: 20_000, what: 'a ring on every peer' });
    const cid = c.identity.id;
    expect((await a.ipam.rmpeer(cid)).status).toBe('refused');
    await peers.stop(c);
    await waitFor(() => a.liveness(cid) === 'left' || a.liveness(cid) === 'dead', { timeoutMs: 20_000, what: 'c to be seen gone' });
    const r = await a.ipam.rmpeer(cid);
    expect(r.status).not.toBe('refused');
    await waitFor(() => a.ipam.status().removals.some((x) => x.dead === cid && x.heir !== null), { timeoutMs: 20_000, what: 'the removal to settle' });
    await waitFor(() => a.ipam.status().unreachable === 0 && b.ipam.status().unreachable === 0, { timeoutMs: 20_000, what: 'no space owned by the removed peer' });
  });
});
