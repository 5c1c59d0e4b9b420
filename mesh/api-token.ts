import { createHash, randomBytes } from 'node:crypto';
import type { ExtraKey } from './admission.ts';
import type { Entry } from './replica.ts';

/**
 * API tokens: credentials for remote CLIs and tools that must not hold the mesh secret.
 * A token admits a connection to the API only (never to membership or replication), on any
 * peer, until revoked. Token text: `weftapi1.<id>.<secret>`. Peers keep only the key derived
 * from the secret, in the replicated space, so every peer can admit the token: a record
 * `apitoken/<id>` written by the peer that made it, and a revocation `apitoken-revoked/<id>`
 * that any peer may write (a revocation wins over the record, whoever owns either).
 */
const PREFIX = 'weftapi1.';
export const TOKEN_RECORD_PREFIX = 'apitoken/';
export const TOKEN_REVOKED_PREFIX = 'apitoken-revoked/';
/** 64 bits of id: unique among the handful of tokens a mesh has, short to type. */
const ID_BYTES = 8;
/** 256-bit secret: guessing is hopeless even at HMAC speed. */
const SECRET_BYTES = 32;
const KEY_LABEL = 'weft/api-token/v1';

export interface ApiTokenRecord {
  name: string;
  /** base64 of the 32-byte admission key derived from the secret. */
  key: string;
  created: string;
}

export interface ParsedApiToken {
  id: string;
  key: Uint8Array;
}

export function apiTokenKey(secret: Uint8Array): Uint8Array {
  return createHash('sha256').update(KEY_LABEL).update(secret).digest();
}

export function newApiToken(name: string, now = new Date()): { text: string; id: string; record: ApiTokenRecord } {
  const id = randomBytes(ID_BYTES).toString('hex');
  const secret = randomBytes(SECRET_BYTES);
  const record = { name, key: Buffer.from(apiTokenKey(secret)).toString('base64'), created: now.toISOString() };
  return { text: `${PREFIX}${id}.${secret.toString('base64url')}`, id, record };
}

export function parseApiToken(text: string): ParsedApiToken {
  const m = /^weftapi1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/.exec(text.trim());
  if (!m) throw new Error('the API token is not valid (copy it again from `weft token create --api`)');
  return { id: m[1] as string, key: apiTokenKey(Buffer.from(m[2] as string, 'base64url')) };
}

export interface ApiTokenView {
  id: string;
  name: string;
  created: string;
  issuer: string;
  revoked: boolean;
}

/** Every token known in the replicated space, revoked ones marked. */
export function listApiTokens(records: Entry[], revocations: Entry[]): ApiTokenView[] {
  const revoked = new Set(revocations.map((e) => e.key.slice(TOKEN_REVOKED_PREFIX.length)));
  const out: ApiTokenView[] = [];
  for (const e of records) {
    const rec = parseRecord(e.value);
    if (!rec) continue;
    const id = e.key.slice(TOKEN_RECORD_PREFIX.length);
    out.push({ id, name: rec.name, created: rec.created, issuer: e.owner, revoked: revoked.has(id) });
  }
  return out;
}

/** The admission keys of the tokens that are valid now. */
export function validApiKeys(records: Entry[], revocations: Entry[]): ExtraKey[] {
  const revoked = new Set(revocations.map((e) => e.key.slice(TOKEN_REVOKED_PREFIX.length)));
  const out: ExtraKey[] = [];
  for (const e of records) {
    const id = e.key.slice(TOKEN_RECORD_PREFIX.length);
    const rec = parseRecord(e.value);
    if (!rec || revoked.has(id)) continue;
    const key = Buffer.from(rec.key, 'base64');
    if (key.length === 32) out.push({ id: `api:${id}`, key });
  }
  return out;
}

function parseRecord(value: string | null): ApiTokenRecord | undefined {
  if (value === null) return undefined;
  try {
    const r = JSON.parse(value) as Partial<ApiTokenRecord>;
    return typeof r.name === 'string' && typeof r.key === 'string' && typeof r.created === 'string' ? (r as ApiTokenRecord) : undefined;
  } catch {
    return undefined;
  }
}
