// The Raft node's ready queue: persists folded into one write exactly as the disk would take
// them one by one, every ready's write on disk before its messages and events go out, readies
// made during a write carried out after it in one batch and in order, and a failed write
// stopping everything after it.

import { describe, expect, test } from 'vitest';
import type { ReadyIo } from '../../mesh/ready.ts';
import type { Store } from '../../mesh/store.ts';
import { mergePersists, ReadyQueue } from '../../scheduler/manager/ready-queue.ts';
import { RaftDisk } from '../../scheduler/raft/storage.ts';
import type { Entry, HardState, RaftEvent, RaftMessage, RaftPersist, RaftReady } from '../../scheduler/raft/types.ts';
import { Rng } from '../sim/rng.ts';

const entry = (index: number, term: number, tag = ''): Entry => ({ index, term, data: `${index}@${term}${tag}` });
const range = (from: number, to: number, term: number, tag = ''): Entry[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => entry(from + i, term, tag));

/** The disk as a plain model: entries from `from` on replace everything from `from` on. */
interface Model { hardState?: HardState; log: Entry[] }
function write(m: Model, p: RaftPersist): Model {
  const log = p.entries ? [...m.log.filter((e) => e.index < (p.entries as { from: number }).from), ...p.entries.entries] : m.log;
  return { hardState: p.hardState ?? m.hardState, log };
}

describe('mergePersists', () => {
  test('the newest hard state wins; a persist without one keeps the older', () => {
    const h1 = { term: 1, vote: 'a', commit: 1 };
    const h2 = { term: 2, vote: null, commit: 3 };
    expect(mergePersists([{ hardState: h1 }, { hardState: h2 }]).hardState).toEqual(h2);
    expect(mergePersists([{ hardState: h1 }, { entries: { from: 1, entries: [entry(1, 1)] } }]).hardState).toEqual(h1);
    expect(mergePersists([{ hardState: h2 }, {}, { entries: { from: 1, entries: [] } }])).toEqual({ hardState: h2, entries: { from: 1, entries: [] } });
  });

  test('a contiguous range extends; an overlapping one replaces from its start; an earlier one replaces all', () => {
    const a = { from: 5, entries: range(5, 7, 1) };
    expect(mergePersists([{ entries: a }, { entries: { from: 8, entries: range(8, 9, 1) } }]).entries).toEqual({ from: 5, entries: range(5, 9, 1) });
    expect(mergePersists([{ entries: a }, { entries: { from: 6, entries: range(6, 6, 2) } }]).entries).toEqual({ from: 5, entries: [entry(5, 1), entry(6, 2)] });
    expect(mergePersists([{ entries: a }, { entries: { from: 3, entries: range(3, 4, 2) } }]).entries).toEqual({ from: 3, entries: range(3, 4, 2) });
    expect(mergePersists([{ entries: a }, { entries: { from: 5, entries: [] } }]).entries).toEqual({ from: 5, entries: [] });
  });

  test('a gap between ranges throws, naming them', () => {
    expect(() => mergePersists([{ entries: { from: 5, entries: range(5, 6, 1) } }, { entries: { from: 8, entries: [entry(8, 1)] } }])).toThrow('Raft persist ranges are not contiguous: 5..6 then 8');
  });

  test('one persist is itself, and none is nothing', () => {
    const p: RaftPersist = { hardState: { term: 1, vote: null, commit: 0 }, entries: { from: 1, entries: [entry(1, 1)] } };
    expect(mergePersists([p])).toEqual(p);
    expect(mergePersists([])).toEqual({});
  });

  test('it does not modify the persists it is given', () => {
    const ps: RaftPersist[] = [{ entries: { from: 1, entries: range(1, 3, 1) } }, { entries: { from: 2, entries: range(2, 2, 2) } }];
    const copy = JSON.parse(JSON.stringify(ps)) as RaftPersist[];
    mergePersists(ps);
    expect(ps).toEqual(copy);
  });

  test.each(Array.from({ length: 300 }, (_, i) => i + 1))('seed %i: merged, a batch leaves the disk as the writes one after another would', (seed) => {
    const rng = new Rng(seed);
    // A disk with some log already, then a batch of persists as the core makes them: each range
    // starts at or before the end of what is written so far (a leader's new entries, a
    // follower's truncation and overwrite), some with a hard state, some with neither.
    let term = 1 + rng.int(3);
    const start: Model = { hardState: { term, vote: null, commit: 0 }, log: range(1, rng.int(8), term, 'disk') };
    let sequential = start;
    const batch: RaftPersist[] = [];
    for (let n = 0; n < 1 + rng.int(8); n++) {
      const p: RaftPersist = {};
      if (rng.chance(0.5)) {
        if (rng.chance(0.3)) term++;
        p.hardState = { term, vote: rng.pick([null, 'a', 'b']), commit: rng.int(sequential.log.length + 1) };
      }
      if (rng.chance(0.8)) {
        const last = sequential.log.at(-1)?.index ?? 0;
        const from = 1 + rng.int(last + 1);
        p.entries = { from, entries: range(from, from - 1 + rng.int(5), term, `#${n}`) };
      }
      batch.push(p);
      sequential = write(sequential, p);
    }
    const merged = mergePersists(batch);
    expect(write(start, merged)).toEqual(sequential);
    // And the merged range is no wider than it must be: it starts at the lowest start written.
    const starts = batch.flatMap((p) => (p.entries ? [p.entries.from] : []));
    if (starts.length > 0) expect(merged.entries?.from).toBe(Math.min(...starts));
  });

  // BUG (reported, latent until a node compacts its log): a persist's `entries` apply AFTER its
  // snapshot and compaction (types.ts: "entries then, if set, applies to what remains"), so
  // merging [entries, then a snapshot covering them] into one persist writes the entries back
  // beneath the snapshot. RaftDisk then refuses to open the log ("a gap before entry 5").
  test('a batch of entries and then a snapshot that covers them leaves the disk as the two writes would', async () => {
    const p0: RaftPersist = { hardState: { term: 1, vote: null, commit: 4 }, entries: { from: 1, entries: range(1, 4, 1) } };
    const p1: RaftPersist = { entries: { from: 5, entries: range(5, 6, 1) } };
    const p2: RaftPersist = { hardState: { term: 2, vote: null, commit: 10 }, snapshot: { index: 10, term: 2, membership: { voters: ['a'], learners: [] }, data: '{}' }, compactTo: 10 };
    const one = await diskAfter([p0, p1, p2]);
    const merged = await diskAfter([p0, mergePersists([p1, p2])]);
    expect(one.entries).toEqual([]);
    expect(merged).toEqual(one);
  });

  // BUG (reported, same cause): with entries after the snapshot too, the merge throws instead.
  test('a batch of entries, a snapshot, and entries after it merges into one write', () => {
    const p1: RaftPersist = { entries: { from: 5, entries: range(5, 6, 1) } };
    const p2: RaftPersist = { snapshot: { index: 10, term: 2, membership: { voters: ['a'], learners: [] }, data: '{}' }, compactTo: 10 };
    const p3: RaftPersist = { entries: { from: 11, entries: range(11, 11, 2) } };
    expect(() => mergePersists([p1, p2, p3])).not.toThrow();
  });

  test('a snapshot followed by entries after it merges (the order the core makes them in)', async () => {
    const p0: RaftPersist = { hardState: { term: 1, vote: null, commit: 4 }, entries: { from: 1, entries: range(1, 4, 1) } };
    const p1: RaftPersist = { hardState: { term: 2, vote: null, commit: 10 }, snapshot: { index: 10, term: 2, membership: { voters: ['a'], learners: [] }, data: '{}' }, compactTo: 10 };
    const p2: RaftPersist = { entries: { from: 11, entries: range(11, 12, 2) } };
    expect(await diskAfter([p0, mergePersists([p1, p2])])).toEqual(await diskAfter([p0, p1, p2]));
  });
});

/** A Store in memory, enough for RaftDisk. */
function memoryStore(): Store {
  const rows = new Map<string, string>();
  return {
    get: async (key: string) => (rows.has(key) ? JSON.parse(rows.get(key) as string) : undefined),
    batch: async (ops: { key: string; value?: unknown }[]) => {
      for (const op of ops) {
        if (op.value === undefined) rows.delete(op.key);
        else rows.set(op.key, JSON.stringify(op.value));
      }
    },
    scan: async (prefix: string) => [...rows].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, v]) => ({ key, value: JSON.parse(v) })),
  } as unknown as Store;
}

/** What RaftDisk reads back after these writes, on a fresh store. */
async function diskAfter(ps: RaftPersist[]) {
  const store = memoryStore();
  const { disk } = await RaftDisk.open(store);
  for (const p of ps) await disk.write(p);
  return (await RaftDisk.open(store)).storage;
}

// ---- the queue ------------------------------------------------------------------------------

const hb = (label: string): RaftMessage => ({ type: 'heartbeat', from: 'a', to: 'b', term: 1, commit: 0, ctx: label });
const ev = (label: string): RaftEvent => ({ type: 'read', ctx: label, index: 0 });

function ready(label: string, persist?: RaftPersist, o: { send?: boolean; events?: boolean } = {}): RaftReady {
  return {
    persist,
    send: o.send === false ? [] : [{ to: 'b', msg: hb(label) }],
    events: o.events === false ? [] : [ev(label)],
    rejected: [],
    next: undefined,
  };
}

/** An io whose writes wait until the test lets them finish; it logs every call in order. */
function fakeIo(o: { syncWrites?: boolean } = {}) {
  const log: string[] = [];
  const writes: { p: RaftPersist; done(): void; fail(e: unknown): void }[] = [];
  const io: ReadyIo<RaftMessage, RaftPersist, RaftEvent> = {
    persist: (p) => {
      log.push(`persist ${label(p)}`);
      if (o.syncWrites) return undefined;
      return new Promise<void>((resolve, reject) => {
        writes.push({ p, done: () => { log.push(`written ${label(p)}`); resolve(); }, fail: reject });
      });
    },
    send: (_to, m) => log.push(`send ${(m as { ctx?: string }).ctx ?? '?'}`),
    events: (es) => log.push(`events ${es.map((e) => (e as { ctx: string }).ctx).join(',')}`),
    rejected: (rs) => log.push(`rejected ${rs.map((r) => r.reason).join(',')}`),
  };
  return { io, log, writes };
}

/** A persist's entries as "from-to", or its hard state's term. */
function label(p: RaftPersist): string {
  const parts: string[] = [];
  if (p.entries) parts.push(`${p.entries.from}-${p.entries.from + p.entries.entries.length - 1}`);
  if (p.hardState) parts.push(`t${p.hardState.term}`);
  return parts.join('+');
}

const settle = () => new Promise((r) => setTimeout(r, 0));
const entries = (from: number, to: number): RaftPersist => ({ entries: { from, entries: range(from, to, 1) } });

describe('ReadyQueue', () => {
  test("a ready's messages and events wait until its persist is written", async () => {
    const { io, log, writes } = fakeIo();
    const fatal: unknown[] = [];
    const q = new ReadyQueue(io, (e) => fatal.push(e));
    q.push(ready('r1', entries(1, 2)));
    expect(log).toEqual(['persist 1-2']);
    await settle();
    await settle();
    expect(log).toEqual(['persist 1-2']);
    writes[0]?.done();
    await settle();
    expect(log).toEqual(['persist 1-2', 'written 1-2', 'send r1', 'events r1']);
    expect(fatal).toEqual([]);
  });

  test('readies pushed during a write are written after it as one batch, their messages and events in order', async () => {
    const { io, log, writes } = fakeIo();
    const q = new ReadyQueue(io, () => undefined);
    q.push(ready('r1', entries(1, 2)));
    q.push(ready('r2', entries(3, 3)));
    q.push(ready('r3', undefined));
    q.push(ready('r4', { hardState: { term: 2, vote: 'a', commit: 3 }, entries: { from: 3, entries: [entry(3, 2), entry(4, 2)] } }));
    q.push(ready('r5', undefined, { events: false }));
    expect(log).toEqual(['persist 1-2']);
    writes[0]?.done();
    await settle();
    // One write for r2..r5, as mergePersists folds them, and nothing of them out before it.
    expect(writes).toHaveLength(2);
    expect(writes[1]?.p).toEqual(mergePersists([entries(3, 3), { hardState: { term: 2, vote: 'a', commit: 3 }, entries: { from: 3, entries: [entry(3, 2), entry(4, 2)] } }]));
    expect(log).toEqual(['persist 1-2', 'written 1-2', 'send r1', 'events r1', 'persist 3-4+t2']);
    writes[1]?.done();
    await settle();
    expect(log.slice(5)).toEqual(['written 3-4+t2', 'send r2', 'send r3', 'send r4', 'send r5', 'events r2,r3,r4']);
    await q.idle();
  });

  test('a ready with nothing to write goes out at once when no write is under way', () => {
    const { io, log } = fakeIo();
    const q = new ReadyQueue(io, () => undefined);
    q.push(ready('now', undefined));
    expect(log).toEqual(['send now', 'events now']);
  });

  test('a ready with nothing to write still waits behind a write under way', async () => {
    const { io, log, writes } = fakeIo();
    const q = new ReadyQueue(io, () => undefined);
    q.push(ready('w', entries(1, 1)));
    q.push(ready('later', undefined));
    await settle();
    expect(log).toEqual(['persist 1-1']);
    writes[0]?.done();
    await settle();
    expect(log).toEqual(['persist 1-1', 'written 1-1', 'send w', 'events w', 'send later', 'events later']);
  });

  test('an empty ready, or none, does nothing', async () => {
    const { io, log } = fakeIo();
    const q = new ReadyQueue(io, () => undefined);
    q.push(undefined);
    q.push(ready('x', undefined, { send: false, events: false }));
    await q.idle();
    expect(log).toEqual([]);
  });

  test('rejections are reported after messages and events', async () => {
    const { io, log } = fakeIo({ syncWrites: true });
    const q = new ReadyQueue(io, () => undefined);
    q.push({ ...ready('r', entries(1, 1)), rejected: [{ from: 'c', reason: 'forged' }] });
    await q.idle();
    expect(log).toEqual(['persist 1-1', 'send r', 'events r', 'rejected forged']);
  });

  test('a failed write calls onFatal once, and nothing of it or after it is sent or reported', async () => {
    const { io, log, writes } = fakeIo();
    const fatal: unknown[] = [];
    const q = new ReadyQueue(io, (e) => fatal.push(e));
    q.push(ready('r1', entries(1, 2)));
    q.push(ready('r2', entries(3, 3)));
    q.push(ready('r3', undefined));
    const disk = new Error('EIO: the disk is gone');
    writes[0]?.fail(disk);
    await settle();
    q.push(ready('r4', entries(4, 4)));
    q.push(ready('r5', undefined));
    await q.idle();
    await settle();
    expect(fatal).toEqual([disk]);
    expect(log).toEqual(['persist 1-2']);
  });

  test('a write that fails after earlier ones succeeded stops only what follows it', async () => {
    const { io, log, writes } = fakeIo();
    const fatal: unknown[] = [];
    const q = new ReadyQueue(io, (e) => fatal.push(e));
    q.push(ready('ok', entries(1, 1)));
    q.push(ready('bad', entries(2, 2)));
    writes[0]?.done();
    await settle();
    writes[1]?.fail(new Error('ENOSPC'));
    await settle();
    q.push(ready('after', undefined));
    await settle();
    expect(log).toEqual(['persist 1-1', 'written 1-1', 'send ok', 'events ok', 'persist 2-2']);
    expect(fatal).toHaveLength(1);
  });

  test('a persister that throws at once is a failed write too', async () => {
    const fatal: unknown[] = [];
    const sent: string[] = [];
    const q = new ReadyQueue({
      persist: () => { throw new Error('closed'); },
      send: (_to, m) => sent.push(String((m as { ctx?: string }).ctx)),
      events: () => undefined,
      rejected: () => undefined,
    }, (e) => fatal.push(e));
    q.push(ready('r1', entries(1, 1)));
    q.push(ready('r2', undefined));
    await settle();
    expect(fatal).toHaveLength(1);
    expect(sent).toEqual([]);
  });

  test('a batch whose persists cannot be merged is a fatal error, not a thrown one', async () => {
    const { io, log, writes } = fakeIo();
    const fatal: unknown[] = [];
    const q = new ReadyQueue(io, (e) => fatal.push(e));
    q.push(ready('r1', entries(1, 1)));
    q.push(ready('r2', entries(5, 6)));
    q.push(ready('r3', entries(9, 9)));
    writes[0]?.done();
    await settle();
    expect(fatal).toHaveLength(1);
    expect(String(fatal[0])).toMatch(/not contiguous/);
    expect(log).toEqual(['persist 1-1', 'written 1-1', 'send r1', 'events r1']);
  });

  test('idle resolves once everything pushed is carried out', async () => {
    const { io, log, writes } = fakeIo();
    const q = new ReadyQueue(io, () => undefined);
    q.push(ready('r1', entries(1, 1)));
    q.push(ready('r2', entries(2, 2)));
    setTimeout(() => writes[0]?.done(), 10);
    setTimeout(() => writes[1]?.done(), 30);
    await q.idle();
    expect(log.filter((l) => l.startsWith('send'))).toEqual(['send r1', 'send r2']);
  });

  test.each([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])('seed %i: random pushes and write times: all sent in order, each after its own write', async (seed) => {
    const rng = new Rng(seed);
    const { io, log, writes } = fakeIo();
    const fatal: unknown[] = [];
    const q = new ReadyQueue(io, (e) => fatal.push(e));
    let last = 0;
    const withWrite = new Set<string>();
    let pushed = 0;
    let finished = 0;
    for (let step = 0; step < 300; step++) {
      if (rng.chance(0.4) && pushed < 150) {
        const name = `r${pushed++}`;
        log.push(`push ${name}`);
        if (rng.chance(0.7)) {
          const from = Math.max(1, last + 1 - rng.int(3));
          last = from + rng.int(3);
          q.push(ready(name, entries(from, last)));
          withWrite.add(name);
        } else {
          q.push(ready(name, undefined));
        }
      } else if (finished < writes.length) {
        writes[finished++]?.done();
      }
      if (rng.chance(0.5)) await settle();
    }
    for (let i = 0; i < 1000 && (finished < writes.length || log.filter((l) => l.startsWith('send')).length < pushed); i++) {
      if (finished < writes.length) writes[finished++]?.done();
      await settle();
    }
    await q.idle();
    expect(fatal).toEqual([]);
    const sends = log.filter((l) => l.startsWith('send')).map((l) => l.slice(5));
    expect(sends).toEqual(Array.from({ length: pushed }, (_, i) => `r${i}`));
    // A ready with something to write is in the first write begun after its push: that write
    // has completed before its message leaves.
    for (const name of withWrite) {
      const pushedAt = log.indexOf(`push ${name}`);
      const begun = log.findIndex((l, i) => i > pushedAt && l.startsWith('persist '));
      const completed = log.findIndex((l, i) => i > begun && l.startsWith('written '));
      const sentAt = log.indexOf(`send ${name}`);
      expect(begun, name).toBeGreaterThan(pushedAt);
      expect(completed, name).toBeGreaterThan(begun);
      expect(sentAt, `${name} sent before its write completed`).toBeGreaterThan(completed);
    }
    // Batching happened: fewer writes than readies that had something to write.
    expect(writes.length).toBeLessThan(withWrite.size);
  });
});

describe('ReadyQueue: a leader appends alongside its own write', () => {
  const app = (label: string, term: number): RaftMessage => ({ type: 'app', from: 'a', to: 'b', term, prevIndex: 0, prevTerm: 0, entries: [], commit: 0, ...({ ctx: label } as object) }) as RaftMessage;
  const withSends = (r: RaftReady, msgs: RaftMessage[]): RaftReady => ({ ...r, send: msgs.map((msg) => ({ to: 'b', msg })) });

  test('an append of the term on disk leaves before the write; other messages, and appends of a term not yet on disk, after it; the core hears of the write', async () => {
    const { io, log, writes } = fakeIo();
    const written: number[] = [];
    const q = new ReadyQueue(io, () => undefined, { durableTerm: 3, onWritten: (last) => written.push(last.index) });
    q.push(withSends(ready('r1', entries(1, 2), { send: false }), [app('early', 3), hb('after')]));
    expect(log).toEqual(['send early', 'persist 1-2']);
    writes[0]?.done();
    await settle();
    expect(log).toEqual(['send early', 'persist 1-2', 'written 1-2', 'send after', 'events r1']);
    expect(written).toEqual([2]);
    // A ready that moves to term 4: its appends wait for the term to be on disk.
    q.push(withSends(ready('r2', { hardState: { term: 4, vote: 'a', commit: 2 } }, { send: false }), [app('new-term', 4)]));
    expect(log.at(-1)).toBe('persist t4');
    writes[1]?.done();
    await settle();
    expect(log.slice(-3)).toEqual(['written t4', 'send new-term', 'events r2']);
    // Now term 4 is on disk: the next append goes at once.
    q.push(withSends(ready('r3', entries(3, 3), { send: false }), [app('early-4', 4)]));
    expect(log.slice(-2)).toEqual(['send early-4', 'persist 3-3']);
  });
});
