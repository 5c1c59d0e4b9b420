// Benchmark: a container starts on one host; how long until its name resolves on every other
// peer (DNS propagation), and until it answers a ping from a container on another host
// (attachment latency). Anchor: a plain replicated write (`kv put`) between the same peers in the
// same run, the gossip floor both ride on.
//
//   node bench/attach.ts [--hosts 3] [--trials 30] [--poll 5] [--mode encrypted|fast]
//
// t0 = the bench asks h1's dockerd to start the container (dockerode over its socket; it was
// created beforehand, with labels weft.attach=true, weft.stack=bench, weft.service=s). Every
// other peer's `dns.lookup` is polled over its API socket every --poll ms (the same zone path a
// UDP query takes); a peer's time is the first poll that answers. Reachable: a ping loop in a
// container on h2 (one busybox ping per try, through nsenter into its namespace) started at t0,
// against the address the registry gave; its time is the first reply.
import * as dnsApi from '../dns/api-contract.ts';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { Harness, type Host } from '../test/harness/harness.ts';
import { BUSYBOX_IMAGE } from '../test/harness/dockerd.ts';
import { startNetworkMesh } from '../test/e2e/network-helpers.ts';
import type { ApiClient } from '../mesh/api/client.ts';
import * as meshApi from '../mesh/api/contract.ts';
import { printEnvironment } from './lib/env.ts';
import { ms, printTable, summarize } from './lib/stats.ts';
import { now, sleep } from './lib/time.ts';
import { call, connectWeft } from './lib/weft.ts';

const exec = promisify(execFile);
const TRIAL_TIMEOUT_MS = 20_000;

const { values: opt } = parseArgs({
  options: {
    hosts: { type: 'string', default: '3' },
    trials: { type: 'string', default: '30' },
    poll: { type: 'string', default: '5' },
    mode: { type: 'string', default: 'encrypted' },
  },
});
const HOSTS = Number(opt.hosts);
const TRIALS = Number(opt.trials);
const POLL_MS = Number(opt.poll);
if (!(HOSTS >= 2 && HOSTS <= 10) || !(TRIALS >= 1 && TRIALS <= 1000)) throw new Error('--hosts 2..10, --trials 1..1000');

async function until<T>(fn: () => Promise<T | undefined>, deadline: number): Promise<T | undefined> {
  for (let i = 0; i < TRIAL_TIMEOUT_MS / POLL_MS + 1 && now() < deadline; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await sleep(POLL_MS);
  }
  return undefined;
}

async function answered(c: ApiClient, name: string): Promise<string | undefined> {
  const r = await call(c, dnsApi.dnsLookup, { name, type: 'A' });
  return r.records.find((x) => x.section === 'answer' && x.type === 'A')?.data;
}

/** Pings `addr` from inside the namespace of pid until a reply; resolves the time of it. */
async function pingLoop(pid: number, addr: string, deadline: number): Promise<number | undefined> {
  for (let i = 0; i < 10_000 && now() < deadline; i++) {
    const ok = await exec('nsenter', [`--net=/proc/${pid}/ns/net`, 'busybox', 'ping', '-c', '1', '-W', '1', '-q', addr]).then(() => true, () => false);
    if (ok) return now();
    await sleep(POLL_MS);
  }
  return undefined;
}

printEnvironment('bench/attach');
const mesh = await Harness.create({ hosts: HOSTS });
try {
  const hosts = mesh.hosts as Host[];
  await startNetworkMesh(hosts, ['--dataplane-mode', opt.mode]);
  const apis = await Promise.all(hosts.map((h) => connectWeft(h)));
  const docker = new Docker({ socketPath: hosts[0]!.dockerd!.socket });
  // The prober on h2.
  const h2 = hosts[1]!;
  await h2.dockerd!.mustDocker(['run', '-d', '--network', 'none', '--name', 'prober', '--label', 'weft.attach=true', BUSYBOX_IMAGE, 'sleep', '100000']);
  const proberPid = Number(await h2.dockerd!.mustDocker(['inspect', '-f', '{{.State.Pid}}', 'prober']));
  await sleep(2000);
  const dnsAll: number[] = [];
  const dnsEach: number[] = [];
  const reach: number[] = [];
  const started: number[] = [];
  const kvAll: number[] = [];
  let missed = 0;
  for (let t = 0; t < TRIALS; t++) {
    const name = `s-${t}`;
    const c = await docker.createContainer({
      Image: BUSYBOX_IMAGE, Cmd: ['sleep', '100000'], name,
      Labels: { 'weft.attach': 'true', 'weft.stack': 'bench', 'weft.service': 's' }, HostConfig: { NetworkMode: 'none' },
    });
    const t0 = now();
    const deadline = t0 + TRIAL_TIMEOUT_MS;
    await c.start();
    const startedAt = now() - t0;
    const fqdn = `${name}.bench.weft.local`;
    const others = apis.slice(1);
    const seen = await Promise.all(others.map((a) => until(async () => ((await answered(a, fqdn)) ? now() : undefined), deadline)));
    const addr = await answered(apis[1]!, fqdn);
    const reachedAt = addr ? await pingLoop(proberPid, addr, deadline) : undefined;
    if (seen.some((x) => x === undefined) || reachedAt === undefined) {
      missed++;
    } else {
      for (const x of seen) dnsEach.push((x as number) - t0);
      dnsAll.push(Math.max(...(seen as number[])) - t0);
      reach.push(reachedAt - t0);
      started.push(startedAt);
    }
    // The anchor: one replicated write from h1 until every other peer has it.
    const k0 = now();
    const value = `v${t}`;
    await call(apis[0]!, meshApi.kvPut, { key: `bench/${t}`, value });
    const kv = await Promise.all(others.map((a) => until(async () => ((await call(a, meshApi.kvGet, { key: `bench/${t}` })).some((e) => e.value === value) ? now() : undefined), k0 + TRIAL_TIMEOUT_MS)));
    if (kv.every((x) => x !== undefined)) kvAll.push(Math.max(...(kv as number[])) - k0);
    await c.remove({ force: true });
    await sleep(200);
  }
  await Promise.all(apis.map((a) => a.close()));
  const s = (xs: number[]) => summarize(xs);
  const rows = [
    ['container name resolves on every other peer', s(dnsAll)],
    ['  ... on one peer', s(dnsEach)],
    ['container answers a ping from another host', s(reach)],
    ['docker start returned (container running)', s(started)],
    ['anchor: kv put visible on every other peer', s(kvAll)],
  ] as const;
  printTable(['what (ms from start)', 'n', 'p50', 'p99', 'max'], rows.map(([w, x]) => [w, String(x.n), ms(x.p50), ms(x.p99), ms(x.max)]));
  const anchor = s(kvAll).p50;
  console.log(`mode ${opt.mode}, ${HOSTS} hosts, ${TRIALS} trials, ${missed} missed (not seen within ${TRIAL_TIMEOUT_MS / 1000} s)`);
  console.log(`ratios to the anchor's p50 (${ms(anchor)}): DNS everywhere p50 ${(s(dnsAll).p50 / anchor).toFixed(1)}, reachable p50 ${(s(reach).p50 / anchor).toFixed(1)}`);
  const own = dnsAll.map((x, i) => x - (started[i] as number));
  console.log(`weft's own part (resolvable everywhere minus docker start): p50 ${ms(s(own).p50)}, p99 ${ms(s(own).p99)}`);
} finally {
  await mesh.cleanup();
}
