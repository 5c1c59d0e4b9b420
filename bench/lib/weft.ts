// weft peers on harness hosts, and in-process API clients on their unix sockets (the CLI's
// own ApiClient), so that no measurement includes a Node start-up.
import * as meshApi from '../../mesh/api/contract.ts';
import { ApiClient } from '../../mesh/api/client.ts';
import type { MethodSpec, ParamsOf, ParamsSchema, ResultOf } from '../../mesh/api/method.ts';
import type { Host } from '../../test/harness/harness.ts';
import { now, sleep, withTimeout } from './time.ts';

/** A local API call answers in milliseconds; this only trips on a hung peer. */
export const API_TIMEOUT_MS = 10_000;
/** Ten Node peers starting at once on 2 loaded cores take tens of seconds to converge. */
export const CONVERGE_TIMEOUT_MS = 120_000;

/** `client.call` with a time limit. */
export function call<M extends MethodSpec<ParamsSchema, unknown, unknown>>(c: ApiClient, spec: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
  return withTimeout(c.call(spec, params), API_TIMEOUT_MS, `weft API ${spec.name}`);
}

/** An API client on `h`'s socket, retried while the peer starts. */
export async function connectWeft(h: Host, timeoutMs = CONVERGE_TIMEOUT_MS): Promise<ApiClient> {
  const deadline = now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < timeoutMs / 100 + 1 && now() < deadline; i++) {
    if (h.peer && !h.peer.running) throw new Error(`${h.name}: weft peer exited (${JSON.stringify(h.peer.exit)}); see ${h.peer.logFile}`);
    try {
      return await withTimeout(ApiClient.local(h.dataDir), API_TIMEOUT_MS, `connect to ${h.name}'s API`);
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`${h.name}: cannot reach the weft peer within ${timeoutMs} ms: ${(last as Error)?.message}`);
}

/** Runs `fn` with a short-lived client on `h`. */
export async function withWeft<T>(h: Host, fn: (c: ApiClient) => Promise<T>): Promise<T> {
  const c = await connectWeft(h);
  try {
    return await fn(c);
  } finally {
    await c.close().catch(() => undefined);
  }
}

/** Peer states as `h` sees them, by name (itself excluded). */
export async function peerStates(h: Host): Promise<Map<string, string>> {
  const peers = await withWeft(h, (c) => call(c, meshApi.peers, {}));
  return new Map(peers.map((p) => [p.name, p.state]));
}

/** Starts a peer on every host, all but the first joining the first, and waits until every
 *  peer sees every other alive. */
export async function startWeftMesh(hosts: readonly Host[], password: string): Promise<void> {
  const [first, ...rest] = hosts;
  if (first === undefined) throw new Error('startWeftMesh: no hosts');
  await first.startPeer({ password });
  for (const h of rest) await h.startPeer({ password, peers: [first.address] });
  await waitWeftConverged(hosts);
}

/** Waits until every host's peer sees all the others alive, none suspect or dead. */
export async function waitWeftConverged(hosts: readonly Host[], timeoutMs = CONVERGE_TIMEOUT_MS): Promise<void> {
  const deadline = now() + timeoutMs;
  for (const h of hosts) {
    let last = '';
    for (let i = 0; ; i++) {
      const states = await peerStates(h).catch((e: Error) => new Map([['error', e.message]]));
      if (hosts.every((o) => o === h || states.get(o.name) === 'alive')) break;
      last = JSON.stringify([...states]);
      if (now() > deadline || i > timeoutMs / 200) throw new Error(`weft: ${h.name} does not see all ${hosts.length - 1} others alive after ${timeoutMs} ms: ${last}`);
      await sleep(200);
    }
  }
}

/** Stops every running peer (SIGTERM, so it leaves the mesh cleanly). */
export async function stopWeftMesh(hosts: readonly Host[]): Promise<void> {
  await Promise.all(hosts.filter((h) => h.peer?.running).map((h) => h.stop()));
}
