import { readFileSync } from 'node:fs';
import { deriveMeshKey } from '../mesh/admission/mesh-key.ts';
import { decodeJoinToken, type JoinToken } from '../mesh/admission/join-token.ts';
import { CliError } from './error.ts';
import { parseApiToken } from '../mesh/admission/api-token.ts';
import type { ApiTokenCredential } from '../mesh/admission/admission.ts';

export interface SecretOptions {
  passwordFile?: string;
  token?: string;
  tokenFile?: string;
}

/** The mesh secret from, in order: --token / --token-file / WEFT_TOKEN, --password-file,
 *  WEFT_PASSWORD. Returns the derived key and any bootstrap peers a token carries.
 *  The environment variables are removed once read so that child processes never see them. */
export function readMeshSecret(opts: SecretOptions): JoinToken | undefined {
  const envToken = process.env.WEFT_TOKEN;
  const envPassword = process.env.WEFT_PASSWORD;
  delete process.env.WEFT_TOKEN;
  delete process.env.WEFT_PASSWORD;
  const tokenText = opts.token ?? (opts.tokenFile ? readSecretFile(opts.tokenFile, 'token') : envToken);
  if (tokenText) {
    try {
      return decodeJoinToken(tokenText);
    } catch (err) {
      throw new CliError((err as Error).message);
    }
  }
  const password = opts.passwordFile ? readSecretFile(opts.passwordFile, 'password') : envPassword;
  if (password === undefined) return undefined;
  try {
    return { key: deriveMeshKey(password), peers: [] };
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

/** An API token from --api-token-file or WEFT_API_TOKEN, for remote API calls. */
export function readApiToken(file: string | undefined): ApiTokenCredential | undefined {
  const env = process.env.WEFT_API_TOKEN;
  delete process.env.WEFT_API_TOKEN;
  const text = file ? readSecretFile(file, 'API token') : env;
  if (!text) return undefined;
  try {
    return parseApiToken(text);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

function readSecretFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(code === 'ENOENT' ? `the ${what} file ${path} does not exist` : `cannot read the ${what} file ${path}: ${code ?? (err as Error).message}`);
  }
  // A trailing newline is an accident of `echo pw > file`, never part of the secret.
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '') throw new CliError(`the ${what} file ${path} is empty`);
  return secret;
}
