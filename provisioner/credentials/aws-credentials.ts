// AWS credentials for `weft provider add aws` and `rotate`: where they come from, what a valid
// set looks like, and an object that will not print its secret. Pure: the caller hands in the
// flags, the environment and a function that reads a file.
//
// Where they come from, first match wins, as with the AWS CLI:
//   1. flags: --access-key-id with --secret-access-key-file (or --secret-access-key), and
//      optionally --session-token-file (or --session-token);
//   2. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
//   3. the shared credentials file: --credentials-file, else AWS_SHARED_CREDENTIALS_FILE, else
//      ~/.aws/credentials; profile --profile, else AWS_PROFILE, else `default`.
// An explicit --profile or --credentials-file means the file, even when the environment holds
// keys (as the AWS CLI's --profile does).
//
// Keep secrets out of the process list: a flag's value is in the command's argv, which every
// user of the host can read (`ps`, /proc/PID/cmdline) while the command runs, and which shell
// history keeps. Prefer `--secret-access-key-file PATH` (`-` reads standard input), the
// environment (readable only by the same user and root) or the credentials file; a secret given
// as a flag still works, with a warning.

import { inspect } from 'node:util';
import { type CredentialsFile, MAX_CREDENTIALS_FILE_CHARS, parseCredentialsFile } from './shared-credentials-file.ts';

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Only with temporary credentials (an access key id starting ASIA). */
  readonly sessionToken?: string;
}

export interface AwsCredentialFlags {
  accessKeyId?: string;
  /** Discouraged (see the file comment): use secretAccessKeyFile. */
  secretAccessKey?: string;
  /** A file holding the secret, or STDIN. */
  secretAccessKeyFile?: string;
  /** Discouraged for the same reason as secretAccessKey. */
  sessionToken?: string;
  sessionTokenFile?: string;
  profile?: string;
  credentialsFile?: string;
}

export interface ResolveAwsCredentialsInput {
  flags: AwsCredentialFlags;
  env: NodeJS.ProcessEnv;
  /** The file's text, or undefined if it cannot be read. Given STDIN, reads standard input. */
  readFile: (path: string) => string | undefined;
  /** The user's home directory, for ~/.aws/credentials and a leading `~/`. */
  home: string;
}

export interface ResolvedAwsCredentials {
  /** Prints as its access key id hint: safe to log by mistake. */
  credentials: AwsCredentials;
  /** Where they came from, for the user ("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
   *  "profile "work" in /home/me/.aws/credentials"). Never holds a secret. */
  source: string;
  /** Things the user should hear about (a secret in argv, an expiring session token, an
   *  ignored AWS_PROFILE); each one line, never holding a secret. */
  warnings: string[];
}

/** The path that means standard input, as the `--secret-access-key-file -` convention has it. */
export const STDIN = '-';

// The environment variables and file settings every AWS SDK and the AWS CLI read.
export const ENV_ACCESS_KEY_ID = 'AWS_ACCESS_KEY_ID';
export const ENV_SECRET_ACCESS_KEY = 'AWS_SECRET_ACCESS_KEY';
export const ENV_SESSION_TOKEN = 'AWS_SESSION_TOKEN';
export const ENV_PROFILE = 'AWS_PROFILE';
export const ENV_CREDENTIALS_FILE = 'AWS_SHARED_CREDENTIALS_FILE';
export const DEFAULT_PROFILE = 'default';
const FILE_ACCESS_KEY_ID = 'aws_access_key_id';
const FILE_SECRET_ACCESS_KEY = 'aws_secret_access_key';
const FILE_SESSION_TOKEN = 'aws_session_token';

/** IAM's access key ids are 16-128 word characters (AKIA… or ASIA…, 20 today); EC2-compatible
 *  clouds use shorter ones (MinIO allows 3) of letters and digits. No "/", "+" or "=", which
 *  base64 secrets usually contain: a secret pasted as the id is then mostly refused before its
 *  ends are kept as the provider's hint. */
const ACCESS_KEY_ID = /^[A-Za-z0-9._-]{3,128}$/;
/** AWS secrets are 40 characters; EC2-compatible clouds use 8 (MinIO's least) to 64. Shorter
 *  is a truncated paste, and would make redaction of error messages hit ordinary words. */
export const MIN_SECRET_LENGTH = 8;
/** Far above any cloud's secret, while a wrong file given as the secret (a PEM key, a log) is
 *  refused rather than sealed. */
export const MAX_SECRET_LENGTH = 512;
/** STS does not fix the size of its session tokens; they run to about 1-2 KB, more with session
 *  tags. 8 KiB leaves room while bounding what is sealed into a Raft entry. */
export const MAX_SESSION_TOKEN_LENGTH = 8 * 1024;
/** A file read for a secret holds one secret or token and its newline; a larger one is a wrong
 *  path (a log, an image) and is refused before it is trimmed or checked. */
const MAX_SECRET_FILE_CHARS = MAX_SESSION_TOKEN_LENGTH + 1024;
/** Printable ASCII without spaces: every secret and token AWS issues; a space or a newline is a
 *  copy-and-paste accident. */
const PRINTABLE = /^[\x21-\x7e]+$/;
/** Temporary credentials from STS: they need their session token and stop working within hours
 *  (36 at most). */
const TEMPORARY_KEY_ID = /^ASIA/;
/** An AWS access key id, for catching one pasted where the secret belongs. */
const AWS_KEY_ID = /^(AKIA|ASIA)[A-Z0-9]{16}$/;

/** The part of an access key id that `weft provider ls` and error messages show: enough to tell
 *  keys apart, never more than half of it. AKIAIOSFODNN7EXAMPLE → "AKIA…MPLE". */
export function accessKeyIdHint(accessKeyId: string): string {
  if (accessKeyId.length >= 16) return `${accessKeyId.slice(0, 4)}…${accessKeyId.slice(-4)}`;
  if (accessKeyId.length >= 8) return `…${accessKeyId.slice(-4)}`;
  return '…';
}

/** Where each value came from, for messages: "in AWS_SECRET_ACCESS_KEY", "given with
 *  --access-key-id". One string for all three, or one per field. */
export type CredentialSources = string | { readonly [F in keyof AwsCredentials]-?: string };

/** Why `x` is not a set of AWS credentials (undefined: it is), naming the field and where it
 *  came from, never its value. */
export function awsCredentialsProblem(x: unknown, from: CredentialSources = ''): string | undefined {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'AWS credentials must be an object';
  const c = x as Record<string, unknown>;
  const extra = Object.keys(c).find((k) => !['accessKeyId', 'secretAccessKey', 'sessionToken'].includes(k));
  if (extra !== undefined) return `AWS credentials have no field "${extra}"`;
  const at = (field: keyof AwsCredentials) => {
    const where = typeof from === 'string' ? from : from[field];
    return where ? ` ${where}` : '';
  };
  if (typeof c.accessKeyId !== 'string' || !ACCESS_KEY_ID.test(c.accessKeyId)) {
    return `the access key id${at('accessKeyId')} is not one: expected 3-128 letters, digits, ".", "_" or "-" (an AWS one is 20, starting AKIA)`;
  }
  const secret = c.secretAccessKey;
  if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH || secret.length > MAX_SECRET_LENGTH || !PRINTABLE.test(secret)) {
    return `the secret access key${at('secretAccessKey')} is not one: expected ${MIN_SECRET_LENGTH}-${MAX_SECRET_LENGTH} printable characters without spaces`;
  }
  if (AWS_KEY_ID.test(secret)) return `the secret access key${at('secretAccessKey')} looks like an access key id (AKIA… or ASIA…): are the two swapped?`;
  if (secret === c.accessKeyId) return `the secret access key${at('secretAccessKey')} is the access key id: give the secret that was issued with it`;
  const token = c.sessionToken;
  if (token !== undefined && (typeof token !== 'string' || token.length === 0 || token.length > MAX_SESSION_TOKEN_LENGTH || !PRINTABLE.test(token))) {
    return `the session token${at('sessionToken')} is not one: expected up to ${MAX_SESSION_TOKEN_LENGTH} printable characters without spaces`;
  }
  if (token === undefined && TEMPORARY_KEY_ID.test(c.accessKeyId)) {
    return `the access key id${at('accessKeyId')} is a temporary one (ASIA…) and needs its session token: give it with --session-token-file or ${ENV_SESSION_TOKEN}`;
  }
  return undefined;
}

/** The credentials as an object whose fields the AWS SDK reads as usual, but which prints as
 *  its hint through console.log, util.inspect, JSON.stringify, String() and template strings,
 *  so that logging it by mistake leaks nothing. (A spread copy is a plain object again.) Not
 *  frozen: the SDK writes its attribution (`$source`) onto the credentials object it is given. */
export function hiddenAwsCredentials(c: AwsCredentials): AwsCredentials {
  const shown = `AwsCredentials(${accessKeyIdHint(c.accessKeyId)}, secret redacted)`;
  const o: AwsCredentials = c.sessionToken === undefined
    ? { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey }
    : { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken };
  const say = { value: () => shown };
  Object.defineProperties(o, { toJSON: say, toString: say, toLocaleString: say, [inspect.custom]: say });
  return o;
}

const NO_CREDENTIALS = `no AWS credentials: give --access-key-id and --secret-access-key-file, set ${ENV_ACCESS_KEY_ID}/${ENV_SECRET_ACCESS_KEY}, or add a [default] profile to ~/.aws/credentials`;

const ARGV_WARNING = (flag: string, better: string) =>
  `${flag} puts a secret in this command's arguments, which other users of this host can see in the process list while it runs and your shell may keep in its history: prefer ${better}`;
const SESSION_WARNING = 'these are temporary credentials (a session token): they expire within hours, after which the provider cannot create or remove nodes until you run `weft provider rotate` with new ones; an IAM user\'s access key does not expire';

/** Finds the AWS credentials the user means, in the order of the file comment, and checks them.
 *  Throws an Error with one line for the user (never holding a secret) when there are none, they
 *  are incomplete, or they are malformed. */
export function resolveAwsCredentials(input: ResolveAwsCredentialsInput): ResolvedAwsCredentials {
  const { flags, env } = input;
  const warnings: string[] = [];
  const flagKeys = [flags.accessKeyId, flags.secretAccessKey, flags.secretAccessKeyFile, flags.sessionToken, flags.sessionTokenFile];
  const fromFlags = flagKeys.some((v) => v !== undefined);
  if (fromFlags) {
    if (flags.profile !== undefined || flags.credentialsFile !== undefined) {
      throw new Error('give either --access-key-id with its secret, or --profile/--credentials-file, not both');
    }
    const { credentials, sources } = fromFlagValues(input, warnings);
    return { credentials: checked(credentials, sources), source: 'flags', warnings: warnings.concat(sessionWarning(credentials)) };
  }

  const envId = nonEmpty(env[ENV_ACCESS_KEY_ID]);
  const envSecret = nonEmpty(env[ENV_SECRET_ACCESS_KEY]);
  const explicitFile = flags.profile !== undefined || flags.credentialsFile !== undefined;
  if (!explicitFile && (envId !== undefined || envSecret !== undefined)) {
    if (envId === undefined) throw new Error(`${ENV_SECRET_ACCESS_KEY} is set but ${ENV_ACCESS_KEY_ID} is not: set both, or unset ${ENV_SECRET_ACCESS_KEY} to use the credentials file`);
    if (envSecret === undefined) throw new Error(`${ENV_ACCESS_KEY_ID} is set but ${ENV_SECRET_ACCESS_KEY} is not: set both, or unset ${ENV_ACCESS_KEY_ID} to use the credentials file`);
    const token = nonEmpty(env[ENV_SESSION_TOKEN]);
    const credentials = token === undefined ? { accessKeyId: envId, secretAccessKey: envSecret } : { accessKeyId: envId, secretAccessKey: envSecret, sessionToken: token };
    const profile = nonEmpty(env[ENV_PROFILE]);
    // The AWS CLI takes the keys here and the AWS SDK for JavaScript takes AWS_PROFILE: say
    // which one weft took, so that nobody stores another account's keys without knowing.
    if (profile !== undefined) warnings.push(`using ${ENV_ACCESS_KEY_ID}/${ENV_SECRET_ACCESS_KEY}, not ${ENV_PROFILE}=${profile} (give --profile to use the profile)`);
    const source = `${ENV_ACCESS_KEY_ID} and ${ENV_SECRET_ACCESS_KEY}`;
    const sources = { accessKeyId: `in ${ENV_ACCESS_KEY_ID}`, secretAccessKey: `in ${ENV_SECRET_ACCESS_KEY}`, sessionToken: `in ${ENV_SESSION_TOKEN}` };
    return { credentials: checked(credentials, sources), source, warnings: warnings.concat(sessionWarning(credentials)) };
  }

  return fromProfile(input, warnings);
}

function fromFlagValues(input: ResolveAwsCredentialsInput, warnings: string[]): { credentials: AwsCredentials; sources: CredentialSources } {
  const { flags } = input;
  if (flags.accessKeyId === undefined) throw new Error('a secret was given without --access-key-id: give both');
  if (flags.secretAccessKey !== undefined && flags.secretAccessKeyFile !== undefined) throw new Error('give --secret-access-key-file or --secret-access-key, not both');
  if (flags.sessionToken !== undefined && flags.sessionTokenFile !== undefined) throw new Error('give --session-token-file or --session-token, not both');
  if (flags.secretAccessKeyFile === STDIN && flags.sessionTokenFile === STDIN) throw new Error('standard input can hold the secret or the session token, not both: give one of them a file');
  let secret: string;
  if (flags.secretAccessKeyFile !== undefined) {
    secret = secretFromFile(flags.secretAccessKeyFile, input, '--secret-access-key-file');
  } else if (flags.secretAccessKey !== undefined) {
    secret = flags.secretAccessKey;
    warnings.push(ARGV_WARNING('--secret-access-key', `--secret-access-key-file (${STDIN} reads standard input) or ${ENV_SECRET_ACCESS_KEY}`));
  } else {
    throw new Error('--access-key-id needs its secret: give --secret-access-key-file (- reads standard input)');
  }
  let token: string | undefined;
  if (flags.sessionTokenFile !== undefined) token = secretFromFile(flags.sessionTokenFile, input, '--session-token-file');
  else if (flags.sessionToken !== undefined) {
    token = flags.sessionToken;
    warnings.push(ARGV_WARNING('--session-token', `--session-token-file or ${ENV_SESSION_TOKEN}`));
  }
  const credentials = token === undefined ? { accessKeyId: flags.accessKeyId, secretAccessKey: secret } : { accessKeyId: flags.accessKeyId, secretAccessKey: secret, sessionToken: token };
  const sources = {
    accessKeyId: 'given with --access-key-id',
    secretAccessKey: flags.secretAccessKeyFile !== undefined ? 'read with --secret-access-key-file' : 'given with --secret-access-key',
    sessionToken: flags.sessionTokenFile !== undefined ? 'read with --session-token-file' : 'given with --session-token',
  };
  return { credentials, sources };
}

/** A secret read from a file or standard input (STDIN): the whole content without the
 *  whitespace around it (the newline an editor or `echo` leaves), which no secret contains.
 *  Throws, naming the flag and the path but never the content, when it cannot be read or is
 *  empty. */
export function secretFromFile(path: string, io: Pick<ResolveAwsCredentialsInput, 'readFile' | 'home'>, flag: string): string {
  const where = path === STDIN ? 'standard input' : expandHome(path, io.home);
  if (path === '') throw new Error(`${flag} is empty: give a file, or ${STDIN} for standard input`);
  const text = io.readFile(path === STDIN ? STDIN : where);
  if (text === undefined) throw new Error(`cannot read ${where} (given with ${flag})`);
  if (text.length > MAX_SECRET_FILE_CHARS) throw new Error(`${where} (given with ${flag}) is too large to hold a secret`);
  const secret = text.trim();
  if (secret === '') throw new Error(`${where} (given with ${flag}) is empty`);
  return secret;
}

function fromProfile(input: ResolveAwsCredentialsInput, warnings: string[]): ResolvedAwsCredentials {
  const { flags, env, home } = input;
  const named = flags.credentialsFile ?? nonEmpty(env[ENV_CREDENTIALS_FILE]);
  const namedBy = flags.credentialsFile !== undefined ? '--credentials-file' : ENV_CREDENTIALS_FILE;
  const path = named !== undefined ? expandHome(named, home) : `${home.replace(/\/+$/, '')}/.aws/credentials`;
  const profileName = flags.profile ?? nonEmpty(env[ENV_PROFILE]) ?? DEFAULT_PROFILE;
  const asked = flags.profile !== undefined || nonEmpty(env[ENV_PROFILE]) !== undefined;
  if (profileName === '') throw new Error('--profile is empty: give a profile name');
  if (flags.credentialsFile === '') throw new Error('--credentials-file is empty: give the file\'s path');

  const text = input.readFile(path);
  if (text === undefined) {
    if (named !== undefined) throw new Error(`cannot read the credentials file ${path} (named by ${namedBy})`);
    if (asked) throw new Error(`no credentials file ${path} to find profile "${profileName}" in: create it, or set ${ENV_CREDENTIALS_FILE}`);
    throw new Error(NO_CREDENTIALS);
  }
  if (text.length > MAX_CREDENTIALS_FILE_CHARS) throw new Error(`${path} is too large to be an AWS credentials file`);
  const file = parseCredentialsFile(text);
  const profile = file.get(profileName);
  if (profile === undefined) throw new Error(missingProfile(file, profileName, path, asked));
  if (profile.repeated) throw new Error(`profile "${profileName}" in ${path} is given twice, or sets a value twice: keep one`);

  const accessKeyId = profile.settings.get(FILE_ACCESS_KEY_ID);
  const secretAccessKey = profile.settings.get(FILE_SECRET_ACCESS_KEY);
  const sessionToken = profile.settings.get(FILE_SESSION_TOKEN);
  if (accessKeyId === undefined || secretAccessKey === undefined) {
    const missing = accessKeyId === undefined ? FILE_ACCESS_KEY_ID : FILE_SECRET_ACCESS_KEY;
    // Roles, SSO and credential_process need the SDK to fetch short-lived keys again and again,
    // on whichever manager leads: weft stores one static key pair instead.
    throw new Error(`profile "${profileName}" in ${path} has no ${missing}: weft needs an access key pair (roles, SSO and credential_process profiles are not supported)`);
  }
  const credentials = sessionToken === undefined ? { accessKeyId, secretAccessKey } : { accessKeyId, secretAccessKey, sessionToken };
  const where = `profile "${profileName}" in ${path}`;
  return { credentials: checked(credentials, `in ${where}`), source: where, warnings: warnings.concat(sessionWarning(credentials)) };
}

function missingProfile(file: CredentialsFile, name: string, path: string, asked: boolean): string {
  if (file.has(`profile ${name}`)) {
    return `${path} has [profile ${name}], but the credentials file names its sections without the word "profile" (that is ~/.aws/config's form): rename it [${name}]`;
  }
  const names = [...file.keys()].filter((n) => n !== '');
  if (!asked && names.length === 0) return NO_CREDENTIALS;
  // Enough names, each cut short, to spot a typo without printing a screenful.
  const shown = names.slice(0, 10).map((n) => `"${n.length > 40 ? `${n.slice(0, 40)}…` : n}"`).join(', ') + (names.length > 10 ? ', …' : '');
  const has = names.length > 0 ? `it has ${shown}` : 'it has no profiles';
  const how = asked ? 'check --profile or AWS_PROFILE' : `give --profile or set ${ENV_PROFILE}`;
  return `no profile "${name}" in ${path} (${has}): ${how}`;
}

function checked(c: AwsCredentials, from: CredentialSources): AwsCredentials {
  const problem = awsCredentialsProblem(c, from);
  if (problem !== undefined) throw new Error(problem);
  return hiddenAwsCredentials(c);
}

function sessionWarning(c: AwsCredentials): string[] {
  return c.sessionToken === undefined ? [] : [SESSION_WARNING];
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

/** `~/x` → `<home>/x`, as the AWS SDK does for AWS_SHARED_CREDENTIALS_FILE. */
function expandHome(path: string, home: string): string {
  return path === '~' ? home : path.startsWith('~/') ? `${home.replace(/\/+$/, '')}/${path.slice(2)}` : path;
}
