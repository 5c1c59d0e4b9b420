// Install tokens: what `weft node install-script`'s one-liner carries instead of a join token,
// kept only by the peer that made it (in memory: a restart forgets them, and no secret is ever
// at rest there), each stored as its SHA-256 only, so the peer's memory, logs and API never hold
// a token's text; the id in logs and lists is a prefix of the command token's hash.
//
// An install has two tokens, each good for one thing:
//   - the command token, in the one-liner (and so on a screen, in a shell history, in the new
//     host's process list while curl runs): it fetches the install script, once, and is spent;
//   - the session token, made at that fetch and carried only inside the script (sh's memory,
//     curl's standard input): it fetches the bundle (a few times, for retries) and the join
//     token once, which ends the install.
// So a one-liner that was run is worthless to whoever sees it afterwards, and one seen before it
// is run is good for one script fetch: a thief who runs it first gets the join token, and the
// rightful run then fails loudly ("run already") while the peer has logged who took it. That is
// the one-liner's inherent risk, bounded by the expiry and made visible.
// Pure: the caller gives the time and the tokens' random text.

import { createHash } from 'node:crypto';

/** 256 bits: guessing is hopeless, so refusals need no secrecy about why. */
export const INSTALL_TOKEN_BYTES = 32;
const TOKEN_TEXT = /^[A-Za-z0-9_-]{43}$/;
/** A bundle download that broke off is retried; more than a few downloads for one node is
 *  someone using the peer as a file server. */
export const MAX_BUNDLE_FETCHES = 3;
/** Once the script is fetched, the install has this long to finish (download, unpack, fetch
 *  the join token), whatever the command's own expiry: a command run a minute before it
 *  expires must not fail halfway. */
export const SESSION_MS = 15 * 60_000;
/** Far more nodes than anyone installs at once; bounds what minting can make a peer hold. */
export const MAX_LIVE_INSTALLS = 100;
/** Ended installs are remembered this long, so that a late or repeated run hears why it
 *  failed ("run already", "expired") instead of "unknown"... */
export const ENDED_MEMORY_MS = 24 * 3600_000;
/** ...and at most this many of them. */
const MAX_ENDED = 1000;
/** Characters of the hash shown as an install's id: enough to tell a hundred apart. */
const ID_CHARS = 12;

/** `live`: the command has not been run; `fetched`: its script was fetched and the install is
 *  under way; then `used` (the join token was handed out), `expired` or `revoked`. */
export type InstallTokenState = 'live' | 'fetched' | 'used' | 'expired' | 'revoked';

/** What an install may install. */
export interface InstallGrant {
  name?: string;
  tags: readonly string[];
  dataplane: boolean;
  /** The join token may be fetched (once). False when the script embeds one (user data). */
  join: boolean;
  /** The bundle it was made for (the file, and the hash its script checks). */
  bundle: { path: string; sha256: string; bytes: number };
}

export interface InstallTokenView {
  id: string;
  name: string | null;
  tags: string[];
  state: InstallTokenState;
  /** When the command stops working (or, once fetched, when the install must have finished). */
  expiresAt: string;
  bundleFetches: number;
  /** When it was used, expired or revoked. */
  endedAt?: string;
}

/** Why a token was refused, in a word for logs (the reason is the sentence for its holder). */
export type Refusal = 'unknown' | 'run-already' | 'used' | 'expired' | 'revoked' | 'wrong-kind' | 'download-limit' | 'no-join';

export type Outcome =
  | { ok: true; id: string; grant: InstallGrant }
  | { ok: false; status: 403 | 410 | 429; why: Refusal; reason: string; id?: string };

interface Install {
  id: string;
  grant: InstallGrant;
  expiresAt: number;
  bundleFetches: number;
  /** The session token's hash, once the script was fetched. */
  session?: string;
  fetchedAt?: number;
}

interface Ended {
  view: InstallTokenView;
  at: number;
}

/** The store's key for a token: its SHA-256, hex. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** The id logs and lists show: a prefix of the command token's hash, which says nothing of it. */
export function tokenId(token: string): string {
  return tokenHash(token).slice(0, ID_CHARS);
}

const AGAIN = 'make a new one with weft node install-script';

export class InstallTokens {
  /** By the command token's hash. */
  private readonly installs = new Map<string, Install>();
  /** By the session token's hash. */
  private readonly sessions = new Map<string, Install>();
  /** By either hash of an ended install. */
  private readonly ended = new Map<string, Ended>();

  /** Registers an install under its command token (text made by the caller from
   *  INSTALL_TOKEN_BYTES random bytes). */
  issue(command: string, grant: InstallGrant, expiresAt: number, now: number): { id: string } {
    if (!TOKEN_TEXT.test(command)) throw new Error('an install token is 43 base64url characters');
    this.sweep(now);
    if (this.installs.size >= MAX_LIVE_INSTALLS) {
      throw new Error(`${MAX_LIVE_INSTALLS} install commands are outstanding on this peer: wait for some to be used or expire, or revoke them (weft node install-tokens)`);
    }
    const key = tokenHash(command);
    if (this.installs.has(key) || this.ended.has(key)) throw new Error('install token reused');
    const id = key.slice(0, ID_CHARS);
    this.installs.set(key, { id, grant, expiresAt, bundleFetches: 0 });
    return { id };
  }

  /** Registers an install whose script is made without a fetch (user data, which embeds the
   *  join token): its token is a session token from the start, good for the bundle. */
  issueSession(session: string, grant: InstallGrant, expiresAt: number, now: number): { id: string } {
    const { id } = this.issue(session, grant, expiresAt, now);
    const key = tokenHash(session);
    const t = this.installs.get(key) as Install;
    t.session = key;
    t.fetchedAt = now;
    this.sessions.set(key, t);
    return { id };
  }

  /** The command token fetches its script, once: the session token `next` (made by the
   *  caller like the command token) then stands for the install, and the command is spent. */
  script(command: string, next: string, now: number): Outcome {
    this.sweep(now);
    const key = TOKEN_TEXT.test(command) ? tokenHash(command) : '';
    const t = this.installs.get(key);
    if (!t) return this.refusal(key, command);
    if (t.session !== undefined) {
      return { ok: false, status: 410, why: 'run-already', id: t.id, reason: `this install command was run already at ${iso(t.fetchedAt ?? now)} and works once (if that was not you, see weft node install-tokens and weft peers): ${AGAIN}` };
    }
    if (!TOKEN_TEXT.test(next)) throw new Error('a session token is 43 base64url characters');
    t.session = tokenHash(next);
    t.fetchedAt = now;
    this.sessions.set(t.session, t);
    return { ok: true, id: t.id, grant: t.grant };
  }

  /** The session token fetches the bundle; counts the fetch. */
  bundle(session: string, now: number): Outcome {
    const o = this.session(session, now);
    if (!o.ok) return o;
    const t = this.sessions.get(tokenHash(session)) as Install;
    if (t.bundleFetches >= MAX_BUNDLE_FETCHES) {
      return { ok: false, status: 429, why: 'download-limit', id: t.id, reason: `this install has downloaded weft ${MAX_BUNDLE_FETCHES} times already: ${AGAIN}` };
    }
    t.bundleFetches++;
    return o;
  }

  /** The session token fetches the join token, once: that ends the install. */
  join(session: string, now: number): Outcome {
    const o = this.session(session, now);
    if (!o.ok) return o;
    if (!o.grant.join) return { ok: false, status: 403, why: 'no-join', id: o.id, reason: 'this install does not grant a join token (its script carries one)' };
    this.end(this.sessions.get(tokenHash(session)) as Install, 'used', now);
    return o;
  }

  /** Ends an install by its id, whatever its stage; false if no install under way has it. */
  revoke(id: string, now: number): boolean {
    for (const t of this.installs.values()) {
      if (t.id === id) {
        this.end(t, 'revoked', now);
        return true;
      }
    }
    return false;
  }

  /** Ends the expired installs and forgets ended ones past their memory; returns how many are
   *  not over (not yet run, or under way). */
  sweep(now: number): number {
    for (const t of [...this.installs.values()]) {
      const until = deadline(t);
      if (now >= until) this.end(t, 'expired', until);
    }
    for (const [key, e] of this.ended) if (now - e.at >= ENDED_MEMORY_MS) this.ended.delete(key);
    return this.installs.size;
  }

  /** The bundle files installs not yet over may still fetch (the builder keeps them). */
  bundlesInUse(): Set<string> {
    return new Set([...this.installs.values()].map((t) => t.grant.bundle.path));
  }

  list(now: number): InstallTokenView[] {
    this.sweep(now);
    const ended = new Set<InstallTokenView>();
    for (const e of this.ended.values()) ended.add(e.view);
    return [...[...this.installs.values()].map((t) => view(t, t.session === undefined ? 'live' : 'fetched')), ...ended];
  }

  private session(session: string, now: number): Outcome {
    this.sweep(now);
    const key = TOKEN_TEXT.test(session) ? tokenHash(session) : '';
    const t = this.sessions.get(key);
    if (t) return { ok: true, id: t.id, grant: t.grant };
    if (this.installs.has(key)) {
      return { ok: false, status: 403, why: 'wrong-kind', id: this.installs.get(key)?.id, reason: 'this token only fetches the install script: run the install command as printed' };
    }
    return this.refusal(key, session);
  }

  /** Why a token that names no install under way is refused. */
  private refusal(key: string, token: string): Outcome {
    const e = key ? this.ended.get(key) : undefined;
    if (!e) {
      const shape = TOKEN_TEXT.test(token) ? '' : ' (it is not even the shape of one)';
      return { ok: false, status: 403, why: 'unknown', reason: `this install token is not known to the peer${shape} (mistyped, or the peer restarted since, which forgets them): ${AGAIN}` };
    }
    const at = iso(e.at);
    const { id, state } = e.view;
    if (state === 'used') {
      return { ok: false, status: 410, why: 'used', id, reason: `this install command was used at ${at} and works once (if that was not you, someone joined with it: see weft node install-tokens and weft peers): ${AGAIN}` };
    }
    if (state === 'expired') return { ok: false, status: 410, why: 'expired', id, reason: `this install command expired at ${at}: ${AGAIN}` };
    return { ok: false, status: 410, why: 'revoked', id, reason: `this install command was revoked at ${at}: ${AGAIN}` };
  }

  private end(t: Install, state: 'used' | 'expired' | 'revoked', at: number): void {
    const keys = [...this.installs].filter(([, x]) => x === t).map(([k]) => k);
    for (const k of keys) this.installs.delete(k);
    if (t.session !== undefined) this.sessions.delete(t.session);
    // An install is remembered under both of its tokens: room for two more keys.
    while (this.ended.size > MAX_ENDED - 2) {
      const oldest = this.ended.keys().next().value;
      if (oldest === undefined) break;
      this.ended.delete(oldest);
    }
    const e: Ended = { view: { ...view(t, state), endedAt: iso(at) }, at };
    for (const k of [...keys, ...(t.session !== undefined ? [t.session] : [])]) this.ended.set(k, e);
  }
}

/** When an install stops being good: its command's expiry until the script is fetched, then
 *  SESSION_MS after the fetch, or the command's expiry if that is later. */
function deadline(t: Install): number {
  return t.fetchedAt === undefined ? t.expiresAt : Math.max(t.expiresAt, t.fetchedAt + SESSION_MS);
}

function view(t: Install, state: InstallTokenState): InstallTokenView {
  return { id: t.id, name: t.grant.name ?? null, tags: [...t.grant.tags], state, expiresAt: iso(deadline(t)), bundleFetches: t.bundleFetches };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
