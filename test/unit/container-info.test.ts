// What weft reads from `docker inspect`, and the resolver it gives a container.
import { describe, expect, test } from 'vitest';
import { containerInfo, resolvConf } from '../../mesh/network/docker/container-info.ts';

const id = 'f'.repeat(64);
const inspect = (over: Record<string, unknown> = {}, config: Record<string, unknown> = {}) => ({
  Id: id, Name: '/web-1', ResolvConfPath: '/var/lib/docker/containers/x/resolv.conf',
  State: { Running: true, Pid: 4242, Health: { Status: 'healthy' } },
  Config: { Hostname: 'ffffffffffff', Labels: { 'weft.attach': 'true', 'weft.stack': 'shop' }, ExposedPorts: { '80/tcp': {}, '53/udp': {}, 'junk': {} }, ...config },
  NetworkSettings: { Networks: { weft: { Aliases: ['www', 'ffffffffffff'] } } },
  ...over,
});

describe('containerInfo', () => {
  test('name, pid, health, ports, aliases; the default hostname (short id) is not a name', () => {
    const c = containerInfo(inspect());
    expect(c).toMatchObject({ id, name: 'web-1', running: true, pid: 4242, health: 'healthy', wantsAttach: true, aliases: ['www'] });
    expect(c.hostname).toBeUndefined();
    expect(c.ports).toEqual([{ port: 80, proto: 'tcp' }, { port: 53, proto: 'udp' }]);
    expect(c.identity).toBeUndefined();
  });

  test('identity: weft.name, else stack/service/index', () => {
    expect(containerInfo(inspect({}, { Labels: { 'weft.name': 'db' } })).identity).toBe('db');
    expect(containerInfo(inspect({}, { Labels: { 'weft.stack': 's', 'weft.service': 'web', 'weft.index': '2' } })).identity).toBe('s/web/2');
    expect(containerInfo(inspect({}, { Labels: { 'weft.attach': 'no', 'weft.aliases': 'a, b' }, Hostname: 'box' }))).toMatchObject({ wantsAttach: false, hostname: 'box', aliases: ['a', 'b', 'www'] });
  });

  test('garbage in: a record with nothing attachable, no throw', () => {
    expect(containerInfo(null)).toMatchObject({ id: '', running: false, pid: 0, health: 'none', wantsAttach: false });
  });

  test('resolv.conf: the peer as nameserver, the stack searched first', () => {
    expect(resolvConf('169.254.53.1', 'weft.local', 'shop')).toMatch(/search shop\.weft\.local weft\.local\nnameserver 169\.254\.53\.1\n/);
    expect(resolvConf('169.254.53.1', 'weft.local')).toMatch(/search weft\.local\n/);
  });
});
