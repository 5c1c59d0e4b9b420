// One test host: a network namespace with an address on the switch, its own directory, and
// at most one weft peer (plus any other processes a test starts there).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Dockerd, type DockerdOptions } from './dockerd.ts';
import { HostProcess, placedArgv, type ExitInfo, type Placement } from './process.ts';
import { describeFailure, run, type ExecResult, type RunOptions } from './run.ts';
import type { Switch } from './switch.ts';

/** The mesh control port (ARCHITECTURE.md, "Ports and defaults"). */
export const MESH_PORT = 6783;

/** The project's weft command; runs the TypeScript sources on the project's Node 24. */
export const WEFT_BIN = fileURLToPath(new URL('../../bin/weft', import.meta.url));

/** Everything a peer command builder may need to know about the peer it starts. */
export interface PeerSpec {
  /** Host name, also the peer's --name: "h1". */
  name: string;
  ip: string;
  /** "<ip>:6783" */
  listen: string;
  /** Kept across restarts: <instance tmp>/<host>/data. */
  dataDir: string;
  passwordFile: string;
  /** As given to startPeer: addresses ("10.250.5.2" or "10.250.5.2:6783"). */
  peers: readonly string[];
  /** Extra arguments given to startPeer. */
  args: readonly string[];
  /** Run the container data plane (root, a dockerd to watch); off unless asked for. */
  dataplane?: boolean;
}

/** Builds the argv of a peer. Override it to run a stand-in or a different build. */
export type PeerCommand = (spec: PeerSpec) => string[];

/** Builds the argv of a CLI call against a peer's data dir (its API socket lives there). */
export type CliCommand = (dataDir: string, args: readonly string[]) => string[];

/** `bin/weft launch --data-dir D --listen IP:6783 --name hN --password-file F --no-dataplane
 *  [--peers a,b] [args...]` (peers comma-separated, one argument, as a list of addresses). */
export const defaultPeerCommand: PeerCommand = (spec) => [
  WEFT_BIN,
  'launch',
  '--data-dir',
  spec.dataDir,
  '--listen',
  spec.listen,
  '--name',
  spec.name,
  '--password-file',
  spec.passwordFile,
  ...(spec.dataplane ? [] : ['--no-dataplane']),
  ...(spec.peers.length > 0 ? ['--peers', spec.peers.join(',')] : []),
  ...spec.args,
];

/** `bin/weft --data-dir D args...`, run from the root namespace: the CLI reaches the peer
 *  over the unix socket in its data dir, which needs no network namespace. */
export const defaultCliCommand: CliCommand = (dataDir, args) => [WEFT_BIN, '--data-dir', dataDir, ...args];

/** Where a harness peer forwards names outside the mesh by default: the host namespace's own
 *  loopback, on a port nothing listens on, so a lookup fails at once (ICMP port unreachable). */
export const NO_UPSTREAM = '127.0.0.1:5399';

export interface PeerOptions {
  password: string;
  peers?: readonly string[];
  args?: readonly string[];
  /** Run the data plane; the peer then watches this host's dockerd (start it first) and its
   *  Docker plugin is named after the host's namespace, unique on the machine. */
  dataplane?: boolean;
}

export interface HostConfig {
  n: number;
  name: string;
  ns: string;
  ip: string;
  dir: string;
  place: Placement;
  /** cgroup path (from the cgroup root) for this host's containers. */
  containerCgroup: string;
  net: Switch;
  peerCommand: PeerCommand;
  cliCommand: CliCommand;
}

export class Host {
  /** 1-based host number. */
  readonly n: number;
  /** "h1": the peer's name and the host's directory name. */
  readonly name: string;
  /** Network namespace name: "wt<id>h<n>". */
  readonly ns: string;
  readonly ip: string;
  /** <instance tmp>/<name>: logs, password file, data dir. */
  readonly dir: string;
  readonly dataDir: string;
  readonly passwordFile: string;
  /** Every process started here, oldest first (peer incarnations included). */
  readonly processes: HostProcess[] = [];
  readonly containerCgroup: string;
  private readonly place: Placement;
  private readonly net: Switch;
  private readonly peerCommand: PeerCommand;
  private readonly cliCommand: CliCommand;
  private peerProc: HostProcess | undefined;
  private peerSpec: PeerSpec | undefined;
  private dockerdInst: Dockerd | undefined;

  constructor(c: HostConfig) {
    this.n = c.n;
    this.name = c.name;
    this.ns = c.ns;
    this.ip = c.ip;
    this.dir = c.dir;
    this.dataDir = path.join(c.dir, 'data');
    this.passwordFile = path.join(c.dir, 'password');
    this.place = c.place;
    this.containerCgroup = c.containerCgroup;
    this.net = c.net;
    this.peerCommand = c.peerCommand;
    this.cliCommand = c.cliCommand;
    fs.mkdirSync(this.dataDir, { recursive: true });
  }

  /** "<ip>:6783", what other peers are given to join this one. */
  get address(): string {
    return `${this.ip}:${MESH_PORT}`;
  }

  /** The current (or last) peer process, if one was started. */
  get peer(): HostProcess | undefined {
    return this.peerProc;
  }

  /** Runs a command in this host's namespace and cgroup; resolves with its result. */
  exec(argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
    return run(placedArgv(this.place, argv), { ...opts, env: { ...this.place.env, ...opts.env } });
  }

  /** Starts a long-running process here; its output goes to <dir>/<name>.log. */
  async spawn(name: string, argv: readonly string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<HostProcess> {
    if (!/^[\w.-]+$/.test(name)) throw new Error(`process name ${JSON.stringify(name)}: use letters, digits, . _ -`);
    const place = { ...this.place, env: { ...this.place.env, ...opts.env } };
    const p = await HostProcess.start(name, argv, place, path.join(this.dir, `${name}.log`));
    this.processes.push(p);
    return p;
  }

  /** One ICMP echo to `ip` (busybox ping: the base image has no iputils). */
  async ping(ip: string, timeoutSec = 1): Promise<boolean> {
    const r = await this.exec(['busybox', 'ping', '-c', '1', '-W', String(timeoutSec), ip], { timeoutMs: (timeoutSec + 5) * 1000 });
    return r.code === 0;
  }

  /** Starts the weft peer (see defaultPeerCommand). Resolves once the process exists; wait
   *  for readiness with waitFor and the CLI. The data dir is kept across restarts. */
  async startPeer(opts: PeerOptions): Promise<HostProcess> {
    if (this.peerProc?.running) throw new Error(`${this.name}: a peer is already running (pid ${this.peerProc.pid})`);
    fs.writeFileSync(this.passwordFile, `${opts.password}\n`, { mode: 0o600 });
    this.peerSpec = {
      name: this.name,
      ip: this.ip,
      listen: this.address,
      dataDir: this.dataDir,
      passwordFile: this.passwordFile,
      peers: [...(opts.peers ?? [])],
      args: [
        ...(opts.dataplane && this.dockerdInst ? ['--docker-host', `unix://${this.dockerdInst.socket}`] : []),
        ...(opts.dataplane ? ['--plugin-name', `weft-${this.ns}`] : []),
        // Names outside the mesh never go to the machine's resolver: unless a test names its
        // own stub, to an address in the host's namespace where nothing answers.
        ...(opts.args?.includes('--dns-upstream') ? [] : ['--dns-upstream', NO_UPSTREAM]),
        ...(opts.args ?? []),
      ],
      dataplane: opts.dataplane,
    };
    return this.launch();
  }

  /** SIGKILL the peer (a crash: no goodbye, no flush) and wait until it is gone. */
  async kill(): Promise<ExitInfo> {
    return this.requirePeer('kill').kill();
  }

  /** SIGTERM the peer, wait (bounded) for a clean exit, then SIGKILL. */
  async stop(graceMs?: number): Promise<ExitInfo> {
    return this.requirePeer('stop').stop(graceMs);
  }

  /** Starts the peer again with the same arguments and data dir; stops it first if running. */
  async restart(): Promise<HostProcess> {
    const p = this.requirePeer('restart');
    if (p.running) await p.stop();
    return this.launch();
  }

  /** Starts this host's dockerd (see dockerd.ts) and waits until it answers. */
  async startDockerd(opts: DockerdOptions = {}): Promise<Dockerd> {
    if (this.dockerdInst?.process.running) throw new Error(`${this.name}: dockerd is already running (pid ${this.dockerdInst.process.pid})`);
    this.dockerdInst = await Dockerd.start(this, opts);
    return this.dockerdInst;
  }

  /** This host's dockerd, if one was started. */
  get dockerd(): Dockerd | undefined {
    return this.dockerdInst;
  }

  /** Silently cut this host off the network (no FIN, RST or ICMP; see switch.ts). */
  cut(): Promise<void> {
    return this.net.cut(this.n);
  }

  heal(): Promise<void> {
    return this.net.heal(this.n);
  }

  get isCut(): boolean {
    return this.net.isCut(this.n);
  }

  /** Runs the weft CLI against this host's peer (`bin/weft --data-dir <dataDir> ...args`). */
  weft(args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
    return run(this.cliCommand(this.dataDir, args), opts);
  }

  /** Runs the CLI and parses its stdout as JSON; throws with the CLI's words if it fails. */
  async weftJson<T = unknown>(args: readonly string[], opts: RunOptions = {}): Promise<T> {
    const argv = this.cliCommand(this.dataDir, args);
    const r = await run(argv, opts);
    if (r.code !== 0) throw new Error(`${this.name}: ${describeFailure(argv, r)}`);
    try {
      return JSON.parse(r.stdout) as T;
    } catch (e) {
      throw new Error(`${this.name}: ${argv.join(' ')} printed no JSON (${(e as Error).message}): ${r.stdout.slice(0, 300)}`);
    }
  }

  private async launch(): Promise<HostProcess> {
    const spec = this.peerSpec as PeerSpec;
    this.peerProc = await this.spawn('peer', this.peerCommand(spec));
    return this.peerProc;
  }

  private requirePeer(what: string): HostProcess {
    if (this.peerProc === undefined) throw new Error(`${this.name}: cannot ${what}: no peer was started (call startPeer first)`);
    return this.peerProc;
  }
}
