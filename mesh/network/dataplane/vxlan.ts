// The fast mode's device: a kernel VXLAN interface with learning off (every remote MAC is in
// the fdb from gossip, every remote address has a permanent neighbour, so nothing floods).
// Drives `ip`; decides nothing about which peers exist.
import type { Logger } from '../../log.ts';
import type { Shell } from './exec.ts';
import { randomMac } from './names.ts';

/** One overlay per mesh: every host must agree, and nothing else here speaks VXLAN on our
 *  port, so any fixed id works; this one reads as the port it runs on. */
export const VXLAN_VNI = 6784;

interface VxlanJson {
  address: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number; learning?: boolean } };
}

/** Makes sure `dev` exists with our VNI, port and underlay address, up, with `mtu`; returns
 *  its MAC. A matching device is adopted (its fdb and neighbours keep working); one with other
 *  parameters (the underlay address changed) is replaced. */
export async function ensureVxlan(shell: Shell, dev: string, underlay: string, port: number, mtu: number, log: Logger): Promise<string> {
  const shown = await shell.tryRun(['ip', '-j', '-d', 'link', 'show', 'dev', dev]);
  if (shown.code === 0) {
    const l = (JSON.parse(shown.stdout) as VxlanJson[])[0];
    const d = l?.linkinfo?.info_data;
    if (l !== undefined && l.linkinfo?.info_kind === 'vxlan' && d?.id === VXLAN_VNI && d.local === underlay && d.port === port && d.learning === false) {
      await shell.run(['ip', 'link', 'set', 'dev', dev, 'mtu', String(mtu), 'up']);
      return l.address;
    }
    log.warn('replacing a VXLAN device with other parameters', { dev, local: d?.local, port: d?.port, id: d?.id });
    await shell.run(['ip', 'link', 'del', 'dev', dev]);
  }
  const mac = randomMac();
  await shell.run(['ip', '-batch', '-'], [
    `link add ${dev} address ${mac} mtu ${mtu} type vxlan id ${VXLAN_VNI} dstport ${port} local ${underlay} nolearning`,
    `link set dev ${dev} up`,
    '',
  ].join('\n'));
  return mac;
}
