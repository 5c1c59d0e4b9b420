// What managers and the peers that ask them say to each other, over one mesh channel: Raft's
// own messages, and requests a peer forwards to the leader (a write, a read's index, the
// leader's view of the managers, a leadership transfer) with their answers. Every message is
// checked for shape and bounds here, so a hostile or buggy member costs one logged reason.

import { MAX_ID_LENGTH, parseRaftMessage } from '../raft/wire.ts';
import type { RaftMessage } from '../raft/types.ts';
import { KINDS, MAX_NAME_LENGTH, validateCommand, type Command, type Kind } from './desired-state.ts';

/** A read a peer that holds no desired state (not a manager) asks the leader to answer. */
export type Query = { q: 'get'; kind: Kind; name: string } | { q: 'list'; kind: Kind; prefix: string } | { q: 'backup' };

export const MANAGER_PROTOCOL = '/weft/manager/1.0.0';
/** One Raft append of up to 256 commands of up to 64 KiB, or one snapshot chunk, with room. */
export const MANAGER_MAX_FRAME_BYTES = 32 * 1024 * 1024;
/** A manager slow to read may hold a few frames back; more is dropped (Raft retransmits). */
export const MANAGER_MAX_QUEUE_BYTES = 64 * 1024 * 1024;
/** Request ids are the asker's counter; errors are one sentence. */
const MAX_REQUEST_ID_LENGTH = 64;
const MAX_ERROR_LENGTH = 1000;

export type ForwardOp =
  | { op: 'propose'; cmd: Command }
  | { op: 'read-index' }
  | { op: 'managers' }
  | { op: 'transfer'; to?: string }
  | { op: 'change'; change: 'promote' | 'demote'; peer: string }
  | { op: 'query'; query: Query; consistent: boolean };

export type ManagerMessage =
  /** `c`: the sender's cluster id (cluster-id.ts); absent from a peer in none. */
  | { k: 'raft'; c?: string; m: RaftMessage }
  | ({ k: 'req'; id: string } & ForwardOp)
  | { k: 'res'; id: string; ok: true; value: unknown }
  | { k: 'res'; id: string; ok: false; error: string };

const isId = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= MAX_REQUEST_ID_LENGTH;

/** A checked message, or why it was refused. */
export function parseManagerMessage(u: unknown): ManagerMessage | string {
  if (typeof u !== 'object' || u === null || Array.isArray(u)) return 'not an object';
  const m = u as Record<string, unknown>;
  switch (m.k) {
    case 'raft': {
      const r = parseRaftMessage(m.m);
      if (typeof r === 'string') return `raft: ${r}`;
      if (m.c !== undefined && !(typeof m.c === 'string' && /^[0-9a-f]{1,32}$/.test(m.c))) return 'raft: c must be a cluster id';
      return { k: 'raft', ...(m.c !== undefined ? { c: m.c as string } : {}), m: r };
    }
    case 'req': {
      if (!isId(m.id)) return 'req needs an id';
      switch (m.op) {
        case 'propose': {
          const bad = validateCommand(m.cmd);
          return bad ? `propose: ${bad}` : { k: 'req', id: m.id, op: 'propose', cmd: m.cmd as Command };
        }
        case 'read-index':
        case 'managers':
          return { k: 'req', id: m.id, op: m.op };
        case 'transfer':
          if (m.to !== undefined && !isPeerId(m.to)) return 'transfer: to must be a peer id';
          return { k: 'req', id: m.id, op: 'transfer', ...(m.to !== undefined ? { to: m.to as string } : {}) };
        case 'query': {
          const q = parseQuery(m.query);
          if (typeof q === 'string') return `query: ${q}`;
          if (typeof m.consistent !== 'boolean') return 'query needs consistent';
          return { k: 'req', id: m.id, op: 'query', query: q, consistent: m.consistent };
        }
        case 'change':
          if ((m.change !== 'promote' && m.change !== 'demote') || !isPeerId(m.peer)) return 'change needs promote or demote and a peer id';
          return { k: 'req', id: m.id, op: 'change', change: m.change, peer: m.peer };
        default:
          return 'unknown request';
      }
    }
    case 'res':
      if (!isId(m.id)) return 'res needs an id';
      if (m.ok === true) return { k: 'res', id: m.id, ok: true, value: m.value };
      if (m.ok === false && typeof m.error === 'string') return { k: 'res', id: m.id, ok: false, error: m.error.slice(0, MAX_ERROR_LENGTH) };
      return 'res needs ok and a value or an error';
    default:
      return 'unknown message kind';
  }
}

function parseQuery(u: unknown): Query | string {
  if (typeof u !== 'object' || u === null) return 'not an object';
  const q = u as Record<string, unknown>;
  if (q.q === 'backup') return { q: 'backup' };
  if (typeof q.kind !== 'string' || !(KINDS as readonly string[]).includes(q.kind)) return 'unknown kind';
  const kind = q.kind as Kind;
  if (q.q === 'get' && typeof q.name === 'string' && q.name.length <= MAX_NAME_LENGTH) return { q: 'get', kind, name: q.name };
  if (q.q === 'list' && typeof q.prefix === 'string' && q.prefix.length <= MAX_NAME_LENGTH) return { q: 'list', kind, prefix: q.prefix };
  return 'a query is get (kind, name), list (kind, prefix) or backup';
}

function isPeerId(x: unknown): x is string {
  return typeof x === 'string' && x.length > 0 && x.length <= MAX_ID_LENGTH && /^[A-Za-z0-9]+$/.test(x);
}
