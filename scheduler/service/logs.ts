// `weft service logs`: the output of every container of a service, from every host it runs on.
// The peer asked finds the hosts from the service's tasks, reads its own containers' logs from
// its dockerd and asks each other host's peer for theirs (`service.logs-here`, member access,
// over the mesh), and streams every line to the client, prefixed with the container's name.
// Where the lines come from (Docker, other peers) is the LogSource the composition gives.

import { UserError } from '../../mesh/api/request.ts';
import type { MethodTable } from '../../mesh/api/table.ts';
import type { RaftNode } from '../manager/raft-node.ts';
import type { TaskSpec } from '../task/task.ts';
import { type LogLine, serviceLogs, serviceLogsHere } from './api-contract.ts';
import { lookupService } from './lookup.ts';

export interface LogOptions {
  follow: boolean;
  tail?: number;
}

export interface LogStream {
  /** Resolves when every container's log has ended (without follow: once sent so far). */
  done: Promise<void>;
  stop(): void;
}

export interface LogSource {
  /** This host's containers of the service (its object name, `shop/web`). */
  here(service: string, o: LogOptions, onLine: (l: LogLine) => void): Promise<LogStream>;
  /** Another host's, through its peer. */
  there(peer: string, service: string, o: LogOptions, onLine: (l: LogLine) => void): Promise<LogStream>;
}

export function registerLogMethods(table: MethodTable, raft: RaftNode, self: string, source: LogSource | undefined): void {
  const needSource = (): LogSource => {
    if (!source) throw new UserError('this peer runs no containers (launched without the data plane): ask a peer that does');
    return source;
  };
  table.register(serviceLogs, async ({ name, follow, tail }, ctx) => {
    const src = needSource();
    const o = await lookupService(raft, name);
    const tasks = (await raft.query({ q: 'list', kind: 'task', prefix: `${o.name}/` }, false)).objects;
    const nodes = [...new Set(tasks.map((t) => (t.spec as TaskSpec).node))].sort();
    const opts: LogOptions = { follow: follow === true, ...(tail !== undefined ? { tail } : {}) };
    const emit = (l: LogLine) => ctx.emit(l);
    const streams = await Promise.all(nodes.map((n) => (n === self ? src.here(o.name, opts, emit) : src.there(n, o.name, opts, emit))
      .catch((err) => {
        // A host that cannot be asked (dead, partitioned) says so in the stream; the others go on.
        emit({ container: '-', host: n, stream: 'stderr', line: `weft: cannot read logs from ${n}: ${(err as Error).message}` });
        return { done: Promise.resolve(), stop() {} } satisfies LogStream;
      })));
    await Promise.race([Promise.all(streams.map((s) => s.done)), ctx.closed]);
    for (const s of streams) s.stop();
    return null;
  });
  table.register(serviceLogsHere, async ({ service, follow, tail }, ctx) => {
    const s = await needSource().here(service, { follow: follow === true, ...(tail !== undefined ? { tail } : {}) }, (l) => ctx.emit(l));
    await Promise.race([s.done, ctx.closed]);
    s.stop();
    return null;
  });
}
