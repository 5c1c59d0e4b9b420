// What every command that waits shares: --detach and --timeout, and a client for the command's
// whole run (a wait polls over one connection).

import { type Command, Option } from 'commander';
import type { ApiClient } from '../mesh/api/client.ts';
import { CliError } from './error.ts';
import { client, type Globals } from './run.ts';

const TIMEOUT_HELP = 'give up waiting after this many seconds (exit 1; the change goes on)';
/** A deploy pulls images and starts containers one after another on small hosts, a node boots
 *  and joins: ten minutes before saying it is stuck (the reason, if known, is shown all along). */
export const DEFAULT_TIMEOUT_S = 600;

export interface WaitOptions {
  detach?: boolean;
  timeout?: string;
}

export function detachOption(help = 'return at once'): Option {
  return new Option('--detach', help);
}

export function timeoutOption(): Option {
  return new Option('--timeout <seconds>', TIMEOUT_HELP).default(String(DEFAULT_TIMEOUT_S));
}

export function seconds(s: string | undefined): number {
  const n = Number(s ?? DEFAULT_TIMEOUT_S);
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`--timeout "${s}" is not a number of seconds`);
  return n;
}

export async function withClient(cmd: Command, f: (c: ApiClient, g: Globals) => Promise<void>): Promise<void> {
  const g = cmd.optsWithGlobals<Globals>();
  const c = await client(g);
  try {
    await f(c, g);
  } finally {
    await c.close();
  }
}
