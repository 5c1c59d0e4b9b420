// The `local` provider's nodes: each a network namespace on this machine with its own dockerd
// and a weft peer that joins the mesh with a join token, like a fresh cloud host would. The
// node's processes run detached, in a cgroup of their own, so they outlive the host peer that
// made them; a new LocalNodes on the same directory finds them again from what each node's
// directory records (node-dir.ts) and from names derived from the node's name (names.ts).
//
// One LocalNodes per directory: the host peer's data dir is its alone (its store locks it), so
// nothing here locks across processes. Within the process, a node's create and destroy never
// overlap, and addresses, namespaces and the bridge change one at a time.
import path from 'node:path';
import fs from 'node:fs';
import { parseHostPort } from '../../mesh/address.ts';
import { errorText, type Logger } from '../../mesh/log.ts';
import { containersCgroupParent, ensureNodeCgroup, inNodeCgroup, removeEmptyParents } from './cgroup.ts';
import { teardownNode } from './cleanup.ts';
import { dockerdArgv, loadImages, prepareDockerDir, waitDockerd } from './dockerd.ts';
import { checkNodeName, hostIfName, netnsName, netnsPath } from './names.ts';
import { addNodeNetwork, ensureBridge, hostIfExists, netnsExists, removeBridgeIfUnused } from './network.ts';
import { NODE_RECORD_VERSION, NodeDir, nodeDirNames, type NodeRecord } from './node-dir.ts';
import { peerArgv } from './peer.ts';
import { checkLocalNodeSupport } from './preflight.ts';
import { isRunning, lastLines, processStart, startDetached, type ProcessRecord } from './processes.ts';
import { Serial } from './serial.ts';
import { allocateAddress, DEFAULT_NODE_SUBNET, nodeCapacity, nodeSubnet, type NodeSubnet } from './subnet.ts';

export { currentWeftCommand } from './weft-command.ts';
export { DEFAULT_NODE_SUBNET } from './subnet.ts';

export interface LocalNodeRequest {
  /** Node name, /^[a-z0-9][a-z0-9-]{0,39}$/, unique on this machine; also the peer's --name. */
  name: string;
  /** Given to the peer as a 0600 file (--token-file), never on its command line: it is the mesh key. */
  joinToken: string;
  /** Mesh addresses (ip[:port]) the node's peer joins (--peers). */
  peers: string[];
  /** Its peer's --tags. */
  tags: string[];
  /** Its peer's --dns-upstream; without it the peer reads /etc/resolv.conf. */
  dnsUpstream?: string[];
  /** `docker save` tarballs loaded into the node's dockerd before its peer starts. */
  loadImages?: string[];
  /** Extra `weft launch` arguments. */
  peerArgs?: string[];
}

export interface LocalNode {
  name: string;
  /** The node's IPv4 on the node bridge. */
  address: string;
  /** pending: being created; running: its dockerd and peer run; stopped: one of them is dead. */
  state: 'pending' | 'running' | 'stopped';
  /** ms since the epoch */
  createdAt: number;
}

export interface LocalNodesOptions {
  /** State directory (the host peer's <data-dir>/local-nodes); one subdirectory per node. */
  dir: string;
  log: Logger;
  /** argv prefix that runs weft (currentWeftCommand() for the running peer's own). */
  weft: readonly string[];
  /** The node bridge's subnet; its first address is the gateway, in this process's namespace. */
  subnet?: string;
}

/** Keys of the Serial: one per node name, and this one for the network's shared state. */
const NETWORK = '\0network';

export class LocalNodes {
  private readonly dir: string;
  private readonly log: Logger;
  private readonly weft: readonly string[];
  private readonly subnet: NodeSubnet;
  private readonly serial = new Serial();
  /** Names whose create runs in this process now. */
  private readonly creating = new Set<string>();
  private supported = false;

  constructor(o: LocalNodesOptions) {
    this.dir = path.resolve(o.dir);
    this.log = o.log;
    this.weft = [...o.weft];
    if (this.weft.length === 0) throw new Error('LocalNodes: the weft command is empty (use currentWeftCommand())');
    this.subnet = nodeSubnet(o.subnet ?? DEFAULT_NODE_SUBNET);
  }

  /** The bridge's address in this (the host peer's) namespace: nodes reach the host peer here. */
  gateway(): string {
    return this.subnet.gateway;
  }

  /** Makes the node, or returns it as it is if it exists. Resolves once its dockerd answers
   *  and its peer is started (not once the peer has joined). */
  create(req: LocalNodeRequest): Promise<LocalNode> {
    try {
      checkRequest(req);
      this.checkSupport();
    } catch (e) {
      return Promise.reject(e as Error);
    }
    return this.serial.run(req.name, () => this.createNow(req));
  }

  /** Every node of the directory, with the live state of its processes. */
  async list(): Promise<LocalNode[]> {
    const nodes: LocalNode[] = [];
    for (const name of nodeDirNames(this.dir)) {
      const d = new NodeDir(this.dir, name);
      const rec = d.readRecord();
      if (rec !== undefined) nodes.push(this.describe(d, rec));
    }
    return nodes;
  }

  /** Removes the node and everything of it; succeeds if there is no such node. */
  destroy(name: string): Promise<void> {
    try {
      checkNodeName(name);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    return this.serial.run(name, async () => {
      const d = new NodeDir(this.dir, name);
      let found = true;
      if (d.exists) {
        await teardownNode(name, d, this.log);
      } else if (netnsExists(name) && (await hostIfExists(name))) {
        // Its directory was lost, but its namespace is wired to our bridge: ours.
        this.log.warn('removing the remains of a local node whose directory is gone', { node: name });
        await teardownNode(name, d, this.log);
      } else {
        found = false; // (a namespace of that name wired elsewhere is another host peer's)
      }
      // Also when nothing was found: a host peer that died between a last node's removal and
      // the bridge's leaves the bridge, and this repeated destroy is what takes it away.
      await this.serial.run(NETWORK, () => this.removeSharedIfLast());
      if (found) this.log.info('local node destroyed', { node: name });
    });
  }

  private async createNow(req: LocalNodeRequest): Promise<LocalNode> {
    const d = new NodeDir(this.dir, req.name);
    d.checkSocketPaths();
    const existing = d.readRecord();
    if (existing !== undefined) {
      const node = this.describe(d, existing);
      if (existing.complete || node.state === 'pending') return node;
      this.log.warn('the creation of this local node was interrupted (its host peer stopped); making it again', { node: req.name });
      await teardownNode(req.name, d, this.log);
    } else if (d.exists) {
      this.log.warn('finishing an interrupted destroy of this local node before making it again', { node: req.name });
      await teardownNode(req.name, d, this.log);
    }
    this.creating.add(req.name);
    try {
      const rec = await this.serial.run(NETWORK, () => this.claim(d));
      try {
        await this.start(d, req, rec.address);
      } catch (e) {
        const err = new Error(`cannot create local node ${req.name}: ${errorText(e)}`);
        this.log.error('creating a local node failed; removing what was made', { node: req.name, err: errorText(e) });
        await teardownNode(req.name, d, this.log).catch((e2: unknown) => this.log.error('could not remove the failed node', { node: req.name, err: errorText(e2) }));
        await this.serial.run(NETWORK, () => this.removeSharedIfLast()).catch(() => {});
        throw err;
      }
      const done: NodeRecord = { ...rec, complete: true };
      d.writeRecord(done);
      this.log.info('local node created', { node: req.name, address: rec.address });
      return this.describe(d, done);
    } finally {
      this.creating.delete(req.name);
    }
  }

  /** Takes an address and makes the namespace, wired to the bridge. Runs alone. */
  private async claim(d: NodeDir): Promise<NodeRecord> {
    const name = d.name;
    if (netnsExists(name)) {
      if (!(await hostIfExists(name))) {
        throw new Error(`local node name "${name}" is already used on this machine by another host's node (network namespace ${netnsName(name)} exists): choose another name`);
      }
      this.log.warn('removing the remains of a local node whose directory is gone', { node: name });
      await teardownNode(name, d, this.log);
    }
    const used: string[] = [];
    for (const other of nodeDirNames(this.dir)) {
      if (other === name) continue;
      if (hostIfName(other) === hostIfName(name)) {
        throw new Error(`local node names "${name}" and "${other}" would share the interface name ${hostIfName(name)}: choose another name`);
      }
      const r = new NodeDir(this.dir, other).readRecord();
      if (r !== undefined) used.push(r.address);
    }
    const address = allocateAddress(this.subnet, used);
    if (address === undefined) {
      throw new Error(`no free address for local node "${name}": all ${nodeCapacity(this.subnet)} addresses of ${this.subnet.cidr.text} are taken (destroy a node, or give the local provider a larger subnet)`);
    }
    d.make();
    const rec: NodeRecord = { version: NODE_RECORD_VERSION, name, address, createdAt: Date.now(), complete: false, creator: self() };
    // Recorded before anything is made, so a host peer that dies from here on leaves a node
    // that create and destroy both recognize.
    d.writeRecord(rec);
    await ensureBridge(this.subnet, this.log);
    await addNodeNetwork(name, address, this.subnet);
    return rec;
  }

  /** dockerd, the images, then the peer. */
  private async start(d: NodeDir, req: LocalNodeRequest, address: string): Promise<void> {
    d.writeToken(req.joinToken);
    const cgroupProcs = ensureNodeCgroup(d.name);
    const netns = netnsPath(d.name);
    const dockerd = await startDetached({
      argv: dockerdArgv(d, containersCgroupParent(d.name)),
      netns, cgroupProcs, env: { ...childEnv(d.name), ...prepareDockerDir(d) }, logFile: d.dockerLog,
    });
    d.writeProcesses({ dockerd });
    await waitDockerd(d.dockerSocket, () => isRunning(dockerd)).catch((e: unknown) => {
      throw new Error(`${errorText(e)}: ${lastLines(d.dockerLog)}`);
    });
    await loadImages(d, req.loadImages ?? []);
    fs.mkdirSync(d.peerDir, { recursive: true, mode: 0o700 });
    const argv = peerArgv({ ...req, weft: this.weft, address }, d);
    const peer = await startDetached({ argv, netns, cgroupProcs, env: childEnv(d.name), logFile: d.peerLog });
    d.writeProcesses({ dockerd, peer });
  }

  /** Once no node is left: the bridge and the shared cgroup parents go too. Runs alone. */
  private async removeSharedIfLast(): Promise<void> {
    if (nodeDirNames(this.dir).length > 0) return;
    await removeBridgeIfUnused(this.log);
    removeEmptyParents();
  }

  private describe(d: NodeDir, rec: NodeRecord): LocalNode {
    return { name: rec.name, address: rec.address, state: this.stateOf(d, rec), createdAt: rec.createdAt };
  }

  private stateOf(d: NodeDir, rec: NodeRecord): LocalNode['state'] {
    if (!rec.complete) {
      const mine = rec.creator.pid === process.pid && rec.creator.start === processStart(process.pid);
      return (mine ? this.creating.has(rec.name) : isRunning(rec.creator)) ? 'pending' : 'stopped';
    }
    const p = d.readProcesses();
    const alive = (r: ProcessRecord | undefined) => isRunning(r) && inNodeCgroup(r.pid, rec.name);
    return alive(p.dockerd) && alive(p.peer) ? 'running' : 'stopped';
  }

  private checkSupport(): void {
    if (this.supported) return;
    checkLocalNodeSupport();
    this.supported = true;
  }
}

/** This process, as a creator record names it. */
function self(): ProcessRecord {
  return { pid: process.pid, start: processStart(process.pid) ?? 0 };
}

/** The environment of a node's processes: the host peer's, without what configures weft or
 *  Docker (the node has its own of both) or Node (the host peer's NODE_OPTIONS are not the
 *  node peer's), plus a marker for people reading /proc/PID/environ. */
function childEnv(name: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('WEFT_') || k.startsWith('DOCKER_') || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  env.WEFT_LOCAL_NODE = name;
  return env;
}

/** Values joined with commas on the peer's command line, so none may hold one. */
const LIST_ITEM = /^[^,\s]+$/;
/** A join token is one line of base64url-ish text; anything with whitespace is a paste accident. */
const TOKEN = /^\S+$/;

function checkRequest(req: LocalNodeRequest): void {
  checkNodeName(req.name);
  if (!TOKEN.test(req.joinToken)) throw new Error(`local node ${req.name}: the join token is empty or has whitespace in it`);
  for (const p of req.peers) {
    try {
      parseHostPort(p);
    } catch (e) {
      throw new Error(`local node ${req.name}: peer ${errorText(e)}`);
    }
  }
  for (const [what, list] of [['tag', req.tags], ['DNS upstream', req.dnsUpstream ?? []]] as const) {
    for (const item of list) {
      if (!LIST_ITEM.test(item)) throw new Error(`local node ${req.name}: ${what} ${JSON.stringify(item)} is empty or has a comma or space in it`);
    }
  }
}
