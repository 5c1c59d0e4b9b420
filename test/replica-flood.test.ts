// A member flooding the sync channel, with real libp2p over TCP on loopback (no namespaces, no
// root): the victim works through the flood without going silent to its other members. The
// victim a runs in the test's thread, the member b in a worker thread (its own event loop, so it
// would notice a going silent), the intruder in the test's thread.
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { afterEach, expect, test } from 'vitest';
import { meshAdmission } from '../mesh/admission/admission.ts';
import { encodeFrame } from '../mesh/framing.ts';
import { identityFromSeed } from '../mesh/admission/identity.ts';
import { deriveMeshKey } from '../mesh/admission/mesh-key.ts';
import { SYNC_PROTOCOL, entrySigningBytes, MAX_ENTRIES_PER_MESSAGE, type Entry } from '../mesh/replication/wire.ts';
import { waitFor } from './harness/wait.ts';
import { addrOf as addr, LoopbackPeers } from './loopback-peers.ts';

const KEY = deriveMeshKey('replica-flood-test-password');
const loop = new LoopbackPeers({ key: KEY, net: '127.2', port: 7400, first: 10 });
/** Tens of thousands of entries, each a ~0.1 ms signature check: seconds of work for the victim. */
const FLOOD_ENTRIES = 32_768;

/** The member b, in a worker thread running test/replica-flood-member.ts. */
class WorkerMember {
  readonly worker: Worker;
  /** Every membership event and sampled state b reported about the peer it watches. */
  readonly seen: string[] = [];
  private readonly waiters = new Set<{ t: string; resolve(m: Record<string, unknown>): void }>();

  constructor(config: unknown, watch: string) {
    this.worker = new Worker(new URL('./replica-flood-member.ts', import.meta.url), { workerData: { config, watch } });
    this.worker.on('message', (m: Record<string, unknown>) => {
      if (m.t === 'event') this.seen.push(`event ${String(m.type)}`);
      if (m.t === 'state') this.seen.push(String(m.state));
      for (const w of this.waiters) if (w.t === m.t) { this.waiters.delete(w); w.resolve(m); }
    });
  }

  next(t: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiters.delete(w); reject(new Error(`worker member sent no ${t} within ${timeoutMs} ms`)); }, timeoutMs);
      const w = { t, resolve: (m: Record<string, unknown>) => { clearTimeout(timer); resolve(m); } };
      this.waiters.add(w);
      this.worker.once('error', (err) => { clearTimeout(timer); reject(err); });
    });
  }

  async stop(): Promise<void> {
    const stopped = this.next('stopped', 10_000).catch(() => undefined);
    this.worker.postMessage({ t: 'stop' });
    await stopped;
    await this.worker.terminate();
  }
}

const workers: WorkerMember[] = [];

afterEach(async () => {
  await Promise.allSettled(workers.splice(0).map((w) => w.stop()));
  await loop.cleanup();
});

test('a member flooding the sync channel with signed entries does not make its victim go silent to the mesh', async () => {
  // The intruder holds the mesh password (admission lets it in) and signs entries of its own:
  // every one is genuine, so the victim must check every signature.
  const self = await identityFromSeed(randomBytes(32));
  const signed = (key: string, version: number): Entry => {
    const u = { owner: self.id, key, version, value: `flood ${version}` };
    return { ...u, sig: self.sign(entrySigningBytes(u)) };
  };
  // Signed before the peers start: signing runs in this thread, which is a's.
  const frames: Uint8Array[] = [];
  for (let i = 0; i < FLOOD_ENTRIES; i += MAX_ENTRIES_PER_MESSAGE) {
    const entries: Entry[] = [];
    for (let j = i; j < Math.min(FLOOD_ENTRIES, i + MAX_ENTRIES_PER_MESSAGE); j++) entries.push(signed(`kv/flood/${j}`, j + 1));
    frames.push(encodeFrame({ t: 'push', v: 1, entries }));
  }

  const a = await loop.start(loop.config('a'));
  const b = new WorkerMember(loop.config('b', [addr(a)]), a.identity.id);
  workers.push(b);
  const bId = String((await b.next('started')).id);
  await waitFor(() => b.seen.at(-1) === 'alive', { what: 'b to see a alive' });
  await waitFor(() => a.membership.members().some((m) => m.id === bId && m.state === 'alive'), { what: 'a to see b alive' });

  const seenBefore = b.seen.length;
  const intruder = await createLibp2p({
    transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()],
    connectionProtector: meshAdmission({ key: KEY }),
  });
  // a and the intruder share this thread, so its event loop is a's.
  const delay = monitorEventLoopDelay({ resolution: 10 });
  try {
    const { multiaddr } = await import('@multiformats/multiaddr');
    const stream = await intruder.dialProtocol(multiaddr(`/ip4/${a.advertise.host}/tcp/${a.advertise.port}`), SYNC_PROTOCOL);
    delay.enable();
    for (const f of frames) if (!stream.send(f)) await new Promise((r) => stream.addEventListener('drain', r, { once: true }));
    // Messages of one sender are handled in order, so once a holds the marker it has worked
    // through the flood (or dropped what exceeded its backlog, in which case the marker is sent
    // again until it gets through).
    let marker = FLOOD_ENTRIES;
    await waitFor(() => {
      if (a.replica.lookup('flood-done').length === 1) return true;
      if (a.replica.backlog() === 0) stream.send(encodeFrame({ t: 'push', v: 1, entries: [signed('flood-done', ++marker)] }));
      return false;
    }, { timeoutMs: 120_000, intervalMs: 500, what: 'a to work through the flood' });
    delay.disable();
  } finally {
    await intruder.stop();
  }
  const maxMs = delay.max / 1e6;
  process.stderr.write(`replica flood: ${FLOOD_ENTRIES} entries, max event-loop delay ${maxMs.toFixed(0)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(0)} ms, ` +
    `a holds ${a.replica.lookup('kv/flood/', true).length}, refused ${a.replica.refused()}, dropped ${a.replica.stats().dropped}\n`);

  // a did take the intruder's entries (up to its quota): the flood was really worked through.
  expect(a.replica.lookup('kv/flood/', true).length).toBeGreaterThan(0);
  // b never doubted a (every state it sampled every 100 ms and every event), and a never lost b.
  // What the user relies on; note that on its own it did not catch the stalls of up to 2 s
  // measured before the fix (b, alone with a, did not accuse it), the delay bound below did.
  const during = b.seen.slice(seenBefore);
  expect(during.length).toBeGreaterThan(0);
  expect(during.filter((s) => s !== 'alive')).toEqual([]);
  expect(a.membership.members().find((m) => m.id === bId)?.state).toBe('alive');
  // Structural, not timing: checking the flood's signatures message by message inside the
  // channel's handler stalled this loop for 1.5-2 s at a time (measured before the fix, ~0.45 s
  // per message of 4096 entries, several messages per read); now no turn of the event loop
  // checks more than 10 ms worth (~90 signatures at 108 us each, fewer on a loaded machine),
  // never a whole message. The delay itself is printed above (90-190 ms on a quiet machine)
  // but not asserted: under the suite's load it swings with everything else.
  expect(a.replica.mostCheckedInOneTurn()).toBeGreaterThan(0);
  expect(a.replica.mostCheckedInOneTurn()).toBeLessThan(MAX_ENTRIES_PER_MESSAGE);
  // a still replicates with b after the flood.
  b.worker.postMessage({ t: 'put', key: 'after-flood', value: 'yes' });
  await b.next('put');
  await waitFor(() => a.replica.lookup('after-flood').length === 1, { what: 'a to take b\'s write after the flood' });
}, 180_000);
