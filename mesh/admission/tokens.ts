// API tokens as the peer holds them: their records in the replicated space (public keys only,
// see api-token.ts), and the credential each admitted connection proved, which decides what a
// caller may do (each method's access in mesh/api/contract.ts) and which channels it may open (members only).
import { API_TOKEN_PREFIX, API_TOKEN_REVOKED_PREFIX } from '../keyspace.ts';
import type { Connection, Libp2p } from '@libp2p/interface';
import { listApiTokens, newApiToken, validToken, type ApiTokenRecord, type ApiTokenView, type TokenScope } from './api-token.ts';
import type { ReplicaShell } from '../replication/shell.ts';

export class ApiTokens {
  private readonly replica: ReplicaShell;
  private readonly node: Libp2p;
  /** What each admitted connection proved ('mesh' or 'api:<token id>'), keyed by the raw
   *  connection object itself: never by address, which another connection can share (a
   *  token holder could otherwise clear its own mark), and gone with the connection. */
  private readonly credentials: WeakMap<object, string>;

  constructor(o: { replica: ReplicaShell; node: Libp2p; credentials: WeakMap<object, string> }) {
    this.replica = o.replica;
    this.node = o.node;
    this.credentials = o.credentials;
  }

  /** Who is on the other end of a connection: 'api:<token id>' for an API client, else the
   *  peer id of a mesh member (or of a CLI holding the mesh secret). A connection we have no
   *  mark for is treated as the least trusted kind there is. */
  credentialOf(conn: Connection): string {
    const mark = this.markOf(conn);
    if (mark === 'mesh') return conn.remotePeer.toString();
    return mark ?? 'api:unknown';
  }

  /** What a caller as credentialOf() names it may call (mesh/api/method.ts Access): all for mesh
   *  members, its scope for an API token (undefined once the token is no longer valid). */
  accessOf(caller: string): TokenScope | 'member' | undefined {
    if (!caller.startsWith('api:')) return 'member';
    return this.get(caller.slice(4))?.scope;
  }

  isMember(conn: Connection): boolean {
    return this.markOf(conn) === 'mesh';
  }

  /** `weft token create --api`: a token that reaches the API of any peer, and nothing else.
   *  `parent` is the token that asks for it, if a token does: the new one dies with it. */
  async create(name: string, scope: TokenScope, parent?: string): Promise<{ token: string; id: string; scope: TokenScope }> {
    const t = newApiToken(name, scope, parent);
    await this.replica.put(API_TOKEN_PREFIX + t.id, JSON.stringify(t.record));
    return { token: t.text, id: t.id, scope };
  }

  list(): ApiTokenView[] {
    return listApiTokens(this.replica.lookup(API_TOKEN_PREFIX, true), (key) => this.replica.lookup(key));
  }

  /** A token that is valid now (it and every token above it unrevoked). */
  get(id: string): ApiTokenRecord | undefined {
    return validToken((key) => this.replica.lookup(key), id);
  }

  async revoke(id: string): Promise<void> {
    if (!this.list().some((t) => t.id === id)) throw new Error(`no API token "${id}" is known (see weft token ls)`);
    await this.replica.put(API_TOKEN_REVOKED_PREFIX + id, new Date().toISOString());
    // Connections already admitted with it end now, not at their next reconnect.
    // (Tokens it made die with it: their connections close too.)
    for (const conn of this.node.getConnections()) {
      const caller = this.credentialOf(conn);
      if (caller.startsWith('api:') && this.accessOf(caller) === undefined) await conn.close().catch(() => undefined);
    }
  }

  private markOf(conn: Connection): string | undefined {
    // libp2p keeps the raw connection it handed to the protector as `maConn`.
    const raw = (conn as unknown as { maConn?: object }).maConn;
    return raw ? this.credentials.get(raw) : undefined;
  }
}
