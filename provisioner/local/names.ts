// Names of a local node's kernel and machine-wide objects, derived from the node's name alone
// and never stored: destroy finds every one of them again after a crash, a kill -9 or a
// restart of the host peer, with nothing but the name.
import { createHash } from 'node:crypto';

/** A node name: also its peer's --name, a DNS label, and part of its namespace, cgroup and
 *  Docker plugin names. 40 characters keep `weftn-<name>`, `weft-<name>.sock` and the unix
 *  socket paths under the node's directory within their limits (see node-dir.ts). */
export const NODE_NAME = /^[a-z0-9][a-z0-9-]{0,39}$/;

/** Network namespaces are machine-wide (`ip netns` mounts them in one directory), so a node
 *  name must be unique on the machine, not only in one host peer's directory. */
export const NETNS_PREFIX = 'weftn-';

/** Where `ip netns add` mounts named namespaces. */
export const NETNS_DIR = '/var/run/netns';

/** The bridge of the node network in the host peer's namespace. Interface names are at most
 *  15 bytes (IFNAMSIZ); this one is unlike anything Docker (docker0, br-<id>) or weft's data
 *  plane (weft, wg*, vx*, vw*) makes. */
export const BRIDGE = 'weftnodes';

/** The node's end of its veth pair, inside its namespace: the name a host's uplink usually has. */
export const NODE_IFACE = 'eth0';

/** Host end of a node's veth: "wn" + 12 hex digits of sha256(name) = 14 bytes, within
 *  IFNAMSIZ. 48 bits make a clash between two names of one host peer negligible (and
 *  local-nodes.ts refuses one rather than share an interface). */
const HOST_IFACE_PREFIX = 'wn';
const HOST_IFACE_HASH_CHARS = 12;

/** Parent of every node's cgroup, under the cgroup v2 root (and, for containers, under each
 *  cgroup v1 hierarchy of a hybrid host). Machine-wide, like the namespaces. */
export const CGROUP_PARENT = 'weft-nodes';

/** Docker plugin sockets live in one machine-wide directory (/run/docker/plugins), so each
 *  node's peer names its plugin after the node. */
const PLUGIN_PREFIX = 'weft-';

/** Throws the sentence a user needs unless `name` can name a node. */
export function checkNodeName(name: string): void {
  if (!NODE_NAME.test(name)) {
    throw new Error(`local node name ${JSON.stringify(name)} must be 1 to 40 lowercase letters, digits and dashes, starting with a letter or digit`);
  }
}

export function netnsName(name: string): string {
  return `${NETNS_PREFIX}${name}`;
}

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${netnsName(name)}`;
}

/** The node name a namespace name belongs to, or undefined if it is not a node's. */
export function nodeOfNetns(ns: string): string | undefined {
  if (!ns.startsWith(NETNS_PREFIX)) return undefined;
  const name = ns.slice(NETNS_PREFIX.length);
  return NODE_NAME.test(name) ? name : undefined;
}

export function hostIfName(name: string): string {
  return HOST_IFACE_PREFIX + createHash('sha256').update(name).digest('hex').slice(0, HOST_IFACE_HASH_CHARS);
}

export function pluginName(name: string): string {
  return `${PLUGIN_PREFIX}${name}`;
}
