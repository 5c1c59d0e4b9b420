// Real peers in the test process on loopback addresses (no namespaces, no root): configs with
// their own data dirs, started peers remembered, everything stopped and removed after each test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Peer } from '../mesh/peer.ts';
import { peerConfig, type PeerConfig } from '../mesh/config.ts';

export class LoopbackPeers {
  readonly running: Peer[] = [];
  private readonly dirs: string[] = [];
  private readonly key: Uint8Array;
  private readonly net: string;
  private readonly port: number;
  /** Each test takes its own loopback addresses so that a port left in TIME_WAIT never matters. */
  private nextHost: number;

  /** `net` is the first two octets of the loopback addresses ('127.0'), `first` the third. */
  constructor(opts: { key: Uint8Array; net: string; port: number; first: number }) {
    this.key = opts.key;
    this.net = opts.net;
    this.port = opts.port;
    this.nextHost = opts.first + (process.pid % 200);
  }

  config(name: string, peers: string[] = [], extra: Partial<PeerConfig> = {}): PeerConfig {
    const dir = mkdtempSync(join(tmpdir(), `weft-peer-${name}-`));
    this.dirs.push(dir);
    return peerConfig({
      dataDir: dir, listen: { host: `${this.net}.${this.nextHost++ % 250}.1`, port: this.port }, peers, name,
      meshKey: this.key, dataplane: false, metricsListen: null, ...extra,
    });
  }

  async start(c: PeerConfig): Promise<Peer> {
    const p = await Peer.start(c);
    this.running.push(p);
    return p;
  }

  /** Stops a peer the test is done with (it is not stopped again at cleanup). */
  async stop(p: Peer): Promise<void> {
    this.running.splice(this.running.indexOf(p), 1);
    await p.stop();
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.running.splice(0).map((p) => p.stop()));
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

export const addrOf = (p: Peer) => `${p.advertise.host}:${p.advertise.port}`;
