// Rows written behind: changes are coalesced by key and written in one LevelDB batch a moment
// later, or at once (synced) when a caller needs them on disk before it answers. Shells whose
// state can be relearned from peers (replicated entries, the member table) write this way, so a
// storm of changes costs one batch per interval instead of a write per change.
import { errorText, type Logger } from './log.ts';
import type { Store } from './store.ts';

export interface WriteBehindOptions {
  store: Store;
  log: Logger;
  /** What the error line says could not be written ("replicated state", "members"). */
  what: string;
  /** How long changes wait to be coalesced before a background write. */
  delayMs: number;
  /** Rows to write in the same batch as every flush (a meta record that must never claim more
   *  than the rows beside it). */
  extra?: () => { key: string; value?: unknown }[];
}

export class WriteBehind {
  private readonly o: WriteBehindOptions;
  /** Key to value; undefined deletes the row. */
  private readonly pending = new Map<string, unknown>();
  private timer?: ReturnType<typeof setTimeout>;
  /** Batches are written one after another, in the order they were made. */
  private chain: Promise<void> = Promise.resolve();

  constructor(o: WriteBehindOptions) {
    this.o = o;
  }

  /** Queues a row (undefined: its deletion); a later set of the same key replaces it. */
  set(key: string, value: unknown): void {
    this.pending.set(key, value);
  }

  /** Writes what is queued after the delay, unsynced, unless a write is already scheduled. */
  schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.write(false).catch(() => undefined);
    }, this.o.delayMs);
  }

  /** Writes what is queued now, in one batch after any still being written. An error is logged;
   *  a `durable` (synced) write also rejects, since its caller promised the data is on disk. */
  write(durable: boolean): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const ops: { key: string; value?: unknown }[] = [...this.pending].map(([key, value]) => ({ key, value }));
    this.pending.clear();
    if (this.o.extra) ops.push(...this.o.extra());
    const batch = this.chain.then(() => this.o.store.batch(ops, durable));
    this.chain = batch.catch(() => undefined);
    return batch.catch((err) => {
      this.o.log.error(`cannot persist ${this.o.what}`, { err: errorText(err) });
      if (durable) throw new Error(`cannot write to the data dir: ${errorText(err)}`);
    });
  }

  /** Drops the scheduled write (at stop; what is queued stays queued for a final write). */
  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
