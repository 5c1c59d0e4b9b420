// A tiny upstream resolver for the forwarding tests, on a loopback address: it speaks the
// real wire protocol over UDP and TCP, answers A from a table (NXDOMAIN with an SOA
// otherwise), counts what it is asked, and can misbehave on request.

import dgram from 'node:dgram';
import net from 'node:net';
import { FrameReader, frame } from '../../dns/tcp-frames.ts';

export type UpstreamMode = 'answer' | 'servfail' | 'silent' | 'truncate-udp';

export class FakeUpstream {
  readonly host: string;
  port = 0;
  mode: UpstreamMode = 'answer';
  /** Queries received, by lowercased name/type, UDP and TCP together. */
  readonly asked: string[] = [];
  readonly records = new Map<string, { addrs: number[][]; ttl: number }>();
  /** Answer delay, to hold questions in flight. */
  delayMs = 0;
  negativeTtl = 30;
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;

  constructor(host: string) {
    this.host = host;
  }

  /** On `port`, or one the system picks (0). */
  static async start(host: string, port = 0): Promise<FakeUpstream> {
    const u = new FakeUpstream(host);
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(port, host, () => r()));
    u.port = udp.address().port;
    u.udp = udp;
    udp.on('message', (m, rinfo) => u.handle(m, false, (b) => udp.send(b, rinfo.port, rinfo.address)));
    const tcp = net.createServer((s) => {
      const reader = new FrameReader();
      s.on('error', () => {});
      s.on('data', (chunk) => {
        for (const m of reader.push(chunk)) u.handle(m, true, (b) => s.write(frame(b)));
      });
    });
    await new Promise<void>((r) => tcp.listen(u.port, host, () => r()));
    u.tcp = tcp;
    return u;
  }

  async stop(): Promise<void> {
    const { udp, tcp } = this;
    this.udp = undefined;
    this.tcp = undefined;
    await Promise.all([
      new Promise<void>((r) => (udp ? udp.close(() => r()) : r())),
      new Promise<void>((r) => (tcp ? tcp.close(() => r()) : r())),
    ]);
  }

  private handle(m: Buffer, overTcp: boolean, send: (b: Buffer) => void): void {
    let o = 12;
    const labels: string[] = [];
    while (o < m.length && m[o] !== 0) {
      labels.push(m.toString('latin1', o + 1, o + 1 + m[o]!));
      o += m[o]! + 1;
    }
    const qEnd = o + 5;
    const qtype = m.readUInt16BE(o + 1);
    const name = labels.join('.').toLowerCase();
    this.asked.push(`${name}/${qtype}`);
    if (this.mode === 'silent') return;
    const hasOpt = m.readUInt16BE(10) > 0;
    const rec = this.records.get(name);
    const answers: Buffer[] = [];
    const authority: Buffer[] = [];
    let rcode = 0;
    if (this.mode === 'servfail') rcode = 2;
    else if (!rec) {
      rcode = 3;
      const soa = Buffer.alloc(12 + 4 + 20);
      soa.writeUInt16BE(0xc00c, 0);
      soa.writeUInt16BE(6, 2);
      soa.writeUInt16BE(1, 4);
      soa.writeUInt32BE(3600, 6);
      soa.writeUInt16BE(24, 10);
      soa.writeUInt32BE(0xc00cc00c, 12);
      soa.writeUInt32BE(this.negativeTtl, 32);
      authority.push(soa);
    } else if (qtype === 1) {
      for (const a of rec.addrs) {
        const r = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, ...a]);
        r.writeUInt32BE(rec.ttl, 6);
        answers.push(r);
      }
    }
    const truncate = this.mode === 'truncate-udp' && !overTcp;
    const out = Buffer.concat([m.subarray(0, qEnd), ...(truncate ? [] : [...answers, ...authority]), ...(hasOpt ? [Buffer.from([0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0])] : [])]);
    out.writeUInt16BE(0x8180 | (truncate ? 0x0200 : 0) | rcode, 2);
    out.writeUInt16BE(truncate ? 0 : answers.length, 6);
    out.writeUInt16BE(truncate ? 0 : authority.length, 8);
    out.writeUInt16BE(hasOpt ? 1 : 0, 10);
    if (this.delayMs) setTimeout(() => send(out), this.delayMs);
    else send(out);
  }
}
