// weft's side of bench/control.ts: three (or five) peers with `--role manager` on harness
// hosts, mesh only, driven over their unix-socket API with the shared ApiClient's untyped
// `raw` (the control plane's methods are not in the typed contract yet):
//
//   config.set {name, value} -> {name, value, version[, term]}   answered once committed; any
//                                                                peer (a follower forwards)
//   status -> {..., id, manager: {role, leader: peer id | null, term, commit, applied}}
//
// A build without them fails here with one sentence (ControlUnavailable), which the bench
// prints as "weft: not available (...)".
import type { ManagerStatus } from '../../mesh/api/contract.ts';
import fs from 'node:fs';
import type { ApiClient } from '../../mesh/api/client.ts';
import type { Host } from '../../test/harness/harness.ts';
import { now, sleep, withTimeout } from './time.ts';
import { API_TIMEOUT_MS, CONVERGE_TIMEOUT_MS, connectWeft, peerStates } from './weft.ts';

/** Mesh only, as the other benches run peers; every peer a Raft manager. */
export const WEFT_CONTROL_ARGS = ['--role', 'manager', '--dns-listen', 'off', '--metrics-listen', 'off', '--plugin-name', 'off'] as const;
/** Node peers on 2 loaded cores: start, join, elect. */
export const WEFT_HEALTHY_TIMEOUT_MS = 90_000;
/** After SIGTERM: a peer leaves the mesh and flushes; then SIGKILL. */
export const WEFT_STOP_GRACE_MS = 15_000;
const HEALTH_POLL_MS = 100;

/** The control plane's part of `weft status` (the peer's own type). */
export type { ManagerStatus } from '../../mesh/api/contract.ts';

/** The build has no Raft control plane API (or not the one this bench expects). */
export class ControlUnavailable extends Error {}

function managerOf(status: unknown, host: string): { id: string; manager: ManagerStatus } {
  const s = status as { id?: unknown; manager?: unknown } | null;
  if (s === null || typeof s !== 'object' || typeof s.id !== 'string') throw new ControlUnavailable(`${host}: status has no peer id`);
  const m = s.manager as Partial<ManagerStatus> | undefined | null;
  if (m === undefined || m === null || typeof m !== 'object') throw new ControlUnavailable(`${host}: status has no "manager" field (no Raft control plane in this build)`);
  if (typeof m.term !== 'number' || typeof m.role !== 'string') throw new ControlUnavailable(`${host}: status.manager is not {role, leader, term, commit, applied}: ${JSON.stringify(m)}`);
  return { id: s.id, manager: { role: m.role, leader: typeof m.leader === 'string' ? m.leader : null, term: m.term, commit: Number(m.commit ?? NaN), applied: Number(m.applied ?? NaN) } };
}

/** The last line of each host's peer log that exited, for an error that says a peer is gone. */
function lastLogLines(hosts: readonly Host[]): string {
  const lines: string[] = [];
  for (const h of hosts) {
    if (h.peer === undefined || h.peer.running) continue;
    try {
      const last = fs.readFileSync(h.peer.logFile, 'utf8').trim().split('\n').slice(-1)[0] ?? '';
      lines.push(`${h.name}'s log ends: ${last.slice(0, 300)}`);
    } catch {
      /* removed already */
    }
  }
  return lines.length > 0 ? `; ${lines.join('; ')}` : '';
}

/** Like lib/weft.ts's waitWeftConverged, but a peer that exited (a flag this build does not
 *  know) ends the wait at once, with the end of its log. */
async function waitConverged(hosts: readonly Host[], timeoutMs = CONVERGE_TIMEOUT_MS): Promise<void> {
  const deadline = now() + timeoutMs;
  let last = '';
  for (let i = 0; i < timeoutMs / 200 + 1 && now() < deadline; i++) {
    if (hosts.some((h) => h.peer && !h.peer.running)) throw new Error(`a weft peer exited${lastLogLines(hosts)}`);
    const views = await Promise.all(hosts.map((h) => peerStates(h).catch((e: Error) => new Map([['error', e.message]]))));
    if (views.every((states, k) => hosts.every((o, j) => j === k || states.get(o.name) === 'alive'))) return;
    last = views.map((v, k) => `${hosts[k]?.name}: ${JSON.stringify([...v])}`).join('; ');
    await sleep(200);
  }
  throw new Error(`weft: the mesh did not converge within ${timeoutMs} ms: ${last}`);
}

/** An API error that says the method does not exist, as the peer words it. */
function unknownMethod(e: unknown): boolean {
  return /unknown method|no such method|not a method|method not found|unknown api method/i.test((e as Error)?.message ?? '');
}

/** A committed write's answer: the term it was committed in, when the peer says so. */
export interface WeftPut {
  term: number;
  version: number;
}

/** weft Raft managers on a set of harness hosts. */
export class WeftControl {
  readonly hosts: readonly Host[];
  private readonly password: string;
  private readonly clients = new Map<Host, ApiClient>();
  /** peer id -> host, from each peer's own status. */
  private readonly ids = new Map<string, Host>();
  /** Whether config.set's answer carried the term (else the bench asks status after it). */
  termInAnswer: boolean | undefined;

  private constructor(hosts: readonly Host[], password: string) {
    this.hosts = hosts;
    this.password = password;
  }

  /** Starts a manager peer on every host (all but the first joining the first), waits for
   *  the mesh and then for the managers to agree on a leader, and checks that a committed
   *  write goes through. */
  static async start(hosts: readonly Host[], password: string): Promise<WeftControl> {
    const c = new WeftControl(hosts, password);
    const [first, ...rest] = hosts;
    if (first === undefined) throw new Error('WeftControl.start: no hosts');
    try {
      await first.startPeer({ password, args: [...WEFT_CONTROL_ARGS, '--managers', String(hosts.length)] });
      for (const h of rest) await h.startPeer({ password, peers: [first.address], args: [...WEFT_CONTROL_ARGS, '--managers', String(hosts.length)] });
      await waitConverged(hosts);
      // Fails at once, in one sentence, on a build without the control plane.
      await c.status(first);
      await c.waitHealthy();
      try {
        await c.put(first, 'bench-probe', 'probe', API_TIMEOUT_MS);
      } catch (e) {
        if (unknownMethod(e)) throw new ControlUnavailable(`config.set: ${(e as Error).message}`);
        throw e;
      }
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  /** The cached API client on `h`, connected on first use. */
  async client(h: Host): Promise<ApiClient> {
    let c = this.clients.get(h);
    if (c === undefined) {
      c = await connectWeft(h, 30_000);
      this.clients.set(h, c);
    }
    return c;
  }

  /** A separate connection (for the throughput clients: one connection each). */
  connect(h: Host): Promise<ApiClient> {
    return connectWeft(h, 30_000);
  }

  async status(h: Host, timeoutMs = API_TIMEOUT_MS): Promise<{ id: string; manager: ManagerStatus }> {
    const c = await this.client(h);
    const s = managerOf(await withTimeout(c.raw('status', {}), timeoutMs, `weft status on ${h.name}`), h.name);
    this.ids.set(s.id, h);
    return s;
  }

  /** config.set through `h` (or through the connection `via`), answered once committed. */
  async put(h: Host, name: string, value: string, timeoutMs = API_TIMEOUT_MS, via?: ApiClient): Promise<WeftPut> {
    const c = via ?? (await this.client(h));
    const r = (await withTimeout(c.raw('config.set', { name, value }), timeoutMs, `weft config.set on ${h.name}`)) as { version?: unknown; term?: unknown } | null;
    const hasTerm = typeof r?.term === 'number';
    this.termInAnswer ??= hasTerm;
    return { term: hasTerm ? (r?.term as number) : NaN, version: Number(r?.version ?? NaN) };
  }

  /** The current term as `h` sees it. */
  async term(h: Host): Promise<number> {
    return (await this.status(h, 2_000)).manager.term;
  }

  /** `h`'s term and the host it names leader (undefined while it knows none). */
  async view(h: Host): Promise<{ term: number; leader: Host | undefined }> {
    const s = await this.status(h, 2_000);
    return { term: s.manager.term, leader: s.manager.leader === null ? undefined : this.ids.get(s.manager.leader) };
  }

  /** Waits until every peer answers, all name the same leader (one of them, which says it
   *  leads) in the same term, and each has applied what the leader had committed. */
  async waitHealthy(timeoutMs = WEFT_HEALTHY_TIMEOUT_MS): Promise<{ leader: Host; term: number }> {
    const deadline = now() + timeoutMs;
    let last = '';
    for (let i = 0; i < timeoutMs / HEALTH_POLL_MS + 1 && now() < deadline; i++) {
      for (const h of this.hosts) {
        if (h.peer && !h.peer.running) throw new Error(`${h.name}: weft peer exited (${JSON.stringify(h.peer.exit)}); see ${h.peer.logFile}`);
      }
      const all = await Promise.all(this.hosts.map((h) => this.status(h, 2_000).catch((e: Error) => e)));
      const bad = all.find((s): s is ControlUnavailable => s instanceof ControlUnavailable);
      if (bad) throw bad;
      const ok = all.filter((s): s is { id: string; manager: ManagerStatus } => !(s instanceof Error));
      last = all.map((s, k) => `${this.hosts[k]?.name}: ${s instanceof Error ? s.message : JSON.stringify(s.manager)}`).join('; ');
      if (ok.length === this.hosts.length) {
        const leaderId = ok[0]?.manager.leader ?? null;
        const leader = leaderId === null ? undefined : this.ids.get(leaderId);
        const ls = ok.find((s) => s.id === leaderId);
        if (leader && ls && ls.manager.role === 'leader' && ok.every((s) => s.manager.leader === leaderId && s.manager.term === ls.manager.term && s.manager.applied >= ls.manager.commit)) {
          return { leader, term: ls.manager.term };
        }
      }
      await sleep(HEALTH_POLL_MS);
    }
    throw new Error(`weft: managers not healthy with ${this.hosts.length} members after ${timeoutMs} ms: ${last}`);
  }

  /** SIGKILL `h`'s peer (our connection to it is closed first) and wait until it is reaped. */
  async kill(h: Host): Promise<void> {
    await this.dropClient(h);
    await h.kill();
  }

  /** SIGTERM to `h`'s peer; returns at once with a promise of its exit. */
  terminate(h: Host): Promise<void> {
    // Closed without waiting: the close is synchronous underneath (end + destroy).
    void this.dropClient(h);
    const p = h.peer;
    p?.signal('SIGTERM');
    return p ? p.exited.then(() => undefined) : Promise.resolve();
  }

  async awaitExit(h: Host): Promise<void> {
    await h.stop(WEFT_STOP_GRACE_MS);
  }

  async restart(h: Host): Promise<void> {
    await this.dropClient(h);
    await h.restart();
  }

  /** Closes the clients and stops every peer (SIGTERM, then SIGKILL). */
  async stop(): Promise<void> {
    for (const h of [...this.clients.keys()]) await this.dropClient(h);
    await Promise.all(this.hosts.filter((h) => h.peer?.running).map((h) => h.stop(WEFT_STOP_GRACE_MS).catch(() => undefined)));
  }

  private async dropClient(h: Host): Promise<void> {
    const c = this.clients.get(h);
    this.clients.delete(h);
    await c?.close().catch(() => undefined);
  }
}
