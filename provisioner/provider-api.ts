// The handlers of `weft provider ...`: records sealed here, on the peer that took the command,
// and written through Raft; a provider a node cluster uses cannot be removed.

import { asUserError, UserError } from '../mesh/api/request.ts';
import type { MethodTable } from '../mesh/api/table.ts';
import type { RaftNode } from '../scheduler/manager/raft-node.ts';
import type { NodeClusterSpec } from './cluster/cluster-spec.ts';
import { newProviderRecord, type ProviderRecord, publicView, rotateProviderRecord } from './credentials/provider-record.ts';
import type { CredentialsKey } from './credentials/seal.ts';
import * as api from './provider-api-contract.ts';

export function registerProviderMethods(table: MethodTable, raft: RaftNode, key: CredentialsKey): void {
  // The credentials modules word their errors without secrets: they are said as they are.
  const user = asUserError;
  const get = async (name: string) => (await raft.query({ q: 'get', kind: 'provider', name }, true)).objects[0];
  const usedBy = async (name: string) => (await raft.query({ q: 'list', kind: 'nodecluster', prefix: '' }, true)).objects
    .map((o) => o.spec as NodeClusterSpec).filter((c) => c.provider === name).map((c) => c.name);
  const put = async (name: string, spec: ProviderRecord, expect: number) => {
    const o = await raft.write({ op: 'put', kind: 'provider', name, spec, expect, req: raft.requestId() });
    if (!o.ok) throw new UserError(`${o.error} (changed meanwhile: try again)`);
  };
  const row = async (name: string, r: ProviderRecord): Promise<api.ProviderRow> => ({ name, ...publicView(r), clusters: await usedBy(name) });

  table.register(api.providerAdd, ({ name, region, endpoint, credentials }) => user(async () => {
    if (name === 'local') throw new UserError('"local" is the built-in provider of this machine: choose another name');
    if (await get(name)) throw new UserError(`a provider "${name}" exists (weft provider rotate ${name} replaces its credentials)`);
    const record = newProviderRecord({ key, name, region, ...(endpoint ? { endpoint } : {}), credentials, now: Date.now() });
    await put(name, record, 0);
    return row(name, record);
  }));
  table.register(api.providerList, () => user(async () => {
    const all = (await raft.query({ q: 'list', kind: 'provider', prefix: '' }, true)).objects;
    return Promise.all(all.map((o) => row(o.name, o.spec as ProviderRecord)));
  }));
  table.register(api.providerRotate, ({ name, credentials }) => user(async () => {
    const o = await get(name);
    if (!o) throw new UserError(`no provider "${name}" (see weft provider ls)`);
    const record = rotateProviderRecord(o.spec as ProviderRecord, { key, name, credentials, now: Date.now() });
    await put(name, record, o.version);
    return row(name, record);
  }));
  table.register(api.providerRemove, ({ name }) => user(async () => {
    const o = await get(name);
    if (!o) throw new UserError(`no provider "${name}" (see weft provider ls)`);
    const clusters = await usedBy(name);
    if (clusters.length > 0) throw new UserError(`provider "${name}" runs node clusters ${clusters.join(', ')}: remove them first`);
    const w = await raft.write({ op: 'delete', kind: 'provider', name, expect: o.version, req: raft.requestId() });
    if (!w.ok) throw new UserError(`${w.error} (changed meanwhile: try again)`);
    return { removed: name };
  }));
}
