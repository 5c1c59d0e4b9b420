/**
 * Join tokens: everything a new peer needs to enter the mesh in one string, for
 * `weft launch --token`. They carry the derived 32-byte mesh key (never the human
 * password, which may be reused elsewhere) and bootstrap addresses.
 * Format: `weft1.` + base64url(JSON). Anyone holding a token is a mesh member: treat it
 * like the password.
 */
const PREFIX = 'weft1.';
/** Bounds what we parse from a string pasted by a user. */
const MAX_TOKEN_CHARS = 4096;
const MAX_BOOTSTRAP_PEERS = 32;

export interface JoinToken {
  key: Uint8Array;
  peers: string[];
}

export function encodeJoinToken(t: JoinToken): string {
  const body = JSON.stringify({ k: Buffer.from(t.key).toString('base64url'), p: t.peers.slice(0, MAX_BOOTSTRAP_PEERS) });
  return PREFIX + Buffer.from(body).toString('base64url');
}

export function decodeJoinToken(text: string): JoinToken {
  const bad = new Error('the join token is not valid (copy it again from `weft token create` on a mesh peer)');
  const s = text.trim();
  if (!s.startsWith(PREFIX) || s.length > MAX_TOKEN_CHARS) throw bad;
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(s.slice(PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    throw bad;
  }
  const b = body as { k?: unknown; p?: unknown };
  if (typeof b.k !== 'string' || !Array.isArray(b.p) || b.p.length > MAX_BOOTSTRAP_PEERS || !b.p.every((x) => typeof x === 'string')) throw bad;
  const key = Buffer.from(b.k, 'base64url');
  if (key.length !== 32) throw bad;
  return { key: new Uint8Array(key), peers: b.p as string[] };
}
