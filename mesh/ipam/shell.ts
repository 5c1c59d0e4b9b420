// The I/O shell around the IPAM core (ipam.ts): carries its messages over a mesh channel,
// ticks it with membership's view, and writes its state to disk BEFORE anything it decided
// leaves the process (a message sent, an address handed to a container): it carries out the
// core's readies with applyReady (mesh/ready.ts), awaiting the synced write. That order is what
// keeps an address unique across kill -9: a restarted peer never forgets an allocation or a
// donation that someone else may already have acted on.

import type { Connection, Libp2p } from '@libp2p/interface';
import { Channel, type ChannelStats } from '../transport/channel.ts';
import { IPAM_STATE_KEY } from '../keyspace.ts';
import { errorText, type Logger } from '../log.ts';
import { applyReady, mergeReadies, type ReadyIo } from '../ready.ts';
import { IPAM_MAX_QUEUE_BYTES, IPAM_PROTOCOL, MAX_IPAM_MESSAGE_BYTES, parseIpamMessage, type IpamMessage } from './wire.ts';
import { Ipam, type IpamEvent, type IpamPersist, type IpamReady, type IpamStatus, type PeerView } from './ipam.ts';
import type { Store } from '../store.ts';

/** How long `allocate` waits for space (a ring to be agreed, a donation) before it gives up
 *  with the reason. A donation takes a round trip; a bootstrap waits for a majority to start. */
export const ALLOCATE_TIMEOUT_MS = 30_000;

const NOTHING: IpamReady = { persist: undefined, send: [], events: [], rejected: [], next: undefined };

interface Waiter {
  resolve(addr: string): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class IpamShell {
  readonly core: Ipam;
  private readonly store: Store;
  private readonly log: Logger;
  private channel?: Channel;
  private readonly queue: { ready: IpamReady; done: () => void }[] = [];
  private draining = false;
  private readonly waiters = new Map<string, Waiter[]>();
  private view: PeerView = { live: new Set(), known: new Set() };
  private readonly io: ReadyIo<IpamMessage, IpamPersist, IpamEvent> = {
    persist: () => this.persist(),
    send: (to, msg) => this.channel?.send(to, msg),
    events: (events) => {
      for (const e of events) this.onEvent(e);
    },
    rejected: (rejected) => {
      for (const r of rejected) this.log.warn('rejected IPAM message', { peer: r.from, reason: r.reason });
    },
  };

  private constructor(core: Ipam, store: Store, log: Logger) {
    this.core = core;
    this.store = store;
    this.log = log;
  }

  /** Restores the core from disk, or starts a new one (expectedPeers matters only then). */
  static async open(init: { store: Store; self: string; range: string; expectedPeers: number; log: Logger }): Promise<IpamShell> {
    const saved = await init.store.get<unknown>(IPAM_STATE_KEY);
    const opts = { self: init.self, range: init.range, expectedPeers: init.expectedPeers };
    const core = saved === undefined ? new Ipam(opts) : Ipam.restore(saved, opts);
    return new IpamShell(core, init.store, init.log);
  }

  attach(node: Libp2p, accept: (conn: Connection) => boolean): void {
    this.channel = new Channel(node, {
      protocol: IPAM_PROTOCOL,
      maxFrameBytes: MAX_IPAM_MESSAGE_BYTES,
      maxQueueBytes: IPAM_MAX_QUEUE_BYTES,
      onMessage: (from, raw) => this.onMessage(from, raw),
      accept,
    }, this.log);
  }

  async start(): Promise<void> {
    await this.channel?.start();
  }

  stats(): ChannelStats {
    return this.channel?.stats ?? { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, rejected: 0 };
  }

  reset(peer: string): void {
    this.channel?.reset(peer);
  }

  /** Every membership tick, with who is alive and who is known. */
  tick(now: number, view: PeerView): void {
    this.view = view;
    this.apply(this.core.tick(now, view));
  }

  /** An address for `handle` (a container id), the identity's reserved one if it has one.
   *  Resolves once the allocation is on disk. */
  allocate(handle: string, identity?: string, timeoutMs = ALLOCATE_TIMEOUT_MS): Promise<string> {
    const res = this.core.allocate(handle, Date.now(), identity ? { identity } : {});
    if (res.status === 'refused') {
      this.apply(res.out);
      return Promise.reject(new Error(`cannot allocate an address: ${res.reason}`));
    }
    const done = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.dropWaiter(handle, waiter);
        // Give up the request too: a late allocation nobody waits for would leak an address
        // (also one made but still being written when the time ran out).
        if (!this.waiters.has(handle) && (this.core.isPending(handle) || this.core.lookup(handle) !== undefined)) {
          void this.apply(this.core.release(handle, Date.now()).out);
        }
        reject(new Error(`no address for ${handle} after ${timeoutMs / 1000} s: ${this.core.status().message} (see weft status ipam)`));
      }, timeoutMs);
      const waiter: Waiter = { resolve, reject, timer };
      this.waiters.set(handle, [...(this.waiters.get(handle) ?? []), waiter]);
    });
    // An immediate allocation is reported like a later one: after the state is on disk.
    if (res.status === 'allocated') res.out.events.push({ type: 'allocated', handle, addr: res.addr });
    this.apply(res.out);
    return done;
  }

  /** Frees the address of `handle`; resolves once that is on disk. */
  async release(handle: string): Promise<string | null> {
    const { addr, out } = this.core.release(handle, Date.now());
    await this.apply(out);
    return addr;
  }

  removedPeers(): string[] {
    return this.core.removedPeers();
  }

  lookup(handle: string): string | undefined {
    return this.core.lookup(handle);
  }

  /** See Ipam.borrowable. */
  borrowable(identity: string): string | undefined {
    return this.core.borrowable(identity);
  }

  /** `weft rmpeer`: the reply says whether it is done or what it waits for. */
  async rmpeer(id: string): Promise<{ status: 'started' | 'done' | 'refused'; reason: string }> {
    const { status, reason, out } = this.core.rmpeer(id, Date.now());
    await this.apply(out);
    return { status, reason };
  }

  /** `weft reset`: hands this peer's space to the live peers (refused while any is in use). */
  async handOff(): Promise<{ status: 'done' | 'refused'; reason: string }> {
    const { status, reason, out } = this.core.handOff(Date.now());
    await this.apply(out);
    return { status, reason };
  }

  status(): IpamStatus {
    return this.core.status(this.view);
  }

  /** Writes the current state at once (at shutdown nothing is pending, but be sure). */
  async flush(): Promise<void> {
    if (this.draining) await this.idle();
    await this.store.put(IPAM_STATE_KEY, this.core.export());
  }

  async stop(): Promise<void> {
    for (const [handle, ws] of this.waiters) {
      for (const w of ws) {
        clearTimeout(w.timer);
        w.reject(new Error(`peer stopping; no address for ${handle}`));
      }
    }
    this.waiters.clear();
    await this.channel?.stop();
    if (this.draining) await this.idle();
  }

  private onMessage(from: string, raw: unknown): void {
    const msg = parseIpamMessage(raw);
    if (typeof msg === 'string') {
      this.stats().rejected++;
      this.log.warn('rejected IPAM message', { peer: from, reason: msg });
      return;
    }
    this.apply(this.core.receive(from, msg, Date.now())).catch((err) => this.log.error('cannot carry out an IPAM message', { peer: from, err: errorText(err) }));
  }

  /** Queues what the core decided; a single loop writes the state, then lets it out. The
   *  promise resolves once this ready was carried out (after its state was on disk). */
  private apply(ready: IpamReady): Promise<void> {
    if (ready.persist === undefined && ready.send.length === 0 && ready.events.length === 0 && ready.rejected.length === 0) {
      return this.draining ? this.idle() : Promise.resolve();
    }
    return new Promise((resolve) => {
      this.queue.push({ ready, done: resolve });
      if (!this.draining) void this.drain();
    });
  }

  /** Resolves once everything queued before it was carried out. */
  private idle(): Promise<void> {
    return new Promise((resolve) => this.queue.push({ ready: NOTHING, done: resolve }));
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      // Each round takes everything queued; new items only come from new inputs. `draining`
      // is cleared with no await after the last check, so no item is ever left behind.
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0);
        // One write for the batch: the state written then includes every decision in it.
        const ready = mergeReadies(batch.map((i) => i.ready), () => 'state');
        try {
          await applyReady(ready, this.io);
        } catch (err) {
          // Nothing of a failed batch may leave: a decision not on disk could be forgotten.
          const failed = new Error(`cannot write the data dir: ${errorText(err)}`);
          for (const e of ready.events) if (e.type === 'allocated') this.settle(e.handle, failed);
        }
        for (const { done } of batch) done();
      }
    } finally {
      this.draining = false;
    }
  }

  /** The state as it stands now, synced; a failed write holds the batch back (see drain). Newer
   *  than the batch, perhaps, which is fine: persisting newer state before releasing older
   *  decisions keeps the order. */
  private async persist(): Promise<void> {
    try {
      await this.store.put(IPAM_STATE_KEY, this.core.export());
    } catch (err) {
      this.log.error('cannot persist IPAM state; holding back its messages and allocations', { err: errorText(err) });
      throw err;
    }
  }

  private onEvent(e: IpamEvent): void {
    switch (e.type) {
      case 'allocated':
        this.settle(e.handle, e.addr);
        break;
      case 'allocation-refused':
        this.settle(e.handle, new Error(`cannot allocate an address: ${e.reason}`));
        break;
      case 'conflict':
        this.log.error('IPAM conflict', { detail: e.detail });
        break;
      case 'evicted':
        this.log.error('this peer was removed from the IPAM ring by weft rmpeer; run weft reset before it serves containers again', { by: e.by.join(',') });
        break;
      case 'ring-created':
        this.log.info('IPAM ring created', { members: e.members.join(',') });
        break;
      case 'ring-adopted':
        this.log.info('IPAM ring learnt', { from: e.from });
        break;
      case 'donated':
        this.log.info('gave address space', { to: e.to, first: e.first, size: e.size });
        break;
      case 'peer-removed':
        this.log.info('peer removed from IPAM', { dead: e.dead, heir: e.heir, tokens: e.tokens });
        break;
    }
  }

  private settle(handle: string, result: string | Error): void {
    const ws = this.waiters.get(handle);
    if (!ws) return;
    this.waiters.delete(handle);
    for (const w of ws) {
      clearTimeout(w.timer);
      if (typeof result === 'string') w.resolve(result);
      else w.reject(result);
    }
  }

  private dropWaiter(handle: string, w: Waiter): void {
    const ws = (this.waiters.get(handle) ?? []).filter((x) => x !== w);
    if (ws.length) this.waiters.set(handle, ws);
    else this.waiters.delete(handle);
  }
}
