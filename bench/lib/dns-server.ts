// The weft DNS server as a process of its own for bench/dns.ts, so that it is measured like
// dnsmasq: one process, nothing else on its event loop. Reads a JSON spec (argv[2]), prints
// "ready HOST:PORT" when listening, stops on SIGTERM/SIGINT. With `churn` > 0 it moves one
// container to another address that many times per second while churning is on (SIGUSR1
// turns it on, SIGUSR2 off), as record changes arriving by gossip would: each change is a
// new record set from the records builder, and the server rebuilds its zone.
import { readFileSync } from 'node:fs';
import { DnsServer } from '../../dns/server.ts';
import { MemoryRecordSource, buildRecordSet, type ContainerRecord } from '../../dns/records.ts';

export interface DnsBenchSpec {
  host: string;
  port: number;
  containers: ContainerRecord[];
  churn: number;
  workers: number;
}

const spec = JSON.parse(readFileSync(process.argv[2] as string, 'utf8')) as DnsBenchSpec;
const containers = spec.containers.map((c) => ({ ...c }));
const source = new MemoryRecordSource(buildRecordSet({ containers }).set);
const server = await DnsServer.start({ listen: [{ host: spec.host, port: spec.port }], source, upstreams: [], workers: spec.workers ?? 0 });

let timer: NodeJS.Timeout | undefined;
let changes = 0;
function change(): void {
  // Move one container to a fresh address: the set of names stays the same.
  const c = containers[changes++ % containers.length] as ContainerRecord;
  const [a, b, x] = (c.addrs[0] as string).split('.').map(Number) as [number, number, number, number];
  c.addrs = [`${a}.${b}.${x}.${(changes % 250) + 1}`];
  // As a registry would: the names of the container that changed are known.
  const zone = c.stack ? `${c.stack}.weft.local` : 'weft.local';
  const changed = [`${c.name}.${zone}`, ...(c.service ? [`${c.service}.${zone}`] : [])];
  source.set(buildRecordSet({ containers }, undefined, source.current()).set, changed);
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
