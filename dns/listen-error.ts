// Why the DNS server cannot serve on an address, as one sentence for the person at the
// terminal: the main thread's listeners (server.ts) and the UDP worker threads
// (udp-worker-pool.ts) bind the same addresses and fail for the same reasons.

import { errorText } from '../mesh/log.ts';

/** The sentence for a failed bind or listen on `host:port`; names the flag that fixes it. */
export function listenError(err: unknown, host: string, port: number, proto: 'UDP' | 'TCP'): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const where = `${host}:${port}`;
  if (code === 'EADDRINUSE') {
    return new Error(`the DNS address ${where} is in use over ${proto} (another DNS server such as dnsmasq or systemd-resolved may hold it; stop it or choose another with --dns-listen)`);
  }
  if (code === 'EACCES') return new Error(`serving DNS on ${where} needs root or CAP_NET_BIND_SERVICE (ports below 1024), or choose another port with --dns-listen`);
  if (code === 'EADDRNOTAVAIL') return new Error(`cannot serve DNS on ${where}: ${host} is not an address of this host (check --dns-listen)`);
  return new Error(`cannot serve DNS on ${where} over ${proto}: ${errorText(err)}`);
}
