// The DNS records of the mesh, from the replicated registry: the thin shell that feeds a
// MeshView's events into a RegistryIndex (registry-index.ts, which decides what is answered)
// and tells the DNS server which names changed. It owns what the pure parts must not: the
// subscription to the view, the timers that batch changes, and the log.

import type { MeshView } from '../mesh/mesh-view.ts';
import { CONTAINER_PREFIX, DNS_EXTRA_PREFIX } from '../mesh/keyspace.ts';
import { errorText, logger, type Logger } from '../mesh/log.ts';
import { LogOnce } from '../mesh/log-once.ts';
import { DEFAULT_DOMAIN } from './names.ts';
import type { DnsRecordSet, DnsRecordSource } from './records.ts';
import { RegistryIndex } from './registry-index.ts';

/** Changes arriving within this time are applied as one update. Gossip delivers a burst
 *  (a redeployed service, a dead peer's containers) over a few messages a few ms apart; 5 ms
 *  merges them into one zone update at no visible cost to propagation (gossip takes tens). */
export const REBUILD_DEBOUNCE_MS = 5;
/** Under sustained churn, updates are applied at most this often. Each one costs the answering
 *  thread about 0.5 ms on cold caches (bench/dns.ts with WEFT_BENCH_TRACE=1: change, flush and
 *  zone update, plus the garbage it leaves); ten a second applied one by one delay enough
 *  answers to move p99 at 5,000 qps 3x, four batches a second do not (measured: p99 with churn
 *  0.66 ms against 0.22 ms without; batched, 0.24 against 0.22). An isolated change, after a
 *  quiet spell, still goes out after REBUILD_DEBOUNCE_MS. */
export const MIN_UPDATE_INTERVAL_MS = 250;

export interface RegistrySourceOptions {
  domain?: string;
  debounceMs?: number;
  /** Least time between two updates under sustained changes (default MIN_UPDATE_INTERVAL_MS). */
  minIntervalMs?: number;
  log?: Logger;
}

/**
 * A DnsRecordSource over a MeshView. `current()` is live: its map is updated in place, and
 * every notification names the names that changed (the server then reads just those; see
 * dns/README.md). Call `close()` to unsubscribe from the view.
 */
export class RegistryRecordSource implements DnsRecordSource {
  readonly index: RegistryIndex;
  private readonly set: DnsRecordSet;
  private readonly listeners = new Set<(changed?: readonly string[]) => void>();
  private readonly unsubscribe: (() => void)[] = [];
  private readonly debounceMs: number;
  private readonly minIntervalMs: number;
  private lastFlush = -Infinity;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private readonly failures = new LogOnce();
  private reportedInvalid = 0;
  private closed = false;

  constructor(view: MeshView, opts: RegistrySourceOptions = {}) {
    this.debounceMs = opts.debounceMs ?? REBUILD_DEBOUNCE_MS;
    this.minIntervalMs = opts.minIntervalMs ?? MIN_UPDATE_INTERVAL_MS;
    this.log = opts.log ?? logger('dns');
    this.index = new RegistryIndex(opts.domain ?? DEFAULT_DOMAIN, (id) => view.liveness(id));
    this.set = { names: this.index.names };
    // Subscribe first, then read: a change that lands in between is applied twice, which is
    // harmless (setContainer ignores a value it already holds).
    // These run inside the mesh's gossip and membership handlers: an entry we cannot use is
    // logged and skipped, never thrown back at them.
    this.unsubscribe.push(view.onEntries((changes) => {
      for (const c of changes) {
        try {
          this.feed(c.owner, c.key, c.value);
        } catch (err) {
          this.failed(`entry ${c.key.slice(0, 200)}`, err);
        }
      }
      this.schedule();
    }));
    this.unsubscribe.push(view.onLiveness((id) => {
      try {
        this.index.ownerChanged(id);
      } catch (err) {
        this.failed(`liveness of ${id}`, err);
      }
      this.schedule();
    }));
    for (const e of view.entries(CONTAINER_PREFIX)) this.index.setContainer(e.owner, e.key, e.value);
    for (const e of view.entries(DNS_EXTRA_PREFIX)) this.index.setExtra(e.owner, e.key, e.value);
    this.index.flush();
    this.reportInvalid();
  }

  current(): DnsRecordSet {
    return this.set;
  }

  subscribe(onChange: (changed?: readonly string[]) => void): () => void {
    this.listeners.add(onChange);
    return () => this.listeners.delete(onChange);
  }

  /** Applies pending changes now (tests, and `weft dns add` answering at once). */
  flushNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    this.lastFlush = Date.now();
    let changed: string[];
    try {
      changed = this.index.flush();
    } catch (err) {
      this.log.error('DNS records from the registry could not be updated', { error: errorText(err) });
      return;
    }
    try {
      this.reportInvalid();
    } catch (err) {
      this.failed('reporting invalid records', err);
    }
    if (changed.length === 0) return;
    for (const l of [...this.listeners]) {
      try {
        l(changed);
      } catch (err) {
        this.failed('a DNS record listener', err);
      }
    }
  }

  /** Said once a minute per kind: entries come from other peers. */
  private failed(what: string, err: unknown): void {
    const n = this.failures.shouldLog(what.split(' ')[0] ?? what, Date.now());
    if (n !== undefined) this.log.error('DNS records: skipped what could not be applied', { what, error: errorText(err), ...(n ? { repeats: n } : {}) });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const u of this.unsubscribe) u();
  }

  private feed(owner: string, key: string, value: string | null): void {
    if (key.startsWith(CONTAINER_PREFIX)) this.index.setContainer(owner, key, value);
    else if (key.startsWith(DNS_EXTRA_PREFIX)) this.index.setExtra(owner, key, value);
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    const now = Date.now();
    const at = Math.max(now + this.debounceMs, this.lastFlush + this.minIntervalMs);
    this.timer = setTimeout(() => this.flushNow(), at - now);
  }

  private reportInvalid(): void {
    const invalid = this.index.counts().invalid;
    if (invalid > this.reportedInvalid) {
      const first = this.index.invalid()[0]!;
      this.log.warn('container records not answered in DNS: not valid', { count: invalid, first: `${first.key} from ${first.owner}: ${first.reason}` });
    }
    this.reportedInvalid = invalid;
  }
}
