// A node's directory under the host peer's <data-dir>/local-nodes: what is known of the node
// across restarts of the host peer (its address, when it was made, whether its creation
// finished, which processes are its own) and the files of its dockerd and peer.
//
//   <dir>/<name>/            0700
//     node.json              NodeRecord
//     processes.json         ProcessRecords
//     join-token             0600, read by the peer (--token-file): never on a command line
//     dockerd.log  peer.log
//     docker/                daemon.json, data/, docker.sock, docker.pid, tmp/, cli/
//     run/                   dockerd's exec root (containerd's sockets): short, see below
//     peer/                  the peer's data dir (its API socket weft.sock)
import fs from 'node:fs';
import path from 'node:path';
import type { ProcessRecord } from './processes.ts';

/** node.json's format; a record of another version is not read (and its node not touched). */
export const NODE_RECORD_VERSION = 1;

/** A unix socket path is at most 107 bytes (sun_path is 108 with its NUL). */
const MAX_SOCKET_PATH = 107;
/** The longest socket dockerd makes below its exec root: containerd's ttrpc socket. */
const LONGEST_EXEC_SOCKET = 'containerd/containerd.sock.ttrpc';

export interface NodeRecord {
  version: number;
  name: string;
  address: string;
  /** ms since the epoch */
  createdAt: number;
  /** False until dockerd answers and the peer is started; a node left incomplete by a host
   *  peer that died meanwhile is made again. */
  complete: boolean;
  /** The process creating it, while incomplete. */
  creator: ProcessRecord;
}

export interface ProcessRecords {
  dockerd?: ProcessRecord;
  peer?: ProcessRecord;
}

export class NodeDir {
  readonly name: string;
  readonly dir: string;
  readonly recordFile: string;
  readonly processesFile: string;
  readonly tokenFile: string;
  readonly dockerDir: string;
  readonly dockerSocket: string;
  /** dockerd's --exec-root, directly in the node's directory: containerd's sockets below it
   *  are the machine's longest paths, and with the default data dir
   *  (/var/lib/weft/local-nodes/) and a 40-character name they fit only this way. */
  readonly dockerExecRoot: string;
  readonly dockerLog: string;
  readonly peerDir: string;
  readonly peerLog: string;

  constructor(root: string, name: string) {
    this.name = name;
    this.dir = path.join(path.resolve(root), name);
    this.recordFile = path.join(this.dir, 'node.json');
    this.processesFile = path.join(this.dir, 'processes.json');
    this.tokenFile = path.join(this.dir, 'join-token');
    this.dockerDir = path.join(this.dir, 'docker');
    this.dockerSocket = path.join(this.dockerDir, 'docker.sock');
    this.dockerExecRoot = path.join(this.dir, 'run');
    this.dockerLog = path.join(this.dir, 'dockerd.log');
    this.peerDir = path.join(this.dir, 'peer');
    this.peerLog = path.join(this.dir, 'peer.log');
  }

  get exists(): boolean {
    return fs.existsSync(this.dir);
  }

  /** Throws the sentence a user needs when the node's sockets would not fit a unix socket path. */
  checkSocketPaths(): void {
    const longest = [path.join(this.dockerExecRoot, LONGEST_EXEC_SOCKET), this.dockerSocket, path.join(this.peerDir, 'weft.sock')]
      .reduce((a, b) => (Buffer.byteLength(b) > Buffer.byteLength(a) ? b : a));
    if (Buffer.byteLength(longest) > MAX_SOCKET_PATH) {
      throw new Error(`local node directory ${this.dir} is too deep: its socket ${longest} would be longer than the ${MAX_SOCKET_PATH} bytes a unix socket path may have (use a shorter --data-dir or node name)`);
    }
  }

  /** Makes the directory (0700: it holds the join token and the peer's keys). */
  make(): void {
    fs.mkdirSync(path.dirname(this.dir), { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.dir, { mode: 0o700 });
  }

  readRecord(): NodeRecord | undefined {
    const r = readJson(this.recordFile);
    if (typeof r !== 'object' || r === null) return undefined;
    const o = r as Record<string, unknown>;
    if (o.version !== NODE_RECORD_VERSION || o.name !== this.name || typeof o.address !== 'string' || typeof o.createdAt !== 'number'
      || typeof o.complete !== 'boolean' || !isProcessRecord(o.creator)) return undefined;
    return o as unknown as NodeRecord;
  }

  writeRecord(r: NodeRecord): void {
    writeAtomic(this.recordFile, json(r));
  }

  readProcesses(): ProcessRecords {
    const r = readJson(this.processesFile);
    if (typeof r !== 'object' || r === null) return {};
    const o = r as Record<string, unknown>;
    return {
      ...(isProcessRecord(o.dockerd) ? { dockerd: o.dockerd } : {}),
      ...(isProcessRecord(o.peer) ? { peer: o.peer } : {}),
    };
  }

  writeProcesses(p: ProcessRecords): void {
    writeAtomic(this.processesFile, json(p));
  }

  /** The join token, 0600, written whole before the peer can read it. */
  writeToken(token: string): void {
    writeAtomic(this.tokenFile, `${token}\n`);
  }
}

/** Names of the node directories under `root` (whatever their state). */
export function nodeDirNames(root: string): string[] {
  try {
    return fs.readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

function isProcessRecord(v: unknown): v is ProcessRecord {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return Number.isInteger(o.pid) && (o.pid as number) > 0 && Number.isInteger(o.start) && (o.start as number) >= 0;
}

/** Parsed JSON of a small file, or undefined if it is missing or not JSON (a torn write
 *  cannot happen: writes are atomic renames). */
const MAX_RECORD_BYTES = 64 * 1024;
function readJson(file: string): unknown {
  try {
    const st = fs.statSync(file);
    if (st.size > MAX_RECORD_BYTES) return undefined;
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Writes `text` to a 0600 temp file and renames it into place, so a reader, or a host peer
 *  restarted after a crash, sees the old content or the new, whole. */
function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true }); // a leftover would keep its own mode
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
