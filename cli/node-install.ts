// `weft node install-script`, `install-tokens`, `install-revoke`: bringing your own node. The
// peer asked makes a one-line command that, run as root on a new host, installs weft from that
// peer and joins the mesh (provisioner/byon/ says how, and why it is safe to paste).

import type { Command } from 'commander';
import * as api from '../provisioner/byon/api-contract.ts';
import { CliError } from './error.ts';
import { ago, table } from './format.ts';
import { client, run, type Globals } from './run.ts';

/** `90s`, `30m`, `1h`, `1h30m`: how people say how long. */
const DURATION = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

export function registerNodeInstallCommand(node: Command): void {
  node.command('install-script')
    .description('print a one-line command that installs weft on a new host and joins it to the mesh (run it there as root; it works once)')
    .option('--tags <a,b>', 'deploy tags the new node carries')
    .option('--name <name>', "the new node's name (default: its hostname)")
    .option('--expires <duration>', `how long the command works: 90s, 30m, 1h (at most ${api.MAX_EXPIRES_S / 3600}h)`, `${api.DEFAULT_EXPIRES_S / 3600}h`)
    .option('--no-dataplane', 'the node joins the mesh only: no container networking, no Docker needed')
    .option('--user-data', "print the script itself for a cloud's user data (cloud-init runs it at first boot); it holds a join token: give it to one host only")
    .action(async (o: { tags?: string; name?: string; expires: string; dataplane: boolean; userData?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<Globals>();
      const params = {
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...(o.tags !== undefined ? { tags: o.tags.split(',').map((t) => t.trim()).filter(Boolean) } : {}),
        expiresSeconds: seconds(o.expires),
        dataplane: o.dataplane,
        ...(o.userData ? { userData: true } : {}),
      };
      const c = await client(g);
      try {
        const r = await c.call(api.nodeInstallScript, params);
        if (g.json) {
          process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
          return;
        }
        const mb = (r.bundle.bytes / 1e6).toFixed(0);
        const what = `weft ${r.bundle.sha256.slice(0, 12)} (${mb} MB) from ${r.url.replace('https://', '')}, joining as ${r.name ?? 'its hostname'}${r.tags.length ? ` with tags ${r.tags.join(',')}` : ''}`;
        if (r.userData !== null) {
          process.stdout.write(r.userData);
          process.stderr.write([
            "This script holds a join token, i.e. the mesh's secret: give it to one host only, as its user data, and keep it off shared places.",
            `It installs ${what}; it can download weft until ${r.token.expiresAt} (install ${r.token.id}).`,
          ].join('\n') + '\n');
          return;
        }
        // The command alone on stdout, so that $(weft node install-script) is the command.
        process.stdout.write(`${r.command}\n`);
        process.stderr.write([
          `Run it as root on the new host before ${r.token.expiresAt} (once; token ${r.token.id}).`,
          `It installs ${what}.`,
          'To read the script before running it, save it instead: replace "| sh" with "> install.sh" (in a directory only you can read), then sh install.sh.',
          `Revoke it with weft node install-revoke ${r.token.id}.`,
        ].join('\n') + '\n');
      } finally {
        await c.close();
      }
    });
  node.command('install-tokens')
    .description('install commands this peer made: live ones, and those used, expired or revoked in the last day')
    .action((_o, cmd: Command) => run(cmd, api.nodeInstallTokens, {}, (ts) => ts.length === 0 ? 'no install tokens' : table(
      ['ID', 'NAME', 'TAGS', 'STATE', 'EXPIRES', 'DOWNLOADS'],
      ts.map((t) => [t.id, t.name ?? '-', t.tags.join(',') || '-', t.endedAt ? `${t.state} ${ago(t.endedAt)}` : t.state, t.expiresAt, t.bundleFetches]),
    )));
  node.command('install-revoke <id>')
    .description('end an install command now (by its token id, from weft node install-tokens)')
    .action((id: string, _o, cmd: Command) => run(cmd, api.nodeInstallRevoke, { id }, () => `revoked install token ${id}`));
}

function seconds(text: string): number {
  const m = DURATION.exec(text.trim());
  const s = m && text.trim() !== '' ? Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) : NaN;
  if (!Number.isSafeInteger(s) || s < 1 || s > api.MAX_EXPIRES_S) {
    throw new CliError(`--expires "${text}" is not a duration from 1s to ${api.MAX_EXPIRES_S / 3600}h (like 90s, 30m, 1h)`);
  }
  return s;
}
