// Where `weft service logs` reads lines: this host's dockerd for its own containers of the
// service, and the peers of the other hosts over the mesh (scheduler/service/logs.ts asks).

import type { Libp2p } from '@libp2p/interface';
import { ApiClient } from '../mesh/api/client.ts';
import type { DockerOps } from '../scheduler/agent/docker-ops.ts';
import { serviceLogsHere } from '../scheduler/service/api-contract.ts';
import type { LogSource, LogStream } from '../scheduler/service/logs.ts';

export function logSource(node: Libp2p, hostName: string, docker: DockerOps): LogSource {
  return {
    async here(service, o, onLine): Promise<LogStream> {
      const mine = (await docker.list()).filter((c) => c.task.startsWith(`${service}/`)).sort((a, b) => (a.task < b.task ? -1 : 1));
      const stops: (() => void)[] = [];
      const ends: Promise<void>[] = [];
      for (const c of mine) {
        // `shop/web/2` runs as `web-2`.
        const parts = c.task.split('/');
        const container = `${parts[parts.length - 2]}-${parts[parts.length - 1]}`;
        let ended!: () => void;
        ends.push(new Promise<void>((r) => (ended = r)));
        try {
          stops.push(await docker.logs(c.id, o, (line, stream) => onLine({ container, host: hostName, stream, line }), () => ended()));
        } catch (err) {
          onLine({ container, host: hostName, stream: 'stderr', line: `weft: ${(err as Error).message}` });
          ended();
        }
      }
      return { done: Promise.all(ends).then(() => undefined), stop: () => stops.forEach((s) => s()) };
    },
    async there(peer, service, o, onLine): Promise<LogStream> {
      const c = await ApiClient.overMesh(node, peer);
      const done = c.call(serviceLogsHere, { service, follow: o.follow, ...(o.tail !== undefined ? { tail: o.tail } : {}) }, onLine)
        .then(() => undefined)
        .finally(() => void c.close());
      return { done, stop: () => void c.close() };
    },
  };
}
