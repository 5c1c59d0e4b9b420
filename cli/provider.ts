// `weft provider ...`: cloud providers and their credentials. The credentials are read here
// (flags, a secret file or standard input, the AWS environment variables or the shared
// credentials file, in the AWS CLI's order) and sent over the API's encrypted channel to the
// peer, which seals them before anything is stored. A secret given as a flag is visible in the
// process list while this command runs: --secret-access-key-file (or - for standard input) is
// the way that is not.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import type { Command } from 'commander';
import { type AwsCredentialFlags, resolveAwsCredentials, STDIN } from '../provisioner/credentials/aws-credentials.ts';
import * as api from '../provisioner/provider-api-contract.ts';
import { CliError } from './error.ts';
import { table } from './format.ts';
import { run } from './run.ts';
import { withClient } from './waiting.ts';

/** The credential flags, as the credentials module reads them. */
type CredentialFlags = AwsCredentialFlags;

function credentialOptions(c: Command): Command {
  return c
    .option('--access-key-id <id>', 'the access key id (else AWS_ACCESS_KEY_ID, else the shared credentials file)')
    .option('--secret-access-key-file <file>', 'a file holding the secret access key; - reads standard input')
    .option('--secret-access-key <secret>', 'the secret itself (visible in the process list while this runs: prefer the file)')
    .option('--session-token-file <file>', 'a file holding a session token (temporary credentials)')
    .option('--session-token <token>', 'a session token (visible in the process list: prefer the file)')
    .option('--profile <name>', 'a profile of the shared credentials file (else AWS_PROFILE, else default)')
    .option('--credentials-file <file>', 'the shared credentials file (else AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials)');
}

function credentials(o: CredentialFlags) {
  let stdin: string | undefined;
  try {
    const r = resolveAwsCredentials({
      flags: o, env: process.env, home: homedir(),
      readFile: (path) => {
        try {
          if (path === STDIN) return (stdin ??= readFileSync(0, 'utf8'));
          return readFileSync(path, 'utf8');
        } catch {
          return undefined;
        }
      },
    });
    for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
    // Plain values for the wire (the resolved object prints as its hint only).
    const c = r.credentials;
    return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}) };
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

export function registerProviderCommands(program: Command): void {
  const p = program.command('provider').description('cloud providers node clusters are made on (AWS EC2 and EC2-compatible clouds), their credentials sealed under the mesh secret');
  credentialOptions(p.command('add <type> [name]'))
    .description('add a provider (type aws; name defaults to the type)')
    .requiredOption('--region <region>', 'its region (us-east-1; any name with --endpoint)')
    .option('--endpoint <url>', "an EC2-compatible cloud's EC2 API URL")
    .action((type: string, name: string | undefined, o: CredentialFlags & { region: string; endpoint?: string }, cmd: Command) => withClient(cmd, async (c, g) => {
      if (type !== 'aws') throw new CliError(`no provider type "${type}" (there is aws; local needs no adding)`);
      const r = await c.call(api.providerAdd, { name: name ?? type, type: 'aws', region: o.region, ...(o.endpoint ? { endpoint: o.endpoint } : {}), credentials: credentials(o) });
      process.stdout.write(g.json ? `${JSON.stringify(r, null, 2)}\n` : `added provider ${r.name} (${r.region}, key ${r.accessKeyIdHint})\n`);
    }));
  p.command('ls')
    .description('providers: region, endpoint, a hint of the key (never the secret), the clusters on each')
    .action((_o, cmd: Command) => run(cmd, api.providerList, {}, (rows) => rows.length === 0 ? 'no providers (local is built in)' : table(
      ['NAME', 'TYPE', 'REGION', 'ENDPOINT', 'KEY', 'CLUSTERS'], rows.map((r) => [r.name, r.type, r.region, r.endpoint ?? '-', r.accessKeyIdHint, r.clusters.join(',') || '-']),
    )));
  credentialOptions(p.command('rotate <name>'))
    .description("replace a provider's credentials (its clusters use the new ones from the next call)")
    .action((name: string, o: CredentialFlags, cmd: Command) => withClient(cmd, async (c, g) => {
      const r = await c.call(api.providerRotate, { name, credentials: credentials(o) });
      process.stdout.write(g.json ? `${JSON.stringify(r, null, 2)}\n` : `rotated provider ${r.name} (key ${r.accessKeyIdHint})\n`);
    }));
  p.command('rm <name>')
    .description('remove a provider no node cluster uses')
    .action((name: string, _o, cmd: Command) => run(cmd, api.providerRemove, { name }, (r) => `removed provider ${r.removed}`));
}
