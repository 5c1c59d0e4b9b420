// Helpers for the container-network end-to-end tests: a mesh of peers with their data plane
// on harness hosts with a dockerd each, labelled busybox containers, pings between them.
import { waitFor, type Host } from '../harness/harness.ts';
import { BUSYBOX_IMAGE } from '../harness/dockerd.ts';

const PASSWORD = 'e2e-network-password-2c9d';

export interface PsJson { name: string; id: string; address: string; host: string; state: string }

export const ps = (h: Host) => h.weftJson<PsJson[]>(['ps', '--json']);

/** Runs a labelled busybox container on `h` (no Docker network: weft gives it its only one). */
export async function runContainer(h: Host, name: string, labels: Record<string, string> = {}): Promise<string> {
  const l = Object.entries({ 'weft.attach': 'true', ...labels }).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
  return h.dockerd!.mustDocker(['run', '-d', '--network', 'none', '--name', name, ...l, BUSYBOX_IMAGE, 'sleep', '100000']);
}

/** The address weft gave a container, once its record is in `h`'s registry. */
export async function addressOf(h: Host, name: string, what = `${name} to be attached`): Promise<string> {
  let addr = '';
  await waitFor(async () => {
    const c = (await ps(h)).find((x) => x.name === name && x.state === 'running');
    addr = c?.address ?? '';
    return addr !== '';
  }, { timeoutMs: 30_000, what });
  return addr;
}

export async function pingFrom(h: Host, container: string, addr: string): Promise<boolean> {
  const r = await h.dockerd!.docker(['exec', container, 'ping', '-c', '1', '-W', '2', addr], { timeoutMs: 15_000 });
  return r.code === 0;
}

export async function startNetworkMesh(hosts: readonly Host[], args: string[] = []): Promise<void> {
  await Promise.all(hosts.map(async (h) => {
    const d = await h.startDockerd();
    await d.importBusybox();
  }));
  const [first] = hosts;
  for (const h of hosts) {
    await h.startPeer({ password: PASSWORD, dataplane: true, peers: h === first ? [] : [first!.address], args: ['--ipalloc-init', `consensus=${hosts.length}`, ...args] });
  }
  for (const h of hosts) {
    await waitFor(async () => (await h.weftJson<any>(['status', '--json'])).peers.alive === hosts.length - 1, { timeoutMs: 30_000, what: `${h.name} to see the others` });
  }
}

