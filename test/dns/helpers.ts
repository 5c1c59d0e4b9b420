// Shared by the DNS tests: queries built by hand (so that tests can also build broken ones),
// responses decoded by dns2 (an independent decoder), real UDP/TCP exchanges with time
// limits, dig, and servers that are always stopped.

import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { promisify } from 'node:util';
import { Packet } from 'dns2';
import { afterEach } from 'vitest';
import { DnsServer, type DnsServerOptions } from '../../dns/server.ts';
import { FrameReader, frame } from '../../dns/tcp-frames.ts';

export { Packet };
export type DecodedPacket = InstanceType<typeof Packet>;

export const QTYPE = { A: 1, NS: 2, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, AXFR: 252, ANY: 255 } as const;

export interface QueryOptions {
  id?: number;
  /** EDNS UDP payload size; no OPT record when absent. */
  edns?: number;
  ednsVersion?: number;
  rd?: boolean;
  opcode?: number;
  qclass?: number;
}

/** A query in wire form. */
export function makeQuery(name: string, qtype: number, o: QueryOptions = {}): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter((l) => l.length > 0);
  const qname = Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
  const opt = o.edns !== undefined ? 11 : 0;
  const out = Buffer.alloc(12 + qname.length + 4 + opt);
  out.writeUInt16BE(o.id ?? 0x1234, 0);
  out.writeUInt16BE(((o.opcode ?? 0) << 11) | (o.rd === false ? 0 : 0x0100), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(opt ? 1 : 0, 10);
  qname.copy(out, 12);
  out.writeUInt16BE(qtype, 12 + qname.length);
  out.writeUInt16BE(o.qclass ?? 1, 14 + qname.length);
  if (opt) {
    const at = 16 + qname.length;
    out.writeUInt16BE(41, at + 1);
    out.writeUInt16BE(o.edns!, at + 3);
    out[at + 6] = o.ednsVersion ?? 0;
  }
  return out;
}

export function decode(buf: Buffer): DecodedPacket {
  const p = Packet.parse(buf);
  if (p.errors.length) throw new Error(`response did not decode cleanly: ${p.errors.map((e) => e.message).join('; ')}`);
  return p;
}

export const addressesOf = (p: DecodedPacket): string[] => p.answers.filter((a) => a.type === QTYPE.A).map((a) => a.address as string);

/** One UDP exchange; rejects after `timeoutMs`. */
export function udpExchange(host: string, port: number, query: Buffer, timeoutMs = 2000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error(`no UDP answer from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('message', (m) => {
      clearTimeout(timer);
      sock.close();
      resolve(m);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      sock.close();
      reject(err);
    });
    sock.send(query, port, host);
  });
}

/** Sends queries over one TCP connection; resolves with `count` responses. */
export function tcpExchange(host: string, port: number, queries: Buffer[], count = queries.length, timeoutMs = 3000): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const reader = new FrameReader();
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${got.length} of ${count} TCP answers from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(Buffer.concat(queries.map(frame))));
    sock.on('data', (chunk) => {
      got.push(...reader.push(chunk));
      if (got.length >= count) {
        clearTimeout(timer);
        sock.destroy();
        resolve(got);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

const execFileP = promisify(execFile);

/** dig against a server; returns stdout. */
export async function dig(host: string, port: number, args: string[]): Promise<string> {
  const { stdout } = await execFileP('dig', [`@${host}`, '-p', String(port), '+time=2', '+tries=1', ...args], { timeout: 10_000 });
  return stdout;
}

/** Servers started through here are stopped after each test, also when it fails. */
const running = new Set<{ stop(): Promise<void> }>();
afterEach(async () => {
  const all = [...running];
  running.clear();
  await Promise.all(all.map((s) => s.stop()));
});

export function stopAfterTest<T extends { stop(): Promise<void> }>(s: T): T {
  running.add(s);
  return s;
}

export async function startServer(opts: Omit<DnsServerOptions, 'listen'> & { host: string; port?: number }): Promise<{ server: DnsServer; host: string; port: number }> {
  const { host, port, ...rest } = opts;
  const server = stopAfterTest(await DnsServer.start({ upstreams: [], ...rest, listen: [{ host, port: port ?? 0 }] }));
  const addr = server.addresses()[0]!;
  return { server, host: addr.host, port: addr.port };
}
