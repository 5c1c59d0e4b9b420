// The `local` provider as the leader uses it: nodes are network namespaces on the host peer
// where the cluster was created (its `host` option, a peer id). On that peer the calls go to
// its LocalHost directly; from any other leader, over the mesh to that peer's API.

import type { ApiClient } from '../../mesh/api/client.ts';
import { type CreateRequest, type Provider, ProviderError, type ProviderNode } from '../provider.ts';
import type { LocalHost } from './local-host.ts';
import { localNodeCreate, localNodeDestroy, localNodeList } from './local-contract.ts';

/** One zone unless the cluster names several (`zones=a,b,c`): a machine has no availability
 *  zones, but a test or a demo of the zone spread needs some. */
const DEFAULT_ZONE = 'local';

export class LocalProvider implements Provider {
  private readonly self: string;
  private readonly here: () => Promise<LocalHost>;
  private readonly there: (peer: string) => Promise<ApiClient>;

  constructor(o: { self: string; here: () => Promise<LocalHost>; there: (peer: string) => Promise<ApiClient> }) {
    this.self = o.self;
    this.here = o.here;
    this.there = o.there;
  }

  async zones(options: Readonly<Record<string, string>>): Promise<string[]> {
    const z = (options.zones ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    return z.length > 0 ? z : [DEFAULT_ZONE];
  }

  create(req: CreateRequest): Promise<ProviderNode> {
    const { nodeType: _t, ...rest } = req;
    return this.on(req.options, (h) => h.create(rest), (c) => c.call(localNodeCreate, { ...rest, tags: [...rest.tags], options: { ...rest.options } }));
  }

  list(cluster: string, options: Readonly<Record<string, string>>): Promise<ProviderNode[]> {
    return this.on(options, (h) => h.list(cluster), (c) => c.call(localNodeList, { cluster }));
  }

  async terminate(node: ProviderNode, options: Readonly<Record<string, string>>): Promise<void> {
    await this.on(options, (h) => h.destroy(node.node, node.clientToken), async (c) => void (await c.call(localNodeDestroy, { node: node.node, clientToken: node.clientToken })));
  }

  private async on<T>(options: Readonly<Record<string, string>>, local: (h: LocalHost) => Promise<T>, remote: (c: ApiClient) => Promise<T>): Promise<T> {
    const host = options.host;
    if (!host) throw new ProviderError('parameters', 'NoHost', 'a local node cluster needs its host peer (option host)');
    if (host === this.self) return local(await this.here());
    let c: ApiClient;
    try {
      c = await this.there(host);
    } catch (err) {
      throw new ProviderError('transient', 'HostUnreachable', `the host peer of this local cluster (${host}) cannot be reached: ${(err as Error).message}`);
    }
    try {
      return await remote(c);
    } catch (err) {
      throw new ProviderError('transient', 'LocalHostError', (err as Error).message);
    } finally {
      void c.close();
    }
  }
}
