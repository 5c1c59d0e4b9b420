// `weft launch`'s options, one table: the flags commander parses, their help, their defaults
// (the constants of mesh/config.ts and dns/service.ts, where their reasons are), the environment
// variables that stand in for them, and the README's reference table, which a test checks
// against this one (test/unit/cli-reference.test.ts). launchConfig() then builds the fully
// resolved configs from what commander parsed, in one place.

import { hostname } from 'node:os';
import { Option } from 'commander';
import { formatHostPort, parseHostPort, type HostPort } from '../mesh/address.ts';
import {
  DEFAULT_DATAPLANE_MODE, DEFAULT_LISTEN, DEFAULT_METRICS_LISTEN, DEFAULT_PLUGIN_NAME, DEFAULT_ROLE, peerConfig, type PeerConfig,
} from '../mesh/config.ts';
import { DEFAULT_IPAM_RANGE, parseCidr } from '../mesh/ipam/cidr.ts';
import { errorText, LOG_LEVELS } from '../mesh/log.ts';
import type { Role } from '../mesh/membership/wire.ts';
import { DEFAULT_DNS_LISTEN, DEFAULT_DNS_TTL } from '../dns/service.ts';
import { parseUpstream, type UpstreamAddress } from '../dns/upstream-config.ts';
import { DEFAULT_GRACE_MS } from '../scheduler/manager/autopilot.ts';
import { DEFAULT_MANAGERS } from '../scheduler/manager/managers.ts';
import { CliError } from './error.ts';

/** A day: a manager down longer is not coming back on its own. */
const MAX_MANAGER_GRACE_S = 86_400;
import { readMeshSecret } from './secret.ts';

/** Longest TTL accepted: answers must follow redeploys, and an hour is already far too long. */
const MAX_DNS_TTL = 3600;
/** Peers that could ever start together naming each other; a typo of a huge N would make the
 *  first ring wait forever for peers that will never come. */
const MAX_IPALLOC_INIT = 9999;
const DEFAULT_LOG_LEVEL = 'info';

export interface LaunchOptionSpec {
  /** As commander takes it: `--listen <ip:port>`. */
  flags: string;
  help: string;
  /** The default commander fills in, if a literal one exists. */
  default?: string;
  /** What the README's default column says (the literal default, in backquotes, if none given). */
  readmeDefault?: string;
  /** Environment variables read when the flag is absent. */
  env?: string[];
  choices?: readonly string[];
}

const hp = (h: HostPort) => formatHostPort(h);

/** Every option of `weft launch`, in the order `--help` and the README list them. */
export const LAUNCH_OPTIONS: readonly LaunchOptionSpec[] = [
  { flags: '--listen <ip:port>', help: 'mesh address to listen on (libp2p over TCP)', default: hp(DEFAULT_LISTEN) },
  { flags: '--advertise <ip:port>', help: 'address other peers dial', readmeDefault: 'listen address, or the first non-loopback IPv4' },
  { flags: '--peers <ip[:port],...>', help: 'peers to join; more are learned from them', readmeDefault: 'none' },
  { flags: '--name <name>', help: 'peer name', readmeDefault: 'hostname' },
  { flags: '--tags <a,b>', help: 'placement tags', readmeDefault: 'none' },
  { flags: '--role <role>', help: 'auto (a manager when the mesh needs one), manager (preferred as one) or worker (never one)', default: DEFAULT_ROLE, choices: ['auto', 'manager', 'worker'] },
  { flags: '--managers <n>', help: 'voting managers the mesh keeps (an odd number; fewer while the mesh is smaller)', default: String(DEFAULT_MANAGERS), choices: ['1', '3', '5', '7'] },
  { flags: '--manager-grace <seconds>', help: 'how long a manager may be down before another peer replaces it', default: String(DEFAULT_GRACE_MS / 1000) },
  { flags: '--password-file <file>', help: 'file holding the mesh password', env: ['WEFT_PASSWORD'], readmeDefault: '—' },
  { flags: '--token <token>', help: 'join token from `weft token create` instead of the password', env: ['WEFT_TOKEN'], readmeDefault: '—' },
  { flags: '--token-file <file>', help: 'file holding a join token', readmeDefault: '—' },
  { flags: '--no-dataplane', help: 'mesh only: no container networking, no root needed', readmeDefault: 'off' },
  {
    flags: '--dataplane-mode <mode>', help: 'encrypted (WireGuard on 6783/udp) or fast (VXLAN on 6784/udp, trusted underlays only)',
    default: DEFAULT_DATAPLANE_MODE, choices: ['encrypted', 'fast'],
  },
  { flags: '--ipalloc-range <cidr>', help: 'container address space, the same on every peer', default: DEFAULT_IPAM_RANGE },
  { flags: '--ipalloc-init <consensus=N>', help: 'peers whose majority creates the first address ring', readmeDefault: '1 + number of `--peers`' },
  { flags: '--docker-host <url>', help: 'the dockerd to watch', env: ['DOCKER_HOST'], readmeDefault: '`DOCKER_HOST`, else `unix:///var/run/docker.sock`' },
  { flags: '--plugin-name <name|off>', help: 'name of the Docker network and IPAM plugin (docker network create -d NAME --ipam-driver NAME)', default: DEFAULT_PLUGIN_NAME },
  { flags: '--dns-listen <ip:port|off>', help: 'host address of the mesh DNS, UDP and TCP (containers use the bridge address)', default: hp(DEFAULT_DNS_LISTEN) },
  { flags: '--dns-ttl <seconds>', help: 'TTL of mesh answers (and the minimum of negative ones)', default: String(DEFAULT_DNS_TTL) },
  { flags: '--dns-upstream <ip[:port],...>', help: 'resolvers for other names', readmeDefault: 'the nameservers of `/etc/resolv.conf`' },
  { flags: '--metrics-listen <ip:port|off>', help: 'Prometheus metrics address', default: hp(DEFAULT_METRICS_LISTEN) },
  { flags: '--log-level <level>', help: 'how much to log', default: DEFAULT_LOG_LEVEL, choices: LOG_LEVELS },
];

/** The commander Option of a spec (help says the default and the environment). */
export function commanderOption(s: LaunchOptionSpec): Option {
  const o = new Option(s.flags, s.help + (s.env ? ` (or ${s.env.join(', ')})` : ''));
  if (s.default !== undefined) o.default(s.default);
  if (s.choices) o.choices([...s.choices]);
  return o;
}

/** What commander gives launch() (camelCase of the flags). */
export interface LaunchOptions {
  dataDir: string;
  listen: string;
  advertise?: string;
  peers?: string;
  name?: string;
  tags?: string;
  role: string;
  managers: string;
  managerGrace: string;
  passwordFile?: string;
  token?: string;
  tokenFile?: string;
  dataplane: boolean;
  dataplaneMode: string;
  ipallocRange: string;
  ipallocInit?: string;
  dockerHost?: string;
  pluginName: string;
  dnsListen: string;
  dnsTtl: string;
  dnsUpstream?: string;
  metricsListen: string;
  logLevel: string;
}

/** The DNS's part of the launch config (dns/ is composed beside the peer, not inside it). */
export interface DnsLaunchConfig {
  /** The host address to answer on; null: only the bridge address, once the data plane is up. */
  listen: HostPort | null;
  ttl: number;
  /** undefined: the nameservers of /etc/resolv.conf, read by the DNS service. */
  upstreams?: UpstreamAddress[];
}

/** The control plane's part of the launch config (scheduler/ is composed beside the peer). */
export interface ManagerLaunchConfig {
  managers: number;
  graceMs: number;
}

export interface LaunchConfig {
  peer: PeerConfig;
  dns: DnsLaunchConfig;
  manager: ManagerLaunchConfig;
  logLevel: string;
}

function list(text: string | undefined): string[] {
  return (text ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

function address(flag: string, text: string, defaultPort?: number): HostPort {
  try {
    return parseHostPort(text, defaultPort);
  } catch (err) {
    throw new CliError(`${flag}: ${errorText(err)}`);
  }
}

/** The fully resolved configs from the parsed flags, the environment and the secret's file. */
export function launchConfig(o: LaunchOptions): LaunchConfig {
  const secret = readMeshSecret(o);
  if (!secret) {
    throw new CliError('no mesh secret: give --password-file FILE, WEFT_PASSWORD, or --token (every peer of a mesh needs the same one)');
  }
  const range = parseCidr(o.ipallocRange);
  if (typeof range === 'string') throw new CliError(`--ipalloc-range: ${range}`);
  let ipallocInit: number | undefined;
  if (o.ipallocInit !== undefined) {
    const m = /^consensus=(\d{1,4})$/.exec(o.ipallocInit);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > MAX_IPALLOC_INIT) {
      throw new CliError(`--ipalloc-init must be consensus=N with N >= 1 (the number of peers starting together), not "${o.ipallocInit}"`);
    }
    ipallocInit = Number(m[1]);
  }
  const peers = [...new Set([...list(o.peers), ...secret.peers].map((p) => formatHostPort(address('--peers', p))))];
  const peer = peerConfig({
    dataDir: o.dataDir,
    listen: address('--listen', o.listen),
    ...(o.advertise ? { advertise: address('--advertise', o.advertise) } : {}),
    peers,
    name: o.name ?? hostname(),
    tags: list(o.tags),
    role: o.role as Role,
    meshKey: secret.key,
    dataplane: o.dataplane,
    dataplaneMode: o.dataplaneMode as PeerConfig['dataplaneMode'],
    ipallocRange: range.text,
    ...(ipallocInit !== undefined ? { ipallocInit } : {}),
    ...(o.dockerHost ?? process.env.DOCKER_HOST ? { dockerHost: o.dockerHost ?? process.env.DOCKER_HOST } : {}),
    pluginName: o.pluginName === 'off' ? null : o.pluginName,
    metricsListen: o.metricsListen === 'off' ? null : address('--metrics-listen', o.metricsListen),
  });
  const dns: DnsLaunchConfig = {
    listen: o.dnsListen === 'off' ? null : address('--dns-listen', o.dnsListen, DEFAULT_DNS_LISTEN.port),
    ttl: parseTtl(o.dnsTtl),
    ...(o.dnsUpstream !== undefined ? {
      upstreams: list(o.dnsUpstream).map((u) => {
        try {
          return parseUpstream(u);
        } catch (err) {
          throw new CliError(`--dns-upstream: ${errorText(err)}`);
        }
      }),
    } : {}),
  };
  const graceSeconds = Number(o.managerGrace);
  if (!Number.isInteger(graceSeconds) || graceSeconds < 1 || graceSeconds > MAX_MANAGER_GRACE_S) {
    throw new CliError(`--manager-grace must be a whole number of seconds from 1 to ${MAX_MANAGER_GRACE_S}, not "${o.managerGrace}"`);
  }
  return { peer, dns, manager: { managers: Number(o.managers), graceMs: graceSeconds * 1000 }, logLevel: o.logLevel };
}

function parseTtl(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > MAX_DNS_TTL) throw new CliError(`--dns-ttl must be whole seconds from 0 to ${MAX_DNS_TTL}, not "${text}"`);
  return n;
}
