// How local nodes are addressed: which address a new node gets, what a subnet refuses, which
// names are accepted, and that the names and socket paths derived from them fit their limits.
import { describe, expect, test } from 'vitest';
import { allocateAddress, DEFAULT_NODE_SUBNET, isNodeAddress, nodeCapacity, nodeSubnet } from '../../provisioner/local/subnet.ts';
import { checkNodeName, hostIfName, netnsName } from '../../provisioner/local/names.ts';
import { NodeDir } from '../../provisioner/local/node-dir.ts';

describe('local node addresses', () => {
  test('the gateway is the first address and nodes get the lowest free ones, a destroyed node\'s again', () => {
    const s = nodeSubnet(DEFAULT_NODE_SUBNET);
    expect(s.gateway).toBe('172.30.83.1');
    expect(allocateAddress(s, [])).toBe('172.30.83.2');
    expect(allocateAddress(s, ['172.30.83.2', '172.30.83.4'])).toBe('172.30.83.3');
    expect(nodeCapacity(s)).toBe(253);
  });

  test('a full subnet has no address to give, and never the gateway or broadcast', () => {
    const s = nodeSubnet('192.168.77.0/29'); // .1 gateway, .2-.6 nodes, .7 broadcast
    const used: string[] = [];
    for (let i = 0; i < nodeCapacity(s); i++) {
      const a = allocateAddress(s, used);
      expect(a !== undefined && isNodeAddress(s, a)).toBe(true);
      used.push(a as string);
    }
    expect(used).toEqual(['192.168.77.2', '192.168.77.3', '192.168.77.4', '192.168.77.5', '192.168.77.6']);
    expect(allocateAddress(s, used)).toBeUndefined();
  });

  test('a subnet inside weft\'s container range or not a CIDR is refused in a sentence', () => {
    expect(() => nodeSubnet('10.40.0.0/24')).toThrow(/overlaps weft's container range 10.32.0.0\/12/);
    expect(() => nodeSubnet('172.30.83.5/24')).toThrow(/is not the start of a \/24/);
    expect(() => nodeSubnet('nodes')).toThrow(/not an IPv4 range/);
  });

  test('node names: what is accepted, and the kernel names derived from them fit their limits', () => {
    expect(() => checkNodeName('web-1')).not.toThrow();
    for (const bad of ['', 'Web', '-a', 'a_b', 'a'.repeat(41)]) expect(() => checkNodeName(bad)).toThrow(/must be 1 to 40 lowercase/);
    const longest = 'a'.repeat(40);
    expect(hostIfName(longest).length).toBeLessThanOrEqual(15);
    expect(hostIfName('a')).not.toBe(hostIfName('b'));
    expect(netnsName('web-1')).toBe('weftn-web-1');
  });

  test('a node of the longest name fits the default data dir\'s unix socket paths; a deeper directory is refused in a sentence', () => {
    expect(() => new NodeDir('/var/lib/weft/local-nodes', 'a'.repeat(40)).checkSocketPaths()).not.toThrow();
    expect(() => new NodeDir(`/srv/${'deep/'.repeat(10)}local-nodes`, 'a'.repeat(40)).checkSocketPaths())
      .toThrow(/is too deep: its socket .+containerd.sock.ttrpc would be longer than the 107 bytes a unix socket path may have \(use a shorter --data-dir or node name\)$/);
  });
});
