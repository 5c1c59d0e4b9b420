// A UDP worker thread. Each one binds every listen address with SO_REUSEPORT, so the kernel
// spreads clients over the threads, and answers zone names on its own event loop: off the
// peer's main thread (gossip, Noise, GC there do not delay answers) and on more than one
// core. It keeps its own copy of the zone, from the records and the patches the main thread
// posts.
// Questions that are not ours go to the main thread, whose forwarder and cache are shared
// by all threads, and its replies come back here to be sent from the right socket.

import type dgram from 'node:dgram';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { LogOnce } from '../mesh/log-once.ts';
import type { DnsName } from './records.ts';
import { type UdpContext, bindUdp, handlerFailed, onUdpMessage, sendUdp } from './udp.ts';
import { SlicedRebuild } from './rebuild.ts';
import { ZoneBuilder } from './zone-builder.ts';
import type { ZoneOptions } from './zone.ts';

export const WORKER_KIND = 'weft-dns-udp';

export interface WorkerInit {
  kind: typeof WORKER_KIND;
  listen: { host: string; port: number }[];
  zone: ZoneOptions;
  /** The records as the main thread's builder last applied them; patches follow. */
  set: { names: Map<string, DnsName> };
  serial: number;
  maxUdp: number;
  /** STAT_SLOTS float64 counters, written only by this thread. */
  counters: SharedArrayBuffer;
}

export type ToWorker =
  | { t: 'patch'; upserts: [string, DnsName][]; removes: string[]; serial: number }
  | { t: 'reply'; sock: number; bytes: Uint8Array; port: number; address: string }
  | { t: 'stop' };

export type FromWorker =
  | { t: 'ready' }
  | { t: 'error'; host: string; port: number; code: string | undefined; message: string }
  | { t: 'ask'; sock: number; msg: Uint8Array; limit: number; port: number; address: string }
  | { t: 'stopped' };

async function run(init: WorkerInit): Promise<void> {
  const port = parentPort!;
  const post = (m: FromWorker) => port.postMessage(m);
  const sockets: dgram.Socket[] = [];
  const names = init.set.names;
  const builder = new ZoneBuilder(init.zone);
  const first = builder.update({ names }, init.serial);
  for (let r = first.next(); !r.done; r = first.next());
  const ctx: UdpContext = {
    zone: builder.zone,
    maxUdp: init.maxUdp,
    random: Math.random,
    counters: new Float64Array(init.counters),
    malformed: new LogOnce(),
    delegate(q, msg, limit, sock, rinfo) {
      void q;
      // A copy of just the message: posting the Buffer would clone its whole backing store.
      post({ t: 'ask', sock: sockets.indexOf(sock), msg: new Uint8Array(msg), limit, port: rinfo.port, address: rinfo.address });
    },
  };
  const rebuild = new SlicedRebuild(
    (zone) => {
      if (zone) ctx.zone = zone;
    },
    () => {}, // the main thread builds the same records and reports the failure
  );
  // Patches are applied to our copy of the records as they come; the zone follows with one
  // update per burst, of every name patched since the last.
  const pending = new Set<string>();
  let serial = init.serial;
  const onMain = (m: ToWorker): void => {
    if (m.t === 'patch') {
      for (const [raw, data] of m.upserts) {
        names.set(raw, data);
        pending.add(raw);
      }
      for (const raw of m.removes) {
        names.delete(raw);
        pending.add(raw);
      }
      serial = m.serial;
      rebuild.request(() => {
        const changed = [...pending];
        pending.clear();
        return builder.update({ names }, serial, changed);
      });
    } else if (m.t === 'reply') {
      const s = sockets[m.sock];
      if (s) sendUdp(s, m.bytes, m.port, m.address);
    } else if (m.t === 'stop') {
      rebuild.stop();
      let open = sockets.length;
      const done = () => {
        if (--open > 0) return;
        post({ t: 'stopped' });
        port.close();
      };
      if (open === 0) {
        open = 1;
        done();
      }
      for (const s of sockets) {
        try {
          s.close(done);
        } catch {
          done(); // already closed
        }
      }
    }
  };
  port.on('message', (m: ToWorker) => {
    try {
      onMain(m);
    } catch (err) {
      // A throw here would end the thread, and with it UDP on every address until the main
      // thread notices and starts another.
      handlerFailed('UDP worker message', err);
    }
  });
  for (const l of init.listen) {
    try {
      sockets.push(await bindUdp(l.host, l.port, true, (sock, msg, rinfo) => onUdpMessage(ctx, sock, msg, rinfo)));
    } catch (err) {
      for (const s of sockets) s.close();
      sockets.length = 0;
      post({ t: 'error', host: l.host, port: l.port, code: (err as NodeJS.ErrnoException).code, message: (err as Error).message });
      return;
    }
  }
  post({ t: 'ready' });
}

if (!isMainThread && (workerData as WorkerInit | undefined)?.kind === WORKER_KIND) {
  run(workerData as WorkerInit).catch((err) => {
    // Unexpected (binding errors are posted): the main thread sees the exit and replaces us.
    handlerFailed('UDP worker start', err);
    process.exit(1);
  });
}
