// The main thread's side of the UDP worker threads (the threads themselves are
// udp-worker.ts): starting them, replacing one that dies or a whole set when an address is
// added, passing them record patches, carrying their questions to the server's forwarder and
// the replies back, and stopping them. With workers, UDP is answered nowhere else, so a dead
// worker is always replaced.

import { Worker } from 'node:worker_threads';
import { errorText, logger } from '../mesh/log.ts';
import { listenError } from './listen-error.ts';
import { STAT_SLOTS, handlerFailed } from './udp.ts';
import { type FromWorker, type ToWorker, WORKER_KIND, type WorkerInit } from './udp-worker.ts';

/** A worker that has not closed its sockets by then is terminated. */
const WORKER_STOP_MS = 2_000;
/** Before a dead worker is replaced: a crash loop costs a log line a second, not a core. */
const WORKER_RESTART_MS = 1_000;

const log = logger('dns');

/**
 * The worker thread's module, beside the module at `here`, in the same form: udp-worker.ts
 * when the peer runs its TypeScript sources, udp-worker.js when it runs the compiled dist/.
 * tsc rewrites the extensions of import specifiers (rewriteRelativeImportExtensions), not of
 * a URL in a string, so a fixed './udp-worker.ts' names a file dist/ does not have.
 */
export function udpWorkerUrl(here: string): URL {
  return new URL(new URL(here).pathname.endsWith('.ts') ? './udp-worker.ts' : './udp-worker.js', here);
}

export interface UdpWorkerPoolOptions {
  /** Threads to run (0: none, UDP is answered on the main thread). */
  size: number;
  /** What a new worker starts from, read when it starts: the addresses bound and the records
   *  applied at that moment (later patches are relative to them). */
  init: () => Omit<WorkerInit, 'kind' | 'counters'>;
  /** A question a worker's zone does not answer; `reply` sends the answer from that worker's
   *  socket. */
  ask: (msg: Buffer, limit: number, reply: (bytes: Buffer) => void) => void;
}

export class UdpWorkerPool {
  readonly size: number;
  private readonly opts: UdpWorkerPoolOptions;
  private readonly workers: Worker[] = [];
  /** Workers being replaced on purpose: their exit starts no other. */
  private readonly retiring = new Set<Worker>();
  /** Every worker's counters, kept after it exits so that totals never go down. */
  private readonly workerCounters: Float64Array[] = [];
  private stopped = false;

  constructor(opts: UdpWorkerPoolOptions) {
    this.opts = opts;
    this.size = opts.size;
  }

  /** Workers running now. */
  get running(): number {
    return this.workers.length;
  }

  /** The counters of every worker started so far (udp.ts's STAT slots). */
  counters(): readonly Float64Array[] {
    return this.workerCounters;
  }

  /** Starts `size` workers, one after the other; rejects with one sentence if one cannot
   *  bind its addresses (those started already keep running: stop() ends them). */
  async start(): Promise<void> {
    for (let i = 0; i < this.size; i++) await this.startWorker();
  }

  /** Replaces every worker with a new one bound to the addresses of now (SO_REUSEPORT lets
   *  both sets serve while they change over). */
  async renew(): Promise<void> {
    const old = [...this.workers];
    for (const w of old) this.retiring.add(w);
    await this.start();
    await Promise.all(old.map((w) => stopWorker(w)));
  }

  /** Sends a message to every running worker. */
  post(m: ToWorker): void {
    for (const w of this.workers) w.postMessage(m);
  }

  /** Stops every worker; resolves when all have exited. */
  stop(): Promise<void> {
    this.stopped = true;
    return Promise.all([...this.workers].map((w) => stopWorker(w))).then(() => {});
  }

  private startWorker(): Promise<void> {
    const counters = new SharedArrayBuffer(STAT_SLOTS * Float64Array.BYTES_PER_ELEMENT);
    const init: WorkerInit = { kind: WORKER_KIND, ...this.opts.init(), counters };
    const worker = new Worker(udpWorkerUrl(import.meta.url), { workerData: init, name: 'weft-dns-udp' });
    this.workers.push(worker);
    this.workerCounters.push(new Float64Array(counters));
    return new Promise((resolve, rejectStart) => {
      let ready = false;
      const reject = (err: Error) => {
        void worker.terminate().catch(() => {});
        rejectStart(err);
      };
      const onStart = (m: FromWorker) => {
        if (m.t === 'ready') {
          ready = true;
          worker.off('message', onStart);
          worker.on('message', (msg: FromWorker) => {
            try {
              this.onMessage(worker, msg);
            } catch (err) {
              handlerFailed('question from a UDP worker', err);
            }
          });
          resolve();
        } else if (m.t === 'error') {
          reject(listenError(Object.assign(new Error(m.message), { code: m.code }), m.host, m.port, 'UDP'));
        }
      };
      worker.on('message', onStart);
      worker.once('error', (err) => reject(new Error(`the DNS UDP worker failed to start: ${errorText(err)}`)));
      worker.on('error', (err) => log.error('DNS UDP worker failed', { error: errorText(err) }));
      worker.once('exit', (code) => {
        const i = this.workers.indexOf(worker);
        if (i >= 0) this.workers.splice(i, 1);
        if (this.retiring.delete(worker) || this.stopped || !ready) return;
        log.error('DNS UDP worker stopped; starting another', { code });
        setTimeout(() => this.replaceWorker(), WORKER_RESTART_MS).unref();
      });
    });
  }

  private replaceWorker(): void {
    if (this.stopped) return;
    // Through a promise: `new Worker` throws synchronously when a thread cannot be made, and
    // this runs in a timer, where a throw would end the process.
    Promise.resolve().then(() => this.startWorker()).catch((err: unknown) => {
      log.error('DNS UDP worker could not be replaced; trying again', { error: errorText(err) });
      setTimeout(() => this.replaceWorker(), WORKER_RESTART_MS).unref();
    });
  }

  /** A worker's question that its zone does not answer: answered by the server, sent from
   *  the worker's socket. */
  private onMessage(worker: Worker, m: FromWorker): void {
    if (m.t !== 'ask') return;
    const msg = Buffer.from(m.msg.buffer, m.msg.byteOffset, m.msg.byteLength);
    this.opts.ask(msg, m.limit, (bytes) => {
      // A copy of just the reply: Buffers share pooled memory, which would be cloned whole.
      worker.postMessage({ t: 'reply', sock: m.sock, bytes: new Uint8Array(bytes), port: m.port, address: m.address } satisfies ToWorker);
    });
  }
}

/** Asks a worker to close its sockets; terminates it if it does not within WORKER_STOP_MS. */
function stopWorker(w: Worker): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => void w.terminate().catch(() => {}), WORKER_STOP_MS);
    w.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    w.postMessage({ t: 'stop' } satisfies ToWorker);
  });
}
