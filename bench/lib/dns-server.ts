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
import { CONTAINER_PREFIX } from '../../mesh/keyspace.ts';
import { readFileSync } from 'node:fs';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import { type ContainerEndpoint } from '../../mesh/endpoint.ts';
import type { MeshView } from '../../mesh/mesh-view.ts';
import type { Change, Entry } from '../../mesh/replication/wire.ts';
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
  members: () => [],
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
// WEFT_BENCH_TRACE=1 (diagnosis; off in normal runs): in-process pause figures per measured
// window (SIGUSR1 .. SIGUSR2), one `trace {json}` line on stderr each: event-loop delay (a 1 ms
// timer, so ~1.0 ms is no delay), GC pauses by kind (and how many began within 10 ms of a
// change), and the wall time of each change's three turns on this thread: `change` (feeder +
// registry index), `flush` (debounced index flush + notification), `slice` (zone update).
const trace = process.env.WEFT_BENCH_TRACE ? newTrace() : undefined;
function newTrace() {
  const eld = monitorEventLoopDelay({ resolution: 1 });
  let gc: { kind: number; ms: number; since: number }[] = [];
  let lastChange = -Infinity;
  let changeMs: number[] = [];
  let sections: Record<string, number[]> = {};
  /** Times every call of obj[method] (an own or prototype method) into sections[name]. */
  const time = (obj: object, method: string, name: string) => {
    const o = obj as Record<string, (...a: unknown[]) => unknown>;
    const f = o[method]!;
    o[method] = function (this: unknown, ...a: unknown[]) {
      const c = performance.now();
      try {
        return f.apply(this, a);
      } finally {
        (sections[name] ??= []).push(performance.now() - c);
      }
    };
  };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gc.push({ kind: (e as unknown as { detail: { kind: number } }).detail.kind, ms: e.duration, since: e.startTime - lastChange });
  }).observe({ entryTypes: ['gc'] });
  const q = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]! : 0);
  return {
    time,
    change(f: () => void) {
      const c = performance.now();
      f();
      changeMs.push(performance.now() - c);
      lastChange = performance.now();
    },
    start() {
      eld.reset();
      lastChange = -Infinity;
      eld.enable();
      gc = [];
      changeMs = [];
      sections = {};
    },
    report() {
      eld.disable();
      const kinds: Record<string, { n: number; total: number; max: number; over05: number; within10ms: number }> = {};
      for (const g of gc) {
        const k = ({ 1: 'minor', 4: 'major', 8: 'incremental', 16: 'weakcb' } as Record<number, string>)[g.kind] ?? String(g.kind);
        const o = (kinds[k] ??= { n: 0, total: 0, max: 0, over05: 0, within10ms: 0 });
        if (g.since < 10) o.within10ms++;
        o.n++;
        o.total += g.ms;
        o.max = Math.max(o.max, g.ms);
        if (g.ms > 0.5) o.over05++;
      }
      for (const o of Object.values(kinds)) (o.total = +o.total.toFixed(2)), (o.max = +o.max.toFixed(2));
      const ms = (ns: number) => +(ns / 1e6).toFixed(3);
      process.stderr.write(`trace ${JSON.stringify({
        churn: timer !== undefined, changes: changeMs.length,
        changeMs: { p50: +q(changeMs, 0.5).toFixed(3), p99: +q(changeMs, 0.99).toFixed(3), max: +Math.max(0, ...changeMs).toFixed(3) },
        eldMs: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), p999: ms(eld.percentile(99.9)), max: ms(eld.max), n: eld.count },
        sections: Object.fromEntries(Object.entries(sections).map(([k, xs]) => [k, { n: xs.length, p50: +q(xs, 0.5).toFixed(3), p99: +q(xs, 0.99).toFixed(3), max: +Math.max(...xs).toFixed(3), total: +xs.reduce((a, b) => a + b, 0).toFixed(2) }])),
        gc: kinds, heapMB: +(process.memoryUsage().heapUsed / 1e6).toFixed(1),
      })}\n`);
    },
  };
}
const tick = trace ? () => trace.change(change) : change;
if (trace) {
  if (source instanceof RegistryRecordSource) trace.time(source, 'flushNow', 'flush');
  trace.time((server as unknown as { rebuild: object }).rebuild, 'slice', 'slice');
}

process.on('SIGUSR1', () => {
  trace?.start();
  if (spec.churn > 0 && !timer) timer = setInterval(tick, 1000 / spec.churn);
});
process.on('SIGUSR2', () => {
  trace?.report();
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
