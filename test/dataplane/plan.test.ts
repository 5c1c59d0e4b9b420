// The data plane's pure core: what the kernel should hold for a gossiped view, the commands
// that get it there, and the parsers and rules around them. No kernel, no root.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import type { DataplaneRecord } from '../../mesh/endpoint.ts';
import { parseCidr, type Cidr } from '../../mesh/ipam/cidr.ts';
import { firewallRules, missingJumps } from '../../mesh/network/dataplane/firewall.ts';
import { overlayMtu, underlayInterface } from '../../mesh/network/dataplane/mtu.ts';
import { chainHooks, checkIfName, hostIfName, randomMac, wgIfName } from '../../mesh/network/dataplane/names.ts';
import { parseFdb, parseHostRoutes, parseNeigh, parseWgDump } from '../../mesh/network/dataplane/observe.ts';
import { desiredRemote, emptyRemote, isEmpty, planRemote, WG_KEEPALIVE_S, type Mode, type Self, type View } from '../../mesh/network/dataplane/plan.ts';
import { containerSide, hostSide } from '../../mesh/network/dataplane/veth.ts';
import { loadOrCreateKey } from '../../mesh/network/dataplane/wireguard.ts';

const RANGE = parseCidr('10.32.0.0/12') as Cidr;
const KEY = (c: string) => `${c.repeat(43)}=`;
const MAC = (n: number) => `02:00:00:00:00:0${n}`;

function rec(n: number, mode: Mode, extra: Partial<DataplaneRecord> = {}): DataplaneRecord {
  return mode === 'encrypted'
    ? { v: 1, mode, endpoint: `192.0.2.${n}`, wgPublicKey: KEY(String.fromCharCode(64 + n)), wgPort: 6783, ...extra }
    : { v: 1, mode, endpoint: `192.0.2.${n}`, vxlanMac: MAC(n), vxlanPort: 6784, ...extra };
}

function self(mode: Mode, o: Partial<Self> = {}): Self {
  const r = rec(1, mode);
  return { mode, underlay: r.endpoint, wgPublicKey: r.wgPublicKey, vxlanMac: r.vxlanMac, range: RANGE, local: new Set(), ...o };
}

function view(mode: Mode, remote: [string, string][], extra: Record<string, Partial<DataplaneRecord>> = {}): View {
  return {
    hosts: new Map([1, 2, 3].map((n) => [`p${n}`, rec(n, mode, extra[`p${n}`])])),
    remote: remote.map(([addr, peer]) => ({ addr, peer })),
  };
}

describe('the remote state a view asks for', () => {
  test('encrypted: one WireGuard peer per other host, its containers as allowed /32s and routes', () => {
    const d = desiredRemote(view('encrypted', [['10.32.0.2', 'p2'], ['10.32.0.3', 'p3'], ['10.32.0.4', 'p2'], ['10.32.0.1', 'p1']]), self('encrypted'));
    expect([...d.state.wgPeers]).toEqual([
      [KEY('B'), { endpoint: '192.0.2.2:6783', keepalive: WG_KEEPALIVE_S, allowed: ['10.32.0.2/32', '10.32.0.4/32'] }],
      [KEY('C'), { endpoint: '192.0.2.3:6783', keepalive: WG_KEEPALIVE_S, allowed: ['10.32.0.3/32'] }],
    ]);
    expect([...d.state.routes.keys()].sort()).toEqual(['10.32.0.2', '10.32.0.3', '10.32.0.4']);
    expect(d.state.fdb.size + d.state.neigh.size).toBe(0);
    // Our own containers are no news, not a problem worth a log line.
    expect(d.skipped).toEqual([]);
  });

  test('fast: an fdb entry per other host, a permanent neighbour per remote address, the peers for the firewall', () => {
    const d = desiredRemote(view('fast', [['10.32.0.2', 'p2'], ['10.32.0.3', 'p3']]), self('fast'));
    expect([...d.state.fdb]).toEqual([[MAC(2), { dst: '192.0.2.2', port: 6784 }], [MAC(3), { dst: '192.0.2.3', port: 6784 }]]);
    expect([...d.state.neigh]).toEqual([['10.32.0.2', MAC(2)], ['10.32.0.3', MAC(3)]]);
    expect(d.underlays).toEqual(['192.0.2.2', '192.0.2.3']);
    expect(d.state.wgPeers.size).toBe(0);
  });

  test('addresses outside the overlay range are never routed into it (a record cannot hijack the underlay)', () => {
    const d = desiredRemote(view('encrypted', [['192.0.2.1', 'p2'], ['0.0.0.0', 'p2'], ['10.48.0.1', 'p3'], ['10.32.0.9', 'p3']], { p2: { exposed: '8.8.8.8' } }), self('encrypted'));
    expect([...d.state.routes.keys()]).toEqual(['10.32.0.9']);
    expect(d.skipped.filter((s) => s.includes('outside the overlay range'))).toHaveLength(4);
  });

  test('an address that lives here stays here, whatever stale gossip says', () => {
    const d = desiredRemote(view('encrypted', [['10.32.0.5', 'p2']]), self('encrypted', { local: new Set(['10.32.0.5']) }));
    expect(d.state.routes.size).toBe(0);
    expect(d.state.wgPeers.get(KEY('B'))?.allowed).toEqual([]);
  });

  test('hosts in the other mode and records without their key are left out, with a reason', () => {
    const v = view('encrypted', [['10.32.0.2', 'p2'], ['10.32.0.3', 'p3']], { p3: { mode: 'fast', vxlanMac: MAC(3) } });
    const d = desiredRemote(v, self('encrypted'));
    expect([...d.state.wgPeers.keys()]).toEqual([KEY('B')]);
    expect(d.skipped.join('\n')).toMatch(/peer p3: its data plane is in fast mode/);
  });

  test('an exposed host address is routed to its host, and our routes carry our exposed address as source', () => {
    const d = desiredRemote(view('encrypted', [['10.32.0.2', 'p2']], { p3: { exposed: '10.32.9.9' } }), self('encrypted', { exposed: '10.32.1.1', local: new Set(['10.32.1.1']) }));
    expect([...d.state.routes]).toEqual([['10.32.0.2', '10.32.1.1'], ['10.32.9.9', '10.32.1.1']]);
    expect(d.state.wgPeers.get(KEY('C'))?.allowed).toEqual(['10.32.9.9/32']);
  });

  test('two peers claiming one address: the first wins, deterministically', () => {
    const d = desiredRemote(view('fast', [['10.32.0.7', 'p3'], ['10.32.0.7', 'p2']]), self('fast'));
    expect(d.state.neigh.get('10.32.0.7')).toBe(MAC(3));
    expect(d.skipped.join('\n')).toMatch(/already routed to peer p3/);
  });
});

describe('the commands from applied to desired', () => {
  const DEV = 'wgx';

  test('from nothing: one wg set for all peers, one route per address; then nothing more to do', () => {
    const want = desiredRemote(view('encrypted', [['10.32.0.2', 'p2'], ['10.32.0.3', 'p3']]), self('encrypted')).state;
    const c = planRemote(emptyRemote(), want, DEV);
    expect(c.wg).toEqual(['set', DEV, 'peer', KEY('B'), 'endpoint', '192.0.2.2:6783', 'persistent-keepalive', '25', 'allowed-ips', '10.32.0.2/32', 'peer', KEY('C'), 'endpoint', '192.0.2.3:6783', 'persistent-keepalive', '25', 'allowed-ips', '10.32.0.3/32']);
    expect(c.ip).toEqual([`route replace 10.32.0.2/32 dev ${DEV}`, `route replace 10.32.0.3/32 dev ${DEV}`]);
    expect(isEmpty(planRemote(want, want, DEV))).toBe(true);
  });

  test('encrypted: a container moving between hosts changes both peers in one wg set and no route', () => {
    const before = desiredRemote(view('encrypted', [['10.32.0.2', 'p2'], ['10.32.0.5', 'p2']]), self('encrypted')).state;
    const after = desiredRemote(view('encrypted', [['10.32.0.2', 'p2'], ['10.32.0.5', 'p3']]), self('encrypted')).state;
    const c = planRemote(before, after, DEV);
    expect(c.ip).toEqual([]);
    expect(c.wg?.join(' ')).toBe(`set ${DEV} peer ${KEY('B')} endpoint 192.0.2.2:6783 persistent-keepalive 25 allowed-ips 10.32.0.2/32 peer ${KEY('C')} endpoint 192.0.2.3:6783 persistent-keepalive 25 allowed-ips 10.32.0.5/32`);
  });

  test('encrypted: a host gone from the view loses its peer and its routes', () => {
    const before = desiredRemote(view('encrypted', [['10.32.0.2', 'p2'], ['10.32.0.3', 'p3']]), self('encrypted')).state;
    const v = view('encrypted', [['10.32.0.2', 'p2']]);
    (v.hosts as Map<string, DataplaneRecord>).delete('p3');
    const c = planRemote(before, desiredRemote(v, self('encrypted')).state, DEV);
    expect(c.wg).toEqual(['set', DEV, 'peer', KEY('C'), 'remove']);
    expect(c.ip).toEqual([`route del 10.32.0.3/32 dev ${DEV}`]);
  });

  test('fast: a container moving between hosts replaces one neighbour entry, nothing else', () => {
    const before = desiredRemote(view('fast', [['10.32.0.5', 'p2']]), self('fast')).state;
    const after = desiredRemote(view('fast', [['10.32.0.5', 'p3']]), self('fast')).state;
    expect(planRemote(before, after, 'vx')).toEqual({ wg: undefined, ip: [`neigh replace 10.32.0.5 lladdr ${MAC(3)} dev vx nud permanent`], bridge: [] });
  });

  test('fast: a host that moved underlay address gets its fdb entry replaced; a gone one deleted', () => {
    const before = desiredRemote(view('fast', []), self('fast')).state;
    const v = view('fast', [], { p2: { endpoint: '192.0.2.22' } });
    (v.hosts as Map<string, DataplaneRecord>).delete('p3');
    const c = planRemote(before, desiredRemote(v, self('fast')).state, 'vx');
    expect(c.bridge).toEqual([`fdb del ${MAC(3)} dev vx self`, `fdb replace ${MAC(2)} dev vx dst 192.0.2.22 port 6784 self permanent`]);
  });

  test('exposing the host replaces every remote route with one carrying the source address', () => {
    const v = view('encrypted', [['10.32.0.2', 'p2']]);
    const before = desiredRemote(v, self('encrypted')).state;
    const after = desiredRemote(v, self('encrypted', { exposed: '10.32.1.1', local: new Set(['10.32.1.1']) })).state;
    const c = planRemote(before, after, DEV);
    expect(c).toEqual({ wg: undefined, ip: [`route replace 10.32.0.2/32 dev ${DEV} src 10.32.1.1`], bridge: [] });
  });
});

describe('reading the kernel back', () => {
  test('wg show dump: peers, allowed ips, keepalive and the listen port', () => {
    const dump = [
      'cHJpdmF0ZQ==\tcHVibGlj\t6783\toff',
      `${KEY('B')}\t(none)\t192.0.2.2:6783\t10.32.0.4/32,10.32.0.2/32\t0\t0\t0\t25`,
      `${KEY('C')}\t(none)\t(none)\t(none)\t0\t0\t0\toff`,
      '',
    ].join('\n');
    const { listenPort, peers } = parseWgDump(dump);
    expect(listenPort).toBe(6783);
    expect(peers.get(KEY('B'))).toEqual({ endpoint: '192.0.2.2:6783', keepalive: 25, allowed: ['10.32.0.2/32', '10.32.0.4/32'] });
    expect(peers.get(KEY('C'))).toEqual({ endpoint: '(none)', keepalive: 0, allowed: [] });
  });

  test('fdb, neighbours and host routes as iproute2 prints them in JSON', () => {
    expect([...parseFdb('[{"mac":"02:00:00:00:00:02","dst":"192.0.2.2","port":7000,"flags":["self"],"state":"permanent"},{"mac":"02:00:00:00:00:03","dst":"192.0.2.3","flags":["self"],"state":"permanent"},{"mac":"aa:bb:cc:dd:ee:ff","flags":["self"],"state":"permanent"}]', 6784)]).toEqual([
      [MAC(2), { dst: '192.0.2.2', port: 7000 }],
      [MAC(3), { dst: '192.0.2.3', port: 6784 }],
    ]);
    expect([...parseNeigh('[{"dst":"10.32.0.5","lladdr":"02:00:00:00:00:02","state":["PERMANENT"]},{"dst":"10.32.0.6","lladdr":"02:00:00:00:00:03","state":["STALE"]}]')]).toEqual([['10.32.0.5', MAC(2)]]);
    expect([...parseHostRoutes('[{"dst":"10.32.0.5","scope":"link","flags":[]},{"dst":"10.32.0.6","scope":"link","prefsrc":"10.32.1.1","flags":[]},{"type":"unreachable","dst":"10.32.0.0/12","flags":[]}]')]).toEqual([
      ['10.32.0.5', undefined],
      ['10.32.0.6', '10.32.1.1'],
    ]);
    expect(parseHostRoutes('')).toEqual(new Map());
  });

  test('the underlay interface and the overlay MTU per mode', () => {
    const json = '[{"ifname":"lo","mtu":65536,"addr_info":[{"family":"inet","local":"127.0.0.1"}]},{"ifname":"eth0","mtu":9001,"addr_info":[{"family":"inet","local":"10.0.0.5"}]}]';
    expect(underlayInterface(json, '10.0.0.5')).toEqual({ name: 'eth0', mtu: 9001 });
    expect(underlayInterface(json, '10.0.0.6')).toBeUndefined();
    expect(overlayMtu('encrypted', 1500)).toBe(1420);
    expect(overlayMtu('fast', 1500)).toBe(1450);
    expect(() => overlayMtu('fast', 600)).toThrow(/below the minimum/);
  });
});

describe('names, rules and keys', () => {
  test('a container\'s host interface is named for its address, within the kernel\'s 15 bytes', () => {
    expect(hostIfName('10.32.0.5')).toBe('vw0a200005');
    expect(() => wgIfName('much-too-long-suffix')).toThrow(/cannot be a network interface name/);
    expect(() => checkIfName('eth we')).toThrow();
    for (let i = 0; i < 50; i++) expect(parseInt(randomMac().slice(0, 2), 16) & 0x03).toBe(0x02); // unicast, local
  });

  test('veth commands: the container end is made in its namespace; it routes the range via the gateway', () => {
    const lines = hostSide({ addr: '10.32.0.5', hostIf: 'vw0a200005', peerIf: 'ethwe', mac: MAC(5), mtu: 1420, bridge: 'weft', netns: '/proc/42/ns/net' });
    expect(lines[0]).toBe(`link add vw0a200005 mtu 1420 type veth peer name ethwe address ${MAC(5)} mtu 1420 netns /proc/42/ns/net`);
    expect(containerSide('ethwe', '10.32.0.5', '10.32.0.0/12')).toContain('route replace 10.32.0.0/12 via 169.254.53.1 dev ethwe');
  });

  test('firewall: overlay traffic accepted, everything else to the bridge or tunnel dropped, VXLAN only from peers', () => {
    const r = firewallRules({ forward: 'WEFT', input: 'WEFT-IN', output: 'WEFT-OUT', bridge: 'weft', tunnel: 'vx1', range: '10.32.0.0/12', vxlan: { port: 6784, peers: ['192.0.2.2'] } });
    const lines = r.split('\n');
    // From the tunnel, a local overlay address (the DNS address on lo) answers DNS only.
    expect(lines.indexOf('-A WEFT-IN -i vx1 -d 10.32.0.0/12 -p udp --dport 53 -j RETURN')).toBeLessThan(lines.indexOf('-A WEFT-IN -i vx1 -d 10.32.0.0/12 -j DROP'));
    expect(lines.some((l) => l.includes('-j RETURN') && l.includes('10.32.0.9'))).toBe(false);
    const exposed = firewallRules({ forward: 'WEFT', input: 'WEFT-IN', output: 'WEFT-OUT', bridge: 'weft', tunnel: 'vx1', range: '10.32.0.0/12', exposed: '10.32.0.9' }).split('\n');
    expect(exposed.indexOf('-A WEFT-IN -i vx1 -d 10.32.0.9/32 -j RETURN')).toBeLessThan(exposed.indexOf('-A WEFT-IN -i vx1 -d 10.32.0.0/12 -j DROP'));
    expect(lines.indexOf('-A WEFT -i weft -o vx1 -j ACCEPT')).toBeLessThan(lines.indexOf('-A WEFT -o vx1 -j DROP'));
    expect(lines).toContain('-A WEFT-IN -s 192.0.2.2/32 -p udp --dport 6784 -j RETURN');
    expect(lines.at(-3)).toBe('-A WEFT-IN -p udp --dport 6784 -j DROP');
    expect(missingJumps('-P FORWARD DROP\n-A FORWARD -j DOCKER-USER\n-A FORWARD -j WEFT\n', chainHooks('weft'))).toEqual([['INPUT', 'WEFT-IN'], ['OUTPUT', 'WEFT-OUT']]);
  });

  test('the WireGuard key is made once (mode 0600), reused, and its public key is what wg computes', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-wgkey-'));
    try {
      const a = loadOrCreateKey(dir);
      expect(fs.statSync(a.file).mode & 0o777).toBe(0o600);
      expect(loadOrCreateKey(dir)).toEqual(a);
      const wg = spawnSync('wg', ['pubkey'], { input: a.privateKey, encoding: 'utf8' });
      if (wg.status === 0) expect(wg.stdout.trim()).toBe(a.publicKey);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
