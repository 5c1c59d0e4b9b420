// The UDP worker threads are started from a module URL, not an import: the URL must name the
// worker's file both when the peer runs its TypeScript sources and when it runs the compiled
// dist/ (where tsc has rewritten import specifiers to .js, but not URLs in strings).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { udpWorkerUrl } from '../../dns/udp-worker-pool.ts';

describe('where the UDP worker thread is started from', () => {
  test('beside the pool, as TypeScript from the sources and as JavaScript from dist/', () => {
    expect(udpWorkerUrl('file:///srv/weft/dns/udp-worker-pool.ts').href).toBe('file:///srv/weft/dns/udp-worker.ts');
    expect(udpWorkerUrl('file:///srv/weft/dist/dns/udp-worker-pool.js').href).toBe('file:///srv/weft/dist/dns/udp-worker.js');
  });

  test('the file it names exists in the sources', () => {
    const pool = new URL('../../dns/udp-worker-pool.ts', import.meta.url).href;
    expect(existsSync(fileURLToPath(udpWorkerUrl(pool)))).toBe(true);
  });
});
