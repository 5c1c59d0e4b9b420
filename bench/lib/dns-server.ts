// The weft DNS server as a process of its own for bench/dns.ts, so that it is measured like
// dnsmasq: one process, nothing else on its event loop. Reads a JSON spec (argv[2]), prints
// "ready HOST:PORT" when listening, stops on SIGTERM/SIGINT. With `churn` > 0 it moves one
// container to another address that many times per second while churning is on (SIGUSR1
// turns it on, SIGUSR2 off), as record changes arriving by gossip would: each change is a
// new record set from the records builder, and the server rebuilds its zone.
// With `feeder: 'registry'` (the default) the records come the way a peer gets them: container
// records in a registry behind a MeshView, through RegistryRecordSource (dns/registry-source.ts),
// and a change is one record rewritten, as gossip delivers it. `feeder: 'records'` rebuilds the
// whole record set with buildRecordSet on every change (how this benchmark fed the server
// before the registry source existed).
import { readFileSync } from 'node:fs';
import { CONTAINER_PREFIX, type ContainerEndpoint } from '../../mesh/endpoint.ts';
import type { MeshView } from '../../mesh/mesh-view.ts';
import type { Change, Entry } from '../../mesh/replica-wire.ts';
import { DnsServer } from '../../dns/server.ts';
import { MemoryRecordSource, buildRecordSet, type ContainerRecord, type DnsRecordSource } from '../../dns/records.ts';
import { RegistryRecordSource } from '../../dns/registry-source.ts';

export interface DnsBenchSpec {
  host: string;
  port: number;
  containers: ContainerRecord[];
  churn: number;
  workers: number;
  feeder?: 'registry' | 'records';
}

const spec = JSON.parse(readFileSync(process.argv[2] as string, 'utf8')) as DnsBenchSpec;
const containers = spec.containers.map((c) => ({ ...c }));
const feeder = spec.feeder ?? 'registry';

/** A registry of one peer's records behind a MeshView: writes are delivered at once. */
const entries = new Map<string, Entry>();
const listeners = new Set<(changes: readonly Change[]) => void>();
const view: MeshView = {
  self: { id: 'bench', name: 'bench' },
  entries: (prefix) => [...entries.values()].filter((e) => e.key.startsWith(prefix)),
  onEntries: (fn) => (listeners.add(fn), () => listeners.delete(fn)),
  liveness: () => 'alive',
  onLiveness: () => () => {},
  put: async () => undefined,
};
function publish(c: ContainerRecord, i: number): void {
  const ep: ContainerEndpoint = {
    v: 1, id: `c${i}`, name: c.name, addr: c.addrs[0] as string, mac: '02:42:0a:20:00:02', peer: 'bench', host: 'bench',
    state: 'running', health: 'none', labels: { ...(c.stack ? { 'weft.stack': c.stack } : {}), ...(c.service ? { 'weft.service': c.service } : {}) }, since: 1,
  };
  const key = CONTAINER_PREFIX + ep.id;
  const value = JSON.stringify(ep);
  const previous = entries.get(key)?.value ?? null;
  entries.set(key, { owner: 'bench', key, version: 1, value, sig: '' });
  for (const l of listeners) l([{ owner: 'bench', key, value, previous }]);
}
containers.forEach(publish);

const memory = feeder === 'records' ? new MemoryRecordSource(buildRecordSet({ containers }).set) : undefined;
const source: DnsRecordSource = memory ?? new RegistryRecordSource(view);
const server = await DnsServer.start({ listen: [{ host: spec.host, port: spec.port }], source, upstreams: [], workers: spec.workers ?? 0 });

let timer: NodeJS.Timeout | undefined;
let changes = 0;
function change(): void {
  // Move one container to a fresh address: the set of names stays the same.
  const i = changes++ % containers.length;
  const c = containers[i] as ContainerRecord;
  const [a, b, x] = (c.addrs[0] as string).split('.').map(Number) as [number, number, number, number];
  c.addrs = [`${a}.${b}.${x}.${(changes % 250) + 1}`];
  if (!memory) return publish(c, i);
  // As a registry would: the names of the container that changed are known.
  const zone = c.stack ? `${c.stack}.weft.local` : 'weft.local';
  const changed = [`${c.name}.${zone}`, ...(c.service ? [`${c.service}.${zone}`] : [])];
  memory.set(buildRecordSet({ containers }, undefined, memory.current()).set, changed);
}
process.on('SIGUSR1', () => {
  if (spec.churn > 0 && !timer) timer = setInterval(change, 1000 / spec.churn);
});
process.on('SIGUSR2', () => {
  if (timer) clearInterval(timer);
  timer = undefined;
});
const stop = () => {
  if (timer) clearInterval(timer);
  void server.stop().then(() => {
    process.stdout.write(`stats ${JSON.stringify({ ...server.stats(), changes })}\n`);
    process.exit(0);
  });
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
const [addr] = server.addresses();
process.stdout.write(`ready ${addr!.host}:${addr!.port}\n`);
