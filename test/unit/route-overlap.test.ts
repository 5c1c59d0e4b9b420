// --ipalloc-range against the host's routes: a clash is refused, weft's own routes are not one.
import { describe, expect, test } from 'vitest';
import { overlappingRoute, parseRoutes } from '../../mesh/network/route-overlap.ts';
import { parseCidr, type Cidr } from '../../mesh/ipam/cidr.ts';

const range = parseCidr('10.32.0.0/12') as Cidr;
const routes = (json: unknown[]) => parseRoutes(JSON.stringify(json));

describe('overlappingRoute', () => {
  test('a VPC route inside or around the range is a clash; default and unrelated routes are not', () => {
    expect(overlappingRoute(range, routes([{ dst: 'default', dev: 'eth0' }, { dst: '192.0.2.0/24', dev: 'eth0' }]))).toBeUndefined();
    expect(overlappingRoute(range, routes([{ dst: '10.40.1.0/24', dev: 'eth0' }]))?.dst).toBe('10.40.1.0/24');
    expect(overlappingRoute(range, routes([{ dst: '10.0.0.0/8', dev: 'ens5' }]))?.dst).toBe('10.0.0.0/8');
    expect(overlappingRoute(range, routes([{ dst: '10.47.255.255', dev: 'tun0' }]))?.dst).toBe('10.47.255.255');
    expect(overlappingRoute(range, routes([{ dst: '10.48.0.0/12', dev: 'eth0' }, { dst: '10.16.0.0/12', dev: 'eth0' }]))).toBeUndefined();
  });

  test("weft's own routes from an earlier run do not count", () => {
    expect(overlappingRoute(range, routes([
      { dst: '10.32.0.0/12', type: 'unreachable' },
      { dst: '10.32.0.5', dev: 'weft' },
      { dst: '10.33.0.9', dev: 'wg0123abcd' },
      { dst: '10.34.0.1', dev: 'vx0123abcd' },
    ]))).toBeUndefined();
  });
});
