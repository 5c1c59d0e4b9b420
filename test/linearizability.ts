// A linearizability checker for a key-value store's history, after Wing & Gong's search as
// Porcupine implements it: find an order of the operations that respects real time (an
// operation that returned before another was invoked comes first) and in which every read
// returns the value of the latest write before it. Keys are independent registers, so each key
// is checked alone (P-compositionality), which keeps the search small. A state already reached
// with the same set of operations done is not explored twice.
//
// An operation that never returned (its client gave up, its server crashed) may have taken
// effect at any time after it was invoked, or never: a pending write is placed wherever it
// fits or left out; a pending read is dropped, since nothing was observed.

export interface KvOperation {
  client: string;
  kind: 'put' | 'get';
  key: string;
  /** The value written (put). */
  value?: string;
  /** When it was invoked and when it returned (undefined: never), on one clock. */
  invoked: number;
  returned?: number;
  /** What a get returned (null: the key had no value). */
  output?: string | null;
}

export interface CheckResult {
  ok: boolean;
  /** The first key with no valid order, and its operations, when not ok. */
  key?: string;
  operations?: KvOperation[];
  /** Search states visited, all keys together: how hard the history was. */
  explored: number;
}

/** Beyond this many search states for one key the checker gives up and says so (a history
 *  that large is a test's mistake: keep per-key histories to tens of operations). */
const MAX_STATES_PER_KEY = 2_000_000;

export function checkKvHistory(history: readonly KvOperation[]): CheckResult {
  const byKey = new Map<string, KvOperation[]>();
  for (const op of history) {
    if (op.kind === 'get' && op.returned === undefined) continue;
    let ops = byKey.get(op.key);
    if (!ops) byKey.set(op.key, (ops = []));
    ops.push(op);
  }
  let explored = 0;
  for (const [key, ops] of byKey) {
    const r = checkRegister(ops);
    explored += r.explored;
    if (!r.ok) return { ok: false, key, operations: ops, explored };
  }
  return { ok: true, explored };
}

/** One key: a register that starts with no value. */
function checkRegister(ops: readonly KvOperation[]): { ok: boolean; explored: number } {
  const n = ops.length;
  const done = new Array<boolean>(n).fill(false);
  const returned = ops.map((o) => o.returned ?? Infinity);
  const mustDo = ops.filter((o) => o.returned !== undefined).length;
  const seen = new Set<string>();
  let explored = 0;

  const search = (state: string | null, completed: number): boolean => {
    if (completed === mustDo) return true;
    const memo = `${done.map((d) => (d ? 1 : 0)).join('')}|${state ?? '\u0000'}`;
    if (seen.has(memo)) return false;
    seen.add(memo);
    if (++explored > MAX_STATES_PER_KEY) throw new Error(`linearizability search gave up after ${MAX_STATES_PER_KEY} states on one key`);
    // The earliest return among operations not yet placed: whatever is placed next must have
    // been invoked before it (else that one would have to come first).
    let horizon = Infinity;
    for (let i = 0; i < n; i++) if (!done[i] && returned[i]! < horizon) horizon = returned[i]!;
    for (let i = 0; i < n; i++) {
      const op = ops[i]!;
      if (done[i] || op.invoked > horizon) continue;
      let next: string | null;
      if (op.kind === 'put') next = op.value ?? null;
      else if ((op.output ?? null) === state) next = state;
      else continue;
      done[i] = true;
      if (search(next, completed + (op.returned !== undefined ? 1 : 0))) return true;
      done[i] = false;
    }
    return false;
  };
  return { ok: search(null, 0), explored };
}
