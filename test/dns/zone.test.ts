// The pure core: which names a stack's services and containers get, and what the server
// answers for them, with the wire bytes decoded by dns2 (an independent decoder). No sockets.

import { describe, expect, test } from 'vitest';
import { answerFromZone } from '../../dns/answer.ts';
import { parseQuery, udpLimit } from '../../dns/packet.ts';
import { buildRecordSet, type ContainerRecord, type DnsRecordSet } from '../../dns/records.ts';
import { identityFromLabels } from '../../mesh/naming.ts';
import { BUILD_STEP, buildZone, buildZoneSteps, ZoneBuilder } from '../../dns/zone-builder.ts';
import type { ZoneOptions } from '../../dns/zone.ts';
import { Rng, seeds } from '../sim/rng.ts';
import { addressesOf, decode, makeQuery, type QueryOptions, QTYPE } from './helpers.ts';

const shop = (n: number, extra: Partial<ContainerRecord> = {}): ContainerRecord[] =>
  Array.from({ length: n }, (_, i) => ({
    name: `web-${i + 1}`, stack: 'shop', service: 'web', addrs: [`10.32.0.${i + 1}`],
    ports: [{ port: 80, proto: 'tcp' as const, name: 'http' }], ...extra,
  }));

function zoneOf(set: DnsRecordSet, o: ZoneOptions = {}) {
  return buildZone(set, { serial: 7, ...o });
}

/** Answers a query from the zone as the server would over UDP (or with `maxSize`). */
function ask(set: DnsRecordSet, name: string, qtype: number, o: QueryOptions & { maxSize?: number; random?: () => number; zone?: ZoneOptions } = {}) {
  const zone = zoneOf(set, o.zone);
  const msg = makeQuery(name, qtype, o);
  const q = parseQuery(msg);
  if ('reject' in q) throw new Error(q.reason);
  const rng = new Rng(1);
  const a = answerFromZone(zone, q, msg, o.maxSize ?? udpLimit(q.edns, 1232), 1232, o.random ?? (() => rng.next()));
  return a === undefined ? undefined : { ...a, packet: decode(a.bytes), raw: a.bytes };
}

describe('names for a stack, its services and containers', () => {
  const { set } = buildRecordSet({ containers: shop(3) });

  test('a service name answers every container; a container name answers itself', () => {
    expect(addressesOf(ask(set, 'web.shop.weft.local', QTYPE.A)!.packet).sort()).toEqual(['10.32.0.1', '10.32.0.2', '10.32.0.3']);
    expect(addressesOf(ask(set, 'web-2.shop.weft.local', QTYPE.A)!.packet)).toEqual(['10.32.0.2']);
  });

  test('hostnames and aliases resolve in the stack; outside a stack, in the domain', () => {
    const { set: s } = buildRecordSet({
      containers: [
        { name: 'db-1', stack: 'shop', service: 'db', hostname: 'primary', aliases: ['postgres'], addrs: ['10.32.1.1'] },
        { name: 'cache', hostname: 'redis-host', aliases: ['kv'], addrs: ['10.32.2.1'] },
      ],
      extras: [{ name: 'legacy', addr: '192.168.1.5' }, { name: 'db.example.com', addr: '192.168.1.6' }],
    });
    for (const n of ['primary.shop.weft.local', 'postgres.shop.weft.local', 'db.shop.weft.local', 'db-1.shop.weft.local']) {
      expect(addressesOf(ask(s, n, QTYPE.A)!.packet), n).toEqual(['10.32.1.1']);
    }
    for (const n of ['cache.weft.local', 'redis-host.weft.local', 'kv.weft.local']) expect(addressesOf(ask(s, n, QTYPE.A)!.packet), n).toEqual(['10.32.2.1']);
    expect(addressesOf(ask(s, 'legacy.weft.local', QTYPE.A)!.packet)).toEqual(['192.168.1.5']);
    expect(addressesOf(ask(s, 'db.example.com', QTYPE.A)!.packet)).toEqual(['192.168.1.6']);
    // Only that exact name outside the domain is ours: its neighbours go upstream.
    expect(ask(s, 'www.example.com', QTYPE.A)).toBeUndefined();
  });

  test('a Compose project resolves as a stack; weft labels take precedence', () => {
    const compose = { 'com.docker.compose.project': 'shop', 'com.docker.compose.service': 'web', 'com.docker.compose.container-number': '2' };
    expect(identityFromLabels('/shop-web-2', compose)).toEqual({ name: 'web-2', stack: 'shop', service: 'web' });
    expect(identityFromLabels('/api-1', { 'weft.stack': 'blog', 'weft.service': 'api' })).toEqual({ name: 'api-1', stack: 'blog', service: 'api' });
    expect(identityFromLabels('/loner', {})).toEqual({ name: 'loner' });
    const { set: s } = buildRecordSet({ containers: [{ ...identityFromLabels('/shop-web-2', compose), addrs: ['10.32.7.2'] }] });
    expect(addressesOf(ask(s, 'web-2.shop.weft.local', QTYPE.A)!.packet)).toEqual(['10.32.7.2']);
    expect(addressesOf(ask(s, 'web.shop.weft.local', QTYPE.A)!.packet)).toEqual(['10.32.7.2']);
  });

  test('names are case-insensitive, and the question comes back as the client wrote it', () => {
    const a = ask(set, 'WeB-1.SHOP.Weft.Local', QTYPE.A)!;
    expect(addressesOf(a.packet)).toEqual(['10.32.0.1']);
    expect(a.packet.questions[0]!.name).toBe('WeB-1.SHOP.Weft.Local');
    expect(a.packet.answers[0]!.name).toBe('WeB-1.SHOP.Weft.Local');
    // Records given in any case are one name.
    const mixed = zoneOf({ names: new Map([['Api.Weft.Local.', { addrs: ['10.32.9.1'] }], ['api.weft.local', { addrs: ['10.32.9.2'] }]]) });
    expect(mixed.nodes.size).toBeGreaterThan(0);
    const msg = makeQuery('api.weft.local', QTYPE.A);
    const q = parseQuery(msg);
    if ('reject' in q) throw new Error(q.reason);
    expect(addressesOf(decode(answerFromZone(mixed, q, msg, 512, 1232, Math.random)!.bytes)).sort()).toEqual(['10.32.9.1', '10.32.9.2']);
  });

  test('answers are authoritative, recursion is available, the TTL is the configured one', () => {
    const a = ask(set, 'web.shop.weft.local', QTYPE.A, { zone: { ttl: 5 } })!;
    expect(a.packet.header).toMatchObject({ qr: 1, aa: 1, ra: 1, rd: 1, tc: 0, rcode: 0, id: 0x1234 });
    expect(a.packet.answers.every((r) => r.ttl === 5)).toBe(true);
    const noRd = ask(set, 'web.shop.weft.local', QTYPE.A, { rd: false })!;
    expect(noRd.packet.header.rd).toBe(0);
  });

  test('every address is first about equally often over many answers', () => {
    const { set: s } = buildRecordSet({ containers: shop(4) });
    const zone = zoneOf(s);
    const rng = new Rng(42);
    const first = new Map<string, number>();
    const msg = makeQuery('web.shop.weft.local', QTYPE.A);
    const q = parseQuery(msg);
    if ('reject' in q) throw new Error(q.reason);
    const N = 4000;
    for (let i = 0; i < N; i++) {
      const got = addressesOf(decode(answerFromZone(zone, q, msg, 512, 1232, () => rng.next())!.bytes));
      expect(got.slice().sort()).toEqual(['10.32.0.1', '10.32.0.2', '10.32.0.3', '10.32.0.4']);
      first.set(got[0]!, (first.get(got[0]!) ?? 0) + 1);
    }
    for (const n of first.values()) expect(Math.abs(n - N / 4)).toBeLessThan(N / 4 * 0.15);
  });

  test('SRV for a service port lists every container, with their addresses as glue', () => {
    for (const owner of ['_http._tcp.web.shop.weft.local', '_80._tcp.web.shop.weft.local', 'web.shop.weft.local']) {
      const a = ask(set, owner, QTYPE.SRV)!;
      expect(a.packet.header.rcode).toBe(0);
      const srv = a.packet.answers.map((r) => `${r.priority} ${r.weight} ${r.port} ${r.target}`).sort();
      expect(srv, owner).toEqual([1, 2, 3].map((i) => `0 1 80 web-${i}.shop.weft.local`));
      const glue = a.packet.additionals.filter((r) => r.type === QTYPE.A).map((r) => `${r.name} ${r.address}`).sort();
      expect(glue).toEqual([1, 2, 3].map((i) => `web-${i}.shop.weft.local 10.32.0.${i}`));
    }
    expect(ask(set, '_http._tcp.web-2.shop.weft.local', QTYPE.SRV)!.packet.answers.map((r) => r.target)).toEqual(['web-2.shop.weft.local']);
    // The _tcp level exists (names below it), so it is NODATA, not NXDOMAIN.
    expect(ask(set, '_tcp.web.shop.weft.local', QTYPE.SRV)!.packet.header.rcode).toBe(0);
    expect(ask(set, '_https._tcp.web.shop.weft.local', QTYPE.SRV)!.packet.header.rcode).toBe(3);
  });

  test('PTR for every overlay address names its container', () => {
    const { set: s } = buildRecordSet({ containers: [...shop(2), { name: 'solo', addrs: ['10.33.4.5'] }] });
    expect(ask(s, '2.0.32.10.in-addr.arpa', QTYPE.PTR)!.packet.answers.map((r) => r.domain)).toEqual(['web-2.shop.weft.local']);
    expect(ask(s, '5.4.33.10.in-addr.arpa', QTYPE.PTR)!.packet.answers.map((r) => r.domain)).toEqual(['solo.weft.local']);
  });

  test('AAAA for a mesh name is NOERROR with no data, and an SOA whose minimum is the TTL', () => {
    const a = ask(set, 'web.shop.weft.local', QTYPE.AAAA, { zone: { ttl: 3 } })!;
    expect(a.packet.header).toMatchObject({ rcode: 0, aa: 1 });
    expect(a.packet.answers).toEqual([]);
    const soa = a.packet.authorities[0]!;
    expect(soa).toMatchObject({ type: QTYPE.SOA, name: 'weft.local', primary: 'ns.weft.local', admin: 'hostmaster.weft.local', minimum: 3, ttl: 3, serial: 7 });
    for (const t of [QTYPE.MX, QTYPE.TXT, QTYPE.NS]) expect(ask(set, 'web-1.shop.weft.local', t)!.packet.header.rcode).toBe(0);
  });

  test('an unknown name in the domain is NXDOMAIN with the SOA; the levels above names exist', () => {
    for (const n of ['nope.weft.local', 'web-9.shop.weft.local', 'a.b.c.web.shop.weft.local', 'WEFT.LOCAL.weft.local']) {
      const a = ask(set, n, QTYPE.A)!;
      expect(a.packet.header.rcode, n).toBe(3);
      expect(a.packet.header.aa).toBe(1);
      expect(a.packet.authorities[0]).toMatchObject({ type: QTYPE.SOA, name: 'weft.local', minimum: 1 });
    }
    for (const n of ['shop.weft.local', 'weft.local']) expect(ask(set, n, QTYPE.A)!.packet.header.rcode, n).toBe(0);
    expect(ask(set, 'weft.local', QTYPE.SOA)!.packet.answers[0]).toMatchObject({ type: QTYPE.SOA, primary: 'ns.weft.local' });
  });

  test('reverse names in the container range are ours: a miss is NXDOMAIN, never forwarded', () => {
    const a = ask(set, '9.9.40.10.in-addr.arpa', QTYPE.PTR)!;
    expect(a.packet.header.rcode).toBe(3);
    expect(a.packet.authorities[0]).toMatchObject({ type: QTYPE.SOA, name: '40.10.in-addr.arpa' });
    expect(ask(set, '0.32.10.in-addr.arpa', QTYPE.PTR)!.packet.header.rcode).toBe(0); // a level above addresses
    expect(ask(set, '1.1.168.192.in-addr.arpa', QTYPE.PTR)).toBeUndefined(); // someone else's: upstream
    expect(ask(set, '1.0.48.10.in-addr.arpa', QTYPE.PTR)).toBeUndefined(); // just outside 10.32.0.0/12
    expect(ask(set, '1.1.168.192.in-addr.arpa', QTYPE.PTR, { zone: { reverse: ['192.168.0.0/16'] } })!.packet.header.rcode).toBe(3);
  });

  test('a name outside the domain is not ours', () => {
    expect(ask(set, 'example.com', QTYPE.A)).toBeUndefined();
    expect(ask(set, 'xweft.local', QTYPE.A)).toBeUndefined();
    expect(ask(set, 'weft.local.example.com', QTYPE.A)).toBeUndefined();
  });

  test('another domain and TTL', () => {
    const { set: s } = buildRecordSet({ containers: shop(1) }, 'mesh.internal');
    const a = ask(s, 'web.shop.mesh.internal', QTYPE.A, { zone: { domain: 'mesh.internal', ttl: 30 } })!;
    expect(a.packet.answers[0]).toMatchObject({ address: '10.32.0.1', ttl: 30 });
    expect(ask(s, 'x.mesh.internal', QTYPE.A, { zone: { domain: 'mesh.internal' } })!.packet.authorities[0]).toMatchObject({ name: 'mesh.internal', primary: 'ns.mesh.internal' });
  });
});

describe('protocol details', () => {
  const { set: big } = buildRecordSet({ containers: shop(200) });

  test('without EDNS an answer fits 512 octets: as many addresses as fit, shuffled, with TC', () => {
    const a = ask(big, 'web.shop.weft.local', QTYPE.A)!;
    expect(a.raw.length).toBeLessThanOrEqual(512);
    expect(a.packet.header.tc).toBe(1);
    expect(a.truncated).toBe(true);
    expect(addressesOf(a.packet).length).toBe(Math.floor((512 - 12 - 25) / 16));
  });

  test("the client's EDNS size is honoured up to ours, and ours is advertised", () => {
    for (const [size, fits] of [[1232, false], [4096, false], [800, false]] as const) {
      const a = ask(big, 'web.shop.weft.local', QTYPE.A, { edns: size })!;
      expect(a.raw.length).toBeLessThanOrEqual(Math.min(size, 1232));
      expect(a.packet.header.tc === 1).toBe(!fits);
      const opt = a.packet.additionals.find((r) => r.type === QTYPE.OPT)!;
      expect(opt.class).toBe(1232);
    }
    const { set: mid } = buildRecordSet({ containers: shop(50) });
    expect(ask(mid, 'web.shop.weft.local', QTYPE.A)!.packet.header.tc).toBe(1); // 50 x 16 > 512
    const full = ask(mid, 'web.shop.weft.local', QTYPE.A, { edns: 1232 })!;
    expect(full.packet.header.tc).toBe(0);
    expect(addressesOf(full.packet).length).toBe(50);
    // A size below 512 counts as 512 (RFC 6891).
    expect(ask(mid, 'web.shop.weft.local', QTYPE.A, { edns: 100 })!.raw.length).toBeLessThanOrEqual(512);
  });

  test('over TCP the whole answer comes, 200 addresses', () => {
    const a = ask(big, 'web.shop.weft.local', QTYPE.A, { maxSize: 65535 })!;
    expect(a.packet.header.tc).toBe(0);
    expect(new Set(addressesOf(a.packet)).size).toBe(200);
  });

  test('EDNS versions above 0 get BADVERS; other classes REFUSED; zone transfers REFUSED', () => {
    const { set } = buildRecordSet({ containers: shop(1) });
    const v1 = ask(set, 'web.shop.weft.local', QTYPE.A, { edns: 1232, ednsVersion: 1 })!;
    expect(v1.raw[3]! & 0xf).toBe(0); // the low 4 bits in the header, the rest in the OPT
    expect(v1.packet.header.rcode).toBe(16); // dns2 puts them together again
    expect(v1.rcode).toBe(16);
    expect(v1.packet.additionals.find((r) => r.type === QTYPE.OPT)!.extendedRcode).toBe(1);
    expect(ask(set, 'version.bind', QTYPE.TXT, { qclass: 3 })!.packet.header.rcode).toBe(5);
    expect(ask(set, 'weft.local', QTYPE.AXFR)!.packet.header.rcode).toBe(5);
  });

  test('names that cannot be served are left out and listed, the rest still served', () => {
    const zone = zoneOf({ names: new Map([
      ['good.weft.local', { addrs: ['10.32.0.1', 'not-an-ip', '::1'] }],
      ['bad name.weft.local', { addrs: ['10.32.0.2'] }],
      [`${'x'.repeat(64)}.weft.local`, { addrs: ['10.32.0.3'] }],
    ]) });
    expect(zone.skipped.map((s) => s.name).sort()).toEqual(['bad name.weft.local', 'good.weft.local', 'good.weft.local', `${'x'.repeat(64)}.weft.local`]);
    expect(zone.records).toBe(2); // good's A and its PTR
  });
});

describe('any record set', () => {
  test.each(seeds(60))('seed %i: every name answers its addresses, every address its names, levels above names exist', (seed) => {
    const rng = new Rng(seed);
    const stacks = ['shop', 'blog', 'Ops'];
    const containers: ContainerRecord[] = Array.from({ length: 1 + rng.int(40) }, (_, i) => {
      const stack = rng.chance(0.7) ? rng.pick(stacks) : undefined;
      const service = rng.chance(0.7) ? rng.pick(['web', 'db', 'Cache', 'api']) : undefined;
      return {
        name: `c${i}`, stack, service,
        addrs: Array.from({ length: rng.chance(0.9) ? 1 : rng.int(3) }, () => `10.${32 + rng.int(16)}.${rng.int(4)}.${1 + rng.int(20)}`),
        ...(rng.chance(0.3) ? { aliases: [rng.pick(['alias', 'Shared', 'x-y'])] } : {}),
        ...(rng.chance(0.3) ? { ports: [{ port: rng.pick([80, 443, 5432]), proto: rng.pick(['tcp', 'udp'] as const) }] } : {}),
      };
    });
    const extras = Array.from({ length: rng.int(4) }, () => ({ name: rng.pick(['legacy', 'db.example.com', 'WEB.shop']), addr: `192.168.0.${rng.int(255)}` }));
    const { set } = buildRecordSet({ containers, extras });
    const zone = buildZone(set, { serial: 1 });
    const answer = (name: string, qtype: number) => {
      const msg = makeQuery(name, qtype, { edns: 4096 });
      const q = parseQuery(msg);
      if ('reject' in q) throw new Error(q.reason);
      const a = answerFromZone(zone, q, msg, 65535, 1232, () => rng.next());
      return a && decode(a.bytes);
    };
    const holders = new Map<string, Set<string>>();
    for (const [name, data] of set.names) {
      const n = name.toLowerCase();
      const expected = [...new Set([...set.names].filter(([k]) => k.toLowerCase() === n).flatMap(([, d]) => d.addrs))].sort();
      expect(addressesOf(answer(name.toUpperCase(), QTYPE.A)!).sort(), name).toEqual(expected);
      for (const a of data.addrs) holders.set(a, (holders.get(a) ?? new Set()).add(n));
      if (n.endsWith('.weft.local')) {
        for (let p = n.slice(n.indexOf('.') + 1); p !== 'local'; p = p.slice(p.indexOf('.') + 1)) {
          expect(answer(p, QTYPE.A)!.header.rcode, `${p} above ${n}`).toBe(0);
        }
        expect(answer(`nothing-here.${n}`, QTYPE.A)!.header.rcode).toBe(3);
      }
    }
    for (const [addr, names] of holders) {
      const ptr = answer(addr.split('.').reverse().join('.') + '.in-addr.arpa', QTYPE.PTR)!;
      expect(ptr.answers.length, addr).toBeGreaterThan(0);
      for (const r of ptr.answers) expect(names.has(r.domain as string), `${addr} -> ${r.domain}`).toBe(true);
    }
  });

  test('a large zone is built in slices, and the result is the same as at once', () => {
    const containers = Array.from({ length: 3000 }, (_, i) => ({ name: `c${i}`, stack: `s${i % 30}`, service: `v${i % 300}`, addrs: [`10.${32 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`] }));
    const { set } = buildRecordSet({ containers });
    const steps = buildZoneSteps(set, { serial: 3 });
    let yields = 0;
    let r = steps.next();
    while (!r.done) {
      yields++;
      r = steps.next();
    }
    expect(yields).toBeGreaterThan(3000 / BUILD_STEP);
    const sliced = r.value;
    const once = buildZone(set, { serial: 3 });
    expect(sliced.records).toBe(once.records);
    expect([...sliced.nodes.keys()].sort()).toEqual([...once.nodes.keys()].sort());
    for (const [k, n] of once.nodes) expect(sliced.nodes.get(k)!.a?.data.equals(n.a!.data) ?? !n.a).toBe(true);
  });
});

describe('updates in place', () => {
  /** Everything a zone answers with, as comparable text. */
  function snapshot(zone: ReturnType<typeof buildZone>) {
    const out: Record<string, string> = {};
    for (const [k, n] of zone.nodes) {
      out[k] = ['a', 'srv', 'ptr', 'soa'].map((t) => {
        const set = n[t as 'a'];
        return set ? `${t}:${set.data.toString('hex')}:${set.glue?.data.toString('hex') ?? ''}` : '';
      }).join('|') + `|neg:${n.negative?.toString('hex') ?? ''}`;
    }
    return { nodes: out, records: zone.records, skipped: zone.skipped.map((s) => `${s.name}: ${s.reason}`).sort(), serial: zone.serial };
  }

  function randomContainers(rng: Rng, n: number): ContainerRecord[] {
    return Array.from({ length: n }, (_, i) => ({
      name: rng.chance(0.05) ? `Bad Name ${i}` : `c${i}`,
      stack: rng.chance(0.8) ? rng.pick(['shop', 'blog']) : undefined,
      service: rng.chance(0.8) ? rng.pick(['web', 'db', 'api']) : undefined,
      addrs: [`10.32.${rng.int(3)}.${1 + rng.int(30)}`, ...(rng.chance(0.1) ? ['nonsense'] : [])],
      ...(rng.chance(0.2) ? { aliases: [rng.pick(['shared', 'Other'])] } : {}),
      ...(rng.chance(0.4) ? { ports: [{ port: rng.pick([80, 443]), proto: 'tcp' as const, ...(rng.chance(0.5) ? { name: 'http' } : {}) }] } : {}),
    }));
  }

  test.each(seeds(40))('seed %i: a zone updated change by change answers exactly like one built afresh', (seed) => {
    const rng = new Rng(seed);
    let containers = randomContainers(rng, 5 + rng.int(30));
    let extras = [{ name: 'legacy', addr: '192.168.1.1' }];
    const builder = new ZoneBuilder({});
    let serial = 1;
    const check = () => {
      const { set } = buildRecordSet({ containers, extras });
      const steps = builder.update(set, ++serial);
      for (let r = steps.next(); !r.done; r = steps.next());
      expect(snapshot(builder.zone)).toEqual(snapshot(buildZone(set, { serial })));
    };
    check();
    for (let step = 0; step < 25; step++) {
      containers = containers.map((c) => ({ ...c }));
      const c = rng.pick(containers);
      switch (rng.int(6)) {
        case 0: c.addrs = [`10.32.${rng.int(3)}.${1 + rng.int(30)}`]; break; // moved
        case 1: containers.splice(containers.indexOf(c), 1); break; // stopped
        case 2: containers.push(...randomContainers(rng, 1 + rng.int(3)).map((x, i) => ({ ...x, name: `n${step}-${i}` }))); break; // started
        case 3: c.ports = rng.chance(0.5) ? [] : [{ port: 8080, proto: 'udp' }]; break; // ports changed
        case 4: c.service = rng.pick(['web', 'db', undefined]); break; // relabelled
        default: extras = rng.chance(0.5) ? [] : [{ name: rng.pick(['legacy', 'c1']), addr: `10.32.9.${rng.int(9)}` }];
      }
      if (containers.length === 0) containers.push(...randomContainers(rng, 2));
      check();
    }
  });

  test('a change of many names builds a fresh zone in slices; a few are applied at once', () => {
    const many = (moved: number) => buildRecordSet({
      containers: Array.from({ length: 2000 }, (_, i) => ({ name: `c${i}`, stack: 's', service: `v${i % 50}`, addrs: [`10.${32 + (i >> 16)}.${((i + moved) >> 8) & 255}.${(i + moved) & 255}`] })),
    }).set;
    const builder = new ZoneBuilder({});
    const run = (set: ReturnType<typeof many>, serial: number) => {
      const steps = builder.update(set, serial);
      let yields = 0;
      for (let r = steps.next(); !r.done; r = steps.next()) yields++;
      return yields;
    };
    expect(run(many(0), 1)).toBeGreaterThan(2000 / BUILD_STEP);
    const before = builder.zone;
    const oneMoved = new Map(many(0).names);
    oneMoved.set('c7.s.weft.local', { addrs: ['10.40.0.1'] });
    expect(run({ names: oneMoved }, 2)).toBe(0);
    expect(builder.zone).toBe(before); // the same zone, changed in place
    expect(run(many(1000), 3)).toBeGreaterThan(0);
    expect(builder.zone).not.toBe(before);
    expect(snapshot(builder.zone)).toEqual(snapshot(buildZone(many(1000), { serial: 3 })));
  });
});
