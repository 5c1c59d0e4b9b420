// The registry records that travel by gossip: valid ones decode, anything else is refused with
// a reason and never throws (random and mutated inputs).
import { describe, expect, test } from 'vitest';
import { parseContainerEndpoint, parseDataplaneRecord, preferEndpoint, type ContainerEndpoint } from '../../mesh/endpoint.ts';
import { mulberry32 } from '../../mesh/seeded-random.ts';

const container: ContainerEndpoint = {
  v: 1, id: 'a'.repeat(64), name: 'web-1', hostname: 'web-1', aliases: ['www'], addr: '10.32.0.7', mac: '02:42:0a:20:00:07',
  peer: '12D3KooWpeer', host: 'h1', state: 'running', health: 'none', labels: { 'weft.stack': 'shop' },
  ports: [{ port: 80, proto: 'tcp' }], since: 1700000000000,
};
const dataplane = { v: 1, mode: 'encrypted', endpoint: '192.0.2.4', wgPublicKey: 'A'.repeat(43) + '=', wgPort: 6783 };

function mutate(text: string, rnd: () => number): string {
  const chars = [...text];
  const n = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(rnd() * chars.length);
    const op = rnd();
    if (op < 0.4) chars[at] = String.fromCharCode(Math.floor(rnd() * 128));
    else if (op < 0.7) chars.splice(at, 1);
    else chars.splice(at, 0, '"{}[],:0-e'[Math.floor(rnd() * 10)] as string);
  }
  return chars.join('');
}

describe('registry records', () => {
  test('valid records decode', () => {
    expect(parseContainerEndpoint(JSON.stringify(container))).toEqual(container);
    expect(parseDataplaneRecord(JSON.stringify(dataplane))).toEqual(dataplane);
  });

  test('each bad field is refused with a reason', () => {
    const bad: Array<[Partial<Record<keyof ContainerEndpoint, unknown>>, RegExp]> = [
      [{ v: 2 }, /version/], [{ addr: '10.32.0.300' }, /address/], [{ mac: 'zz' }, /MAC/], [{ state: 'paused' }, /state/],
      [{ labels: { a: 5 } }, /labels/], [{ ports: [{ port: 70000, proto: 'tcp' }] }, /ports/], [{ name: '' }, /missing/],
      [{ aliases: Array(40).fill('x') }, /aliases/], [{ since: 'now' }, /since/],
    ];
    for (const [patch, why] of bad) expect(parseContainerEndpoint(JSON.stringify({ ...container, ...patch }))).toMatch(why);
    expect(parseDataplaneRecord(JSON.stringify({ ...dataplane, wgPublicKey: undefined }))).toMatch(/WireGuard key/);
    expect(parseDataplaneRecord(JSON.stringify({ ...dataplane, mode: 'fast' }))).toMatch(/VXLAN MAC/);
    expect(parseDataplaneRecord('[]')).toMatch(/version/);
    // Shapes that pass a regex but not `wg` or the kernel: one such record from one member
    // would make every host's data plane update fail.
    expect(parseDataplaneRecord(JSON.stringify({ ...dataplane, wgPublicKey: 'A'.repeat(42) + 'B=' }))).toMatch(/WireGuard key/);
    for (const mac of ['01:00:5e:00:00:01', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00']) {
      expect(parseDataplaneRecord(JSON.stringify({ v: 1, mode: 'fast', endpoint: '192.0.2.4', vxlanMac: mac }))).toMatch(/VXLAN MAC/);
    }
    expect(parseDataplaneRecord('nul')).toMatch(/JSON/);
  });

  test('fuzz: 20,000 mutated and random inputs never throw and give a record or a reason', () => {
    const rnd = mulberry32(7);
    const seeds = [JSON.stringify(container), JSON.stringify(dataplane)];
    for (let i = 0; i < 20_000; i++) {
      const text = i % 10 === 0
        ? Array.from({ length: Math.floor(rnd() * 64) }, () => String.fromCharCode(Math.floor(rnd() * 256))).join('')
        : mutate(seeds[i % 2] as string, rnd);
      for (const parse of [parseContainerEndpoint, parseDataplaneRecord]) {
        const r = parse(text);
        expect(typeof r === 'string' || (typeof r === 'object' && r !== null && (r as { v: number }).v === 1)).toBe(true);
      }
    }
  });

  test('of two records of one address, the running one wins, then the newest', () => {
    const old = { ...container, since: 1 };
    const moved = { ...container, peer: 'other', since: 2 };
    expect(preferEndpoint(old, moved)).toBe(moved);
    expect(preferEndpoint({ ...moved, state: 'stopped' }, old)).toBe(old);
  });
});
