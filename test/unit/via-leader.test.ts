// The retry loop of requests sent through the leader (scheduler/manager/forwarding.ts): a try
// refused by a leader that is handing over is tried again on the next leader the moment it is
// known, not at the next poll.
import { describe, expect, test } from 'vitest';
import { LeaderWatch, viaLeader } from '../../scheduler/manager/forwarding.ts';

describe('viaLeader', () => {
  test('woken by the next leader: no poll interval is waited', async () => {
    const watch = new LeaderWatch();
    let leader = 'old';
    const tried: string[] = [];
    // A minute's poll: only the wake-up can end the wait within the test's time.
    const out = await viaLeader({ leader: () => leader, stopped: () => false, next: () => watch.next(60_000) }, async (l) => {
      tried.push(l);
      if (l === 'old') {
        // The handover completes while the refusal is on its way.
        setTimeout(() => {
          leader = 'new';
          watch.changed();
        }, 5);
        throw new Error('not the leader: handing leadership over');
      }
      return l;
    }, 'write');
    expect(out).toBe('new');
    expect(tried).toEqual(['old', 'new']);
  }, 5_000);

  test('another leader known already: tried at once; a final failure is not retried', async () => {
    let leader = 'a';
    const tried: string[] = [];
    const never = () => new Promise<void>(() => undefined);
    const out = await viaLeader({ leader: () => leader, stopped: () => false, next: never }, async (l) => {
      tried.push(l);
      if (l === 'a') {
        leader = 'b';
        throw new Error('leader change');
      }
      return l;
    }, 'write');
    expect(out).toBe('b');
    await expect(viaLeader({ leader: () => 'a', stopped: () => false, next: never }, async () => {
      throw new Error('version conflict');
    }, 'write')).rejects.toThrow('version conflict');
  });

  test('LeaderWatch.next ends by itself after its time, and leaves no waiter behind', async () => {
    const watch = new LeaderWatch();
    const t0 = performance.now();
    await watch.next(15);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(10);
    watch.changed(); // nobody waits: nothing happens
  });
});
