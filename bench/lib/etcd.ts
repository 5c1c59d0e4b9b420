// The etcd anchor of bench/control.ts: etcd 3 members (Debian's etcd-server) on harness hosts,
// and an in-process client of etcd's JSON gateway (grpc-gateway: POST /v3/kv/put,
// /v3/maintenance/status, JSON with base64 keys and values and uint64 fields as strings).
//
// Each member listens for clients on its host address (what the other members advertise) and
// on a unix socket in its host's directory: unix socket paths are not network-namespaced, so
// the bench process in the root namespace reaches every member directly, as it reaches weft's
// weft.sock, with no relay process in the path. etcd takes a unix listener only as
// `unix://NAME:PORT`, a path relative to its working directory, so each member is started
// through `sh -c 'cd DIR && exec etcd ...'` (the pid is still etcd's own). A killed member
// leaves its socket file behind and etcd 3.4 will not bind over it, so it is removed before
// every start.
//
// Members run with etcd's default timers, passed explicitly so they are the ones printed:
// heartbeat 100 ms, election timeout 1000 ms (and etcd 3.4's defaults otherwise: pre-vote off,
// every write synced to its WAL before it is acknowledged).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Host, HostProcess } from '../../test/harness/harness.ts';
import { now, sleep } from './time.ts';

export const ETCD_BIN = '/usr/bin/etcd';
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
export const ETCD_HEARTBEAT_MS = 100;
export const ETCD_ELECTION_MS = 1000;
/** A status or put answers in milliseconds on a healthy member; this only trips on a hang. */
export const ETCD_REQUEST_TIMEOUT_MS = 5_000;
/** How long a fresh or restarted cluster may take to agree on a leader on 2 loaded cores. */
export const ETCD_HEALTHY_TIMEOUT_MS = 60_000;
/** After SIGTERM: etcd transfers leadership and flushes; then SIGKILL. */
export const ETCD_STOP_GRACE_MS = 15_000;
const HEALTH_POLL_MS = 100;

/** `etcd --version`'s first line, or "etcd: not installed". */
export function etcdVersion(): string {
  const r = spawnSync(ETCD_BIN, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? (r.stdout.split('\n')[0] ?? '').trim() : `etcd: not available at ${ETCD_BIN} (apt-get install -y etcd-server)`;
}

/** What /v3/maintenance/status says, the uint64 strings as they are (ids do not fit a double). */
export interface EtcdStatus {
  memberId: string;
  /** "0" while the member knows no leader. */
  leader: string;
  term: number;
  /** Committed index. */
  raftIndex: number;
  raftAppliedIndex: number;
}

/** A gateway call failed: the member's error, an HTTP status, a time-out or the connection. */
export class EtcdError extends Error {}

/** POST `body` as JSON to `urlPath` on the unix socket; resolves with the parsed JSON answer. */
export function etcdPost(sock: string, urlPath: string, body: unknown, timeoutMs: number, agent?: http.Agent): Promise<Record<string, unknown>> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath: sock,
        path: urlPath,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
        agent: agent ?? false,
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (b: Buffer) => {
          size += b.length;
          if (size <= 1 << 20) chunks.push(b);
        });
        res.on('error', (e) => reject(new EtcdError(`etcd ${urlPath}: ${e.message}`)));
        res.on('end', () => {
          let json: Record<string, unknown>;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          } catch {
            reject(new EtcdError(`etcd ${urlPath}: HTTP ${res.statusCode}, not JSON: ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`));
            return;
          }
          if (res.statusCode !== 200 || json.error !== undefined) reject(new EtcdError(`etcd ${urlPath}: HTTP ${res.statusCode}: ${String(json.error ?? json.message ?? '')}`));
          else resolve(json);
        });
      },
    );
    req.on('error', (e) => reject(new EtcdError(e.name === 'AbortError' || e.name === 'TimeoutError' ? `etcd ${urlPath}: no answer within ${timeoutMs} ms` : `etcd ${urlPath}: ${e.message}`)));
    req.end(payload);
  });
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A put's answer: the term of the member that answered (its header's raft_term) and the revision. */
export interface EtcdPut {
  term: number;
  revision: number;
}

/** etcd members on a set of harness hosts, one per host, as one cluster. */
export class EtcdCluster {
  readonly hosts: readonly Host[];
  /** Names this cluster's data dir and socket: a second cluster on the same hosts gets its own. */
  private readonly tag: string;
  private readonly token: string;
  private readonly procs = new Map<Host, HostProcess>();
  private readonly agents = new Map<Host, http.Agent>();
  /** member_id (decimal string) -> host, learned from each member's own status. */
  private readonly ids = new Map<string, Host>();

  private constructor(hosts: readonly Host[], tag: string) {
    this.hosts = hosts;
    this.tag = tag;
    this.token = `weft-bench-${tag}-${process.pid}`;
  }

  /** Starts a member on every host and waits until all agree on a leader. */
  static async start(hosts: readonly Host[], tag = 'etcd'): Promise<EtcdCluster> {
    if (!fs.existsSync(ETCD_BIN)) throw new Error(`${ETCD_BIN} not found: apt-get install -y etcd-server (or bash scripts/setup.sh)`);
    const c = new EtcdCluster(hosts, tag);
    try {
      for (const h of hosts) await c.startMember(h);
      await c.waitHealthy();
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  /** The flags every member gets, for the bench's header. */
  static describe(): string {
    return `etcd members: --heartbeat-interval ${ETCD_HEARTBEAT_MS} --election-timeout ${ETCD_ELECTION_MS} (etcd's defaults; pre-vote off, as 3.4's default), clients on a unix socket through the JSON gateway`;
  }

  /** The client socket of `h`'s member (a path in the root namespace's filesystem). */
  sockPath(h: Host): string {
    return path.join(h.dir, `${this.tag}.sock:${ETCD_CLIENT_PORT}`);
  }

  dataDir(h: Host): string {
    return path.join(h.dir, this.tag);
  }

  process(h: Host): HostProcess | undefined {
    return this.procs.get(h);
  }

  /** Starts (or starts again, with the same data dir) `h`'s member; resolves once it runs. */
  async startMember(h: Host): Promise<HostProcess> {
    if (this.procs.get(h)?.running) throw new Error(`${h.name}: an etcd member is already running`);
    fs.rmSync(this.sockPath(h), { force: true });
    const cluster = this.hosts.map((o) => `${o.name}=http://${o.ip}:${ETCD_PEER_PORT}`).join(',');
    const argv = [
      ETCD_BIN,
      '--name', h.name,
      '--data-dir', this.dataDir(h),
      '--listen-peer-urls', `http://${h.ip}:${ETCD_PEER_PORT}`,
      '--initial-advertise-peer-urls', `http://${h.ip}:${ETCD_PEER_PORT}`,
      '--listen-client-urls', `http://${h.ip}:${ETCD_CLIENT_PORT},unix://${this.tag}.sock:${ETCD_CLIENT_PORT}`,
      '--advertise-client-urls', `http://${h.ip}:${ETCD_CLIENT_PORT}`,
      // Ignored once the data dir holds a member (a restart).
      '--initial-cluster', cluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', this.token,
      '--heartbeat-interval', String(ETCD_HEARTBEAT_MS),
      '--election-timeout', String(ETCD_ELECTION_MS),
      '--logger', 'zap',
      '--log-outputs', 'stderr',
    ];
    const p = await h.spawn(this.tag, ['sh', '-c', 'cd "$0" && exec "$@"', h.dir, ...argv]);
    this.procs.set(h, p);
    return p;
  }

  /** SIGKILL `h`'s member (a crash) and wait until it is reaped. */
  async kill(h: Host): Promise<void> {
    this.dropAgent(h);
    await this.procs.get(h)?.kill();
  }

  /** Sends SIGTERM to `h`'s member and returns at once (etcd then transfers leadership if it
   *  leads, and exits) with a promise of its exit, however long it takes; `awaitExit` waits
   *  for it bounded. */
  terminate(h: Host): Promise<void> {
    this.dropAgent(h);
    const p = this.procs.get(h);
    p?.signal('SIGTERM');
    return p ? p.exited.then(() => undefined) : Promise.resolve();
  }

  /** Waits (bounded) until `h`'s member has exited, SIGKILL after the grace period. */
  async awaitExit(h: Host): Promise<void> {
    await this.procs.get(h)?.stop(ETCD_STOP_GRACE_MS);
  }

  /** Starts `h`'s member again with its data dir. */
  async restart(h: Host): Promise<void> {
    const p = this.procs.get(h);
    if (p?.running) await p.stop(ETCD_STOP_GRACE_MS);
    await this.startMember(h);
  }

  /** /v3/maintenance/status of `h`'s member. */
  async status(h: Host, timeoutMs = ETCD_REQUEST_TIMEOUT_MS): Promise<EtcdStatus> {
    const j = await etcdPost(this.sockPath(h), '/v3/maintenance/status', {}, timeoutMs, this.agent(h));
    const header = (j.header ?? {}) as Record<string, unknown>;
    const s: EtcdStatus = {
      memberId: String(header.member_id ?? ''),
      leader: String(j.leader ?? '0'),
      term: Number(j.raftTerm ?? header.raft_term ?? NaN),
      raftIndex: Number(j.raftIndex ?? NaN),
      raftAppliedIndex: Number(j.raftAppliedIndex ?? NaN),
    };
    if (s.memberId !== '') this.ids.set(s.memberId, h);
    return s;
  }

  /** A put through `h`'s member (linearizable: it answers once committed and applied). */
  async put(h: Host, key: string, value: string, timeoutMs = ETCD_REQUEST_TIMEOUT_MS, agent?: http.Agent): Promise<EtcdPut> {
    const j = await etcdPost(this.sockPath(h), '/v3/kv/put', { key: b64(key), value: b64(value) }, timeoutMs, agent ?? this.agent(h));
    const header = (j.header ?? {}) as Record<string, unknown>;
    return { term: Number(header.raft_term ?? NaN), revision: Number(header.revision ?? NaN) };
  }

  /** The current term as `h` sees it. */
  async term(h: Host): Promise<number> {
    return (await this.status(h, 2_000)).term;
  }

  /** `h`'s term and the host it names leader (undefined while it knows none). */
  async view(h: Host): Promise<{ term: number; leader: Host | undefined }> {
    const s = await this.status(h, 2_000);
    return { term: s.term, leader: s.leader === '0' ? undefined : this.ids.get(s.leader) };
  }

  /** Waits until every host's member answers, all name the same leader (one of them), and
   *  every member has applied what the leader had committed in the same round: the cluster
   *  is whole again. Resolves with the leader's host and term. */
  async waitHealthy(timeoutMs = ETCD_HEALTHY_TIMEOUT_MS): Promise<{ leader: Host; term: number }> {
    const deadline = now() + timeoutMs;
    let last = '';
    for (let i = 0; i < timeoutMs / HEALTH_POLL_MS + 1 && now() < deadline; i++) {
      for (const h of this.hosts) {
        const p = this.procs.get(h);
        if (p && !p.running) throw new Error(`${h.name}: etcd exited (${JSON.stringify(p.exit)}); see ${p.logFile}`);
      }
      const all = await Promise.all(this.hosts.map((h) => this.status(h, 1_000).catch((e: Error) => e)));
      const ok = all.filter((s): s is EtcdStatus => !(s instanceof Error));
      last = all.map((s, k) => `${this.hosts[k]?.name}: ${s instanceof Error ? s.message : `leader ${s.leader} term ${s.term} commit ${s.raftIndex} applied ${s.raftAppliedIndex}`}`).join('; ');
      if (ok.length === this.hosts.length) {
        const leaderId = ok[0]?.leader ?? '0';
        const leader = this.ids.get(leaderId);
        const leaderStatus = ok.find((s) => s.memberId === leaderId);
        if (leaderId !== '0' && leader && leaderStatus && ok.every((s) => s.leader === leaderId && s.term === leaderStatus.term && s.raftAppliedIndex >= leaderStatus.raftIndex)) {
          return { leader, term: leaderStatus.term };
        }
      }
      await sleep(HEALTH_POLL_MS);
    }
    throw new Error(`etcd: not healthy with ${this.hosts.length} members after ${timeoutMs} ms: ${last}`);
  }

  /** The current leader (the host whose member names itself leader), if the members agree. */
  async leader(): Promise<{ leader: Host; term: number }> {
    return this.waitHealthy();
  }

  /** Kills every member (SIGKILL: the harness's cleanup would too) and closes connections. */
  async stop(): Promise<void> {
    for (const h of this.hosts) this.dropAgent(h);
    await Promise.all([...this.procs.values()].map((p) => p.kill().catch(() => undefined)));
  }

  /** A keep-alive connection pool to `h`'s member, made on first use and dropped when the
   *  member is stopped (its sockets die with it). */
  agent(h: Host): http.Agent {
    let a = this.agents.get(h);
    if (a === undefined) {
      a = new http.Agent({ keepAlive: true, maxSockets: 64 });
      this.agents.set(h, a);
    }
    return a;
  }

  private dropAgent(h: Host): void {
    this.agents.get(h)?.destroy();
    this.agents.delete(h);
  }
}
