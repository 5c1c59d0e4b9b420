// The host side of the `local` provider: this peer's local nodes (provisioner/local/), each
// labelled with the cluster, zone and client token it was made for. The runner knows namespaces
// and processes; this file knows what the provisioner asked, kept next to them in a small file
// per node, so a listing after a restart of this peer still tells the provisioner which attempt
// a node belongs to.

import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../mesh/log.ts';
import { type CreateRequest, ProviderError, type ProviderNode } from '../provider.ts';

/** What this file needs of the runner (provisioner/local/local-nodes.ts). */
export interface LocalNodeRunner {
  gateway(): string;
  create(req: { name: string; joinToken: string; peers: string[]; tags: string[]; dnsUpstream?: string[]; loadImages?: string[]; peerArgs?: string[] }): Promise<{ name: string; address: string; state: 'pending' | 'running' | 'stopped' }>;
  list(): Promise<{ name: string; address: string; state: 'pending' | 'running' | 'stopped' }[]>;
  destroy(name: string): Promise<void>;
}

interface Label {
  clientToken: string;
  cluster: string;
  zone: string;
}

/** Starting a node is dockerd's start and an image load: on two cores, two at a time keeps a
 *  cluster of five from starving the peers already running. */
const PARALLEL_CREATES = 2;

/** A node cluster's nodes come and go with its size: as Raft voters they would take the
 *  managers' majority with them when it shrinks, so they are workers unless the cluster says
 *  `role=auto` (the autopilot may choose them) or `role=manager`. */
export function nodeRole(options: Readonly<Record<string, string>>): 'worker' | 'auto' | 'manager' {
  const r = options.role;
  return r === 'auto' || r === 'manager' ? r : 'worker';
}

export class LocalHost {
  private readonly runner: LocalNodeRunner;
  private readonly dir: string;
  private readonly joinToken: () => string;
  private readonly meshAddress: (gateway: string) => string;
  private readonly log: Logger;
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(o: { runner: LocalNodeRunner; dir: string; joinToken: () => string; meshAddress: (gateway: string) => string; log: Logger }) {
    this.runner = o.runner;
    this.dir = o.dir;
    this.joinToken = o.joinToken;
    this.meshAddress = o.meshAddress;
    this.log = o.log;
  }

  async create(req: Omit<CreateRequest, 'nodeType'>): Promise<ProviderNode> {
    const label = this.label(req.node);
    const listed = (await this.runner.list()).find((n) => n.name === req.node);
    if (listed && label && label.clientToken !== req.clientToken) {
      throw new ProviderError('transient', 'NodeBusy', `local node ${req.node} still runs attempt ${label.clientToken}; it must be gone first`);
    }
    if (listed && label) return this.providerNode(listed, label);
    await this.slot();
    try {
      const l: Label = { clientToken: req.clientToken, cluster: req.cluster, zone: req.zone };
      fs.mkdirSync(this.dir, { recursive: true });
      fs.writeFileSync(this.labelFile(req.node), `${JSON.stringify(l)}\n`);
      const split = (s: string | undefined) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);
      const dnsUpstream = split(req.options['dns-upstream']);
      const loadImages = split(req.options['load-images']);
      this.log.info('creating local node', { node: req.node, cluster: req.cluster });
      const n = await this.runner.create({
        name: req.node, joinToken: this.joinToken(), peers: [this.meshAddress(this.runner.gateway())], tags: [...req.tags],
        ...(dnsUpstream ? { dnsUpstream } : {}), ...(loadImages ? { loadImages } : {}),
        peerArgs: ['--role', nodeRole(req.options)],
      });
      return this.providerNode(n, l);
    } catch (err) {
      throw err instanceof ProviderError ? err : new ProviderError('transient', 'LocalNodeFailed', `local node ${req.node}: ${(err as Error).message}`);
    } finally {
      this.release();
    }
  }

  async list(cluster: string): Promise<ProviderNode[]> {
    const out: ProviderNode[] = [];
    for (const n of await this.runner.list()) {
      const l = this.label(n.name);
      if (l?.cluster === cluster) out.push(this.providerNode(n, l));
    }
    return out;
  }

  /** Ends a node if it is still the attempt named; a later attempt of the slot is left alone. */
  async destroy(node: string, clientToken: string): Promise<void> {
    const l = this.label(node);
    if (l && l.clientToken !== clientToken) return;
    this.log.info('destroying local node', { node });
    await this.runner.destroy(node);
    fs.rmSync(this.labelFile(node), { force: true });
  }

  private providerNode(n: { name: string; address: string; state: 'pending' | 'running' | 'stopped' }, l: Label): ProviderNode {
    return { id: n.name, node: n.name, cluster: l.cluster, clientToken: l.clientToken, zone: l.zone, state: n.state, address: n.address };
  }

  private labelFile(node: string): string {
    return path.join(this.dir, `${node}.json`);
  }

  private label(node: string): Label | undefined {
    try {
      const l = JSON.parse(fs.readFileSync(this.labelFile(node), 'utf8')) as Label;
      return typeof l.clientToken === 'string' && typeof l.cluster === 'string' && typeof l.zone === 'string' ? l : undefined;
    } catch {
      return undefined;
    }
  }

  private async slot(): Promise<void> {
    if (this.active < PARALLEL_CREATES) {
      this.active++;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
  }

  private release(): void {
    this.active--;
    this.waiting.shift()?.();
  }
}
