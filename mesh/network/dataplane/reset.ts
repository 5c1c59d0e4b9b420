// Removing a host's data plane from names alone, so it also works without the Dataplane that
// made it (after a crash, from `weft reset`, in test cleanup).
import type { Logger } from '../../log.ts';
import { batch, type Shell } from './exec.ts';
import { chainHooks, vxlanIfName, wgIfName } from './names.ts';
import { parseLinks } from './observe.ts';
import { ALREADY_GONE } from './veth.ts';
import { awaitWireguardExit } from './wireguard.ts';

/** Removes the bridge and its ports, both modes' devices (wireguard-go exits with its own),
 *  the catch-all route and the iptables chains. Works from names alone. */
export async function resetHost(shell: Shell, o: { bridge: string; suffix: string; range: string; log: Logger }): Promise<void> {
  const links = parseLinks(await shell.run(['ip', '-j', '-d', 'link', 'show']));
  const wg = wgIfName(o.suffix);
  const doomed = [...links.filter((l) => l.master === o.bridge).map((l) => l.name), o.bridge, wg, vxlanIfName(o.suffix)];
  const present = new Set(links.map((l) => l.name));
  const lines = doomed.filter((n) => present.has(n)).map((n) => `link del dev ${n}`);
  lines.push(`route del unreachable ${o.range}`);
  const r = await shell.tryRun(['ip', '-force', '-batch', '-'], batch(lines));
  const errors = r.stderr.split('\n').filter((l) => l.trim() !== '' && !ALREADY_GONE.test(l) && !/^Command failed/.test(l));
  if (errors.length > 0) throw new Error(`cannot remove the data plane: ${errors.join('; ')}`);
  await awaitWireguardExit(wg, o.log);
  const rules = await shell.run(['iptables', '-w', '-S']);
  for (const [hook, chain] of chainHooks(o.bridge)) {
    const jumps = rules.split('\n').filter((l) => l.trim() === `-A ${hook} -j ${chain}`).length;
    for (let i = 0; i < jumps; i++) await shell.run(['iptables', '-w', '-D', hook, '-j', chain]);
    if (rules.includes(`-N ${chain}\n`) || rules.endsWith(`-N ${chain}`)) {
      await shell.run(['iptables', '-w', '-F', chain]);
      await shell.run(['iptables', '-w', '-X', chain]);
    }
  }
  o.log.info('data plane removed', { bridge: o.bridge });
}
