// The install listener's requests, one handler for node:https. Three routes, each needing a live
// install token (install-token.ts says what each may fetch):
//
//   GET  /install/<token>   the install script, once per command token (the one-liner's URL);
//                           the script carries a new session token. A refusal is a script too,
//                           which prints the reason and exits 1, since the one-liner runs
//                           whatever comes back (over TLS pinned to this peer's key).
//   GET  /bundle            weft's release bundle, for the session token in `Authorization:
//                           Bearer`, where the script puts it (a header on curl's standard
//                           input, not the URL: it stays off the new host's command lines).
//   POST /join              the join token, once: that ends the install.
//
// Logs name the token by its id and the client by its address, never a token's text. Every
// response closes its connection: an install makes three requests, and a client that keeps a
// connection or sends a body we never read gets nothing more from it.

import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LogOnce } from '../../mesh/log-once.ts';
import { errorText, type Logger } from '../../mesh/log.ts';
import { refusalScript } from './install-script.ts';
import type { InstallGrant, InstallTokens, Outcome } from './install-token.ts';
import type { RequestBudget } from './request-budget.ts';

/** Bundle downloads at once: each is ~70 MB from disk to the network; more only shares the
 *  same link more thinly and holds more file handles. */
export const MAX_CONCURRENT_DOWNLOADS = 4;
/** Longest URL path: `/install/` and a 43-character token, with room to say why a junk one is wrong. */
const MAX_PATH = 128;

/** What the handler counts, for the peer's /metrics. */
export interface InstallHttpStats {
  scripts: number;
  bundles: number;
  joins: number;
  refused: number;
  downloading: number;
}

export interface InstallHttpDeps {
  tokens: InstallTokens;
  budget: RequestBudget;
  now: () => number;
  /** A new token's text (INSTALL_TOKEN_BYTES random bytes, base64url). */
  newToken: () => string;
  /** The install script, carrying its session token. */
  script: (session: string, grant: InstallGrant) => string;
  /** A join token for the mesh (the mesh key and addresses to dial). */
  joinToken: () => string;
  log: Logger;
}

export function installHandler(d: InstallHttpDeps): { handle: (req: IncomingMessage, res: ServerResponse) => void; stats: InstallHttpStats } {
  const stats: InstallHttpStats = { scripts: 0, bundles: 0, joins: 0, refused: 0, downloading: 0 };
  const said = new LogOnce();

  /** `why` is the refusal in a word for the log; `reason` the sentence the client gets. */
  const refuse = (res: ServerResponse, from: string, status: number, why: string, reason: string, asScript: boolean, id?: string) => {
    stats.refused++;
    const suppressed = said.shouldLog(`${from} ${why} ${id ?? ''}`, d.now());
    if (suppressed !== undefined) d.log.warn('install request refused', { from, status, why, token: id, repeats: suppressed || undefined });
    send(res, status, asScript ? refusalScript(reason) : `${reason}\n`, asScript ? 'text/x-shellscript' : 'text/plain');
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const from = req.socket.remoteAddress ?? 'unknown';
    const path = (req.url ?? '').split('?')[0] ?? '';
    const now = d.now();
    const forScript = path.startsWith('/install/');
    if (!d.budget.take(from, now)) return refuse(res, from, 429, 'rate-limit', `too many requests from ${from}: wait a minute and run the command again`, forScript);
    if (path.length > MAX_PATH) return refuse(res, from, 414, 'long-path', 'the request path is too long', forScript);

    if (forScript) {
      if (req.method !== 'GET') return refuse(res, from, 405, 'method', 'the install script is fetched with GET', true);
      const session = d.newToken();
      const o = d.tokens.script(path.slice('/install/'.length), session, now);
      if (!o.ok) return refuse(res, from, o.status, o.why, o.reason, true, o.id);
      stats.scripts++;
      d.log.info('install script fetched', { token: o.id, from });
      return send(res, 200, d.script(session, o.grant), 'text/x-shellscript');
    }
    if (path !== '/bundle' && path !== '/join') return refuse(res, from, 404, 'not-found', 'nothing here: weft serves /install/<token>, /bundle and /join', false);
    const token = bearer(req);
    if (token === undefined) return refuse(res, from, 401, 'no-token', 'no install token (Authorization: Bearer <token>)', false);

    if (path === '/bundle') {
      if (req.method !== 'GET') return refuse(res, from, 405, 'method', 'the bundle is fetched with GET', false);
      if (stats.downloading >= MAX_CONCURRENT_DOWNLOADS) return refuse(res, from, 503, 'busy', `${MAX_CONCURRENT_DOWNLOADS} hosts are downloading weft from this peer: run the command again in a minute`, false);
      const o = d.tokens.bundle(token, now);
      if (!o.ok) return refuse(res, from, o.status, o.why, o.reason, false, o.id);
      return sendBundle(res, from, o, stats, d.log);
    }

    if (req.method !== 'POST') return refuse(res, from, 405, 'method', 'the join token is fetched with POST', false);
    const o = d.tokens.join(token, now);
    if (!o.ok) return refuse(res, from, o.status, o.why, o.reason, false, o.id);
    stats.joins++;
    // The moment someone becomes able to join: worth a line at the level operators watch.
    d.log.warn('join token handed out for an install', { token: o.id, from, name: o.grant.name, tags: o.grant.tags.join(',') || undefined });
    send(res, 200, `${d.joinToken()}\n`, 'text/plain');
  };
  return { handle, stats };
}

function bearer(req: IncomingMessage): string | undefined {
  const m = /^Bearer ([A-Za-z0-9_-]{1,64})$/.exec(req.headers.authorization ?? '');
  return m?.[1];
}

function send(res: ServerResponse, status: number, body: string, type: string): void {
  res.writeHead(status, {
    'content-type': `${type}; charset=utf-8`, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', connection: 'close',
  });
  res.end(body);
}

function sendBundle(res: ServerResponse, from: string, o: Extract<Outcome, { ok: true }>, stats: InstallHttpStats, log: Logger): void {
  const { path, bytes, sha256 } = o.grant.bundle;
  stats.downloading++;
  let done = false;
  const finish = (ok: boolean, why?: string) => {
    if (done) return;
    done = true;
    stats.downloading--;
    if (ok) {
      stats.bundles++;
      log.info('weft bundle sent', { token: o.id, from, bytes });
    } else log.warn('weft bundle not sent completely', { token: o.id, from, reason: why });
  };
  const file = createReadStream(path);
  file.once('error', (err) => {
    if (!res.headersSent) send(res, 500, 'the bundle is gone from the peer: make a new install command with weft node install-script\n', 'text/plain');
    else res.destroy();
    finish(false, errorText(err));
  });
  file.once('open', () => {
    res.writeHead(200, {
      'content-type': 'application/gzip', 'content-length': bytes, 'cache-control': 'no-store', connection: 'close', 'x-weft-bundle-sha256': sha256,
    });
    file.pipe(res);
  });
  res.once('finish', () => finish(true));
  res.once('close', () => {
    file.destroy();
    finish(false, 'the client went away');
  });
}
