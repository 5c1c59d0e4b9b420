// Sends a UDP datagram with a source port Node cannot use (0): through a raw IPv4 socket
// with IP_HDRINCL in python3, as any container with NET_RAW (Docker's default) can. The
// tests run as root; without python3 they are skipped with a reason.

import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** The sender: IPv4 header (the kernel fills in length, ID and checksum), UDP header with
 *  checksum 0 (none, which IPv4 allows), then the payload given in hex. */
export const RAW_UDP_SCRIPT = `
import socket, struct, sys
src, dst, sport, dport, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), bytes.fromhex(sys.argv[5])
udp = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 0, 0, 0, 64, socket.IPPROTO_UDP, 0, socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
s.sendto(ip + udp, (dst, 0))
`;

function probe(): string | undefined {
  try {
    execFileSync('python3', ['-c', 'import socket, struct'], { stdio: 'ignore', timeout: 10_000 });
    return undefined;
  } catch {
    return 'python3 is not available to send raw datagrams';
  }
}

/** Why raw datagrams cannot be sent here, or undefined when they can. */
export const rawUdpUnavailable: string | undefined = probe();

/** Sends one datagram from `src:sport` to `dst:dport`, any port including 0. */
export async function sendRawUdp(src: string, sport: number, dst: string, dport: number, payload: Buffer): Promise<void> {
  await execFileP('python3', ['-c', RAW_UDP_SCRIPT, src, dst, String(sport), String(dport), payload.toString('hex')], { timeout: 10_000 });
}
