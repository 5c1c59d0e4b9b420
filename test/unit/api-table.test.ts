// The API's method table: every method's access level as declared, callers below it refused in
// one sentence, parameters checked against the schema (unknown fields, missing ones, sizes)
// before any handler runs, and random parameters never reaching a handler unchecked.

import { describe, expect, test } from 'vitest';
import * as meshApi from '../../mesh/api/contract.ts';
import * as dnsApi from '../../dns/api-contract.ts';
import * as managerApi from '../../scheduler/manager/api-contract.ts';
import * as serviceApi from '../../scheduler/service/api-contract.ts';
import * as provisionerApi from '../../provisioner/api-contract.ts';
import * as localNodeApi from '../../provisioner/providers/local-contract.ts';
import * as providerApi from '../../provisioner/provider-api-contract.ts';
import * as installApi from '../../provisioner/byon/api-contract.ts';
import { serviceSpec } from '../sim/reconciler-world.ts';
import { v, type Access, type MethodSpec, type ParamsSchema } from '../../mesh/api/method.ts';
import { UserError, type ApiContext } from '../../mesh/api/request.ts';
import { MethodTable } from '../../mesh/api/table.ts';
import { mulberry32 } from '../../mesh/seeded-random.ts';

type AnySpec = MethodSpec<ParamsSchema, unknown, unknown>;

function specsOf(mod: Record<string, unknown>): AnySpec[] {
  return Object.values(mod).filter((x): x is AnySpec => typeof x === 'object' && x !== null && 'access' in x && 'params' in x);
}
const SPECS = [...specsOf(meshApi), ...specsOf(dnsApi), ...specsOf(managerApi), ...specsOf(serviceApi), ...specsOf(provisionerApi), ...specsOf(localNodeApi), ...specsOf(providerApi), ...specsOf(installApi)];

/** A table of every real spec whose handlers record what reached them. */
function table(): { t: MethodTable; reached: Array<{ name: string; params: unknown }> } {
  const t = new MethodTable();
  const reached: Array<{ name: string; params: unknown }> = [];
  for (const s of SPECS) t.register(s, (params) => { reached.push({ name: s.name, params }); return 'ok'; });
  return { t, reached };
}

const CALLERS: Record<string, Access | undefined> = { 'api:op': 'operator', 'api:adm': 'admin', member: 'member', 'api:gone': undefined };
const ctx = (caller: string): ApiContext => ({ caller, emit: () => undefined, closed: new Promise(() => undefined) });

/** Valid parameters for each method that takes any. */
const VALID: Record<string, Record<string, unknown>> = {
  connect: { address: '10.0.0.1:6783' }, forget: { target: 'h2' }, 'token.revoke': { id: '0123456789abcdef' },
  'kv.put': { key: 'k', value: 'v' }, 'kv.get': { key: 'k' }, attach: { container: 'web' }, detach: { container: 'web' },
  rmpeer: { peer: 'h2' }, 'dns.lookup': { name: 'web' }, 'dns.add': { name: 'db', ip: '10.0.0.3' }, 'dns.remove': { name: 'db' },
  'config.set': { name: 'colour', value: 'blue' }, 'config.get': { name: 'colour' }, 'config.rm': { name: 'colour' },
  'manager.promote': { peer: 'h2' }, 'manager.demote': { peer: 'h2' },
  'state.restore': { format: managerApi.BACKUP_FORMAT, index: 1, data: '{}' },
  'stack.deploy': { stack: 'shop', file: 'shop.yml', services: [serviceSpec({ name: 'web', stack: 'shop' })] },
  'stack.inspect': { name: 'shop' }, 'stack.redeploy': { name: 'shop' }, 'stack.rm': { name: 'shop' },
  'service.create': { spec: serviceSpec({ name: 'web', stack: '' }) },
  'service.inspect': { name: 'shop/web' }, 'service.redeploy': { name: 'shop/web' }, 'service.rollback': { name: 'shop/web' },
  'service.rm': { name: 'web.shop' }, 'service.scale': { name: 'shop/web', count: 3 },
  'service.logs': { name: 'shop/web', follow: true, tail: 10 }, 'service.logs-here': { service: 'shop/web' },
  'service.update': { name: 'shop/web', spec: serviceSpec({ name: 'web', stack: 'shop', image: 'nginx:2' }), expect: 3 },
  'service.stop': { name: 'shop/web' }, 'service.start': { name: 'shop/web' },
  'nodecluster.create': { name: 'web', provider: 'local', nodes: 3 }, 'nodecluster.inspect': { name: 'web' },
  'nodecluster.scale': { name: 'web', nodes: 5 }, 'nodecluster.rm': { name: 'web' }, 'node.inspect': { name: 'web-1' },
  'node.drain': { name: 'web-1' }, 'node.rm': { name: 'web-1' }, 'node.install-revoke': { id: 'abcdef012345' }, 'nodecluster.upgrade': { name: 'web', nodeType: 't3.small' }, 'node.undrain': { name: 'web-1' },
  'localnode.create': { node: 'web-1', cluster: 'web', clientToken: '0123456789abcdef-1-1', zone: 'local', tags: ['cluster=web'], options: {} },
  'provider.add': { name: 'cloud', type: 'aws', region: 'us-east-1', credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret' } },
  'provider.rotate': { name: 'cloud', credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret' } }, 'provider.rm': { name: 'cloud' },
  'localnode.ls': { cluster: 'web' }, 'localnode.destroy': { node: 'web-1', clientToken: '0123456789abcdef-1-1' },
};

describe('the API method table', () => {
  test('what an operator token may call is exactly the reading methods, kv, dns, config and the deploys of services and stacks; join tokens need the mesh secret', () => {
    const byLevel = (a: Access) => SPECS.filter((s) => s.access === a).map((s) => s.name).sort();
    expect(byLevel('operator')).toEqual([
      'config.get', 'config.ls', 'config.rm', 'config.set', 'dns.add', 'dns.lookup', 'dns.ls', 'dns.remove', 'dns.status', 'events', 'ipam.status',
      'kv.get', 'kv.list', 'kv.put', 'manager.ls', 'node.inspect', 'node.install-tokens', 'node.ls',
      'nodecluster.inspect', 'nodecluster.ls', 'peers', 'provider.ls', 'ps',
      'service.create', 'service.inspect', 'service.logs', 'service.ls', 'service.redeploy', 'service.rm', 'service.rollback', 'service.scale',
      'service.start', 'service.stop', 'service.update',
      'stack.deploy', 'stack.inspect', 'stack.ls', 'stack.redeploy', 'stack.rm', 'state.watch', 'status', 'token.list',
    ]);
    // Peers gather a service's logs from each other, and the leader has a host run its local
    // nodes; a token cannot ask a host for either directly.
    // An install command hands out a join token (the mesh secret): members only, like token.join.
    expect(byLevel('member')).toEqual(['localnode.create', 'localnode.destroy', 'localnode.ls', 'node.install-script', 'service.logs-here', 'token.join']);
    // Replacing the cluster or dropping a peer's control-plane state: only on the host itself.
    expect(byLevel('local')).toEqual(['manager.force-new-cluster', 'manager.reset']);
    expect(new Set(SPECS.map((s) => s.name)).size).toBe(SPECS.length);
  });

  test('each caller reaches exactly the methods at or below its level, others get one sentence', async () => {
    const { t, reached } = table();
    for (const [caller, level] of [['local', 'local'] as const, ...Object.entries(CALLERS)]) {
      const handler = t.handler((c) => CALLERS[c]);
      for (const s of SPECS) {
        reached.length = 0;
        const call = handler({ id: 1, method: s.name, params: VALID[s.name] ?? {} }, ctx(caller));
        const order: Access[] = ['operator', 'admin', 'member', 'local'];
        const allowed = level !== undefined && order.indexOf(level) >= order.indexOf(s.access);
        if (allowed) {
          await expect(call, `${caller} -> ${s.name}`).resolves.toBe('ok');
          expect(reached).toEqual([{ name: s.name, params: VALID[s.name] ?? {} }]);
        } else {
          const err = await call.then(() => undefined, (e: unknown) => e);
          expect(err, `${caller} -> ${s.name}`).toBeInstanceOf(UserError);
          expect((err as Error).message).toMatch(level === undefined ? /revoked/ : s.access === 'local' ? /allowed only on the peer's own host/ : /not allowed/);
          expect(reached).toEqual([]);
        }
      }
    }
  });

  test('parameters: unknown, missing, too long and mistyped fields are refused by name before the handler', async () => {
    const { t, reached } = table();
    const call = (method: string, params: Record<string, unknown>) =>
      t.handler(() => 'member')({ id: 1, method, params }, ctx('member')).then(() => 'ok', (e: Error) => e.message);
    expect(await call('kv.put', { key: 'k', value: 'v', owner: 'someone-else' })).toBe('kv.put: unknown parameter "owner"');
    expect(await call('kv.put', { value: 'v' })).toBe('kv.put: missing parameter "key"');
    expect(await call('kv.put', { key: '', value: 'v' })).toBe('kv.put: parameter "key" must not be empty');
    expect(await call('kv.put', { key: 'k', value: 7 })).toMatch(/^kv\.put: parameter "value" must be a/);
    expect(await call('kv.put', { key: 'k', value: 'x'.repeat(256 * 1024 + 1) })).toBe('kv.put: parameter "value" is too long (262145 characters, at most 262144)');
    expect(await call('token.create', { scope: 'root' })).toBe('token.create: parameter "scope" must be one of operator, admin, not "root"');
    expect(await call('events', { follow: 'yes' })).toMatch(/^events: parameter "follow" must be a boolean/);
    expect(await call('no.such', {})).toMatch(/unknown API method "no.such"/);
    expect(reached).toEqual([]);
    expect(await call('kv.put', { key: 'k', value: null })).toBe('ok');
  });

  test('fuzz: random parameters reach a handler only when they match its schema, and fail as one UserError otherwise', async () => {
    const { t, reached } = table();
    const handler = t.handler(() => 'member');
    const rand = mulberry32(20261203);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const keys = ['key', 'value', 'name', 'ip', 'follow', 'local', 'scope', 'address', 'peer', 'container', 'target', 'id', 'prefix', 'type',
      'expect', 'request', 'consistent', 'to', 'format', 'index', 'data', 'kind', 'from', '__proto__', 'constructor'];
    const values = (): unknown => pick([
      '', 'x', 'a'.repeat(300), 'a'.repeat(70_000), 0, -1, 1e300, NaN, true, false, null, undefined, [], ['x'], {}, { nested: { deeper: 1 } }, 'operator', 'admin',
    ]);
    let accepted = 0;
    // What a member may call at all (local-only methods refuse it before looking at parameters).
    const reachable = SPECS.filter((s) => s.access !== 'local');
    for (let i = 0; i < 3000; i++) {
      const s = pick(reachable);
      const params: Record<string, unknown> = {};
      const n = Math.floor(rand() * 4);
      for (let k = 0; k < n; k++) params[pick(keys)] = values();
      if (rand() < 0.3) Object.assign(params, VALID[s.name] ?? {});
      reached.length = 0;
      try {
        await handler({ id: i, method: s.name, params }, ctx('member'));
        accepted++;
        expect(reached).toHaveLength(1);
        expect(v.is(s.params, reached[0]?.params), `${s.name} got ${JSON.stringify(params)}`).toBe(true);
      } catch (err) {
        expect(err, `${s.name} ${JSON.stringify(params)}`).toBeInstanceOf(UserError);
        expect((err as Error).message.startsWith(`${s.name}: `)).toBe(true);
        expect(reached).toEqual([]);
      }
    }
    // Some random calls were valid (the test exercised the accepting path too).
    expect(accepted).toBeGreaterThan(100);
  });
});
