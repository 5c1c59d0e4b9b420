// The weft command as a user meets it: exit codes and one-line errors.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

const WEFT = join(import.meta.dirname, '../bin/weft');
const dir = mkdtempSync(join(tmpdir(), 'weft-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function weft(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = { ...process.env };
  for (const k of ['WEFT_PASSWORD', 'WEFT_TOKEN', 'WEFT_API_TOKEN']) delete base[k];
  return new Promise((resolve) => {
    execFile(WEFT, args, { env: { ...base, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('the weft command', () => {
  test('usage errors exit 2', async () => {
    expect((await weft(['--no-such-flag'])).code).toBe(2);
    expect((await weft(['no-such-command'])).code).toBe(2);
    expect((await weft(['connect'])).code).toBe(2);
  });

  test('help exits 0 and lists the commands', async () => {
    const r = await weft(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['launch', 'status', 'peers', 'connect', 'forget', 'events', 'token']) expect(r.stdout).toContain(c);
  });

  test('no peer running: one line saying what to do, exit 1', async () => {
    const r = await weft(['--data-dir', join(dir, 'nothing'), 'status']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^weft: no weft peer is running with data dir .* \(start one with `weft launch`/);
  });

  test('launch without a mesh secret says how to give one', async () => {
    const r = await weft(['--data-dir', join(dir, 'nosecret'), 'launch', '--listen', '127.0.0.1:0', '--no-dataplane']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('weft: no mesh secret: give --password-file FILE, WEFT_PASSWORD, or --token (every peer of a mesh needs the same one)');
  });

  test('launch with an empty or missing password file, or a bad address, fails in one line', async () => {
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    const cases: [string[], RegExp][] = [
      [['--password-file', empty], /^weft: the password file .* is empty$/],
      [['--password-file', join(dir, 'missing')], /^weft: the password file .* does not exist$/],
      [['--password-file', empty, '--listen', 'nonsense'], /^weft: /],
      [['--token', 'weft1.garbage'], /^weft: the join token is not valid/],
    ];
    for (const [args, re] of cases) {
      const r = await weft(['--data-dir', join(dir, 'bad'), 'launch', '--no-dataplane', '--metrics-listen', 'off', ...args]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.trim()).toMatch(re);
    }
  });

  test('a listen port in use is one clear line', async () => {
    const net = await import('node:net');
    const server = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as { port: number }).port;
    try {
      const r = await weft(['--data-dir', join(dir, 'busy'), 'launch', '--no-dataplane', '--metrics-listen', 'off', '--listen', `127.0.0.1:${port}`], { WEFT_PASSWORD: 'pw' });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/weft: the mesh address 127\.0\.0\.1:\d+ is in use/);
      expect(r.stderr).not.toContain('pw\n');
    } finally {
      server.close();
    }
  });
});
