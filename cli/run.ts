// What every CLI command shares: the global options, reaching a peer, printing a result.
import type { Command } from 'commander';
import { readApiToken, readMeshSecret } from './secret.ts';
import { ApiClient } from '../mesh/api/client.ts';
import { CliError } from './error.ts';
import type { MethodSpec, ParamsOf, ParamsSchema, ResultOf } from '../mesh/api/method.ts';

export interface Globals {
  dataDir: string;
  peer?: string;
  passwordFile?: string;
  apiTokenFile?: string;
  json?: boolean;
}

/** Exit codes: 0 success, 1 failure, 2 usage. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function fail(message: string, code = EXIT_FAILURE): never {
  process.stderr.write(`weft: ${message}\n`);
  process.exit(code);
}

export async function client(g: Globals): Promise<ApiClient> {
  if (!g.peer) return ApiClient.local(g.dataDir);
  const token = readApiToken(g.apiTokenFile);
  if (token) return ApiClient.remote(g.peer, { apiToken: token });
  const secret = readMeshSecret({ passwordFile: g.passwordFile });
  if (!secret) throw new CliError('--peer needs a credential: --password-file FILE (or WEFT_PASSWORD), or --api-token-file FILE (or WEFT_API_TOKEN)');
  return ApiClient.remote(g.peer, { key: secret.key });
}

/** Runs one API call and prints its result as JSON or through `human`. */
export async function run<M extends MethodSpec<ParamsSchema, unknown, unknown>>(
  cmd: Command, spec: M, params: ParamsOf<M>, human: (r: ResultOf<M>) => string, json: (r: ResultOf<M>) => unknown = (r) => r,
): Promise<void> {
  const g = cmd.optsWithGlobals<Globals>();
  const c = await client(g);
  try {
    const result = await c.call(spec, params);
    process.stdout.write((g.json ? JSON.stringify(json(result), null, 2) : human(result)) + '\n');
  } finally {
    await c.close();
  }
}
