// What the Docker plugin tests share: a logger that keeps its lines, one call as dockerd makes
// it, and an in-memory backend (a counter allocator and pretend veths).
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PluginBackend } from '../../mesh/network/docker/plugin.ts';
import { PLUGIN_CONTENT_TYPE } from '../../mesh/network/docker/plugin-wire.ts';
import type { Fields, Logger } from '../../mesh/log.ts';

export const RANGE = '10.99.0.0/16';
export const GATEWAY = '169.254.53.1';
export const MTU = 1376;

/** A Logger that keeps its lines, so a test can say what was logged. */
export function memoryLog(lines: string[] = []): Logger & { lines: string[] } {
  const emit = (level: string) => (msg: string, f?: Fields) => {
    lines.push(`${level} ${msg} ${JSON.stringify(f ?? {})}`);
  };
  return { lines, debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error'), child: () => memoryLog(lines) };
}

export interface Answer {
  status: number;
  contentType: string | undefined;
  body: Record<string, unknown>;
}

/** One plugin call, as dockerd makes it: POST /<Interface>.<Method> on the unix socket. */
export function call(socketPath: string, method: string, payload?: unknown, opts: { raw?: string | Buffer; httpMethod?: string } = {}): Promise<Answer> {
  const data = opts.raw ?? (payload === undefined ? '' : JSON.stringify(payload));
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, path: `/${method}`, method: opts.httpMethod ?? 'POST', headers: { Accept: PLUGIN_CONTENT_TYPE, 'Content-Type': PLUGIN_CONTENT_TYPE } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body: text === '' ? {} : JSON.parse(text) });
          } catch (e) {
            reject(new Error(`${method}: reply is not JSON: ${text.slice(0, 200)} (${(e as Error).message})`));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** An in-memory backend for the protocol tests: a counter allocator and pretend veths. */
export function fakeBackend() {
  let next = 1;
  const b = {
    allocated: new Map<string, string>(), // handle -> addr
    released: [] as string[],
    veths: new Set<string>(),
    joins: [] as Parameters<PluginBackend['joined']>[0][],
    lefts: [] as string[],
    allocateDelayMs: 0,
    failAllocate: undefined as string | undefined,
    /** While set, allocations wait for it (and are counted in `allocating`). */
    allocateGate: undefined as Promise<void> | undefined,
    allocating: 0,
  };
  const backend: PluginBackend = {
    range: RANGE,
    gateway: GATEWAY,
    mtu: MTU,
    allocate: async (handle) => {
      if (b.allocateDelayMs > 0) await sleep(b.allocateDelayMs);
      if (b.allocateGate !== undefined) {
        b.allocating++;
        await b.allocateGate;
        b.allocating--;
      }
      if (b.failAllocate !== undefined) throw new Error(b.failAllocate);
      const addr = `10.99.0.${next++}`;
      b.allocated.set(handle, addr);
      return addr;
    },
    release: async (handle) => {
      b.released.push(handle);
    },
    // Like IPAM: the handle of a live allocation (allocated keeps every handle ever given).
    handleOf: (addr) => [...b.allocated].find(([h, a]) => a === addr && !b.released.includes(h))?.[0],
    prepareVeth: async (addr) => {
      const n = addr.split('.').pop();
      b.veths.add(`vh${n}`);
      return { hostIf: `vh${n}`, containerIf: `vc${n}`, mac: `02:00:0a:63:00:${Number(n).toString(16).padStart(2, '0')}` };
    },
    removeVeth: async (hostIf) => {
      if (!b.veths.delete(hostIf)) throw new Error(`no veth ${hostIf}`);
    },
    joined: async (ep) => {
      b.joins.push(ep);
    },
    left: async (id) => {
      b.lefts.push(id);
    },
  };
  return { backend, state: b };
}

