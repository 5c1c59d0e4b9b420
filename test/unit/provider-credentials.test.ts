// Provider credentials: found where the AWS CLI finds them, refused with one line that never
// holds the secret, sealed under the mesh key so that only holders of the mesh secret open them,
// kept in desired state as a record whose every field is checked, listed without the sealed box,
// and scrubbed from whatever a cloud says back.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { DescribeRegionsCommand, EC2Client } from '@aws-sdk/client-ec2';
import nacl from 'tweetnacl';
import { describe, expect, test } from 'vitest';
import { deriveMeshKey } from '../../mesh/admission/mesh-key.ts';
import {
  type AwsCredentialFlags, type AwsCredentials, accessKeyIdHint, awsCredentialsProblem, hiddenAwsCredentials,
  MAX_SESSION_TOKEN_LENGTH, resolveAwsCredentials, STDIN,
} from '../../provisioner/credentials/aws-credentials.ts';
import { endpointProblem } from '../../provisioner/credentials/endpoint.ts';
import {
  newProviderRecord, openProviderCredentials, type ProviderRecord, providerNameProblem, providerObjectProblem, providerRecordProblem, publicView,
  rotateProviderRecord,
} from '../../provisioner/credentials/provider-record.ts';
import { REDACTED, redact, redactCredentials, redactedMessage } from '../../provisioner/credentials/redact.ts';
import {
  CANNOT_OPEN, CredentialsKey, deriveCredentialsKey, MAX_SEALED_BOX_CHARS, MAX_SEALED_PLAINTEXT_BYTES, open, type SealedBox, seal,
  sealedBoxProblem,
} from '../../provisioner/credentials/seal.ts';
import { parseCredentialsFile } from '../../provisioner/credentials/shared-credentials-file.ts';
import { Rng } from '../sim/rng.ts';

// AWS's documented example key pair, and a session token shaped like STS's (base64 with / + =).
const ID = 'AKIAIOSFODNN7EXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const TEMP_ID = 'ASIAIOSFODNN7EXAMPLE';
const TOKEN = 'FwoGZXIvYXdzEXAMPLE//////////wEaDExampleSessionToken+abc/def==';
const OTHER_ID = 'AKIAI44QH8DHBEXAMPLE';
const OTHER_SECRET = 'je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY';
const HOME = '/home/ada';

/** Resolves with these flags, environment and files (path → text); records what was read. */
function resolve(flags: AwsCredentialFlags = {}, env: NodeJS.ProcessEnv = {}, files: Record<string, string> = {}) {
  const read: string[] = [];
  const result = resolveAwsCredentials({ flags, env, home: HOME, readFile: (p) => (read.push(p), files[p]) });
  return { ...result, read };
}

/** The error message of a resolve that must fail. */
function refusal(flags: AwsCredentialFlags = {}, env: NodeJS.ProcessEnv = {}, files: Record<string, string> = {}): string {
  try {
    resolve(flags, env, files);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
}

const plain = (c: AwsCredentials) => ({ ...c });
const DEFAULT_FILE = `${HOME}/.aws/credentials`;
const fileWith = (profiles: string) => ({ [DEFAULT_FILE]: profiles });
const ENV_KEYS = { AWS_ACCESS_KEY_ID: OTHER_ID, AWS_SECRET_ACCESS_KEY: OTHER_SECRET };
const DEFAULT_PROFILE = `[default]\naws_access_key_id = ${ID}\naws_secret_access_key = ${SECRET}\n`;

describe('where the credentials come from (the AWS CLI order: flags, environment, credentials file)', () => {
  test('flags win over the environment and the file', () => {
    const r = resolve({ accessKeyId: ID, secretAccessKeyFile: '/run/secret' }, ENV_KEYS, { ...fileWith(`[default]\naws_access_key_id = X${ID}\naws_secret_access_key = x${SECRET}`), '/run/secret': `${SECRET}\n` });
    expect(plain(r.credentials)).toEqual({ accessKeyId: ID, secretAccessKey: SECRET });
    expect(r.source).toBe('flags');
    expect(r.warnings).toEqual([]);
  });

  test('the environment wins over the file, with its session token', () => {
    const r = resolve({}, { AWS_ACCESS_KEY_ID: TEMP_ID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_SESSION_TOKEN: TOKEN }, fileWith(DEFAULT_PROFILE));
    expect(plain(r.credentials)).toEqual({ accessKeyId: TEMP_ID, secretAccessKey: SECRET, sessionToken: TOKEN });
    expect(r.source).toBe('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
    expect(r.warnings.join('\n')).toMatch(/temporary credentials .* expire/);
    expect(r.read).toEqual([]);
  });

  test('with nothing else, the [default] profile of ~/.aws/credentials', () => {
    const r = resolve({}, {}, fileWith(DEFAULT_PROFILE));
    expect(plain(r.credentials)).toEqual({ accessKeyId: ID, secretAccessKey: SECRET });
    expect(r.source).toBe(`profile "default" in ${DEFAULT_FILE}`);
    expect(r.warnings).toEqual([]);
  });

  test('AWS_PROFILE picks the profile, and --profile beats AWS_PROFILE', () => {
    const files = fileWith(`${DEFAULT_PROFILE}[work]\naws_access_key_id = ${OTHER_ID}\naws_secret_access_key = ${OTHER_SECRET}\n[play]\naws_access_key_id = ${TEMP_ID}\naws_secret_access_key = ${SECRET}\naws_session_token = ${TOKEN}\n`);
    expect(resolve({}, { AWS_PROFILE: 'work' }, files).credentials.accessKeyId).toBe(OTHER_ID);
    const play = resolve({ profile: 'play' }, { AWS_PROFILE: 'work' }, files);
    expect(plain(play.credentials)).toEqual({ accessKeyId: TEMP_ID, secretAccessKey: SECRET, sessionToken: TOKEN });
    expect(play.source).toBe(`profile "play" in ${DEFAULT_FILE}`);
  });

  test('AWS_SHARED_CREDENTIALS_FILE names the file (a leading ~/ is the home), and --credentials-file beats it', () => {
    const files = { [`${HOME}/keys/aws`]: DEFAULT_PROFILE, '/etc/weft/aws': `[default]\naws_access_key_id=${OTHER_ID}\naws_secret_access_key=${OTHER_SECRET}` };
    expect(resolve({}, { AWS_SHARED_CREDENTIALS_FILE: '~/keys/aws' }, files).credentials.accessKeyId).toBe(ID);
    expect(resolve({ credentialsFile: '/etc/weft/aws' }, { AWS_SHARED_CREDENTIALS_FILE: '~/keys/aws' }, files).credentials.accessKeyId).toBe(OTHER_ID);
  });

  test('an explicit --profile or --credentials-file means the file even when the environment holds keys', () => {
    expect(resolve({ profile: 'default' }, ENV_KEYS, fileWith(DEFAULT_PROFILE)).credentials.accessKeyId).toBe(ID);
    expect(resolve({ credentialsFile: DEFAULT_FILE }, ENV_KEYS, fileWith(DEFAULT_PROFILE)).credentials.accessKeyId).toBe(ID);
  });

  test('keys in the environment win over AWS_PROFILE (as in the AWS CLI), and the user is told', () => {
    const r = resolve({}, { ...ENV_KEYS, AWS_PROFILE: 'work' }, fileWith(DEFAULT_PROFILE));
    expect(r.credentials.accessKeyId).toBe(OTHER_ID);
    expect(r.warnings).toEqual([expect.stringMatching(/not AWS_PROFILE=work \(give --profile to use the profile\)/)]);
  });

  test('empty environment variables count as unset, as in the AWS SDK', () => {
    const r = resolve({}, { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_SESSION_TOKEN: '', AWS_PROFILE: '', AWS_SHARED_CREDENTIALS_FILE: '' }, fileWith(DEFAULT_PROFILE));
    expect(plain(r.credentials)).toEqual({ accessKeyId: ID, secretAccessKey: SECRET });
  });

  test('a session token in the environment goes only with keys in the environment', () => {
    expect(plain(resolve({}, { AWS_SESSION_TOKEN: TOKEN }, fileWith(DEFAULT_PROFILE)).credentials)).toEqual({ accessKeyId: ID, secretAccessKey: SECRET });
  });
});

describe('keeping the secret out of the process list', () => {
  test('the secret can come from a file or standard input (-), without the newline echo leaves', () => {
    const fromFile = resolve({ accessKeyId: ID, secretAccessKeyFile: '~/aws-secret' }, {}, { [`${HOME}/aws-secret`]: `  ${SECRET}\r\n` });
    expect(fromFile.credentials.secretAccessKey).toBe(SECRET);
    expect(fromFile.read).toEqual([`${HOME}/aws-secret`]);
    const fromStdin = resolve({ accessKeyId: TEMP_ID, secretAccessKeyFile: STDIN, sessionTokenFile: '/run/token' }, {}, { [STDIN]: `${SECRET}\n`, '/run/token': TOKEN });
    expect(plain(fromStdin.credentials)).toEqual({ accessKeyId: TEMP_ID, secretAccessKey: SECRET, sessionToken: TOKEN });
    expect(fromStdin.read).toEqual([STDIN, '/run/token']);
    expect(fromStdin.warnings.join('\n')).not.toMatch(/process list/);
  });

  test('a secret or token given as a flag still works, with a warning naming the safer ways', () => {
    const r = resolve({ accessKeyId: TEMP_ID, secretAccessKey: SECRET, sessionToken: TOKEN });
    expect(plain(r.credentials)).toEqual({ accessKeyId: TEMP_ID, secretAccessKey: SECRET, sessionToken: TOKEN });
    expect(r.warnings.filter((w) => /process list/.test(w))).toEqual([
      expect.stringMatching(/^--secret-access-key puts a secret .* prefer --secret-access-key-file \(- reads standard input\) or AWS_SECRET_ACCESS_KEY$/),
      expect.stringMatching(/^--session-token puts a secret .* prefer --session-token-file or AWS_SESSION_TOKEN$/),
    ]);
  });

  test('the secret file cannot be read, is empty, or is too large: said without its content', () => {
    expect(refusal({ accessKeyId: ID, secretAccessKeyFile: '/nope' })).toBe('cannot read /nope (given with --secret-access-key-file)');
    expect(refusal({ accessKeyId: ID, secretAccessKeyFile: STDIN }, {}, { [STDIN]: '\n' })).toBe('standard input (given with --secret-access-key-file) is empty');
    const big = `${SECRET}\n`.repeat(1000);
    const tooBig = refusal({ accessKeyId: ID, secretAccessKeyFile: '/var/log/syslog' }, {}, { '/var/log/syslog': big });
    expect(tooBig).toBe('/var/log/syslog (given with --secret-access-key-file) is too large to hold a secret');
    expect(refusal({ accessKeyId: TEMP_ID, secretAccessKeyFile: STDIN, sessionTokenFile: STDIN })).toMatch(/standard input can hold the secret or the session token, not both/);
  });
});

describe('refusals say what to do in one line', () => {
  test('no credentials anywhere', () => {
    expect(refusal()).toBe('no AWS credentials: give --access-key-id and --secret-access-key-file, set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or add a [default] profile to ~/.aws/credentials');
    expect(refusal({}, {}, fileWith('# nothing here yet\n'))).toBe(refusal());
  });

  test('incomplete or conflicting flags', () => {
    expect(refusal({ accessKeyId: ID })).toMatch(/^--access-key-id needs its secret: give --secret-access-key-file/);
    expect(refusal({ secretAccessKeyFile: '/run/secret' })).toMatch(/without --access-key-id/);
    expect(refusal({ accessKeyId: ID, secretAccessKey: SECRET, secretAccessKeyFile: '/run/secret' })).toMatch(/not both/);
    expect(refusal({ accessKeyId: ID, secretAccessKey: SECRET, profile: 'work' })).toMatch(/either --access-key-id .* or --profile/);
    expect(refusal({ sessionToken: TOKEN })).toMatch(/without --access-key-id/);
  });

  test('half a pair in the environment is refused, not silently skipped', () => {
    expect(refusal({}, { AWS_ACCESS_KEY_ID: ID }, fileWith(DEFAULT_PROFILE))).toBe('AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or unset AWS_ACCESS_KEY_ID to use the credentials file');
    expect(refusal({}, { AWS_SECRET_ACCESS_KEY: SECRET })).toMatch(/^AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not/);
  });

  test('malformed values are named with where they came from', () => {
    expect(refusal({}, { AWS_ACCESS_KEY_ID: 'AKIA/bad', AWS_SECRET_ACCESS_KEY: SECRET })).toMatch(/^the access key id in AWS_ACCESS_KEY_ID is not one/);
    expect(refusal({}, { AWS_ACCESS_KEY_ID: ID, AWS_SECRET_ACCESS_KEY: 'short' })).toMatch(/^the secret access key in AWS_SECRET_ACCESS_KEY is not one: expected 8-512/);
    expect(refusal({ accessKeyId: ID, secretAccessKey: `${SECRET} trailing` })).toMatch(/^the secret access key given with --secret-access-key is not one/);
    expect(refusal({ accessKeyId: SECRET, secretAccessKey: ID })).toMatch(/access key id given with --access-key-id is not one/);
    expect(refusal({ accessKeyId: OTHER_ID, secretAccessKey: ID })).toMatch(/looks like an access key id .* swapped/);
    expect(refusal({}, { AWS_ACCESS_KEY_ID: TEMP_ID, AWS_SECRET_ACCESS_KEY: SECRET })).toMatch(/temporary one \(ASIA…\) and needs its session token/);
    expect(refusal({}, { ...ENV_KEYS, AWS_SESSION_TOKEN: 'x'.repeat(MAX_SESSION_TOKEN_LENGTH + 1) })).toMatch(/^the session token in AWS_SESSION_TOKEN is not one/);
    expect(refusal({}, {}, fileWith(`[default]\naws_access_key_id = ${ID}\naws_secret_access_key = tiny\n`))).toMatch(/^the secret access key in profile "default" in \/home\/ada\/.aws\/credentials is not one/);
  });

  test('no error, warning or source ever holds the secret, the session token or the whole access key id', () => {
    const rng = new Rng(11);
    const secrets = [SECRET, TOKEN, OTHER_SECRET];
    const junk = () => rng.pick([SECRET, TOKEN, ID, TEMP_ID, OTHER_SECRET, `${SECRET} `, `${SECRET}\n${SECRET}`, SECRET.slice(0, 7), '', ' ', 'AKIA/x', undefined]);
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      const flags: AwsCredentialFlags = rng.chance(0.4) ? { accessKeyId: junk(), secretAccessKey: junk(), sessionToken: rng.chance(0.3) ? junk() : undefined, secretAccessKeyFile: rng.chance(0.2) ? STDIN : undefined } : {};
      const env = rng.chance(0.5) ? { AWS_ACCESS_KEY_ID: junk(), AWS_SECRET_ACCESS_KEY: junk(), AWS_SESSION_TOKEN: junk() } : {};
      const files = { [STDIN]: junk() ?? '', ...fileWith(`[default]\naws_access_key_id = ${junk() ?? ''}\naws_secret_access_key = ${junk() ?? ''}\n`) };
      let said: string;
      try {
        const r = resolve(flags, env, files);
        said = [r.source, ...r.warnings, String(r.credentials), JSON.stringify(r.credentials), inspect(r.credentials), `${r.credentials}`].join('\n');
      } catch (err) {
        said = (err as Error).message;
        refused++;
        expect(said).not.toMatch(/\n/);
      }
      for (const s of secrets) expect(said).not.toContain(s.slice(0, 12));
      expect(said).not.toContain(ID);
      expect(said).not.toContain(TEMP_ID);
    }
    expect(refused).toBeGreaterThan(100);
  });

  test('the resolved credentials print as their hint everywhere, yet the SDK reads them as usual', () => {
    const { credentials } = resolve({ accessKeyId: TEMP_ID, secretAccessKeyFile: STDIN, sessionTokenFile: '/t' }, {}, { [STDIN]: SECRET, '/t': TOKEN });
    for (const shown of [String(credentials), `${credentials}`, JSON.stringify(credentials), JSON.stringify({ credentials }), inspect(credentials), inspect({ deep: { credentials } })]) {
      expect(shown).toContain('AwsCredentials(ASIA…MPLE, secret redacted)');
      expect(shown).not.toContain(SECRET);
      expect(shown).not.toContain(TOKEN);
    }
    expect([credentials.accessKeyId, credentials.secretAccessKey, credentials.sessionToken]).toEqual([TEMP_ID, SECRET, TOKEN]);
  });

  test('the AWS SDK signs with them, and the secret never goes on the wire', async () => {
    // A frozen credentials object once broke here: the SDK writes `$source` onto it.
    const requests: string[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        requests.push(`${JSON.stringify(req.headers)}\n${req.url}\n${body}`);
        res.writeHead(200, { 'content-type': 'text/xml' }).end('<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><regionInfo/></DescribeRegionsResponse>');
      });
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const { credentials } = resolve({}, { AWS_ACCESS_KEY_ID: TEMP_ID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_SESSION_TOKEN: TOKEN });
      const client = new EC2Client({ region: 'us-east-1', endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, credentials, maxAttempts: 1 });
      await client.send(new DescribeRegionsCommand({}));
      client.destroy();
    } finally {
      server.close();
    }
    expect(requests).toHaveLength(1);
    expect(requests[0]).toContain(`Credential=${TEMP_ID}/`);
    expect(requests[0]).toContain(TOKEN); // x-amz-security-token travels, by design
    expect(requests[0]).not.toContain(SECRET);
    expect(requests[0]).not.toContain(encodeURIComponent(SECRET));
  });
});

describe('the shared credentials file, read as the AWS SDK reads it', () => {
  test('comments (# and ; at the start or after whitespace), whitespace, CRLF, a byte order mark and upper-case names', () => {
    const text = [
      '\uFEFF# written by aws configure',
      '; another comment',
      '[default] ; the default profile',
      '   aws_access_key_id=AKIAIOSFODNN7EXAMPLE   # inline',
      `AWS_SECRET_ACCESS_KEY    =    ${SECRET}`,
      '',
      '[ spaced ]',
      `aws_access_key_id = ${OTHER_ID} ;trailing`,
      `aws_secret_access_key = ${OTHER_SECRET}`,
      'region = us-east-1',
    ].join('\r\n');
    expect(plain(resolve({}, {}, fileWith(text)).credentials)).toEqual({ accessKeyId: ID, secretAccessKey: SECRET });
    expect(plain(resolve({ profile: 'spaced' }, {}, fileWith(text)).credentials)).toEqual({ accessKeyId: OTHER_ID, secretAccessKey: OTHER_SECRET });
  });

  test('a # inside a value is part of it; a # after whitespace starts a comment', () => {
    const file = parseCredentialsFile('[p]\na = x#y\nb = x #y\n');
    expect([file.get('p')?.settings.get('a'), file.get('p')?.settings.get('b')]).toEqual(['x#y', 'x']);
  });

  test('indented lines under a setting with no value are nested settings, not the profile\'s own', () => {
    const file = parseCredentialsFile(`[default]\ns3 =\n  aws_secret_access_key = nested\naws_access_key_id = ${ID}\n`);
    expect(file.get('default')?.settings).toEqual(new Map([['aws_access_key_id', ID]]));
  });

  test('a missing profile is named with the ones there are', () => {
    const files = fileWith(`${DEFAULT_PROFILE}[work]\naws_access_key_id = ${OTHER_ID}\n`);
    expect(refusal({ profile: 'wrok' }, {}, files)).toBe(`no profile "wrok" in ${DEFAULT_FILE} (it has "default", "work"): check --profile or AWS_PROFILE`);
    expect(refusal({}, {}, fileWith('[work]\n'))).toBe(`no profile "default" in ${DEFAULT_FILE} (it has "work"): give --profile or set AWS_PROFILE`);
  });

  test('[profile x] (the config file\'s form) is explained, not silently missed', () => {
    expect(refusal({ profile: 'work' }, {}, fileWith(`[profile work]\naws_access_key_id = ${ID}\n`))).toMatch(/has \[profile work\], but the credentials file names its sections without the word "profile".*rename it \[work\]/);
  });

  test('a profile without a key pair (a role, SSO, credential_process) is refused with the reason', () => {
    const files = fileWith('[role]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = default\n');
    expect(refusal({ profile: 'role' }, {}, files)).toBe(`profile "role" in ${DEFAULT_FILE} has no aws_access_key_id: weft needs an access key pair (roles, SSO and credential_process profiles are not supported)`);
    expect(refusal({}, {}, fileWith(`[default]\naws_access_key_id = ${ID}\n`))).toMatch(/has no aws_secret_access_key/);
  });

  test('a profile given twice, or a value set twice, is refused rather than guessed', () => {
    expect(refusal({}, {}, fileWith(`${DEFAULT_PROFILE}[default]\naws_secret_access_key = ${OTHER_SECRET}\n`))).toMatch(/profile "default" .* is given twice, or sets a value twice: keep one/);
    expect(refusal({}, {}, fileWith(`${DEFAULT_PROFILE}aws_access_key_id = ${OTHER_ID}\n`))).toMatch(/twice/);
    // Another profile's repetition does not matter.
    expect(resolve({}, {}, fileWith(`${DEFAULT_PROFILE}[x]\n[x]\n`)).credentials.accessKeyId).toBe(ID);
  });

  test('a named file that cannot be read is said to be so; a profile asked for with no file too', () => {
    expect(refusal({}, { AWS_SHARED_CREDENTIALS_FILE: '/nope' })).toBe('cannot read the credentials file /nope (named by AWS_SHARED_CREDENTIALS_FILE)');
    expect(refusal({ credentialsFile: '/nope' })).toBe('cannot read the credentials file /nope (named by --credentials-file)');
    expect(refusal({}, { AWS_PROFILE: 'work' })).toBe(`no credentials file ${DEFAULT_FILE} to find profile "work" in: create it, or set AWS_SHARED_CREDENTIALS_FILE`);
  });

  test('odd section names are only names', () => {
    const file = parseCredentialsFile('[__proto__]\na = 1\n[constructor]\nb = 2\n');
    expect(file.get('__proto__')?.settings.get('a')).toBe('1');
    expect(({} as Record<string, unknown>).a).toBeUndefined();
    expect(refusal({ profile: '__proto__' }, {}, fileWith('[__proto__]\na = 1\n'))).toMatch(/has no aws_access_key_id/);
  });
});

const meshKey = deriveMeshKey('correct horse battery staple');
const key = CredentialsKey.derive(meshKey);
const otherKey = deriveCredentialsKey(deriveMeshKey('correct horse battery stable'));

/** The sealed box with one byte of its box (or nonce) changed. */
function tamper(sealed: SealedBox, field: 'box' | 'nonce', at: number): SealedBox {
  const bytes = Buffer.from(sealed[field], 'base64');
  bytes[at % bytes.length] = (bytes[at % bytes.length] as number) ^ (1 << (at % 8));
  return { ...sealed, [field]: bytes.toString('base64') };
}

describe('sealing under the mesh secret', () => {
  test('what is sealed opens again under the same mesh secret, and the box holds none of it in the clear', () => {
    const plaintext = { accessKeyId: ID, secretAccessKey: SECRET, sessionToken: TOKEN, note: 'ünïcödé' };
    const sealed = seal(key, plaintext);
    expect(sealed.v).toBe(1);
    expect(Buffer.from(sealed.nonce, 'base64')).toHaveLength(24);
    expect(open(key, sealed)).toEqual(plaintext);
    expect(open(CredentialsKey.derive(deriveMeshKey('correct horse battery staple')), JSON.parse(JSON.stringify(sealed)))).toEqual(plaintext);
    const stored = JSON.stringify(sealed);
    for (const s of [ID, SECRET, TOKEN, 'AKIA']) expect(stored).not.toContain(s);
    expect(sealedBoxProblem(sealed)).toBeUndefined();
  });

  test('every seal draws a new nonce', () => {
    const nonces = new Set(Array.from({ length: 50 }, () => seal(key, { a: 1 }).nonce));
    expect(nonces.size).toBe(50);
  });

  test('another mesh secret cannot open it, and says so in one line', () => {
    const sealed = seal(key, { secretAccessKey: SECRET });
    expect(() => open(otherKey, sealed)).toThrow(CANNOT_OPEN);
    expect(CANNOT_OPEN).toMatch(/^the provider credentials cannot be opened: sealed under a different mesh secret/);
    expect(CANNOT_OPEN).not.toMatch(/\n/);
  });

  test('the key is derived for this use only: a box under the raw mesh key does not open', () => {
    const nonce = nacl.randomBytes(24);
    const raw = { v: 1 as const, nonce: Buffer.from(nonce).toString('base64'), box: Buffer.from(nacl.secretbox(new TextEncoder().encode('{"a":1}'), nonce, meshKey)).toString('base64') };
    expect(() => open(key, raw)).toThrow(CANNOT_OPEN);
  });

  test('any change to the box or nonce, swapped or cut boxes and damaged base64 give the same one error', () => {
    const sealed = seal(key, { accessKeyId: ID, secretAccessKey: SECRET });
    const other = seal(key, { accessKeyId: ID, secretAccessKey: OTHER_SECRET });
    const broken: unknown[] = [
      ...Array.from({ length: 60 }, (_, i) => tamper(sealed, 'box', i * 7)),
      ...Array.from({ length: 24 }, (_, i) => tamper(sealed, 'nonce', i * 9)),
      { ...sealed, box: other.box },
      { ...sealed, nonce: other.nonce },
      { ...sealed, box: Buffer.from(sealed.box, 'base64').subarray(0, 20).toString('base64') },
      { ...sealed, box: sealed.box.slice(0, -4) },
      { ...sealed, box: `${sealed.box.slice(0, 10)}!${sealed.box.slice(11)}` },
      { ...sealed, nonce: sealed.nonce.slice(1) },
      { ...sealed, box: '' },
      { ...sealed, v: 0 },
      { nonce: sealed.nonce, box: sealed.box },
      { ...sealed, extra: 1 },
      null, 'box', [], 42,
    ];
    for (const b of broken) expect(() => open(key, b), JSON.stringify(b)).toThrow(CANNOT_OPEN);
    // Base64 that decodes to the same bytes but is not what seal() writes (spare bits set).
    const last = sealed.box.replace(/=+$/, '');
    if (last.length !== sealed.box.length) {
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
      const c = last.at(-1) as string;
      const twin = `${last.slice(0, -1)}${alphabet[alphabet.indexOf(c) ^ 1]}${sealed.box.slice(last.length)}`;
      expect(() => open(key, { ...sealed, box: twin })).toThrow(CANNOT_OPEN);
    }
  });

  test('a box from a newer weft asks for an upgrade instead', () => {
    const sealed = seal(key, { a: 1 });
    expect(() => open(key, { ...sealed, v: 2 })).toThrow('the provider credentials cannot be opened: sealed by a newer weft (format 2): upgrade this peer');
  });

  test('sizes are bounded both ways, and the refusal holds no plaintext', () => {
    const fits = { s: 'x'.repeat(MAX_SEALED_PLAINTEXT_BYTES - 8) }; // {"s":""} is 8 bytes
    const sealed = seal(key, fits);
    expect(sealed.box.length).toBeLessThanOrEqual(MAX_SEALED_BOX_CHARS);
    expect(open(key, sealed)).toEqual(fits);
    let message = '';
    try {
      seal(key, { s: `${SECRET}${'x'.repeat(MAX_SEALED_PLAINTEXT_BYTES)}` });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(`the provider credentials are too large to seal: at most ${MAX_SEALED_PLAINTEXT_BYTES} bytes`);
    expect(sealedBoxProblem({ ...sealed, box: 'A'.repeat(MAX_SEALED_BOX_CHARS + 4) })).toMatch(/base64 of 24-/);
    expect(() => seal(key, [SECRET])).toThrow('only an object can be sealed');
    const cyclic: Record<string, unknown> = { secret: SECRET };
    cyclic.self = cyclic;
    expect(() => seal(key, cyclic)).toThrow('the provider credentials cannot be sealed: they are not plain JSON data');
  });

  test('the key is derived deterministically from a 32-byte mesh key and never prints', () => {
    const sealed = seal(key, { a: 1 });
    expect(open(deriveCredentialsKey(meshKey), sealed)).toEqual({ a: 1 });
    expect(() => CredentialsKey.derive(new Uint8Array(16))).toThrow('the mesh key must be 32 bytes');
    for (const shown of [String(key), JSON.stringify({ key }), inspect(key)]) expect(shown).toContain('CredentialsKey(<redacted>)');
    expect(Object.keys(key)).toEqual([]);
  });
});

const NOW = 1_760_000_000_000;
function record(over: Partial<ProviderRecord> = {}, credentials: AwsCredentials = { accessKeyId: ID, secretAccessKey: SECRET }): ProviderRecord {
  return { ...newProviderRecord({ key, name: 'prod', region: 'eu-west-1', credentials, now: NOW }), ...over };
}

describe('the provider record in desired state', () => {
  test('a new record holds the hint in the clear and the rest sealed, and validates', () => {
    const r = record();
    expect(r).toEqual({ type: 'aws', region: 'eu-west-1', accessKeyIdHint: 'AKIA…MPLE', sealed: expect.any(Object), createdAt: NOW });
    expect(providerRecordProblem(r)).toBeUndefined();
    expect(providerRecordProblem(JSON.parse(JSON.stringify(r)))).toBeUndefined();
    const compatible = newProviderRecord({ key, name: 'lab', region: 'RegionOne', endpoint: 'http://10.0.0.5:8788/services/Cloud', credentials: { accessKeyId: 'minio', secretAccessKey: 'minio-secret' }, now: NOW });
    expect(compatible.accessKeyIdHint).toBe('…');
    expect(providerRecordProblem(compatible)).toBeUndefined();
  });

  test('the leader opens the credentials with the mesh key; they print as their hint', () => {
    const r = record({}, { accessKeyId: TEMP_ID, secretAccessKey: SECRET, sessionToken: TOKEN });
    const c = openProviderCredentials(deriveCredentialsKey(meshKey), 'prod', JSON.parse(JSON.stringify(r)));
    expect(plain(c)).toEqual({ accessKeyId: TEMP_ID, secretAccessKey: SECRET, sessionToken: TOKEN });
    expect(inspect(c)).not.toContain(SECRET);
    expect(() => openProviderCredentials(otherKey, 'prod', r)).toThrow(CANNOT_OPEN);
  });

  test('a sealed box moved into another provider\'s record, or a hint edited by hand, is refused', () => {
    const prod = record();
    expect(() => openProviderCredentials(key, 'staging', prod)).toThrow('the credentials of provider "staging" were sealed for another provider: give them again with `weft provider rotate staging`');
    expect(() => openProviderCredentials(key, 'prod', { ...prod, accessKeyIdHint: 'AKIA…ZZZZ' })).toThrow(/shows access key AKIA…ZZZZ but holds another/);
    const notCredentials = { ...prod, sealed: seal(key, { provider: 'prod', accessKeyId: ID }) };
    const message = (() => {
      try {
        openProviderCredentials(key, 'prod', notCredentials);
        return '';
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(message).toMatch(/^the credentials of provider "prod" are damaged \(the secret access key is not one/);
  });

  test('rotation reseals new credentials and keeps the rest; rotatedAt never precedes createdAt', () => {
    const before = record({ endpoint: 'https://ec2.example.com' });
    const after = rotateProviderRecord(before, { key, name: 'prod', credentials: { accessKeyId: OTHER_ID, secretAccessKey: OTHER_SECRET }, now: NOW + 5 });
    expect(after).toEqual({ ...before, accessKeyIdHint: 'AKIA…MPLE', sealed: expect.any(Object), rotatedAt: NOW + 5 });
    expect(after.sealed).not.toEqual(before.sealed);
    expect(openProviderCredentials(key, 'prod', after).secretAccessKey).toBe(OTHER_SECRET);
    expect(providerRecordProblem(after)).toBeUndefined();
    const skewed = rotateProviderRecord(before, { key, name: 'prod', credentials: { accessKeyId: OTHER_ID, secretAccessKey: OTHER_SECRET }, now: NOW - 60_000 });
    expect(skewed.rotatedAt).toBe(NOW);
    expect(providerRecordProblem(skewed)).toBeUndefined();
  });

  test('making a record refuses bad parts with one line and no secret', () => {
    const make = (over: Record<string, unknown>) => {
      try {
        newProviderRecord({ key, name: 'prod', region: 'us-east-1', credentials: { accessKeyId: ID, secretAccessKey: SECRET }, now: NOW, ...over });
        return '';
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(make({ name: 'Prod' })).toMatch(/provider name/);
    expect(make({ region: 'us-east' })).toMatch(/AWS region like us-east-1/);
    expect(make({ endpoint: 'http://ec2.example.com' })).toMatch(/must be https/);
    expect(make({ credentials: { accessKeyId: ID, secretAccessKey: `${SECRET}\n` } })).toMatch(/secret access key is not one/);
    expect(make({ now: -1 })).toMatch(/milliseconds/);
    expect(make({ credentials: hiddenAwsCredentials({ accessKeyId: ID, secretAccessKey: SECRET }) })).toBe('');
  });

  test('each bad field is refused with its reason', () => {
    const good = record({ rotatedAt: NOW + 1 });
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ type: 'gce' }, /type must be aws/],
      [{ region: 'US-EAST-1' }, /AWS region/], [{ region: 'mars' }, /AWS region/], [{ region: 7 }, /AWS region/],
      [{ endpoint: 'https://ec2.example.com', region: 'bad region' }, /region must be 1-64/],
      [{ endpoint: 'http://203.0.113.9' }, /https/], [{ endpoint: 'https://u:p@ec2.example.com' }, /user name or password/], [{ endpoint: 5 }, /URL/],
      [{ accessKeyIdHint: ID }, /hint/], [{ accessKeyIdHint: 'AKIAI…EXAMPLE' }, /hint/], [{ accessKeyIdHint: undefined }, /hint/],
      [{ sealed: undefined }, /sealed credentials: a sealed box must be an object/], [{ sealed: { ...good.sealed, v: 2 } }, /newer weft/],
      [{ sealed: { ...good.sealed, nonce: 'AAAA' } }, /nonce/], [{ sealed: { ...good.sealed, box: 'not base64!' } }, /box must be base64/],
      [{ sealed: { ...good.sealed, key: 'x' } }, /no field "key"/],
      [{ createdAt: -1 }, /createdAt/], [{ createdAt: 1.5 }, /createdAt/], [{ createdAt: '2025-01-01' }, /createdAt/],
      [{ rotatedAt: NOW - 1 }, /rotatedAt/], [{ rotatedAt: null }, /rotatedAt/],
      [{ secretAccessKey: SECRET }, /no field "secretAccessKey"/],
    ];
    for (const [patch, why] of bad) {
      const problem = providerRecordProblem({ ...good, ...patch });
      expect(problem, JSON.stringify(patch)).toMatch(why);
      expect(problem).not.toContain(SECRET);
    }
    for (const x of [null, [], 'provider', 1]) expect(providerRecordProblem(x)).toBe('a provider must be an object');
    expect(providerObjectProblem('prod', good)).toBeUndefined();
    expect(providerObjectProblem('Prod', good)).toMatch(/provider name/);
    expect(providerObjectProblem('prod', { ...good, type: 'gce' })).toMatch(/type must be aws/);
  });

  test('provider names', () => {
    for (const ok of ['aws', 'prod-eu', 'a', `a${'b'.repeat(31)}`]) expect(providerNameProblem(ok)).toBeUndefined();
    for (const bad of ['', 'Prod', '1aws', '-aws', 'a_b', 'a.b', `a${'b'.repeat(32)}`, 'a/b', 5, null]) expect(providerNameProblem(bad)).toMatch(/1-32 lower-case/);
  });

  test('endpoints: https anywhere, http only to loopback or private addresses', () => {
    for (const ok of ['https://ec2.us-east-1.amazonaws.com', 'https://203.0.113.9:8443/ec2', 'http://127.0.0.1:4566', 'http://localhost:9000/', 'http://10.1.2.3',
      'http://172.16.0.1', 'http://172.31.255.255', 'http://192.168.1.10:8788/services/Cloud', 'http://[::1]:8080', 'http://[fd12:3456::1]', 'http://2130706433/']) {
      expect(endpointProblem(ok), ok).toBeUndefined();
    }
    const bad: Array<[unknown, RegExp]> = [
      ['http://ec2.example.com', /https/], ['http://203.0.113.9', /https/], ['http://172.32.0.1', /https/], ['http://169.254.169.254', /https/],
      ['http://[fe80::1]', /https/], ['http://[fd::1]', /https/], ['http://localhost.example.com', /https/], ['http://[::ffff:10.0.0.1]', /https/],
      ['ftp://ec2.example.com', /https/], ['file:///etc/passwd', /https/], ['https://key:secret@ec2.example.com', /user name or password/],
      ['https://ec2.example.com/?Action=RunInstances', /query/], ['https://ec2.example.com/#x', /fragment/], ['https://ec2.example.com/?', /query/],
      ['https://ec2.example.com\n', /spaces or control/], [' https://ec2.example.com', /spaces/], ['ec2.example.com', /not a URL/],
      [`https://${'a'.repeat(2048)}.com`, /at most 2048/], ['', /URL/], [undefined, /URL/],
    ];
    for (const [x, why] of bad) expect(endpointProblem(x), String(x)).toMatch(why);
  });

  test('fuzz: 5,000 random and mutated records never throw and give a reason or pass', () => {
    const rng = new Rng(23);
    const good = record({ endpoint: 'https://ec2.example.com', rotatedAt: NOW + 1 }) as unknown as Record<string, unknown>;
    const values = (): unknown => rng.pick([
      undefined, null, true, 0, -1, 1.5, NaN, Infinity, 2 ** 60, '', 'aws', '…', 'AKIA…MPLE', 'x'.repeat(rng.int(5000)), [], [1, 'a'], {}, { v: 1 },
      { v: 1, nonce: 'A'.repeat(32), box: 'A'.repeat(24) }, { __proto__: null, v: 1 }, 'http://[::1]', 'https://%zz', 'us-east-1', NOW, good.sealed,
    ]);
    let passed = 0;
    for (let i = 0; i < 5000; i++) {
      let x: unknown;
      if (i % 5 === 0) x = values();
      else {
        const r: Record<string, unknown> = { ...good };
        for (let n = rng.int(3) + 1; n > 0; n--) {
          const field = rng.pick([...Object.keys(good), 'extra', '__proto__', 'constructor']);
          if (rng.chance(0.2)) delete r[field];
          else Object.defineProperty(r, field, { value: values(), enumerable: true, configurable: true, writable: true });
        }
        x = rng.chance(0.5) ? JSON.parse(JSON.stringify(r)) : r;
      }
      const problem = providerRecordProblem(x);
      expect(problem === undefined || (typeof problem === 'string' && problem.length > 0 && !problem.includes('\n'))).toBe(true);
      if (problem === undefined) passed++;
    }
    expect(passed).toBeGreaterThan(0);
  });

  test('the public view holds no sealed material, whatever the record carries', () => {
    const r = record({ endpoint: 'https://ec2.example.com', rotatedAt: NOW + 1 }, { accessKeyId: TEMP_ID, secretAccessKey: SECRET, sessionToken: TOKEN });
    const view = publicView({ ...r, secretAccessKey: SECRET, note: TOKEN } as ProviderRecord);
    expect(view).toEqual({ type: 'aws', region: 'eu-west-1', endpoint: 'https://ec2.example.com', accessKeyIdHint: 'ASIA…MPLE', createdAt: NOW, rotatedAt: NOW + 1 });
    const json = JSON.stringify(view);
    for (const s of [SECRET, TOKEN, TEMP_ID, r.sealed.box, r.sealed.nonce, 'sealed']) expect(json).not.toContain(s);
  });
});

describe('redacting what a cloud says back', () => {
  test('every occurrence of every secret, as is, URL-encoded and JSON-escaped', () => {
    const said = `SignatureDoesNotMatch: key ${SECRET}; again ${SECRET}; query X-Amz-Security-Token=${encodeURIComponent(TOKEN)}; body ${JSON.stringify({ t: `${TOKEN}"` })}`;
    const out = redact(said, [SECRET, TOKEN]);
    expect(out).toBe(`SignatureDoesNotMatch: key ${REDACTED}; again ${REDACTED}; query X-Amz-Security-Token=${REDACTED}; body {"t":"${REDACTED}\\""}`);
    expect(redact('nothing to see', [SECRET])).toBe('nothing to see');
    expect(redact(`a ${SECRET} b`, ['', SECRET])).toBe(`a ${REDACTED} b`);
    expect(redact('', [SECRET])).toBe('');
  });

  test('overlapping and nested secrets leave no part behind', () => {
    expect(redact('xxABCDEFyy', ['ABCD', 'CDEF'])).toBe(`xx${REDACTED}yy`);
    expect(redact('xxABCDEFyy', ['BCD', 'ABCDEF'])).toBe(`xx${REDACTED}yy`);
    expect(redact('aaaa', ['aa'])).toBe(REDACTED);
  });

  test('with credentials: the secret and token go, the access key id becomes the hint ls shows', () => {
    const c = hiddenAwsCredentials({ accessKeyId: TEMP_ID, secretAccessKey: SECRET, sessionToken: TOKEN });
    const said = `AuthFailure: AWS was not able to validate the provided access credentials (${TEMP_ID}, secret ${SECRET}, token ${TOKEN})`;
    expect(redactCredentials(said, c)).toBe(`AuthFailure: AWS was not able to validate the provided access credentials (ASIA…MPLE, secret ${REDACTED}, token ${REDACTED})`);
    expect(redactedMessage(new Error(said), c)).toBe(redactCredentials(said, c));
    expect(redactedMessage(said, c)).toBe(redactCredentials(said, c));
    expect(redactedMessage({ secret: SECRET }, c)).toBe('the provider failed without a message');
    expect(accessKeyIdHint(ID)).toBe('AKIA…MPLE');
    expect(accessKeyIdHint('abcdefgh')).toBe('…efgh');
  });

  test('fuzz: secrets spliced anywhere into noise never survive', () => {
    const rng = new Rng(5);
    const c = { accessKeyId: TEMP_ID, secretAccessKey: SECRET, sessionToken: TOKEN };
    for (let i = 0; i < 1000; i++) {
      let text = '';
      for (let n = rng.int(8); n > 0; n--) {
        const piece = rng.pick([SECRET, TOKEN, TEMP_ID, encodeURIComponent(SECRET), SECRET.slice(0, 20), ' ', '/', 'abc', '"', '\n']);
        // Overlap a piece with what came before, now and then.
        text = rng.chance(0.2) && text.length > 3 ? text.slice(0, -rng.int(4)) + piece : text + piece;
      }
      const out = redactCredentials(text, c);
      expect(out).not.toContain(SECRET);
      expect(out).not.toContain(TOKEN);
      expect(out).not.toContain(encodeURIComponent(SECRET));
      expect(out).not.toContain(TEMP_ID);
    }
  });

  test('awsCredentialsProblem never echoes a value', () => {
    for (const c of [{ accessKeyId: SECRET, secretAccessKey: SECRET }, { accessKeyId: ID, secretAccessKey: `${SECRET} ` }, { accessKeyId: ID, secretAccessKey: ID }, { accessKeyId: ID, secretAccessKey: SECRET, sessionToken: `${TOKEN} ` }]) {
      const problem = awsCredentialsProblem(c);
      expect(problem).toBeDefined();
      for (const s of [SECRET, TOKEN, ID]) expect(problem).not.toContain(s);
    }
  });
});
