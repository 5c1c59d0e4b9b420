// Clients that write and read desired state through every peer while a test breaks things,
// recording what they did for the checks afterwards: a history of register operations for the
// linearizability checker, and every acknowledged unique write, which must then be on every
// manager exactly once (version 1: a write applied twice would be version 2).
import { ApiClient } from '../../mesh/api/client.ts';
import type { Host } from '../harness/harness.ts';
import type { KvOperation } from '../linearizability.ts';

/** One try: the peer retries on the next leader for 10 s itself; this only catches a hang. */
const CALL_TIMEOUT_MS = 15_000;
/** Shared registers change every few seconds, so each key's history stays small enough for
 *  the checker (tens of operations). */
const EPOCH_MS = 3000;
const REGISTERS_PER_EPOCH = 2;
/** Between operations of one client: a steady stream without saturating 2 cores. */
const PAUSE_MS = 30;

export interface ClientRecord {
  history: KvOperation[];
  /** Unique writes acknowledged: name -> value. */
  acked: Map<string, string>;
  /** Writes that failed or timed out (may or may not have applied). */
  failed: number;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error('client timeout')), ms); })]).finally(() => clearTimeout(timer));
}

export class ManagerClients {
  readonly record: ClientRecord = { history: [], acked: new Map(), failed: 0 };
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly t0 = Date.now();
  private readonly hosts: readonly Host[];

  constructor(hosts: readonly Host[]) {
    this.hosts = hosts;
  }

  start(): void {
    this.running = true;
    this.loops = this.hosts.map((h, i) => this.loop(h, `c${i + 1}`));
  }

  async stop(): Promise<ClientRecord> {
    this.running = false;
    await Promise.all(this.loops);
    return this.record;
  }

  /** Acknowledged writes so far. */
  get ackedCount(): number {
    return this.record.acked.size;
  }

  private async loop(h: Host, name: string): Promise<void> {
    let c: ApiClient | undefined;
    let seq = 0;
    // Bounded: at most one operation per PAUSE_MS over the longest test.
    for (let i = 0; i < 100_000 && this.running; i++) {
      try {
        c ??= await withTimeout(ApiClient.local(h.dataDir), 2000);
      } catch {
        c = undefined;
        await sleep(200);
        continue;
      }
      const epoch = Math.floor((Date.now() - this.t0) / EPOCH_MS);
      const key = `reg-${epoch}-${i % REGISTERS_PER_EPOCH}`;
      try {
        if (i % 3 === 0) await this.unique(c, `${name}-${++seq}`);
        else if (i % 3 === 1) await this.put(c, name, key, `${name}:${i}`);
        else await this.get(c, name, key);
      } catch (err) {
        if (/socket|closed|ECONNREFUSED|ENOENT|EPIPE|client timeout/i.test((err as Error).message)) {
          await c.close().catch(() => undefined);
          c = undefined;
        }
      }
      await sleep(PAUSE_MS);
    }
    await c?.close().catch(() => undefined);
  }

  private async unique(c: ApiClient, name: string): Promise<void> {
    const value = `v-${name}`;
    try {
      await withTimeout(c.raw('config.set', { name: `ack-${name}`, value }), CALL_TIMEOUT_MS);
      this.record.acked.set(`ack-${name}`, value);
    } catch (err) {
      this.record.failed++;
      throw err;
    }
  }

  private async put(c: ApiClient, client: string, key: string, value: string): Promise<void> {
    const op: KvOperation = { client, kind: 'put', key, value, invoked: now() };
    this.record.history.push(op);
    try {
      await withTimeout(c.raw('config.set', { name: key, value }), CALL_TIMEOUT_MS);
      op.returned = now();
    } catch (err) {
      this.record.failed++;
      throw err;
    }
  }

  private async get(c: ApiClient, client: string, key: string): Promise<void> {
    const op: KvOperation = { client, kind: 'get', key, invoked: now() };
    try {
      const r = (await withTimeout(c.raw('config.get', { name: key, consistent: true }), CALL_TIMEOUT_MS)) as { value: string };
      op.output = r.value;
      op.returned = now();
      this.record.history.push(op);
    } catch (err) {
      if (/does not exist/.test((err as Error).message)) {
        op.output = null;
        op.returned = now();
        this.record.history.push(op);
        return;
      }
      throw err;
    }
  }
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
