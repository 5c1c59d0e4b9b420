// `weft nodecluster ...` and `weft node ...`: the provisioner's commands. Creating, scaling and
// removing a cluster return once desired state has the change and then follow the nodes until
// the cluster settles (unless --detach), a line per node as its state changes.

import type { Command } from 'commander';
import type { ApiClient } from '../mesh/api/client.ts';
import * as api from '../provisioner/api-contract.ts';
import { CliError } from './error.ts';
import { ago, table } from './format.ts';
import { run } from './run.ts';
import { registerNodeInstallCommand } from './node-install.ts';
import { detachOption, seconds, timeoutOption, type WaitOptions, withClient } from './waiting.ts';

/** A person watches nodes boot: a poll a second is live enough and costs one read each. */
const POLL_MS = 1000;

interface CreateFlags extends WaitOptions {
  provider: string;
  scaleDownAfter?: string;
  nodes: string;
  region?: string;
  nodeType?: string;
  min?: string;
  max?: string;
  tags?: string;
  option?: string[];
}

export function registerNodeClusterCommands(program: Command): void {
  const nc = program.command('nodecluster').description('node clusters: nodes of one kind kept at a count by the leader (local namespaces, AWS EC2, EC2-compatible clouds)');
  nc.command('create <name>')
    .description('create a node cluster; returns once its nodes have joined the mesh')
    .requiredOption('--provider <name>', '`local` (namespaces on the peer asked) or a provider from weft provider add')
    .requiredOption('--nodes <n>', 'how many nodes it keeps (target_num_nodes)')
    .option('--region <region>', 'where its nodes are (local: local)')
    .option('--node-type <type>', 'their size (an EC2 instance type; local: local)')
    .option('--min <n>', 'the fewest nodes the scheduler may shrink it to when nodes stay empty (default: --nodes)')
    .option('--max <n>', 'the most nodes the scheduler may grow it to when containers cannot be placed (default: --nodes)')
    .option('--scale-down-after <seconds>', 'how long a node may run nothing before the cluster shrinks, above --min (default 600)')
    .option('--tags <a,b>', 'deploy tags its nodes carry, besides provider=, region=, zone= and cluster=')
    .option('--option <key=value...>', 'provider options (local: zones=a,b dns-upstream=IP[:PORT] load-images=TAR,... role=worker|auto|manager)')
    .addOption(detachOption('return once desired state has the cluster')).addOption(timeoutOption())
    .action((name: string, o: CreateFlags, cmd: Command) => withClient(cmd, async (c, g) => {
      const row = await c.call(api.nodeClusterCreate, {
        name, provider: o.provider, nodes: count(o.nodes, '--nodes'),
        ...(o.region ? { region: o.region } : {}), ...(o.nodeType ? { nodeType: o.nodeType } : {}),
        ...(o.min !== undefined ? { min: count(o.min, '--min') } : {}), ...(o.max !== undefined ? { max: count(o.max, '--max') } : {}),
        ...(o.scaleDownAfter !== undefined ? { scaleDownAfterS: count(o.scaleDownAfter, '--scale-down-after') } : {}),
        ...(o.tags ? { tags: o.tags.split(',').map((t) => t.trim()).filter(Boolean) } : {}),
        ...(o.option ? { options: keyValues(o.option) } : {}),
      });
      await settle(c, row, o, g.json === true, `created node cluster ${name}`);
    }));
  nc.command('ls')
    .description('node clusters and their state')
    .action((_o, cmd: Command) => run(cmd, api.nodeClusterList, {}, (rows) => rows.length === 0 ? 'no node clusters' : clustersTable(rows)));
  nc.command('inspect <name>')
    .description('a node cluster, its nodes and its timeline')
    .action((name: string, _o, cmd: Command) => run(cmd, api.nodeClusterInspect, { name }, (r) => [
      clustersTable([r.cluster]), '', nodesTable(r.nodes), '', 'TIMELINE', ...r.timeline.map((e) => `${ago(new Date(e.at).toISOString())}  ${e.text}`),
    ].join('\n')));
  nc.command('scale <name> <nodes>')
    .description('change how many nodes it keeps; returns once it has them')
    .addOption(detachOption('return once desired state has the change')).addOption(timeoutOption())
    .action((name: string, nodes: string, o: WaitOptions, cmd: Command) => withClient(cmd, async (c, g) => {
      const row = await c.call(api.nodeClusterScale, { name, nodes: count(nodes, 'the node count') });
      await settle(c, row, o, g.json === true, `node cluster ${name} scales to ${row.target}`);
    }));
  nc.command('upgrade <name>')
    .description('replace every node, one at a time: a new one joins, then an old one is drained and terminated; returns once all are new')
    .option('--node-type <type>', 'the new nodes\' type (default: the same)')
    .addOption(detachOption('return once desired state has the upgrade')).addOption(timeoutOption())
    .action((name: string, o: WaitOptions & { nodeType?: string }, cmd: Command) => withClient(cmd, async (c, g) => {
      const row = await c.call(api.nodeClusterUpgrade, { name, ...(o.nodeType ? { nodeType: o.nodeType } : {}) });
      await settle(c, row, o, g.json === true, `node cluster ${name} upgrades ${row.outdated} node(s)`);
    }));
  nc.command('rm <name>')
    .description('terminate every node of a cluster (they leave the mesh) and remove it; returns once they are gone')
    .addOption(detachOption('return once desired state has the removal')).addOption(timeoutOption())
    .action((name: string, o: WaitOptions, cmd: Command) => withClient(cmd, async (c, g) => {
      await c.call(api.nodeClusterRemove, { name });
      if (!g.json) process.stderr.write(`removing node cluster ${name}\n`);
      if (!o.detach) await follow(c, name, seconds(o.timeout), g.json === true, () => false);
      if (g.json) process.stdout.write(`${JSON.stringify({ removed: name })}\n`);
      else process.stdout.write(`removed node cluster ${name}\n`);
    }));

  const node = program.command('node').description("the mesh's nodes: those of node clusters and those brought by their owners");
  registerNodeInstallCommand(node);
  node.command('ls')
    .description('every node: its cluster, provider, state and zone')
    .option('--cluster <name>', 'only this cluster')
    .action((o: { cluster?: string }, cmd: Command) => run(cmd, api.nodeList, o.cluster ? { cluster: o.cluster } : {}, (rows) => rows.length === 0 ? 'no nodes' : nodesTable(rows)));
  node.command('drain <name>')
    .description('move every container off a node (they start elsewhere under the same names and addresses) and keep new ones off; returns once it runs none')
    .addOption(detachOption('return once desired state has the drain')).addOption(timeoutOption())
    .action((name: string, o: WaitOptions, cmd: Command) => withClient(cmd, async (c, g) => {
      let row = await c.call(api.nodeDrain, { name });
      const started = Date.now();
      for (let i = 0; !o.detach && (row.containers ?? 0) > 0; i++) {
        if (Date.now() - started > seconds(o.timeout) * 1000) throw new CliError(`${name} still has ${row.containers} container(s) after ${o.timeout} s; the drain goes on`);
        if (!g.json) process.stderr.write(`${((Date.now() - started) / 1000).toFixed(0)}s ${name}: ${row.containers} container(s) to move\n`);
        await new Promise((r) => setTimeout(r, POLL_MS));
        row = await c.call(api.nodeInspect, { name });
      }
      process.stdout.write(g.json ? `${JSON.stringify(row, null, 2)}\n` : `${name} is drained: it runs nothing and takes nothing (weft node undrain ${name} ends that)\n`);
    }));
  node.command('undrain <name>')
    .description('let a drained node take containers again')
    .action((name: string, _o, cmd: Command) => run(cmd, api.nodeUndrain, { name }, () => `${name} takes containers again`));
  node.command('rm <name>')
    .description("remove a node: a cluster's is drained, terminated and its cluster keeps one fewer; one brought by its owner must be down, and is then forgotten (its address space taken over)")
    .action((name: string, _o, cmd: Command) => run(cmd, api.nodeRemove, { name }, (r) => r.how === 'terminating' ? `${r.removed} is being drained and terminated (weft nodecluster inspect shows it)` : `removed ${r.removed} from the mesh`));
  node.command('inspect <name>')
    .description('a node and its timeline')
    .action((name: string, _o, cmd: Command) => run(cmd, api.nodeInspect, { name }, (r) => [
      nodesTable([r]), '', 'TIMELINE', ...r.timeline.map((e) => `${ago(new Date(e.at).toISOString())}  ${e.text}`),
    ].join('\n')));
}

async function settle(c: ApiClient, row: api.ClusterRow, o: WaitOptions, json: boolean, said: string): Promise<void> {
  if (!json) process.stderr.write(`${said}\n`);
  const final = o.detach ? row : await follow(c, row.name, seconds(o.timeout), json, (r) => r.outdated === 0 && (r.state === 'Deployed' || r.state === 'Empty cluster'));
  if (json) process.stdout.write(`${JSON.stringify(final, null, 2)}\n`);
  else process.stdout.write(`${clustersTable([final ?? row])}\n`);
}

/** Polls a cluster until `done` says so, or (for a removal) until it is gone; prints each node
 *  state change. A cluster that cannot progress says why (its error) without ending the wait:
 *  the provisioner retries, and the user may fix the cause meanwhile. */
async function follow(c: ApiClient, name: string, timeoutS: number, quiet: boolean, done: (r: api.ClusterRow) => boolean): Promise<api.ClusterRow | undefined> {
  const started = Date.now();
  const said = new Map<string, string>();
  let lastError = '';
  for (;;) {
    let r: Awaited<ReturnType<typeof inspect>>;
    try {
      r = await inspect(c, name);
    } catch (err) {
      if (/no node cluster/.test((err as Error).message)) return undefined;
      throw err;
    }
    const elapsed = `${((Date.now() - started) / 1000).toFixed(0)}s`;
    for (const n of r.nodes) {
      const line = `${n.state}${n.error ? ` (${n.error})` : ''}`;
      if (said.get(n.name) !== line && !quiet) process.stderr.write(`${elapsed} ${n.name}: ${line}\n`);
      said.set(n.name, line);
    }
    if (r.cluster.error && r.cluster.error !== lastError && !quiet) process.stderr.write(`${elapsed} ${name}: ${r.cluster.error}\n`);
    lastError = r.cluster.error ?? '';
    if (done(r.cluster)) return r.cluster;
    if (Date.now() - started > timeoutS * 1000) throw new CliError(`node cluster ${name} is ${r.cluster.state} (${r.cluster.deployed}/${r.cluster.target} deployed) after ${timeoutS} s; it goes on (see weft nodecluster inspect ${name})`);
    await new Promise((res) => setTimeout(res, POLL_MS));
  }
}

function inspect(c: ApiClient, name: string) {
  return c.call(api.nodeClusterInspect, { name });
}

function clustersTable(rows: readonly api.ClusterRow[]): string {
  return table(['NAME', 'PROVIDER', 'REGION', 'TYPE', 'NODES', 'STATE', 'TAGS'], rows.map((r) => [
    r.name, r.provider, r.region, r.nodeType, `${r.deployed}/${r.target}`, r.error ? `${r.state}: ${r.error}` : r.state, r.tags.join(',') || '-',
  ]));
}

function nodesTable(rows: readonly api.NodeRow[]): string {
  return table(['NAME', 'CLUSTER', 'PROVIDER', 'STATE', 'ZONE', 'ADDRESS', 'CONTAINERS'], rows.map((r) => [
    r.name, r.cluster ?? '-', r.provider ?? '-', `${r.error ? `${r.state}: ${r.error}` : r.state}${r.draining ? ' (drained)' : ''}`, r.zone ?? '-', r.address ?? '-', r.containers ?? '-',
  ]));
}

function count(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 0) throw new CliError(`${what} "${s}" is not a count of nodes`);
  return n;
}

function keyValues(xs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const x of xs) {
    const i = x.indexOf('=');
    if (i <= 0) throw new CliError(`--option "${x}" is not key=value`);
    out[x.slice(0, i)] = x.slice(i + 1);
  }
  return out;
}
