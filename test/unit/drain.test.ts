// Which peers the scheduler drains (scheduler/reconciler/drain.ts): drained ones, and nodes the
// provisioner removes; not nodes it replaces because they died.
import { describe, expect, test } from 'vitest';
import { drainedPeers, drainProblem } from '../../scheduler/reconciler/drain.ts';

describe('drained peers', () => {
  test('drains, and removals of live nodes; a dead node being replaced is left to the grace', () => {
    const node = (peer: string, state: string, after?: string) => ({ name: `c/${peer}`, spec: { state, peer, ...(after ? { after } : {}) } });
    const drained = drainedPeers([{ name: 'p0', spec: { at: 1 } }], [
      node('p1', 'terminating', 'remove'), node('p2', 'terminating', 'replace'), node('p3', 'terminating', 'retry'), node('p4', 'deployed'),
    ]);
    expect([...drained].sort()).toEqual(['p0', 'p1']);
  });

  test('a drain record is the time it was asked, nothing else', () => {
    expect(drainProblem({ at: 5 })).toBeUndefined();
    expect(drainProblem({ at: -1 })).toMatch(/time/);
    expect(drainProblem({ at: 1, who: 'x' })).toMatch(/no field "who"/);
    expect(drainProblem([])).toMatch(/object/);
  });
});
