// Serf for bench/scale.ts, run the same way as weft: N `serf agent`s on 127.0.1.I in the root
// namespace, each with its RPC on 127.0.1.I:7373. The bench talks RPC in-process with
// lib/serf.ts's SerfRpc, which dials a unix socket (it was made for agents in harness
// namespaces, behind serf-forward.ts); here a relay inside the bench process forwards one
// unix socket per agent to its RPC port, so that client is reused as it is.
import crypto from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import type { Death, Fleet, Member } from './scale-fleet.ts';
import { killAll, logTail, spawnTracked } from './scale-procs.ts';
import { SERF_BIN, SERF_PORT, SerfRpc, type StreamRecord } from './serf.ts';
import { now, sleep } from './time.ts';

/** Serf's default RPC port, on each agent's own 127.0.1.I. */
const SERF_RPC_PORT = 7373;
/** Between connection attempts while an agent starts (it is up in well under a second). */
const CONNECT_RETRY_MS = 100;
/** The user event's name: the stream subscribes to "user:" + this. */
const EVENT_NAME = 'bench';
/** Between checks of whether every agent has had the event: the arrivals are pushed and
 *  stamped when they arrive, so this only bounds how soon the trial ends. */
const ARRIVAL_CHECK_MS = 2;

/** A unix socket in the bench process relaying to a TCP address (serf-forward.ts, in-process). */
function relay(sockPath: string, host: string, port: number): Promise<net.Server> {
  const server = net.createServer((client) => {
    const upstream = net.connect({ host, port });
    upstream.setNoDelay(true);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', close);
      s.on('close', close);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(sockPath, () => resolve(server));
  });
}

export class SerfFleet implements Fleet {
  readonly system = 'serf';
  readonly members: readonly Member[];
  // memberlist logs one line per failed probe ("Suspect s3 has failed, no acks received"),
  // so a suspicion that lasts several probes counts several times; serf logs one line per
  // member declared failed.
  readonly suspectLine = /memberlist: Suspect /;
  readonly deadLine = /serf: EventMemberFailed: /;
  readonly suspectMeaning = 'a probe failed (memberlist: Suspect …)';
  readonly deaths: Death[] = [];
  private readonly dir: string;
  /** Serf's encryption, on as weft's always is. */
  private readonly key = crypto.randomBytes(32).toString('base64');
  private readonly rpcs = new Map<Member, SerfRpc>();
  private readonly relays: net.Server[] = [];
  /** Arrival time of each user event's payload, per member. */
  private readonly arrivals = new Map<string, Map<Member, number>>();
  private readonly runId = `${process.pid}-${crypto.randomBytes(3).toString('hex')}`;

  constructor(dir: string, n: number) {
    this.dir = dir;
    this.members = Array.from({ length: n }, (_, k) => ({ index: k + 1, name: `s${k + 1}`, ip: `127.0.1.${k + 1}`, proc: undefined }));
  }

  spawn(m: Member): void {
    const first = this.members[0] as Member;
    const args = [
      'agent', `-node=${m.name}`, `-bind=${m.ip}:${SERF_PORT}`, `-rpc-addr=${m.ip}:${SERF_RPC_PORT}`, `-encrypt=${this.key}`, '-log-level=info',
      // A plain -join that fails makes the agent exit; the retry interval's default is 30 s.
      ...(m === first ? [] : [`-retry-join=${first.ip}:${SERF_PORT}`, '-retry-interval=1s']),
    ];
    m.proc = spawnTracked(m.name, SERF_BIN, args, path.join(this.dir, `${m.name}.log`));
  }

  async connect(m: Member, timeoutMs: number): Promise<void> {
    const sock = path.join(this.dir, `${m.name}.rpc.sock`);
    this.relays.push(await relay(sock, m.ip, SERF_RPC_PORT));
    const deadline = now() + timeoutMs;
    let last: unknown;
    for (let i = 0; i < timeoutMs / CONNECT_RETRY_MS + 1 && now() < deadline; i++) {
      if (m.proc?.exit !== undefined) throw new Error(`${m.name} exited (${m.proc.exit}); its log ends: ${logTail(m.proc.logFile)}`);
      try {
        const rpc = await SerfRpc.connect(sock);
        this.rpcs.set(m, rpc);
        await rpc.stream('member-failed', (r: StreamRecord) => {
          for (const f of (r.body.Members ?? []) as { Name?: string }[]) this.deaths.push({ at: r.at, observer: m.name, name: String(f.Name) });
        });
        await rpc.stream(`user:${EVENT_NAME}`, (r: StreamRecord) => {
          const p = r.body.Payload;
          const seen = this.arrivals.get(Buffer.isBuffer(p) ? p.toString('utf8') : String(p));
          if (seen && !seen.has(m)) seen.set(m, r.at);
        });
        return;
      } catch (e) {
        last = e;
        this.rpcs.get(m)?.close();
        this.rpcs.delete(m);
      }
      await sleep(CONNECT_RETRY_MS);
    }
    throw new Error(`${m.name}: RPC not answering within ${timeoutMs} ms: ${(last as Error)?.message}`);
  }

  private rpc(m: Member): SerfRpc {
    const r = this.rpcs.get(m);
    if (!r) throw new Error(`${m.name}: not connected`);
    return r;
  }

  async aliveOthers(m: Member): Promise<number> {
    return (await this.rpc(m).members()).filter((x) => x.Status === 'alive' && x.Name !== m.name).length;
  }

  async view(m: Member): Promise<Map<string, string>> {
    return new Map((await this.rpc(m).members()).map((x) => [x.Name, x.Status]));
  }

  async write(i: number, timeoutMs: number): Promise<number> {
    const n = this.members.length;
    const origin = this.members[i % n] as Member;
    const payload = `${this.runId}-${i}`;
    const seen = new Map<Member, number>();
    this.arrivals.set(payload, seen);
    try {
      const t0 = now();
      // Serf delivers a user event to its origin too, so all N are waited for, as with weft.
      await this.rpc(origin).event(EVENT_NAME, payload);
      for (let k = 0; k < timeoutMs / ARRIVAL_CHECK_MS && seen.size < n && now() - t0 < timeoutMs; k++) await sleep(ARRIVAL_CHECK_MS);
      return seen.size === n ? Math.max(...seen.values()) - t0 : NaN;
    } finally {
      this.arrivals.delete(payload);
    }
  }

  describe(): string {
    return `agents run ${SERF_BIN} agent (profile lan, encrypted)`;
  }

  async stop(): Promise<void> {
    for (const r of this.rpcs.values()) r.close();
    this.rpcs.clear();
    await killAll();
    await Promise.all(this.relays.map((s) => new Promise((resolve) => s.close(resolve))));
    this.relays.length = 0;
  }
}
