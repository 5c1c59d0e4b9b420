// `weft service create IMAGE [COMMAND...]`: a service in no stack, from flags. The flags become
// a one-service Tutum stackfile read by the same reader as files (scheduler/stack/), so a flag
// means what its stackfile key means and is checked the same way, with the same messages.

import type { Command } from 'commander';
import { CliError } from './error.ts';
import { serviceNameProblem } from '../scheduler/stack/names.ts';
import { readStack } from '../scheduler/stack/read.ts';
import type { ServiceSpec } from '../scheduler/service/spec.ts';

export interface CreateFlags {
  name?: string;
  replicas?: string;
  strategy?: string;
  tag: string[];
  restart?: string;
  autodestroy?: string;
  env: string[];
  publish: string[];
  expose: string[];
  link: string[];
  memory?: string;
  rescheduleAfter?: string;
  sequential?: boolean;
}

const collect = (v: string, all: string[]) => [...all, v];

export function createOptions(cmd: Command): Command {
  return cmd
    .option('--name <name>', "the service's name (default: the image's, e.g. nginx)")
    .option('--replicas <n>', 'how many containers (target_num_containers; default 1)')
    .option('--strategy <s>', 'EMPTIEST_NODE (default), HIGH_AVAILABILITY or EVERY_NODE')
    .option('--tag <tag>', 'a deploy tag every node it runs on must carry (repeat)', collect, [])
    .option('--restart <policy>', 'OFF (default), ON_FAILURE or ALWAYS (autorestart)')
    .option('--autodestroy <when>', 'OFF (default), ON_SUCCESS or ALWAYS: a container that exits so is removed and the count lowered')
    .option('-e, --env <K=V>', 'an environment variable (repeat)', collect, [])
    .option('-p, --publish <host:container>', 'publish a port on the host (repeat)', collect, [])
    .option('--expose <port>', 'a port for SRV records and links (repeat)', collect, [])
    .option('--link <service[:alias]>', 'a dynamic link (repeat)', collect, [])
    .option('--memory <size>', 'memory to reserve and limit, e.g. 256m')
    .option('--reschedule-after <duration>', "how long a dead node's containers wait before moving (default 30s)")
    .option('--sequential', 'start containers one at a time');
}

/** The service the flags describe, or a CliError with every problem. */
export function serviceFromFlags(image: string, command: string[], f: CreateFlags): ServiceSpec {
  const name = f.name ?? image.replace(/^.*\//, '').replace(/[:@].*$/, '').toLowerCase().replace(/[^a-z0-9-]/g, '-');
  const s: Record<string, unknown> = { image };
  if (command.length) s.command = command;
  if (f.replicas !== undefined) s.target_num_containers = Number.isInteger(Number(f.replicas)) ? Number(f.replicas) : f.replicas;
  if (f.strategy !== undefined) s.deployment_strategy = f.strategy;
  if (f.tag.length) s.tags = f.tag;
  if (f.restart !== undefined) s.autorestart = f.restart;
  if (f.autodestroy !== undefined) s.autodestroy = f.autodestroy;
  if (f.env.length) s.environment = f.env;
  if (f.publish.length) s.ports = f.publish;
  if (f.expose.length) s.expose = f.expose;
  if (f.memory !== undefined) s.mem_limit = f.memory;
  if (f.rescheduleAfter !== undefined) s.reschedule_after = f.rescheduleAfter;
  if (f.sequential) s.sequential_deployment = true;
  // JSON is YAML: the reader takes it as a stackfile of one service. Read in a placeholder
  // stack (a stack name is required there), then taken out of it: a service in no stack.
  const read = readStack(JSON.stringify({ [name]: s }), { file: 'the command line', stack: 'cli' });
  if (!read.ok) throw new CliError(read.errors.join('\n').replaceAll('stackfile the command line', 'the command line'));
  for (const w of read.warnings) process.stderr.write(`warning: ${w}\n`);
  // Links are read here: the file reader checks them against the file's own services, and a
  // service in no stack links to others in no stack (or `stack.service`), which it cannot see.
  const links = f.link.map((l) => {
    const [target = '', alias] = l.split(':');
    const last = target.split('.').pop() ?? '';
    const a = alias ?? last;
    const bad = [...target.split('.'), a].map(serviceNameProblem).find((p) => p !== undefined);
    if (bad !== undefined || target.split('.').length > 2 || l.split(':').length > 2) throw new CliError(`--link "${l}" is not a link like "db" or "db:database" (names are DNS labels)`);
    return { service: target, alias: a };
  });
  return { ...(read.services[0] as ServiceSpec), stack: '', links };
}

/** The service `current` with what the given flags say changed (the same flags as create; an
 *  environment variable is added or replaced, lists given replace the service's). */
export function updatedService(current: ServiceSpec, f: CreateFlags & { image?: string; command?: string[] }): ServiceSpec {
  const asRead = serviceFromFlags(f.image ?? current.image, f.command ?? [], { ...f, name: current.name });
  const next: ServiceSpec = { ...current };
  if (f.image !== undefined) next.image = asRead.image;
  if (f.command !== undefined && f.command.length > 0) next.command = asRead.command;
  if (f.replicas !== undefined) next.targetNumContainers = asRead.targetNumContainers;
  if (f.strategy !== undefined) next.deploymentStrategy = asRead.deploymentStrategy;
  if (f.tag.length) next.tags = asRead.tags;
  if (f.restart !== undefined) next.autorestart = asRead.autorestart;
  if (f.autodestroy !== undefined) next.autodestroy = asRead.autodestroy;
  if (f.env.length) next.environment = { ...current.environment, ...asRead.environment };
  if (f.publish.length || f.expose.length) next.ports = asRead.ports;
  if (f.link.length) next.links = asRead.links;
  if (f.memory !== undefined) next.memoryBytes = asRead.memoryBytes;
  if (f.rescheduleAfter !== undefined) next.rescheduleAfterSeconds = asRead.rescheduleAfterSeconds;
  if (f.sequential) next.sequentialDeployment = true;
  return next;
}
