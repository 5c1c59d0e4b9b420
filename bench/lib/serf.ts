// The Serf anchor: Serf agents in the harness's host namespaces, and an in-process client of
// Serf's RPC protocol (msgpack over a stream; see command/agent/ipc.go in hashicorp/serf).
// Each host gets `serf agent` bound to its address and a forwarder (serf-forward.ts) from a
// unix socket in its directory to the agent's RPC port on the namespace's loopback.
//
// Serf runs with its defaults (the "lan" profile: 1 s probe interval, suspicion multiplier 4,
// 200 ms gossip interval) and with encryption on, since weft's mesh is always encrypted.
import crypto from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Host, HostProcess } from '../../test/harness/harness.ts';
import { encode, Reader, type Value } from './msgpack.ts';
import { now, sleep, withTimeout } from './time.ts';

export const SERF_BIN = 'serf';
/** Serf's default gossip port. */
export const SERF_PORT = 7946;
/** Serf's default RPC address; each namespace has its own loopback. */
export const SERF_RPC_ADDR = '127.0.0.1:7373';
/** A Serf RPC answers in milliseconds; this only trips on a hung agent. */
export const RPC_TIMEOUT_MS = 10_000;
/** How long an agent or forwarder may take to come up on 2 loaded cores. */
export const START_TIMEOUT_MS = 30_000;

const FORWARDER = fileURLToPath(new URL('./serf-forward.ts', import.meta.url));

export interface SerfMember {
  Name: string;
  Status: string;
}

/** One record of a `stream` subscription, with the time it reached this process. */
export interface StreamRecord {
  at: number;
  body: { [k: string]: Value };
}

interface Pending {
  hasBody: boolean;
  resolve: (body: Value) => void;
  reject: (e: Error) => void;
}

/** A Serf RPC connection (through the forwarder's unix socket). */
export class SerfRpc {
  private seq = 0;
  private readonly sock: net.Socket;
  private readonly reader = new Reader();
  private readonly pending = new Map<number, Pending>();
  private readonly streams = new Map<number, (r: StreamRecord) => void>();
  /** Set between a header and the body that follows it. */
  private awaiting: { deliver: (body: Value) => void } | undefined;
  private closedErr: Error | undefined;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.setNoDelay?.(true);
    sock.on('data', (chunk: Buffer) => {
      const at = now();
      try {
        this.reader.push(chunk);
        for (let v = this.reader.next(); v !== undefined; v = this.reader.next()) this.onValue(v, at);
      } catch (e) {
        this.fail(new Error(`serf rpc: bad reply: ${(e as Error).message}`));
      }
    });
    sock.on('error', (e) => this.fail(new Error(`serf rpc: ${e.message}`)));
    sock.on('close', () => this.fail(new Error('serf rpc: connection closed')));
  }

  /** Connects to the unix socket and performs the handshake. */
  static async connect(sockPath: string): Promise<SerfRpc> {
    const sock = net.connect(sockPath);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
      }),
      RPC_TIMEOUT_MS,
      `connect to ${sockPath}`,
    ).catch((e: unknown) => {
      sock.destroy();
      throw e;
    });
    sock.removeAllListeners('error');
    const rpc = new SerfRpc(sock);
    try {
      await rpc.request('handshake', { Version: 1 }, false);
    } catch (e) {
      rpc.close();
      throw e;
    }
    return rpc;
  }

  /** Sends a user event (not coalesced). Resolves once the local agent accepted it. */
  async event(name: string, payload: string): Promise<void> {
    await this.request('event', { Name: name, Payload: Buffer.from(payload), Coalesce: false }, false);
  }

  async members(): Promise<SerfMember[]> {
    const body = (await this.request('members', null, true)) as { Members?: SerfMember[] };
    return body.Members ?? [];
  }

  /** Asks the agent to join these addresses ("ip:port"); resolves with how many it reached. */
  async join(addrs: string[]): Promise<number> {
    const body = (await this.request('join', { Existing: addrs, Replay: false }, true)) as { Num?: number };
    return body.Num ?? 0;
  }

  /** Subscribes to events matching `filter` ("user:NAME", "member-failed", ...); `onRecord`
   *  gets each with its arrival time. Resolves once the agent acknowledged. */
  async stream(filter: string, onRecord: (r: StreamRecord) => void): Promise<void> {
    // Registered before the request: records can follow the acknowledgement in one read.
    this.streams.set(this.seq, onRecord);
    await this.request('stream', { Type: filter }, false);
  }

  close(): void {
    this.fail(new Error('serf rpc: closed by the bench'));
  }

  private request(command: string, body: Value, hasBody: boolean): Promise<Value> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    const seq = this.seq++;
    const p = new Promise<Value>((resolve, reject) => this.pending.set(seq, { hasBody, resolve, reject }));
    this.sock.write(body === null ? encode({ Command: command, Seq: seq }) : Buffer.concat([encode({ Command: command, Seq: seq }), encode(body)]));
    return withTimeout(p, RPC_TIMEOUT_MS, `serf rpc ${command}`);
  }

  private onValue(v: Value, at: number): void {
    if (this.awaiting) {
      const { deliver } = this.awaiting;
      this.awaiting = undefined;
      deliver(v);
      return;
    }
    const h = v as { Seq?: number; Error?: string };
    const seq = h.Seq ?? -1;
    const err = h.Error ? new Error(`serf rpc: ${h.Error}`) : undefined;
    const p = this.pending.get(seq);
    if (p) {
      this.pending.delete(seq);
      // Replies with a body (members, join) carry it even with an error.
      if (p.hasBody) this.awaiting = { deliver: (body) => (err ? p.reject(err) : p.resolve(body)) };
      else if (err) p.reject(err);
      else p.resolve(null);
      return;
    }
    const onRecord = this.streams.get(seq);
    if (onRecord) {
      this.awaiting = { deliver: (body) => onRecord({ at, body: body as { [k: string]: Value } }) };
      return;
    }
    this.fail(new Error(`serf rpc: reply for unknown sequence ${seq}`));
  }

  private fail(e: Error): void {
    if (this.closedErr) return;
    this.closedErr = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    this.streams.clear();
    this.sock.destroy();
  }
}

/** Serf agents on a set of harness hosts; the first is the others' join address. */
export class SerfMesh {
  readonly hosts: readonly Host[];
  private readonly key = crypto.randomBytes(32).toString('base64');
  private readonly agents = new Map<Host, HostProcess>();
  private readonly forwarders = new Map<Host, HostProcess>();

  private constructor(hosts: readonly Host[]) {
    this.hosts = hosts;
  }

  /** Starts a forwarder and an agent on every host and waits until all see all alive. */
  static async start(hosts: readonly Host[]): Promise<SerfMesh> {
    const m = new SerfMesh(hosts);
    for (const h of hosts) m.forwarders.set(h, await h.spawn('serf-forward', [process.execPath, '--disable-warning=ExperimentalWarning', FORWARDER, m.sockPath(h), SERF_RPC_ADDR]));
    for (const h of hosts) await m.startAgent(h);
    await m.waitConverged();
    return m;
  }

  sockPath(h: Host): string {
    return path.join(h.dir, 'serf-rpc.sock');
  }

  agent(h: Host): HostProcess | undefined {
    return this.agents.get(h);
  }

  /** `serf agent` on `h`; all but the first host retry-join the first every second. */
  async startAgent(h: Host): Promise<HostProcess> {
    if (this.agents.get(h)?.running) throw new Error(`${h.name}: a serf agent is already running`);
    const first = this.hosts[0] as Host;
    const argv = [
      SERF_BIN,
      'agent',
      `-node=${h.name}`,
      `-bind=${h.ip}:${SERF_PORT}`,
      `-rpc-addr=${SERF_RPC_ADDR}`,
      `-encrypt=${this.key}`,
      '-log-level=info',
      ...(h === first ? [] : [`-retry-join=${first.ip}:${SERF_PORT}`, '-retry-interval=1s']),
    ];
    const p = await h.spawn('serf', argv);
    this.agents.set(h, p);
    return p;
  }

  /** SIGKILL the agent on `h` and wait until it is reaped. */
  async killAgent(h: Host): Promise<void> {
    await this.agents.get(h)?.kill();
  }

  /** A new RPC connection to `h`'s agent, retried while the agent or forwarder starts. */
  async rpc(h: Host, timeoutMs = START_TIMEOUT_MS): Promise<SerfRpc> {
    const deadline = now() + timeoutMs;
    let last: unknown;
    for (let i = 0; i < timeoutMs / 100 + 1 && now() < deadline; i++) {
      const agent = this.agents.get(h);
      if (agent && !agent.running) throw new Error(`${h.name}: serf agent exited (${JSON.stringify(agent.exit)}); see ${agent.logFile}`);
      try {
        return await SerfRpc.connect(this.sockPath(h));
      } catch (e) {
        last = e;
      }
      await sleep(100);
    }
    throw new Error(`${h.name}: cannot reach the serf agent within ${timeoutMs} ms: ${(last as Error)?.message}`);
  }

  /** Member states as `h` sees them, by name. */
  async states(h: Host): Promise<Map<string, string>> {
    const rpc = await this.rpc(h);
    try {
      return new Map((await rpc.members()).map((m) => [m.Name, m.Status]));
    } finally {
      rpc.close();
    }
  }

  /** Waits until every host sees every host (itself included) alive. */
  async waitConverged(timeoutMs = START_TIMEOUT_MS * 2): Promise<void> {
    const deadline = now() + timeoutMs;
    for (const h of this.hosts) {
      let last = '';
      for (let i = 0; ; i++) {
        const states = await this.states(h).catch((e: Error) => new Map([['error', e.message]]));
        if (this.hosts.every((o) => states.get(o.name) === 'alive')) break;
        last = JSON.stringify([...states]);
        if (now() > deadline || i > timeoutMs / 200) throw new Error(`serf: ${h.name} does not see all ${this.hosts.length} agents alive after ${timeoutMs} ms: ${last}`);
        await sleep(200);
      }
    }
  }

  /** Kills every agent and forwarder (the harness's cleanup would too). */
  async stop(): Promise<void> {
    await Promise.all([...this.agents.values(), ...this.forwarders.values()].map((p) => p.kill().catch(() => undefined)));
  }
}
