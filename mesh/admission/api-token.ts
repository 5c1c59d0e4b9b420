import { API_TOKEN_PREFIX, API_TOKEN_REVOKED_PREFIX } from '../keyspace.ts';
import { randomBytes, type KeyObject } from 'node:crypto';
import type { ApiTokenCredential } from './admission.ts';
import { ed25519PrivateKey, ed25519PublicKey, ed25519RawPublicKey } from './identity.ts';
import type { Entry } from '../replication/wire.ts';

/**
 * API tokens: credentials for remote CLIs and tools that must not hold the mesh secret.
 * A token admits a connection to the API only (never to membership or replication), on any
 * peer, until revoked. Token text: `weftapi2.<id>.<Ed25519 seed>`. Peers keep only the public
 * key, in the replicated space, so every peer can admit the token and nothing any peer stores
 * (a data dir copied off a host, a replica read by a member) can be used to log in with it.
 *
 * A token has a scope: `operator` (read the mesh, kv, dns) or `admin` (everything a holder
 * of the mesh secret may do through the API, but never the mesh secret itself); each method's
 * level is declared with it (mesh/api/contract.ts, dns/api-contract.ts). Only an admin token can make tokens, never with more scope than its own, and a
 * token made by a token is revoked with it: validity follows the chain of parents.
 * Records: `apitoken/<id>` written by the peer that made it; `apitoken-revoked/<id>` that any
 * peer may write (a revocation wins over the record, whoever owns either).
 */
const PREFIX = 'weftapi2.';
/** 64 bits of id: unique among the handful of tokens a mesh has, short to type. */
const ID_BYTES = 8;
/** An Ed25519 seed: 256 bits, guessing is hopeless. */
const SEED_BYTES = 32;
/** A chain of tokens making tokens deeper than this is refused: far more than any real
 *  delegation, and it bounds the walk every admission makes. */
export const MAX_TOKEN_DEPTH = 8;

export type TokenScope = 'operator' | 'admin';
export const TOKEN_SCOPES: readonly TokenScope[] = ['operator', 'admin'];

export interface ApiTokenRecord {
  name: string;
  /** base64 of the raw 32-byte Ed25519 public key. */
  publicKey: string;
  created: string;
  scope: TokenScope;
  /** The id of the token that made this one, when a token made it. */
  parent?: string;
}

export function newApiToken(name: string, scope: TokenScope, parent?: string, now = new Date()): { text: string; id: string; record: ApiTokenRecord } {
  const id = randomBytes(ID_BYTES).toString('hex');
  const seed = randomBytes(SEED_BYTES);
  const publicKey = ed25519RawPublicKey(ed25519PrivateKey(seed)).toString('base64');
  const record: ApiTokenRecord = { name, publicKey, created: now.toISOString(), scope, ...(parent ? { parent } : {}) };
  return { text: `${PREFIX}${id}.${seed.toString('base64url')}`, id, record };
}

export function parseApiToken(text: string): ApiTokenCredential {
  const m = /^weftapi2\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/.exec(text.trim());
  if (!m) throw new Error('the API token is not valid (copy it again from `weft token create --api`)');
  return { id: m[1] as string, privateKey: ed25519PrivateKey(Buffer.from(m[2] as string, 'base64url')) };
}

export interface ApiTokenView {
  id: string;
  name: string;
  created: string;
  issuer: string;
  scope: TokenScope;
  parent: string | null;
  revoked: boolean;
}

/** Reads token records out of the replicated space: `lookup(key)` gives the entries at a key. */
export type TokenLookup = (key: string) => Entry[];

/** A valid token: its record, or undefined when it is unknown, revoked, malformed, or made
 *  by a token that is itself no longer valid. */
export function validToken(lookup: TokenLookup, id: string): ApiTokenRecord | undefined {
  let current: string | undefined = id;
  let first: ApiTokenRecord | undefined;
  for (let depth = 0; current !== undefined; depth++) {
    if (depth > MAX_TOKEN_DEPTH) return undefined;
    if (lookup(API_TOKEN_REVOKED_PREFIX + current).some((e) => e.value !== null)) return undefined;
    const rec = recordOf(lookup(API_TOKEN_PREFIX + current));
    if (!rec) return undefined;
    first ??= rec;
    current = rec.parent;
  }
  return first;
}

/** The public key that admits a valid token, for admission. */
export function validTokenKey(lookup: TokenLookup, id: string): KeyObject | undefined {
  const rec = validToken(lookup, id);
  if (!rec) return undefined;
  try {
    const raw = Buffer.from(rec.publicKey, 'base64');
    return raw.length === 32 ? ed25519PublicKey(raw) : undefined;
  } catch {
    return undefined;
  }
}

/** Every token known in the replicated space; revoked ones (and those whose maker is) marked. */
export function listApiTokens(records: Entry[], lookup: TokenLookup): ApiTokenView[] {
  const out: ApiTokenView[] = [];
  for (const e of records) {
    const rec = parseRecord(e.value);
    if (!rec) continue;
    const id = e.key.slice(API_TOKEN_PREFIX.length);
    out.push({ id, name: rec.name, created: rec.created, issuer: e.owner, scope: rec.scope, parent: rec.parent ?? null, revoked: validToken(lookup, id) === undefined });
  }
  return out;
}

function recordOf(entries: Entry[]): ApiTokenRecord | undefined {
  for (const e of entries) {
    const rec = parseRecord(e.value);
    if (rec) return rec;
  }
  return undefined;
}

function parseRecord(value: string | null): ApiTokenRecord | undefined {
  if (value === null) return undefined;
  try {
    const r = JSON.parse(value) as Partial<ApiTokenRecord>;
    if (typeof r.name !== 'string' || typeof r.publicKey !== 'string' || typeof r.created !== 'string') return undefined;
    if (!TOKEN_SCOPES.includes(r.scope as TokenScope)) return undefined;
    if (r.parent !== undefined && (typeof r.parent !== 'string' || !/^[0-9a-f]{16}$/.test(r.parent))) return undefined;
    return r as ApiTokenRecord;
  } catch {
    return undefined;
  }
}
