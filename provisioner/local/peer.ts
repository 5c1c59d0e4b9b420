// The `weft launch` command line of a node's peer. Pure.
import { MESH_PORT } from '../../mesh/address.ts';
import { pluginName } from './names.ts';
import type { NodeDir } from './node-dir.ts';

export interface PeerLaunch {
  weft: readonly string[];
  name: string;
  address: string;
  peers: readonly string[];
  tags: readonly string[];
  dnsUpstream?: readonly string[];
  peerArgs?: readonly string[];
}

/**
 * The peer listens on the node's own address (its namespace has no other), reads the join
 * token from its file (the token is the mesh key: a command line is readable by every user of
 * the machine), watches the node's dockerd, and names its Docker plugin after the node (the
 * plugin directory /run/docker/plugins is machine-wide). Its DNS and metrics listen on
 * loopback addresses, which are the node namespace's own: no clash with other peers.
 */
export function peerArgv(p: PeerLaunch, d: NodeDir): string[] {
  return [
    ...p.weft,
    'launch',
    '--data-dir', d.peerDir,
    '--name', p.name,
    '--listen', `${p.address}:${MESH_PORT}`,
    '--token-file', d.tokenFile,
    ...(p.peers.length > 0 ? ['--peers', p.peers.join(',')] : []),
    ...(p.tags.length > 0 ? ['--tags', p.tags.join(',')] : []),
    '--docker-host', `unix://${d.dockerSocket}`,
    '--plugin-name', pluginName(p.name),
    ...(p.dnsUpstream !== undefined && p.dnsUpstream.length > 0 ? ['--dns-upstream', p.dnsUpstream.join(',')] : []),
    ...(p.peerArgs ?? []),
  ];
}
