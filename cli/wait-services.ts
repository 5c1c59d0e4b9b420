// Waiting for services to converge after a deploy, scale or redeploy: every service asked about
// runs its target of containers at its current spec, with no update in progress. On a terminal
// it shows one live line per service (containers done of total, the current step, elapsed
// time); otherwise a plain line whenever a service's state changes. An update that pauses on a
// failure ends the wait with the failure; a pending service says why all along.

import type { ApiClient } from '../mesh/api/client.ts';
import * as api from '../scheduler/service/api-contract.ts';
import { CliError } from './error.ts';

/** Status is recomputed by the peer on each poll; twice a second is live enough for a person
 *  and costs the managers one consistent read each time. */
const POLL_MS = 500;

export async function waitForServices(c: ApiClient, which: { stack?: string; service?: string }, timeoutSeconds: number, quiet: boolean): Promise<api.ServiceRow[]> {
  const started = Date.now();
  const tty = !quiet && process.stderr.isTTY === true;
  let lastLines: string[] = [];
  let drawn = 0;
  for (;;) {
    const all = await c.call(api.serviceList, which.stack ? { stack: which.stack } : {});
    const rows = which.service ? all.filter((r) => r.name === which.service) : all;
    const elapsed = ((Date.now() - started) / 1000).toFixed(0);
    // On a terminal, each container's current step too (pulling, creating, starting...).
    const steps = tty ? await containerSteps(c, which, rows) : new Map<string, string>();
    const lines = rows.map((r) => `${r.stack ? `${r.stack}/` : ''}${r.service}: ${r.running}/${r.target} ${statusText(r)}${steps.get(r.name) ?? ''}`);
    if (tty) {
      if (drawn > 0) process.stderr.write(`\x1b[${drawn}A`);
      for (const l of [...lines, `${elapsed}s`]) process.stderr.write(`\x1b[2K${l}\n`);
      drawn = lines.length + 1;
    } else if (!quiet) {
      for (const l of lines) if (!lastLines.includes(l)) process.stderr.write(`${elapsed}s ${l}\n`);
    }
    lastLines = lines;
    const paused = rows.find((r) => r.update.state === 'paused');
    if (paused && paused.update.state === 'paused') {
      throw new CliError(`${paused.name}: update paused: ${paused.update.failed.task} failed: ${paused.update.failed.error} (weft service rollback ${paused.name}, or fix and deploy again)`);
    }
    if (rows.every(converged)) return rows;
    if (Date.now() - started > timeoutSeconds * 1000) {
      const stuck = rows.filter((r) => !converged(r)).map((r) => `${r.name}: ${statusText(r)}`).join('; ');
      throw new CliError(`gave up waiting after ${timeoutSeconds}s: ${stuck} (the deploy goes on: weft service ls)`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** `  web-1 running, web-2 pulling` per service: the containers not yet serving, by step. */
async function containerSteps(c: ApiClient, which: { stack?: string; service?: string }, rows: readonly api.ServiceRow[]): Promise<Map<string, string>> {
  const tasks = which.stack !== undefined
    ? (await c.call(api.stackInspect, { name: which.stack }).catch(() => ({ tasks: [] as api.TaskRow[] }))).tasks
    : which.service !== undefined ? (await c.call(api.serviceInspect, { name: which.service }).catch(() => ({ tasks: [] as api.TaskRow[] }))).tasks : [];
  const out = new Map<string, string>();
  for (const r of rows) {
    const mine = tasks.filter((t) => t.task.startsWith(`${r.name}/`) && !(t.current && t.state === 'running'));
    if (mine.length) out.set(r.name, `  (${mine.slice(0, 6).map((t) => `${t.name} ${t.current ? t.state : `${t.state}, outdated`}${t.progress ? ` ${t.progress}` : ''}`).join('; ')}${mine.length > 6 ? '; ...' : ''})`);
  }
  return out;
}

function converged(r: api.ServiceRow): boolean {
  if (r.stopped) return r.active === 0;
  return r.pending === undefined && r.update.state === 'done' && r.running === r.target && r.tasks === r.target;
}

/** One service's state in a few words. */
export function statusText(r: api.ServiceRow): string {
  if (r.stopped) return r.active === 0 ? 'stopped' : `stopping (${r.active} up)`;
  if (r.pending) return `pending: ${r.pending}`;
  if (r.update.state === 'paused') return `update paused: ${r.update.failed.task}: ${r.update.failed.error}`;
  if (r.update.state === 'rolling-back') return `rolling back: ${r.update.failed.task}: ${r.update.failed.error}`;
  if (r.update.state === 'updating') return `updating ${r.update.done}/${r.update.total}`;
  return r.running === r.target && r.tasks === r.target ? 'running' : 'starting';
}
