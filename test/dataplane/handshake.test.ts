// First contact in encrypted mode, the pure part: which new WireGuard peers get their
// handshake started again, when, and by which of the two hosts; the commands and the parser
// it relies on. The real-kernel counterpart is in dataplane.test.ts.
import { describe, expect, test } from 'vitest';
import { checkHandshakes, HANDSHAKE_CHECKS_MS, nextDue, weReinitiate, type PendingHandshake } from '../../mesh/network/dataplane/handshake.ts';
import { parseHandshakes } from '../../mesh/network/dataplane/observe.ts';
import { reinitiateArgs, WG_KEEPALIVE_S, type WgPeer } from '../../mesh/network/dataplane/plan.ts';

const KEY = (c: string) => `${c.repeat(43)}=`;
const [FIRST, SECOND] = HANDSHAKE_CHECKS_MS as [number, number];

function pending(...entries: [string, PendingHandshake][]): Map<string, PendingHandshake> {
  return new Map(entries);
}

describe('re-initiating a first handshake that did not complete', () => {
  test('exactly one of two hosts re-initiates, the same one seen from either side', () => {
    const keys = [KEY('A'), KEY('B'), KEY('Z'), KEY('a'), KEY('z'), KEY('0'), KEY('+'), KEY('/')];
    for (const a of keys) {
      for (const b of keys) {
        if (a !== b) expect(weReinitiate(a, b) !== weReinitiate(b, a), `${a} vs ${b}`).toBe(true);
      }
    }
  });

  test('a new peer without a handshake is re-initiated at each check, then left to WireGuard', () => {
    const none = new Map([[KEY('B'), 0]]);
    let p = pending([KEY('B'), { since: 1_000, checks: 0 }]);
    expect(checkHandshakes(1_000 + FIRST - 1, p, none).reinitiate).toEqual([]);
    expect(nextDue(p)).toBe(1_000 + FIRST);
    const dueAt: number[] = [];
    for (let i = 0; i < HANDSHAKE_CHECKS_MS.length; i++) {
      const at = nextDue(p) as number;
      dueAt.push(at - 1_000);
      const r = checkHandshakes(at, p, none);
      expect(r.reinitiate).toEqual([KEY('B')]);
      expect(r.nextAt).toBe(nextDue(r.pending));
      p = r.pending;
    }
    expect(dueAt).toEqual(HANDSHAKE_CHECKS_MS);
    // After the last check, WireGuard's own retries: nothing pending, nothing re-initiated.
    expect(p.size).toBe(0);
    expect(checkHandshakes(1_000 + 60_000, p, none).reinitiate).toEqual([]);
  });

  test('a peer that completed a handshake, or was removed, is not touched and not checked again', () => {
    const p = pending([KEY('B'), { since: 0, checks: 0 }], [KEY('C'), { since: 0, checks: 1 }], [KEY('D'), { since: 0, checks: 0 }]);
    const r = checkHandshakes(10_000, p, new Map([[KEY('B'), 1_796_231_655], [KEY('D'), 0]]));
    expect(r.reinitiate).toEqual([KEY('D')]);
    expect([...r.pending.keys()]).toEqual([KEY('D')]);
    expect(nextDue(r.pending)).toBe(SECOND);
  });

  test('several peers are re-initiated in one command that keeps their whole configuration', () => {
    const peers = new Map<string, WgPeer>([
      [KEY('B'), { endpoint: '192.0.2.2:6783', keepalive: WG_KEEPALIVE_S, allowed: ['10.32.0.2/32', '10.32.0.3/32'] }],
      [KEY('C'), { endpoint: '192.0.2.3:6783', keepalive: WG_KEEPALIVE_S, allowed: [] }],
    ]);
    expect(reinitiateArgs('wg0', [KEY('B'), KEY('C'), KEY('X')], peers)).toEqual([
      'set', 'wg0',
      'peer', KEY('B'), 'remove', 'peer', KEY('B'), 'endpoint', '192.0.2.2:6783', 'persistent-keepalive', '25', 'allowed-ips', '10.32.0.2/32,10.32.0.3/32',
      'peer', KEY('C'), 'remove', 'peer', KEY('C'), 'endpoint', '192.0.2.3:6783', 'persistent-keepalive', '25', 'allowed-ips', '',
    ]);
    expect(reinitiateArgs('wg0', [KEY('X')], peers)).toBeUndefined();
  });

  test('wg show dump: the latest handshake of each peer, 0 for none yet', () => {
    const dump = [
      'cHJpdmF0ZQ==\tcHVibGlj\t6783\toff',
      `${KEY('B')}\t(none)\t192.0.2.2:6783\t10.32.0.2/32\t1796231655\t820\t912\t25`,
      `${KEY('C')}\t(none)\t192.0.2.3:6783\t(none)\t0\t0\t148\t25`,
      '',
    ].join('\n');
    expect(parseHandshakes(dump)).toEqual(new Map([[KEY('B'), 1_796_231_655], [KEY('C'), 0]]));
    expect(parseHandshakes('')).toEqual(new Map());
  });
});
