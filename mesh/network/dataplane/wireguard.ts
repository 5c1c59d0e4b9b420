// The encrypted mode's device: a wireguard-go daemon (this kernel has no WireGuard module) and
// its key. Drives `wireguard-go` and `wg`; decides nothing about which peers exist.
import fs from 'node:fs';
import path from 'node:path';
import nacl from 'tweetnacl';
import type { Logger } from '../../log.ts';
import type { Shell } from './exec.ts';
import { parseWgDump } from './observe.ts';

/** Key file in the data dir. Created once and kept by reset(): other peers know us by the
 *  public key, so a new key would cut us off until our new record has gossiped everywhere. */
export const WG_KEY_FILE = 'wireguard.key';
/** wireguard-go's control sockets: one directory for the whole machine, whatever the network
 *  namespace, hence interface names unique on the machine. */
export const WG_SOCKET_DIR = '/var/run/wireguard';
/** How long reset() waits for wireguard-go to exit after its interface is deleted (it notices
 *  the link's removal within milliseconds). */
export const WG_EXIT_WAIT_MS = 3_000;
const WG_EXIT_POLL_MS = 20;

export interface WgKey {
  file: string;
  privateKey: string;
  publicKey: string;
}

/** Loads the key from `dataDir`, or makes one (X25519, mode 0600) if there is none. */
export function loadOrCreateKey(dataDir: string): WgKey {
  const file = path.join(dataDir, WG_KEY_FILE);
  let privateKey: string;
  try {
    privateKey = fs.readFileSync(file, 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read the WireGuard key ${file}: ${(e as Error).message}`);
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    privateKey = Buffer.from(nacl.box.keyPair().secretKey).toString('base64');
    // 'wx': never overwrite a key another process wrote in the meantime.
    fs.writeFileSync(file, `${privateKey}\n`, { mode: 0o600, flag: 'wx' });
  }
  const secret = Buffer.from(privateKey, 'base64');
  if (secret.length !== nacl.scalarMult.scalarLength) throw new Error(`the WireGuard key ${file} is not a base64 X25519 private key (remove it to make a new one)`);
  return { file, privateKey, publicKey: Buffer.from(nacl.scalarMult.base(secret)).toString('base64') };
}

/**
 * Makes sure `dev` exists, run by wireguard-go, with our key and port, up, with `mtu`. An
 * existing device is adopted untouched when it already has them: re-setting the listen port
 * makes wireguard-go rebind its socket, a needless hiccup for running containers.
 */
export async function ensureWireguard(shell: Shell, dev: string, key: WgKey, port: number, mtu: number, logFile: string, log: Logger): Promise<void> {
  const exists = (await shell.tryRun(['ip', 'link', 'show', 'dev', dev])).code === 0;
  if (!exists) {
    // The kernel's WireGuard where it has one (faster, no daemon); else wireguard-go in user
    // space. This machine's kernel has none, so only the fallback is exercised by the tests.
    const kernel = await shell.tryRun(['ip', 'link', 'add', 'dev', dev, 'type', 'wireguard']);
    if (kernel.code === 0) {
      log.info('using the kernel WireGuard', { dev });
    } else {
      log.info('starting wireguard-go (no WireGuard in this kernel)', { dev, log: logFile });
      await shell.daemon(['wireguard-go', dev], logFile, { LOG_LEVEL: 'error' });
    }
  }
  const dump = await shell.run(['wg', 'show', dev, 'dump']);
  const current = (dump.split('\n')[0] ?? '').split('\t');
  const { listenPort } = parseWgDump(dump);
  if (current[0] !== key.privateKey || listenPort !== port) {
    await shell.run(['wg', 'set', dev, 'private-key', key.file, 'listen-port', String(port)]);
  }
  await shell.run(['ip', 'link', 'set', 'dev', dev, 'mtu', String(mtu), 'up']);
}

/** After `dev` was deleted: waits for its wireguard-go to exit; ends it by pid if it does not,
 *  and removes a socket a killed daemon left behind. */
export async function awaitWireguardExit(dev: string, log: Logger): Promise<void> {
  const sock = path.join(WG_SOCKET_DIR, `${dev}.sock`);
  for (let i = 0; i < WG_EXIT_WAIT_MS / WG_EXIT_POLL_MS && daemonPids(dev).length > 0; i++) {
    await new Promise((r) => setTimeout(r, WG_EXIT_POLL_MS));
  }
  for (const pid of daemonPids(dev)) {
    log.warn('wireguard-go did not exit with its interface; terminating it', { dev, pid });
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
  }
  fs.rmSync(sock, { force: true });
}

/** Pids of processes whose command line is exactly `wireguard-go <dev>` (the daemon keeps its
 *  launcher's argv). Interface names are unique on the machine, so this is ours. */
export function daemonPids(dev: string): number[] {
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    } catch {
      continue;
    }
    if (argv.length === 2 && path.basename(argv[0] as string) === 'wireguard-go' && argv[1] === dev) pids.push(Number(d));
  }
  return pids;
}
