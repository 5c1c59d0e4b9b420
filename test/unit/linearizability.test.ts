// The checker itself, on histories whose answer is known: it must accept every linearizable
// one and refuse every one that is not, or the Raft simulation's use of it proves nothing.

import { describe, expect, test } from 'vitest';
import { checkKvHistory, type KvOperation } from '../linearizability.ts';
import { Rng } from '../sim/rng.ts';

const put = (client: string, value: string, invoked: number, returned?: number): KvOperation => ({ client, kind: 'put', key: 'k', value, invoked, returned });
const get = (client: string, output: string | null, invoked: number, returned: number): KvOperation => ({ client, kind: 'get', key: 'k', output, invoked, returned });

describe('linearizability checker', () => {
  test('sequential histories: reads must see the last write', () => {
    expect(checkKvHistory([put('a', '1', 0, 1), get('b', '1', 2, 3)]).ok).toBe(true);
    expect(checkKvHistory([put('a', '1', 0, 1), get('b', null, 2, 3)]).ok).toBe(false);
    expect(checkKvHistory([get('b', null, 0, 1), put('a', '1', 2, 3), put('a', '2', 4, 5), get('b', '1', 6, 7)]).ok).toBe(false);
  });

  test('concurrent operations may take effect in either order, but not against real time', () => {
    // The read overlaps both writes: it may see either.
    expect(checkKvHistory([put('a', '1', 0, 10), put('b', '2', 0, 10), get('c', '1', 5, 6)]).ok).toBe(true);
    expect(checkKvHistory([put('a', '1', 0, 10), put('b', '2', 0, 10), get('c', '2', 5, 6)]).ok).toBe(true);
    // Two reads that return before each other was invoked saw the writes in two orders.
    expect(checkKvHistory([
      put('a', '1', 0, 10), put('b', '2', 0, 10), get('c', '1', 11, 12), get('d', '2', 13, 14), get('e', '1', 15, 16),
    ]).ok).toBe(false);
    // A stale read: the write returned before the read began.
    expect(checkKvHistory([put('a', '1', 0, 1), put('a', '2', 2, 3), get('b', '1', 4, 5)]).ok).toBe(false);
  });

  test('a write that never returned may have happened, or not, but only after it was invoked', () => {
    expect(checkKvHistory([put('a', '1', 0, undefined), get('b', '1', 5, 6)]).ok).toBe(true);
    expect(checkKvHistory([put('a', '1', 0, undefined), get('b', null, 5, 6)]).ok).toBe(true);
    expect(checkKvHistory([get('b', '1', 0, 1), put('a', '1', 5, undefined)]).ok).toBe(false);
  });

  test('keys are independent registers', () => {
    const h: KvOperation[] = [
      { client: 'a', kind: 'put', key: 'x', value: '1', invoked: 0, returned: 1 },
      { client: 'b', kind: 'get', key: 'y', output: null, invoked: 2, returned: 3 },
      { client: 'b', kind: 'get', key: 'x', output: '1', invoked: 4, returned: 5 },
    ];
    expect(checkKvHistory(h).ok).toBe(true);
    const bad = checkKvHistory([...h, { client: 'c', kind: 'get', key: 'y', output: '1', invoked: 6, returned: 7 }]);
    expect(bad).toMatchObject({ ok: false, key: 'y' });
  });

  test('random histories of a real register are accepted; the same with one read corrupted are refused', () => {
    const rng = new Rng(11);
    for (let run = 0; run < 200; run++) {
      // A register executed atomically at a random instant inside each operation's interval.
      let value: string | null = null;
      const ops: KvOperation[] = [];
      const events: Array<{ at: number; op: KvOperation }> = [];
      for (let i = 0; i < 12; i++) {
        const invoked = rng.int(100);
        const at = invoked + rng.int(20);
        const op: KvOperation = rng.chance(0.5)
          ? { client: `c${i}`, kind: 'put', key: 'k', value: `v${i}`, invoked, returned: at + rng.int(20) }
          : { client: `c${i}`, kind: 'get', key: 'k', invoked, returned: at + rng.int(20) };
        events.push({ at: at + i / 100, op });
        ops.push(op);
      }
      for (const { op } of events.sort((a, b) => a.at - b.at)) {
        if (op.kind === 'put') value = op.value ?? null;
        else op.output = value;
      }
      expect(checkKvHistory(ops).ok, `run ${run}`).toBe(true);
      // A read that returns a value never written cannot be placed anywhere.
      const reads = ops.filter((o) => o.kind === 'get');
      if (reads.length === 0) continue;
      reads[0]!.output = 'never-written';
      expect(checkKvHistory(ops).ok, `run ${run}, corrupted`).toBe(false);
    }
  });
});
