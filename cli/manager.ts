// `weft manager ...` and `weft config ...`: the control plane's commands. The peer does the
// work (scheduler/manager/api.ts); these only ask and print. All take the global --json.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CliError } from './error.ts';
import { table } from './format.ts';
import { client, run, type Globals } from './run.ts';
import * as api from '../scheduler/manager/api-contract.ts';
import type { ManagerStatus } from '../mesh/api/contract.ts';

export function registerManagerCommands(program: Command): void {
  const manager = program.command('manager').description('the managers: the peers that keep desired state in Raft and elect the leader');
  manager.command('ls')
    .description('the managers as the leader sees them')
    .action((_o, cmd: Command) => run(cmd, api.managerList, {}, (rows) => table(
      ['ID', 'NAME', 'ADDRESS', 'VOTER', 'LEADER', 'MATCH', 'LAST CONTACT'],
      rows.map((r) => [r.id, r.name, r.address, r.voter ? 'yes' : 'no (catching up)', r.leader ? '*' : '', r.match, r.lastContact === null ? 'never' : `${r.lastContact}s ago`]),
    )));
  manager.command('promote <peer>')
    .description('make a peer (by name, id or address) a voting manager; the autopilot adds it as a learner and lets it vote once caught up')
    .action((peer: string, _o, cmd: Command) => run(cmd, api.managerPromote, { peer }, (r) => `${r.peer}: to be a manager`));
  manager.command('demote <peer>')
    .description('make a manager a worker; a leader hands leadership over first')
    .action((peer: string, _o, cmd: Command) => run(cmd, api.managerDemote, { peer }, (r) => `${r.peer}: to be a worker`));
  manager.command('transfer [to]')
    .description('hand leadership to another voting manager (by default the most caught-up one)')
    .action((to: string | undefined, _o, cmd: Command) => run(cmd, api.managerTransfer, to ? { to } : {}, (r) => `leadership moved from ${r.from} to ${r.to}`));

  manager.command('force-new-cluster')
    .description('after a permanent loss of quorum, on a surviving manager: keep its state and make it the only manager of a new cluster')
    .option('--yes', 'do it (without, only say what it would do)')
    .action((o: { yes?: boolean }, cmd: Command) => {
      if (!o.yes) {
        throw new CliError('this would make this peer the only manager of a new control-plane cluster with the desired state it holds (writes it never learned of are lost); '
          + 'managers of the old cluster still running must then be reset (weft manager reset --yes) to join it; add --yes to do so');
      }
      return run(cmd, api.managerForceNewCluster, {}, (r) => `this peer now leads a new cluster (${r.cluster}) from index ${r.index}, term ${r.term}; the autopilot adds the other peers`);
    });
  manager.command('reset')
    .description("drop this peer's control-plane state so it can be added afresh to the mesh's cluster (after force-new-cluster elsewhere)")
    .option('--yes', 'do it (without, only say what it would do)')
    .action((o: { yes?: boolean }, cmd: Command) => {
      if (!o.yes) throw new CliError("this would delete this peer's Raft log and its copy of desired state; it is then added afresh by the cluster's leader; add --yes to do so");
      return run(cmd, api.managerReset, {}, (r) => `dropped control-plane state (applied through index ${r.dropped})`);
    });

  const config = program.command('config').description('settings of your own in desired state: consistent, versioned, on every manager');
  config.command('set <name> <value>')
    .description('set a value; returns once committed')
    .option('--expect <version>', 'only if the current version is this (0: only if it does not exist)')
    .action((name: string, value: string, o: { expect?: string }, cmd: Command) =>
      run(cmd, api.configSet, { name, value, ...version(o.expect) }, (r) => `${r.name} = version ${r.version}`));
  config.command('get <name>')
    .description("a value, from this peer's state (may lag by a few milliseconds), or --consistent: as of now")
    .option('--consistent', 'linearizable: confirm with the leader first')
    .action((name: string, o: { consistent?: boolean }, cmd: Command) =>
      run(cmd, api.configGet, { name, ...(o.consistent ? { consistent: true } : {}) }, (r) => r.value));
  config.command('ls [prefix]')
    .description('values, by name')
    .option('--consistent', 'linearizable: confirm with the leader first')
    .action((prefix: string | undefined, o: { consistent?: boolean }, cmd: Command) =>
      run(cmd, api.configList, { ...(prefix ? { prefix } : {}), ...(o.consistent ? { consistent: true } : {}) }, (r) =>
        table(['NAME', 'VERSION', 'VALUE'], r.items.map((c) => [c.name, c.version, oneLine(c.value)])), (r) => r.items));
  config.command('rm <name>')
    .description('remove a value')
    .option('--expect <version>', 'only if the current version is this')
    .action((name: string, o: { expect?: string }, cmd: Command) => run(cmd, api.configRemove, { name, ...version(o.expect) }, (r) => `${r.name} removed`));

  const state = program.command('state').description('desired state as a whole: backup, restore, watch');
  state.command('backup <file>')
    .description('write a consistent copy of desired state (as of a committed index) to FILE')
    .option('--yes', 'overwrite FILE if it exists')
    .action((file: string, o: { yes?: boolean }, cmd: Command) => {
      if (existsSync(file) && !o.yes) throw new CliError(`${file} exists: this would overwrite it; add --yes to do so`);
      return run(cmd, api.stateBackup, {}, (b) => {
        writeFileSync(file, JSON.stringify(b) + '\n', { mode: 0o600 });
        return `desired state as of index ${b.index} written to ${file}`;
      }, (b) => {
        writeFileSync(file, JSON.stringify(b) + '\n', { mode: 0o600 });
        return { file, index: b.index };
      });
    });
  state.command('restore <file>')
    .description("replace every object of desired state with FILE's (one committed change; versions go on upward)")
    .option('--yes', 'do it (without, only say what it would do)')
    .action((file: string, o: { yes?: boolean }, cmd: Command) => {
      let b: api.StateBackup;
      try {
        b = JSON.parse(readFileSync(file, 'utf8')) as api.StateBackup;
      } catch (err) {
        throw new CliError(`${file}: not a weft state backup (${(err as Error).message})`);
      }
      if (b?.format !== api.BACKUP_FORMAT) throw new CliError(`${file}: not a weft state backup (format "${String(b?.format)}", expected "${api.BACKUP_FORMAT}")`);
      if (!o.yes) throw new CliError(`this would replace all of desired state with ${file} (as of index ${b.index}), on every manager; add --yes to do so`);
      return run(cmd, api.stateRestore, { format: b.format, index: b.index, data: b.data }, (r) => `restored ${r.objects} object(s) from ${file}; applied at index ${r.index}`);
    });
  state.command('watch [kind]')
    .description('print changes of desired state as they are committed: first every object changed after --from, then each change')
    .option('--from <index>', 'only changes after this Raft index')
    .action(async (kind: string | undefined, o: { from?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<Globals>();
      const c = await client(g);
      process.on('SIGINT', () => void c.close().then(() => process.exit(0)));
      const params = { ...(kind ? { kind: kind as 'config' } : {}), ...(o.from !== undefined ? { from: Number(o.from) } : {}) };
      await c.call(api.stateWatch, params, (e) => process.stdout.write((g.json ? JSON.stringify(e) : `${e.index}  ${e.kind}/${e.name}  ${e.object ? `version ${e.object.version}` : 'deleted'}`) + '\n'));
    });
}

function version(text: string | undefined): { expect?: number } {
  return text === undefined ? {} : { expect: Number(text) };
}

function oneLine(s: string): string {
  const flat = s.replace(/\s+/g, ' ');
  return flat.length > 60 ? `${flat.slice(0, 57)}...` : flat;
}

/** The manager line of `weft status`. */
export function formatManagerStatus(m: ManagerStatus | undefined): string[] {
  if (!m) return [];
  const leader = m.leader === null ? 'none known' : m.leader;
  return [`manager:     ${m.role}, term ${m.term}, leader ${leader}, commit ${m.commit}, applied ${m.applied}`];
}
