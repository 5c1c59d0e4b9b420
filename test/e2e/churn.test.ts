// Churn: 500 containers created and destroyed concurrently across 3 hosts, while a watcher
// reads every host's registry and checks that no address is held by two containers at once.
import Docker from 'dockerode';
import { describe, expect, test } from 'vitest';
import { useHarness } from '../harness/vitest.ts';
import type { Host } from '../harness/harness.ts';
import { BUSYBOX_IMAGE } from '../harness/dockerd.ts';
import { ps, startNetworkMesh } from './network-helpers.ts';
import { ApiClient } from '../../mesh/api/client.ts';
import * as meshApi from '../../mesh/api/contract.ts';
import type { ContainerEndpoint } from '../../mesh/endpoint.ts';

const TOTAL = 500;
/** Containers in flight per host: enough to overlap starts, attaches and destroys, few enough
 *  for 2 shared cores running 3 dockerds. */
const WORKERS_PER_HOST = 4;
const CHURN_TIMEOUT_MS = 20 * 60_000;

describe('churn', () => {
  const mesh = useHarness({ hosts: 3, name: 'e2e-churn' });

  test(`${TOTAL} containers created and destroyed across 3 hosts: no address twice at any time`, async () => {
    const hosts = mesh().hosts as Host[];
    await startNetworkMesh(hosts);
    const clients = hosts.map((h) => new Docker({ socketPath: h.dockerd!.socket }));
    let snapshots = 0;
    let maxSeen = 0;
    const problems: string[] = [];
    let done = false;
    const seenAddrs = new Set<string>();
    // The watcher: each host's own records (what its peer attached, authoritative for that
    // host) read over the API socket, merged, and checked: no address on two containers, on one
    // host or across hosts.
    const apis = await Promise.all(hosts.map((h) => ApiClient.local(h.dataDir)));
    const watcher = (async () => {
      for (let i = 0; i < 100_000 && !done; i++) {
        const views = await Promise.all(apis.map((c) => c.call(meshApi.ps, { local: true }).catch(() => [] as ContainerEndpoint[])));
        const byAddr = new Map<string, string>();
        for (const c of views.flat()) {
          seenAddrs.add(c.addr);
          const other = byAddr.get(c.addr);
          if (other && other !== c.id) problems.push(`${c.addr} on ${other.slice(0, 12)} and ${c.id.slice(0, 12)} (${c.host})`);
          byAddr.set(c.addr, c.id);
        }
        maxSeen = Math.max(maxSeen, byAddr.size);
        snapshots++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    let next = 0;
    const worker = async (d: Docker) => {
      for (let guard = 0; guard < TOTAL; guard++) {
        const n = next++;
        if (n >= TOTAL) return;
        const c = await d.createContainer({
          Image: BUSYBOX_IMAGE, Cmd: ['sleep', '600'], Labels: { 'weft.attach': 'true' },
          HostConfig: { NetworkMode: 'none' },
        });
        await c.start();
        // Lifetimes from 0 to 3 s: some are destroyed while being attached, most after.
        await new Promise((r) => setTimeout(r, (n % 7) * 500));
        await c.remove({ force: true });
      }
    };
    await Promise.all(clients.flatMap((d) => Array.from({ length: WORKERS_PER_HOST }, () => worker(d))));
    // Everything destroyed: every address comes back (destroy releases at once), all but each
    // peer's own DNS address (the second resolver of other hosts' containers).
    const PEER_OWN_ADDRESSES = 1;
    const deadline = Date.now() + 60_000;
    let inUse: number[] = [];
    while (Date.now() < deadline) {
      inUse = await Promise.all(hosts.map(async (h) => (await h.weftJson<any>(['status', 'ipam', '--json'])).inUse));
      if (inUse.every((x) => x === PEER_OWN_ADDRESSES)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    done = true;
    await watcher;
    await Promise.all(apis.map((c) => c.close()));
    console.log(`churn: ${TOTAL} containers, ${snapshots} registry snapshots, up to ${maxSeen} attached at once on one view, ${seenAddrs.size} distinct addresses seen`);
    expect(problems).toEqual([]);
    expect(inUse).toEqual([PEER_OWN_ADDRESSES, PEER_OWN_ADDRESSES, PEER_OWN_ADDRESSES]);
    expect(snapshots).toBeGreaterThan(100);
    expect(seenAddrs.size).toBeGreaterThan(20);
    for (const h of hosts) expect((await ps(h)).length).toBe(0);
  }, CHURN_TIMEOUT_MS);
});
