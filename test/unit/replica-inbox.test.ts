// The sync channel's inbox: signatures checked a slice per turn of the event loop, messages
// merged whole and in order, a sender's backlog bounded.
import { expect, test } from 'vitest';
import { MAX_BACKLOG_ENTRIES, ReplicaInbox, TURN_BUDGET_MS } from '../../mesh/replication/inbox.ts';
import { Replica } from '../../mesh/replication/replica.ts';
import { type Entry, type ReplicaMessage } from '../../mesh/replication/wire.ts';

const OWNER = 'owner-one';
// A stand-in for a signature: good only over exactly this content.
const good = (key: string, version: number): Entry => ({ owner: OWNER, key, version, value: `v${version}`, sig: `good:${key}:${version}:v${version}` });
const isGood = (e: Entry) => e.sig === `good:${e.key}:${e.version}:${e.value}`;
const push = (entries: Entry[]): ReplicaMessage => ({ t: 'push', v: 1, entries });

/** Runs the inbox's turns until it is idle (bounded), returning how many turns it took. */
async function drain(inbox: ReplicaInbox, maxTurns = 10_000): Promise<number> {
  let turns = 0;
  while (inbox.backlog() > 0 && turns < maxTurns) {
    await new Promise((r) => setImmediate(r));
    turns++;
  }
  expect(inbox.backlog()).toBe(0);
  return turns;
}

function wired(replica: Replica, clockStepMs: number) {
  let clock = 0;
  const applied: string[] = [];
  let checks = 0;
  const rejected: string[] = [];
  const dropped: ReplicaMessage[] = [];
  const inbox = new ReplicaInbox({
    // Every check "takes" clockStepMs: turns end after TURN_BUDGET_MS / clockStepMs checks.
    check: (e) => { checks++; clock += clockStepMs; return isGood(e); },
    held: (e) => { const cur = replica.get(e.owner, e.key); return cur !== undefined && cur.version === e.version && cur.sig === e.sig && cur.value === e.value; },
    apply: (from, msg, checked) => {
      applied.push(`${from}:${msg.t === 'digest' ? 'digest' : msg.entries.length}`);
      const res = replica.receive(from, msg, 0, checked);
      for (const r of res.rejected) rejected.push(r.reason);
    },
    dropped: (_from, msg) => dropped.push(msg),
    now: () => clock,
  });
  return { inbox, applied, rejected, dropped, checks: () => checks };
}

test('a large message is checked over many turns, merged whole, and messages of a sender keep their order', async () => {
  // Verify counts its own calls: the core must not check again what the inbox checked.
  let coreChecks = 0;
  const replica = new Replica('self-peer', { sign: () => 'x', verify: (_o, _b, sig) => { coreChecks++; return sig.startsWith('good:'); } });
  const w = wired(replica, 1);
  const big = Array.from({ length: 1000 }, (_, i) => good(`kv/${i}`, i + 1));
  w.inbox.push('peer-a', push(big));
  w.inbox.push('peer-a', push([good('kv/1000', 1001)]));
  w.inbox.push('peer-a', { t: 'digest', v: 1, digest: Object.create(null) as never });
  const turns = await drain(w.inbox);
  // 1000 checks of 1 ms each in turns of TURN_BUDGET_MS.
  expect(turns).toBeGreaterThanOrEqual(1000 / TURN_BUDGET_MS);
  expect(w.applied).toEqual(['peer-a:1000', 'peer-a:1', 'peer-a:digest']);
  expect(w.checks()).toBe(1001);
  expect(coreChecks).toBe(0);
  expect(replica.entries({ owner: OWNER })).toHaveLength(1001);
});

test('a forged entry inside a flood of genuine ones is still refused, and a copy of a genuine signature does not pass', async () => {
  const replica = new Replica('self-peer', { sign: () => 'x', verify: () => { throw new Error('the inbox checks every entry'); } });
  const w = wired(replica, 0.5);
  const entries = Array.from({ length: 500 }, (_, i) => good(`kv/${i}`, i + 1));
  // Same signature as a genuine entry, other content: checked on its own, not by its signature.
  entries.push({ ...good('kv/7', 8), value: 'forged' });
  entries.push({ owner: OWNER, key: 'kv/forged', version: 999, value: 'forged', sig: 'bad' });
  w.inbox.push('peer-a', push(entries));
  await drain(w.inbox);
  expect(w.rejected).toHaveLength(1);
  expect(replica.get(OWNER, 'kv/forged')).toBeUndefined();
  expect(replica.get(OWNER, 'kv/7')?.value).toBe('v8');
});

test('a sender past its backlog has messages dropped, and is asked to wait until there is room', async () => {
  const replica = new Replica('self-peer', { sign: () => 'x', verify: () => true });
  const w = wired(replica, 0.01);
  const per = 4096;
  let wait: Promise<void> | undefined;
  let version = 0;
  for (let m = 0; m < MAX_BACKLOG_ENTRIES / per + 2; m++) {
    wait = w.inbox.push('peer-a', push(Array.from({ length: per }, () => good(`kv/${version}`, ++version))));
  }
  expect(w.dropped.length).toBeGreaterThan(0);
  expect(wait).toBeInstanceOf(Promise);
  // Another sender is not held up behind it.
  w.inbox.push('peer-b', push([{ owner: 'owner-two', key: 'kv/b', version: 1, value: 'b', sig: 'good:kv/b:1:b' }]));
  await drain(w.inbox);
  await wait;
  expect(replica.get('owner-two', 'kv/b')).toBeDefined();
  // Senders take turns: b's message was merged before a's backlog was through.
  expect(w.applied.indexOf('peer-b:1')).toBeLessThan(w.applied.lastIndexOf('peer-a:4096'));
  expect(w.inbox.backlog()).toBe(0);
});
