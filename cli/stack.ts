// `weft stack ...` and `weft service ...`: the scheduler's commands. A stack file is read and
// checked here, with the caller's environment for `${VAR}` (so nothing of it reaches the peer
// but the values the file uses); the peer stores services and the leader places them
// (scheduler/service/api.ts). Long operations wait until every container runs, showing
// progress, unless --detach. All take the global --json.

import { type Command, Option } from 'commander';
import { CliError } from './error.ts';
import { table } from './format.ts';
import { run } from './run.ts';
import { detachOption, seconds, timeoutOption, type WaitOptions, withClient } from './waiting.ts';
import * as api from '../scheduler/service/api-contract.ts';
import { parseDuration } from '../scheduler/stack/duration.ts';
import { readStackFile } from '../scheduler/stack/file.ts';
import type { ApiClient } from '../mesh/api/client.ts';
import { statusText, waitForServices } from './wait-services.ts';
import { type CreateFlags, createOptions, serviceFromFlags, updatedService } from './service-create.ts';
import type { ServiceSpec } from '../scheduler/service/spec.ts';


export function registerStackCommands(program: Command): void {
  const stack = program.command('stack').description('stacks: services deployed together from one file (Tutum stackfile or Docker Compose)');
  stack.command('deploy [name]')
    .description('deploy a stack file: creates what is new, redeploys (rolling) what changed, removes what the file no longer has; returns once every container runs')
    .requiredOption('-f, --file <file>', 'the stack file')
    .addOption(detachOption('return once desired state has the change, without waiting')).addOption(timeoutOption())
    .action(async (name: string | undefined, o: WaitOptions & { file: string }, cmd: Command) => {
      const read = await readStackFile(o.file, { ...(name ? { stack: name } : {}), variables: environment() });
      if (!read.ok) throw new CliError(read.errors.join('\n'));
      for (const w of read.warnings) process.stderr.write(`warning: ${w}\n`);
      const stackName = read.services[0]?.stack ?? name ?? '';
      await withClient(cmd, async (c, g) => {
        const t0 = Date.now();
        const r = await c.call(api.stackDeploy, { stack: stackName, file: o.file, services: read.services });
        if (!g.json) process.stdout.write(deploySummary(r) + '\n');
        const waited = o.detach ? undefined : await waitForServices(c, { stack: stackName }, seconds(o.timeout), g.json === true);
        if (g.json) process.stdout.write(JSON.stringify({ ...r, ...(waited ? { services: waited } : {}) }, null, 2) + '\n');
        else if (waited) process.stdout.write(`every container runs (${((Date.now() - t0) / 1000).toFixed(1)} s)\n${servicesTable(waited)}\n`);
      });
    });
  stack.command('ls')
    .description('deployed stacks')
    .action((_o, cmd: Command) => run(cmd, api.stackList, {}, (rows) => rows.length === 0 ? 'no stacks' : table(
      ['NAME', 'SERVICES', 'RUNNING', 'FILE'], rows.map((r) => [r.name, r.services, `${r.running}/${r.target}`, r.file]),
    )));
  stack.command('inspect <name>')
    .description("a stack's services and containers")
    .action((name: string, _o, cmd: Command) => run(cmd, api.stackInspect, { name }, (r) => `stack ${r.name} (from ${r.file})\n\n${servicesTable(r.services)}\n\n${tasksTable(r.tasks)}`));
  stack.command('redeploy <name>')
    .description("recreate every container of a stack, one at a time per service (a new image under the same tag, say)")
    .addOption(detachOption()).addOption(timeoutOption())
    .action((name: string, o: WaitOptions, cmd: Command) => withClient(cmd, async (c, g) => {
      const r = await c.call(api.stackRedeploy, { name });
      const waited = o.detach ? undefined : await waitForServices(c, { stack: name }, seconds(o.timeout), g.json === true);
      process.stdout.write((g.json ? JSON.stringify({ ...r, ...(waited ? { services: waited } : {}) }, null, 2) : `redeployed ${r.redeployed.join(', ')}`) + '\n');
    }));
  stack.command('rm <name>')
    .description('remove a stack: its services and their containers')
    .action((name: string, _o, cmd: Command) => run(cmd, api.stackRemove, { name }, (r) => `removed stack ${name} (${r.removed.length} services)`));

  const service = program.command('service').description('services: containers of one image kept running at a count, placed by the leader');
  createOptions(service.command('create <image> [command...]'))
    .description('create a service in no stack from an image (and a command: after --, when it has options of its own); returns once its containers run')
    .addOption(detachOption()).addOption(timeoutOption())
    .action((image: string, command: string[], o: CreateFlags & WaitOptions, cmd: Command) => {
      const spec = serviceFromFlags(image, command, o);
      return waiting((c) => c.call(api.serviceCreate, { spec }))(spec.name, o, cmd);
    });
  service.command('ls')
    .description('services and how many of their containers run')
    .option('--stack <name>', 'only this stack')
    .action((o: { stack?: string }, cmd: Command) => run(cmd, api.serviceList, o.stack ? { stack: o.stack } : {}, (rows) => rows.length === 0 ? 'no services' : servicesTable(rows)));
  service.command('inspect <name>')
    .description('a service (name, stack/name or name.stack): its spec and containers')
    .action((name: string, _o, cmd: Command) => run(cmd, api.serviceInspect, { name }, (r) => `${servicesTable([r.service])}\n\n${tasksTable(r.tasks)}\n\n${JSON.stringify(r.spec, null, 2)}`));
  const waiting = (f: (c: ApiClient, name: string, o: WaitOptions) => Promise<api.ServiceRow>) => (name: string, o: WaitOptions, cmd: Command) => withClient(cmd, async (c, g) => {
    const row = await f(c, name, o);
    const waited = o.detach ? undefined : await waitForServices(c, { service: row.name }, seconds(o.timeout), g.json === true);
    process.stdout.write((g.json ? JSON.stringify(waited?.[0] ?? row, null, 2) : servicesTable(waited ?? [row])) + '\n');
  });
  service.command('scale <name> <count>')
    .description('set how many containers a service runs')
    .addOption(detachOption()).addOption(timeoutOption())
    .action((name: string, count: string, o: WaitOptions, cmd: Command) => {
      if (!/^\d+$/.test(count)) throw new CliError(`count "${count}" is not a whole number`);
      return waiting((c, n) => c.call(api.serviceScale, { name: n, count: Number(count) }))(name, o, cmd);
    });
  service.command('redeploy <name>')
    .description('recreate its containers, one at a time (update_config), keeping names and addresses')
    .option('--parallelism <n>', 'containers replaced at once (kept as the service\'s update policy)')
    .option('--delay <duration>', 'wait between steps, e.g. 10s')
    .addOption(new Option('--on-failure <what>', 'when a new container fails: pause, continue or rollback').choices(['pause', 'continue', 'rollback']))
    .addOption(detachOption()).addOption(timeoutOption())
    .action((name: string, o: WaitOptions & { parallelism?: string; delay?: string; onFailure?: 'pause' | 'continue' | 'rollback' }, cmd: Command) => {
      if (o.parallelism !== undefined && !/^[1-9]\d*$/.test(o.parallelism)) throw new CliError(`--parallelism "${o.parallelism}" is not a whole number from 1`);
      const delayMs = o.delay === undefined ? undefined : durationMs(o.delay);
      return waiting((c, n) => c.call(api.serviceRedeploy, {
        name: n,
        ...(o.parallelism !== undefined ? { parallelism: Number(o.parallelism) } : {}),
        ...(delayMs !== undefined ? { delayMs } : {}),
        ...(o.onFailure !== undefined ? { onFailure: o.onFailure } : {}),
      }))(name, o, cmd);
    });
  createOptions(service.command('update <name> [command...]'))
    .description('change a service (flags as for create; --image for a new image); a rolling redeploy follows when its containers change')
    .option('--image <image>', 'a new image')
    .addOption(detachOption()).addOption(timeoutOption())
    .action((name: string, command: string[], o: CreateFlags & WaitOptions & { image?: string }, cmd: Command) => waiting(async (c, n) => {
      if (o.name !== undefined) throw new CliError('--name cannot change: a service keeps its name (deploy another and remove this one)');
      const current = await c.call(api.serviceInspect, { name: n });
      const spec = updatedService(current.spec as ServiceSpec, { ...o, command });
      return c.call(api.serviceUpdate, { name: n, spec, expect: current.service.version });
    })(name, o, cmd));
  service.command('stop <name>')
    .description('stop every container of a service; they stay, stopped, keeping names and addresses')
    .addOption(detachOption()).addOption(timeoutOption())
    .action(waiting((c, name) => c.call(api.serviceStop, { name })));
  service.command('start <name>')
    .description('start a stopped service\'s containers again')
    .addOption(detachOption()).addOption(timeoutOption())
    .action(waiting((c, name) => c.call(api.serviceStart, { name })));
  service.command('rollback <name>')
    .description('go back to the spec before the last update (rolling)')
    .addOption(detachOption()).addOption(timeoutOption())
    .action(waiting((c, name) => c.call(api.serviceRollback, { name })));
  service.command('logs <name>')
    .description("every container's output, from every host, each line prefixed with the container's name")
    .option('-f, --follow', 'keep following until Ctrl-C')
    .option('--tail <lines>', 'only the last lines of each container')
    .action((name: string, o: { follow?: boolean; tail?: string }, cmd: Command) => withClient(cmd, async (c, g) => {
      if (o.tail !== undefined && !/^\d+$/.test(o.tail)) throw new CliError(`--tail "${o.tail}" is not a number of lines`);
      const width = { n: 0 };
      await c.call(api.serviceLogs, { name, ...(o.follow ? { follow: true } : {}), ...(o.tail !== undefined ? { tail: Number(o.tail) } : {}) }, (l) => {
        if (g.json) {
          process.stdout.write(JSON.stringify(l) + '\n');
          return;
        }
        width.n = Math.max(width.n, l.container.length);
        (l.stream === 'stderr' ? process.stderr : process.stdout).write(`${l.container.padEnd(width.n)} | ${l.line}\n`);
      });
    }));
  service.command('rm <name>')
    .description('remove a service and its containers')
    .action((name: string, _o, cmd: Command) => run(cmd, api.serviceRemove, { name }, (r) => `removed ${r.removed}`));
}

function environment(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) out[k] = v;
  return out;
}

/** A duration as stack files write them (`10s`, `1m30s`, `500ms`) → ms. */
function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new CliError(`--delay "${text}" is not a duration like 10s, 1m30s or 500ms`);
  return ms;
}

function deploySummary(r: api.DeployResult): string {
  const parts = [['created', r.created], ['updated', r.updated], ['removed', r.removed], ['unchanged', r.unchanged]] as const;
  return `stack ${r.stack}: ` + parts.filter(([, xs]) => xs.length > 0).map(([k, xs]) => `${k} ${xs.join(', ')}`).join('; ');
}

export function servicesTable(rows: readonly api.ServiceRow[]): string {
  return table(['SERVICE', 'STACK', 'IMAGE', 'RUNNING', 'STRATEGY', 'STATUS'], rows.map((r) => [
    r.service, r.stack || '-', r.image, `${r.running}/${r.target}`, r.strategy, statusText(r),
  ]));
}

function tasksTable(rows: readonly api.TaskRow[]): string {
  return rows.length === 0 ? 'no containers' : table(['NAME', 'HOST', 'ADDRESS', 'STATE', 'EPOCH', 'NOTE'], rows.map((t) => [
    t.name, t.host, t.address ?? '-', t.health !== 'none' ? `${t.state} (${t.health})` : t.state, t.epoch, [t.current ? '' : 'outdated', t.progress ?? '', t.error ?? ''].filter(Boolean).join(': '),
  ]));
}
