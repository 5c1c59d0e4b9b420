import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { isIPv4 } from 'node:net';

/** The mesh control port (libp2p over TCP), as in Weave Net. */
export const MESH_PORT = 6783;

export interface HostPort {
  host: string;
  port: number;
}

/** Parses `IP[:PORT]` as given on the command line; throws a sentence for the user. */
export function parseHostPort(text: string, defaultPort = MESH_PORT): HostPort {
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(text.trim());
  const host = m?.[1];
  const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
  if (!m || !host || !isIPv4(host) || port > 65535) {
    throw new Error(`"${text}" is not an address of the form IPv4[:PORT] (for example 10.0.0.5:${MESH_PORT})`);
  }
  return { host, port };
}

export function formatHostPort(hp: HostPort): string {
  return `${hp.host}:${hp.port}`;
}

export function toMultiaddr(hp: HostPort): Multiaddr {
  return multiaddr(`/ip4/${hp.host}/tcp/${hp.port}`);
}

/** `ip:port` of a multiaddr like /ip4/1.2.3.4/tcp/6783/..., or undefined. */
export function hostPortOf(ma: Multiaddr): string | undefined {
  const m = /^\/ip4\/([\d.]+)\/tcp\/(\d+)/.exec(ma.toString());
  return m ? `${m[1]}:${m[2]}` : undefined;
}
