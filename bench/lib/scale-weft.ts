// weft for bench/scale.ts: N peers launched directly with `bin/weft launch` on 127.0.1.I (the
// recipe the scale figures were first taken with: no namespaces, mesh only), and one
// in-process API client per peer on its unix socket (mesh/api/client.ts), which carries the status polls, the `events` follow
// stream the deaths come from, and the kv writes and reads. No CLI process is started: a
// Node start costs ~0.3 s of CPU, which N of them per poll round would take from the peers.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../../mesh/api/client.ts';
import * as meshApi from '../../mesh/api/contract.ts';
import type { KvValue } from '../../mesh/api/contract.ts';
import type { Death, Fleet, Member } from './scale-fleet.ts';
import { killAll, logTail, mapLimit, spawnTracked } from './scale-procs.ts';
import { now, sleep, withTimeout } from './time.ts';
import { API_TIMEOUT_MS, call } from './weft.ts';

const WEFT_BIN = fileURLToPath(new URL('../../bin/weft', import.meta.url));
/** weft's default mesh port, on each peer's own 127.0.1.I. */
const WEFT_PORT = 6783;
/** Between connection attempts while a peer starts: its socket appears within seconds. */
const CONNECT_RETRY_MS = 100;
/** A write's polls slow down as it takes longer: the period is at least the elapsed time
 *  over this, so the figure stays within ~10% while a write that takes seconds (a saturated
 *  mesh) does not have N peers answering kv.get every --poll ms throughout. */
const POLL_RESOLUTION = 10;

export interface WeftOptions {
  dir: string;
  n: number;
  /** Between kv.get rounds over the peers that have not seen a write yet, at first. */
  pollMs: number;
  /** kv.get calls in flight at once, so that a round does not burst N requests. */
  concurrency: number;
}

/** What `bin/weft` runs, decided as it decides: dist/ while it is newer than every source,
 *  else the sources through type stripping, which costs each peer ~20 MB and some CPU
 *  (scripts/setup.sh). A figure compares only with one taken from the same kind of entry.
 *  (The peer's /proc/<pid>/cmdline cannot tell: it renames itself.) */
function weftEntry(): string {
  const root = path.dirname(path.dirname(WEFT_BIN));
  const stale = spawnSync('find', ['mesh', 'cli', 'dns', 'scheduler', 'provisioner', '-name', '*.ts', '-newer', 'dist/.stamp', '-print', '-quit'], { cwd: root, encoding: 'utf8', timeout: 10_000 });
  return fs.existsSync(path.join(root, 'dist/.stamp')) && stale.stdout.trim() === ''
    ? 'peers run the compiled dist/'
    : 'peers run the TypeScript sources (dist/ is missing or older than them: run scripts/setup.sh to compare with a build)';
}

export class WeftFleet implements Fleet {
  readonly system = 'weft';
  readonly members: readonly Member[];
  // The peer's own log lines for its membership events (mesh/peer.ts onMemberEvent): one
  // per transition of a member to suspect or to dead.
  readonly suspectLine = /msg="peer suspect"/;
  readonly deadLine = /msg="peer dead"/;
  readonly suspectMeaning = 'a member turned suspect';
  readonly deaths: Death[] = [];
  private readonly o: WeftOptions;
  private readonly clients = new Map<Member, ApiClient>();
  private readonly passwordFile: string;
  private readonly runId = `${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  private entry = 'not started';

  constructor(o: WeftOptions) {
    this.o = o;
    this.members = Array.from({ length: o.n }, (_, k) => ({ index: k + 1, name: `p${k + 1}`, ip: `127.0.1.${k + 1}`, proc: undefined }));
    this.passwordFile = path.join(o.dir, 'password');
    fs.writeFileSync(this.passwordFile, crypto.randomBytes(18).toString('base64'), { mode: 0o600 });
  }

  private dataDir(m: Member): string {
    return path.join(this.o.dir, m.name);
  }

  spawn(m: Member): void {
    const first = this.members[0] as Member;
    if (m === first) this.entry = weftEntry();
    const args = [
      'launch', '--data-dir', this.dataDir(m), '--listen', `${m.ip}:${WEFT_PORT}`, '--name', m.name,
      '--password-file', this.passwordFile, '--no-dataplane', '--dns-listen', 'off', '--metrics-listen', 'off', '--plugin-name', 'off',
      ...(m === first ? [] : ['--peers', `${first.ip}:${WEFT_PORT}`]),
    ];
    m.proc = spawnTracked(m.name, WEFT_BIN, args, path.join(this.o.dir, `${m.name}.log`));
  }

  async connect(m: Member, timeoutMs: number): Promise<void> {
    const deadline = now() + timeoutMs;
    let last: unknown;
    for (let i = 0; i < timeoutMs / CONNECT_RETRY_MS + 1 && now() < deadline; i++) {
      if (m.proc?.exit !== undefined) throw new Error(`${m.name} exited (${m.proc.exit}); its log ends: ${logTail(m.proc.logFile)}`);
      try {
        const c = await withTimeout(ApiClient.local(this.dataDir(m)), API_TIMEOUT_MS, `connect to ${m.name}'s API`);
        // Answered once: the API is serving, not only listening.
        await call(c, meshApi.status, {});
        this.clients.set(m, c);
        // Replays the history first, then follows; ends when the peer dies or the bench
        // closes the client.
        c.call(meshApi.events, { follow: true }, (e) => {
          const ev = e;
          if (ev.type === 'dead' && ev.peer) this.deaths.push({ at: now(), observer: m.name, name: ev.peer.name });
        }).catch(() => undefined);
        return;
      } catch (e) {
        last = e;
      }
      await sleep(CONNECT_RETRY_MS);
    }
    throw new Error(`${m.name}: API not answering within ${timeoutMs} ms: ${(last as Error)?.message}`);
  }

  private client(m: Member): ApiClient {
    const c = this.clients.get(m);
    if (!c) throw new Error(`${m.name}: not connected`);
    return c;
  }

  async aliveOthers(m: Member): Promise<number> {
    // `status` counts the member table, which holds every peer but this one; its reply is a
    // few hundred bytes where `peers` is ~300 bytes per member.
    const s = await call(this.client(m), meshApi.status, {});
    return s.peers.alive;
  }

  async view(m: Member): Promise<Map<string, string>> {
    const peers = await call(this.client(m), meshApi.peers, {});
    return new Map(peers.map((p) => [p.name, p.state]));
  }

  async write(i: number, timeoutMs: number): Promise<number> {
    const n = this.members.length;
    const writer = this.members[i % n] as Member;
    const key = `bench/scale/${this.runId}/${i}`;
    const value = `${this.runId}-${i}`;
    const seenAt = new Map<Member, number>();
    const t0 = now();
    const put = call(this.client(writer), meshApi.kvPut, { key, value }).catch((e: Error) => e);
    for (let round = 0; round < timeoutMs / this.o.pollMs + 1 && seenAt.size < n && now() - t0 < timeoutMs; round++) {
      const roundStart = now();
      const unseen = this.members.filter((m) => !seenAt.has(m));
      await mapLimit(unseen, this.o.concurrency, async (m) => {
        const entries = await call(this.client(m), meshApi.kvGet, { key }).catch(() => [] as KvValue[]);
        if (entries.some((e) => e.value === value)) seenAt.set(m, now());
      });
      const period = Math.max(this.o.pollMs, (now() - t0) / POLL_RESOLUTION);
      await sleep(Math.max(0, period - (now() - roundStart)));
    }
    const err = await put;
    if (err instanceof Error) throw new Error(`weft kv.put on ${writer.name}: ${err.message}`);
    return seenAt.size === n ? Math.max(...seenAt.values()) - t0 : NaN;
  }

  describe(): string {
    return this.entry;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close().catch(() => undefined)));
    this.clients.clear();
    await killAll();
  }
}

