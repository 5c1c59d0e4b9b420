import { hostname } from 'node:os';
import { formatHostPort, MESH_PORT, parseHostPort } from '../mesh/address.ts';
import { ApiServer } from '../mesh/api-server.ts';
import type { PeerConfig } from '../mesh/config.ts';
import { errorText, logger, setLogLevel } from '../mesh/log.ts';
import { Peer } from '../mesh/peer.ts';
import { peerApi } from '../mesh/peer-api.ts';
import type { Role } from '../mesh/membership.ts';
import { CliError } from './client.ts';
import { readMeshSecret } from './secret.ts';
import { join } from 'node:path';
import { DEFAULT_IPAM_RANGE, parseCidr } from '../mesh/ipam-cidr.ts';

/** Weave Net's metrics port, on loopback: metrics are for the host's own scraper. */
const DEFAULT_METRICS = '127.0.0.1:6782';

export interface LaunchOptions {
  dataDir: string;
  listen: string;
  advertise?: string;
  peers?: string;
  name?: string;
  tags?: string;
  role: string;
  passwordFile?: string;
  token?: string;
  tokenFile?: string;
  dataplane: boolean;
  dataplaneMode?: string;
  ipallocRange?: string;
  ipallocInit?: string;
  dockerHost?: string;
  pluginName?: string;
  metricsListen: string;
  logLevel?: string;
}

function list(text: string | undefined): string[] {
  return (text ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

export function launchConfig(o: LaunchOptions): PeerConfig {
  // The token may be on the command line: replace the process title (what ps shows) at once.
  process.title = o.name ? `weft launch ${o.name}` : 'weft launch';
  const secret = readMeshSecret(o);
  if (!secret) {
    throw new CliError('no mesh secret: give --password-file FILE, WEFT_PASSWORD, or --token (every peer of a mesh needs the same one)');
  }
  if (o.role !== 'manager' && o.role !== 'worker') throw new CliError(`--role must be manager or worker, not "${o.role}"`);
  const parse = (t: string) => {
    try {
      return formatHostPort(parseHostPort(t));
    } catch (err) {
      throw new CliError(errorText(err));
    }
  };
  const listen = parseHostPort(parse(o.listen), MESH_PORT);
  const range = parseCidr(o.ipallocRange ?? DEFAULT_IPAM_RANGE);
  if (typeof range === 'string') throw new CliError(`--ipalloc-range: ${range}`);
  let ipallocInit: number | undefined;
  if (o.ipallocInit !== undefined) {
    const m = /^consensus=(\d{1,4})$/.exec(o.ipallocInit);
    if (!m || Number(m[1]) < 1) throw new CliError(`--ipalloc-init must be consensus=N with N >= 1 (the number of peers starting together), not "${o.ipallocInit}"`);
    ipallocInit = Number(m[1]);
  }
  if (o.dataplaneMode !== undefined && o.dataplaneMode !== 'encrypted' && o.dataplaneMode !== 'fast') {
    throw new CliError(`--dataplane-mode must be encrypted or fast, not "${o.dataplaneMode}"`);
  }
  return {
    dataDir: o.dataDir,
    listen,
    advertise: o.advertise ? parseHostPort(parse(o.advertise)) : undefined,
    peers: [...new Set([...list(o.peers), ...secret.peers].map(parse))],
    name: o.name ?? hostname(),
    tags: list(o.tags),
    role: o.role as Role,
    meshKey: secret.key,
    dataplane: o.dataplane,
    dataplaneMode: (o.dataplaneMode ?? 'encrypted') as 'encrypted' | 'fast',
    ipallocRange: range.text,
    ipallocInit,
    dockerHost: o.dockerHost ?? process.env.DOCKER_HOST ?? undefined,
    pluginName: o.pluginName === 'off' ? null : (o.pluginName ?? 'weft'),
    metricsListen: o.metricsListen === 'off' ? null : parseHostPort(parse(o.metricsListen)),
  };
}

/** Runs a peer in the foreground until SIGINT or SIGTERM. */
export async function launch(o: LaunchOptions): Promise<void> {
  if (o.logLevel) setLogLevel(o.logLevel);
  const config = launchConfig(o);
  const log = logger('launch');
  const peer = await Peer.start(config);
  const api = new ApiServer(peerApi(peer), logger('api'));
  await api.listenMesh(peer.node, (conn) => peer.credentialOf(conn));
  try {
    await api.listenUnix(join(config.dataDir, 'weft.sock'));
  } catch (err) {
    await peer.stop();
    throw err;
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      log.warn('second signal: exiting at once', { signal });
      process.exit(1);
    }
    stopping = true;
    log.info('stopping', { signal });
    await api.close();
    await peer.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

export { DEFAULT_METRICS };
