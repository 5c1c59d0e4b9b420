// End-to-end: five healthy peers (hosts h1..h5) left alone for a minute while the rest of the
// test suite loads the same two cores. Nobody may ever be marked dead: a failure detector
// that kills healthy peers under load is worse than a slow one.
import { describe, expect, test } from 'vitest';
import { useHarness } from '../harness/vitest.ts';
import { waitFor, type Host } from '../harness/harness.ts';

const PASSWORD = 'e2e-healthy-password-2b8e';
/** Long enough to overlap the heaviest files of the suite (simulations, 64 MiB transfers). */
const WATCH_MS = 60_000;

interface Event { type: string; peer?: { name: string } }

describe('a healthy mesh of five under the load of the test suite', () => {
  const mesh = useHarness({ hosts: 5, name: 'e2e-healthy' });

  test('no healthy peer is ever marked dead', { timeout: WATCH_MS + 120_000 }, async () => {
    const hosts = mesh().hosts as Host[];
    const [first, ...rest] = hosts as [Host, ...Host[]];
    await first.startPeer({ password: PASSWORD });
    for (const h of rest) await h.startPeer({ password: PASSWORD, peers: [first.address] });
    for (const h of hosts) {
      await waitFor(async () => (await h.weftJson<{ peers: { alive: number } }>(['status', '--json'])).peers.alive === 4, { what: `${h.name} to see 4 alive peers` });
    }
    await new Promise((r) => setTimeout(r, WATCH_MS));
    let suspicions = 0;
    for (const h of hosts) {
      const events = await h.weftJson<Event[]>(['events', '--json']);
      suspicions += events.filter((e) => e.type === 'suspect').length;
      expect(events.filter((e) => e.type === 'dead' || e.type === 'left'), `${h.name} saw a healthy peer die`).toEqual([]);
      const s = await h.weftJson<{ peers: { alive: number; suspect: number; dead: number } }>(['status', '--json']);
      expect(s.peers).toMatchObject({ alive: 4, suspect: 0, dead: 0 });
    }
    // Suspicions that were refuted are allowed (that is what refutation is for); report them.
    console.log(`healthy mesh: ${suspicions} refuted suspicions in ${WATCH_MS / 1000} s across 5 peers`);
  });
});
