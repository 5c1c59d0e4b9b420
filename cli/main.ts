import { Command, CommanderError, Option } from 'commander';
import { client, EXIT_USAGE, fail, run, type Globals } from './run.ts';
import { launch } from './launch.ts';
import { commanderOption, LAUNCH_OPTIONS } from './launch-options.ts';
import { ago, formatIpamStatus, table } from './format.ts';
import { CliError } from './error.ts';
import * as api from '../mesh/api/contract.ts';
import { CONTROL_EVENT_TYPES, type MeshEvent } from '../mesh/events.ts';
import { MEMBERSHIP_EVENT_TYPES } from '../mesh/membership/member.ts';
import { formatDnsStatus, registerDnsCommands } from './dns.ts';
import { formatManagerStatus, registerManagerCommands } from './manager.ts';
import { registerStackCommands } from './stack.ts';
import { registerNodeClusterCommands } from './nodecluster.ts';
import { registerProviderCommands } from './provider.ts';
import { dnsStatus } from '../dns/api-contract.ts';
import { MESH_PORT } from '../mesh/address.ts';
import { identityFromLabels } from '../mesh/naming.ts';
import { DEFAULT_DATA_DIR } from '../mesh/config.ts';
import { errorText } from '../mesh/log.ts';

const program = new Command('weft')
  .description('weft: an overlay mesh and service-discovery runtime for Docker hosts')
  .option('--data-dir <dir>', 'data dir of the local peer (its API socket lives there)', process.env.WEFT_DATA_DIR ?? DEFAULT_DATA_DIR)
  .option('--peer <ip[:port]>', `talk to this peer over the mesh instead of the local one (port ${MESH_PORT})`)
  .option('--password-file <file>', 'mesh password for --peer (or WEFT_PASSWORD)')
  .option('--api-token-file <file>', 'API token for --peer instead of the password (or WEFT_API_TOKEN)')
  .option('--json', 'print machine-readable JSON')
  .showHelpAfterError('(run weft --help for usage)')
  .exitOverride();

const launchCommand = program.command('launch')
  .description('run a weft peer in the foreground until SIGINT or SIGTERM');
for (const spec of LAUNCH_OPTIONS) launchCommand.addOption(commanderOption(spec));
launchCommand.action(async (opts, cmd: Command) => {
  const g = cmd.optsWithGlobals<Globals & { passwordFile?: string }>();
  await launch({ ...opts, dataDir: g.dataDir, passwordFile: opts.passwordFile ?? g.passwordFile });
});

program.command('status [what]')
  .description("this peer's identity and a count of the mesh's peers by state; `status ipam` for the address space")
  .action((what: string | undefined, _o, cmd: Command) => {
    if (what === 'ipam') return run(cmd, api.ipamStatus, {}, formatIpamStatus);
    if (what === 'dns') return run(cmd, dnsStatus, {}, formatDnsStatus);
    if (what !== undefined) throw new CliError(`unknown status "${what}": use weft status, weft status ipam or weft status dns`);
    return run(cmd, api.status, {}, (s) => [
      `id:          ${s.id}`,
      `name:        ${s.name}`,
      `address:     ${s.address} (listening on ${s.listen})`,
      `role:        ${s.role}${s.tags.length ? `  tags: ${s.tags.join(',')}` : ''}`,
      `uptime:      ${s.uptimeSeconds}s`,
      `peers:       ${s.peers.alive} alive, ${s.peers.suspect} suspect, ${s.peers.dead} dead, ${s.peers.left} left`,
      `connections: ${s.connections}`,
      `replicated:  ${s.replica.entries} entries`,
      `data plane:  ${s.dataplane}`,
      ...formatManagerStatus(s.manager),
    ].join('\n'));
  });

program.command('rmpeer <peer>')
  .description("take over the address space of a peer that is gone for good (by name or id); refused while it is alive")
  .action((target: string, _o, cmd: Command) => run(cmd, api.rmpeer, { peer: target }, (r) => r.reason));

program.command('peers')
  .description('every peer this one knows, with its state')
  .action((_o, cmd: Command) => run(cmd, api.peers, {}, (ps) => ps.length === 0 ? 'no other peers known' : table(
    ['NAME', 'ADDRESS', 'STATE', 'ROLE', 'LAST SEEN', 'ID'],
    ps.map((p) => [p.name, p.address, p.state, p.role, ago(p.lastSeen), p.id]),
  )));

program.command('connect <address>')
  .description('connect to a peer at ip[:port] and keep it across restarts')
  .action((address: string, _o, cmd: Command) => run(cmd, api.connect, { address }, (r) => `connected to ${r.address} (${r.id})`));

program.command('forget <target>')
  .description('stop connecting to an address, or forget a peer by name, id or address')
  .action((target: string, _o, cmd: Command) => run(cmd, api.forget, { target }, (r) =>
    `forgot ${[r.member, ...r.addrs].filter(Boolean).join(', ')}`));

program.command('events')
  .description(`membership events: ${MEMBERSHIP_EVENT_TYPES.join(', ')}; control plane events: ${CONTROL_EVENT_TYPES.join(', ')}`)
  .option('--follow', 'keep printing new events')
  .action(async (o: { follow?: boolean }, cmd: Command) => {
    const g = cmd.optsWithGlobals<Globals>();
    const line = (e: MeshEvent) => g.json ? JSON.stringify(e) : `${e.at}  ${e.type.padEnd(8)}  ${e.peer ? `${e.peer.name} ${e.peer.address ?? ''} ${e.peer.id}` : ''}${e.detail ? ' ' + e.detail : ''}`;
    if (!o.follow) return run(cmd, api.events, {}, (es) => (es ?? []).map(line).join('\n') || 'no events yet');
    const c = await client(g);
    process.on('SIGINT', () => void c.close().then(() => process.exit(0)));
    await c.call(api.events, { follow: true }, (e) => process.stdout.write(line(e) + '\n'));
  });

program.command('attach <container>')
  .description('attach a running container to the overlay and print its address')
  .action((container: string, _o, cmd: Command) => run(cmd, api.attach, { container }, (r) => r.addr));

program.command('detach <container>')
  .description('take a container off the overlay and free its address')
  .action((container: string, _o, cmd: Command) => run(cmd, api.detach, { container }, (r) => r.addr));

program.command('ps')
  .description('attached containers of the whole mesh (--local: this host only)')
  .option('--local', 'only this host\'s containers')
  .action((o: { local?: boolean }, cmd: Command) => run(cmd, api.ps, { local: o.local === true }, (cs) => cs.length === 0
    ? 'no attached containers'
    : table(['NAME', 'SERVICE', 'STACK', 'ID', 'ADDRESS', 'HOST', 'STATE'], cs.map((c) => {
      const n = identityFromLabels(c.name, c.labels);
      return [n.name, n.service ?? '', n.stack ?? '', c.id.slice(0, 12), c.addr, c.host, c.state];
    })),
  // The JSON contract: name (its mesh name, `web-2`), service, stack, id, address, host, state.
  (cs) => cs.map((c) => {
    const n = identityFromLabels(c.name, c.labels);
    return { name: n.name, service: n.service ?? null, stack: n.stack ?? null, id: c.id, address: c.addr, mac: c.mac, host: c.host, peer: c.peer, state: c.state, health: c.health, labels: c.labels };
  })));

program.command('expose')
  .description('give this host an address on the overlay (it can then reach containers)')
  .action((_o, cmd: Command) => run(cmd, api.expose, {}, (r) => r.address));

program.command('hide')
  .description('take back the host\'s overlay address')
  .action((_o, cmd: Command) => run(cmd, api.hide, {}, (r) => r.address ? `hid ${r.address}` : 'the host was not exposed'));

program.command('reset')
  .description('take every container off the overlay, free their addresses, remove the bridge and devices')
  .action((_o, cmd: Command) => run(cmd, api.reset, {}, (r) => `reset: ${r.containers} container(s) detached, data plane removed`));

registerDnsCommands(program);
registerManagerCommands(program);
registerStackCommands(program);
registerNodeClusterCommands(program);
registerProviderCommands(program);

const token = program.command('token').description('join tokens');
token.command('create')
  .description('print a join token (mesh secret and bootstrap addresses) for `weft launch --token`, or with --api an API token')
  .option('--api', 'an API token: reaches the API of any peer (weft --peer IP --api-token-file F), never the mesh itself')
  .option('--name <name>', 'what the API token is for')
  .addOption(new Option('--scope <scope>', 'operator (read the mesh, kv, dns) or admin (also membership, data plane, tokens)').choices(['operator', 'admin']).default('operator'))
  .action((o: { api?: boolean; name?: string; scope: 'operator' | 'admin' }, cmd: Command) =>
    o.api === true
      ? run(cmd, api.tokenCreate, { ...(o.name ? { name: o.name } : {}), scope: o.scope }, (r) => r.token)
      : run(cmd, api.tokenJoin, {}, (r) => r.token));
token.command('ls')
  .description('API tokens known to the mesh')
  .action((_o, cmd: Command) => run(cmd, api.tokenList, {}, (ts) => ts.length === 0 ? 'no API tokens' : table(
    ['ID', 'NAME', 'SCOPE', 'MADE BY', 'CREATED', 'STATE'], ts.map((t) => [t.id, t.name, t.scope, t.parent ?? '-', t.created, t.revoked ? 'revoked' : 'valid']))));
token.command('revoke <id>')
  .description('revoke an API token on every peer (and the tokens it made)')
  .action((id: string, _o, cmd: Command) => run(cmd, api.tokenRevoke, { id }, () => `revoked ${id}`));

const kv = program.command('kv').description('the replicated key-value space (debugging and tests)');
kv.command('put <key> <value>').description('write a value owned by this peer')
  .action((key: string, value: string, _o, cmd: Command) => run(cmd, api.kvPut, { key, value }, (r) => `${key} = version ${r.version}`));
kv.command('rm <key>').description('delete a value owned by this peer')
  .action((key: string, _o, cmd: Command) => run(cmd, api.kvPut, { key, value: null }, () => `${key} deleted`));
kv.command('get <key>').description('every peer\'s value for a key')
  .action((key: string, _o, cmd: Command) => run(cmd, api.kvGet, { key }, (es) =>
    es.length === 0 ? `${key}: not found` : table(['OWNER', 'VERSION', 'VALUE'], es.map((e) => [e.owner, e.version, e.value ?? '(deleted)']))));
kv.command('ls [prefix]').description('keys held here')
  .action((prefix: string | undefined, _o, cmd: Command) => run(cmd, api.kvList, { prefix: prefix ?? '' }, (es) =>
    table(['KEY', 'OWNER', 'VERSION', 'BYTES'], es.map((e) => [e.key, e.owner, e.version, e.bytes]))));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0);
    process.exit(EXIT_USAGE);
  }
  fail(errorText(err));
}
