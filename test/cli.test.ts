// The weft command as a user meets it: exit codes and one-line errors.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

  test('bad control-plane flags and a file that is not a backup fail in one line, before any peer is asked', async () => {
    const pw = join(dir, 'pw-flags');
    writeFileSync(pw, 'secret\n');
    for (const [args, code, re] of [
      [['--managers', '4'], 2, /--managers.*4.*(invalid|Allowed choices)/i],
      [['--role', 'boss'], 2, /--role.*boss/],
      [['--manager-grace', 'soon'], 1, /^weft: --manager-grace must be a whole number of seconds from 1 to 86400, not "soon"$/],
      [['--manager-grace', '0'], 1, /^weft: --manager-grace must be/],
    ] as [string[], number, RegExp][]) {
      const r = await weft(['--data-dir', join(dir, 'flags'), 'launch', '--no-dataplane', '--metrics-listen', 'off', '--password-file', pw, ...args]);
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr.trim()).toMatch(re);
    }
    const junk = join(dir, 'junk-backup.json');
    for (const [content, re] of [
      ['not json at all', /^weft: .*junk-backup\.json: not a weft state backup \(/],
      ['{"format":"something-else","index":1,"data":"{}"}', /^weft: .*junk-backup\.json: not a weft state backup \(format "something-else", expected "weft-desired-state\/1"\)$/],
      ['null', /^weft: .*junk-backup\.json: not a weft state backup/],
    ] as [string, RegExp][]) {
      writeFileSync(junk, content);
      const r = await weft(['--data-dir', join(dir, 'nothing'), 'state', 'restore', junk, '--yes']);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
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

  test('a mesh-only peer loads neither the Docker client, the data plane nor a cloud SDK', async () => {
    // Issue 9: what a peer does not use costs it no memory. Every module the process resolves
    // is listed by a loader hook (test/harness/fixtures/module-list.mjs), written at exit.
    const list = join(dir, 'modules');
    const hook = join(import.meta.dirname, 'harness/fixtures/module-list.mjs');
    const child = spawn(WEFT, [
      '--data-dir', join(dir, 'lean'), 'launch', '--listen', '127.0.0.1:0', '--no-dataplane',
      '--dns-listen', 'off', '--metrics-listen', 'off', '--plugin-name', 'off',
    ], { env: { ...process.env, WEFT_PASSWORD: 'pw', WEFT_MODULE_LIST: list, NODE_OPTIONS: `--import ${hook}` }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "peer started" within 20 s: ${out}`)), 20_000);
        const read = (b: Buffer) => {
          out += b.toString();
          if (out.includes('peer started')) { clearTimeout(timer); resolve(); }
        };
        child.stdout.on('data', read);
        child.stderr.on('data', read);
        child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`peer exited ${code}: ${out}`)); });
      });
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      child.kill('SIGKILL');
    }
    const modules = readFileSync(list, 'utf8').trim().split('\n');
    // The hook itself works: the peer's own core and libp2p are there.
    expect(modules.some((m) => /\/mesh\/membership\/membership\.(ts|js)$/.test(m))).toBe(true);
    expect(modules.some((m) => m.includes('/node_modules/libp2p/'))).toBe(true);
    expect(modules.filter((m) => /\/node_modules\/(dockerode|docker-modem|@aws-sdk)\/|\/mesh\/network\/(network\.(ts|js)$|dataplane\/|docker\/)/.test(m))).toEqual([]);
  });
});
