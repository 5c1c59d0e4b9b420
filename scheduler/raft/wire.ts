// Raft's messages as they arrive from other managers: checked for shape and bounds before the
// core sees them, so that a message from a buggy or hostile member is one logged reason and
// never a thrown error, a corrupted log or unbounded memory. The core may then rely on what
// this guarantees: ids and numbers in range, entries contiguous from prevIndex + 1 with terms
// that never decrease and never exceed the message's; snapshot chunks within the bounds of
// snapshot-transfer.ts, each inside its snapshot's data.

import { MAX_SNAPSHOT_CHARS, MAX_SNAPSHOT_CHUNK_CHARS } from './snapshot-transfer.ts';
import type { Entry, Membership, RaftMessage } from './types.ts';

export const RAFT_PROTOCOL = '/weft/raft/1.0.0';
/** Server ids are libp2p peer ids (52 characters); room for other forms, no more. */
export const MAX_ID_LENGTH = 128;
/** Entries in one append: the core sends at most DEFAULT_MAX_ENTRIES_PER_APPEND (256); a
 *  manager configured for larger batches still fits. */
export const MAX_ENTRIES_PER_MESSAGE = 4096;
/** One command: desired-state changes are small (a service, a stack of a few dozen services). */
export const MAX_COMMAND_BYTES = 1024 * 1024;
/** Read contexts are short ids made by the asking server. */
export const MAX_CTX_LENGTH = 128;
/** Managers are 3 or 5; learners catching up a few more. */
export const MAX_MEMBERS = 16;

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isId = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= MAX_ID_LENGTH;

/** A checked message, or the reason it was refused. */
export function parseRaftMessage(u: unknown): RaftMessage | string {
  if (typeof u !== 'object' || u === null || Array.isArray(u)) return 'not an object';
  const m = u as Record<string, unknown>;
  if (!isId(m.from) || !isId(m.to)) return 'from and to must be server ids';
  if (!isCount(m.term)) return 'term must be a whole number';
  const base = { from: m.from, to: m.to, term: m.term };
  switch (m.type) {
    case 'vote':
      if (typeof m.pre !== 'boolean' || !isCount(m.lastIndex) || !isCount(m.lastTerm)) return 'vote needs pre, lastIndex and lastTerm';
      if (m.transfer !== undefined && m.transfer !== true) return 'vote transfer must be true when present';
      return { type: 'vote', ...base, pre: m.pre, lastIndex: m.lastIndex, lastTerm: m.lastTerm, ...(m.transfer ? { transfer: true } : {}) };
    case 'vote-resp':
      if (typeof m.pre !== 'boolean' || typeof m.granted !== 'boolean') return 'vote-resp needs pre and granted';
      return { type: 'vote-resp', ...base, pre: m.pre, granted: m.granted };
    case 'app': {
      if (!isCount(m.prevIndex) || !isCount(m.prevTerm) || !isCount(m.commit)) return 'app needs prevIndex, prevTerm and commit';
      if (m.prevTerm > m.term) return 'app prevTerm is above its term';
      const entries = parseEntries(m.entries, m.prevIndex, m.prevTerm, m.term);
      if (typeof entries === 'string') return entries;
      return { type: 'app', ...base, prevIndex: m.prevIndex, prevTerm: m.prevTerm, entries, commit: m.commit };
    }
    case 'app-resp':
      if (!isCount(m.index) || !isCount(m.hint) || typeof m.reject !== 'boolean') return 'app-resp needs index, hint and reject';
      return { type: 'app-resp', ...base, index: m.index, hint: m.hint, reject: m.reject };
    case 'heartbeat':
    case 'heartbeat-resp': {
      if (m.ctx !== undefined && (typeof m.ctx !== 'string' || m.ctx.length > MAX_CTX_LENGTH)) return `${m.type} ctx must be a short string`;
      const ctx = m.ctx === undefined ? {} : { ctx: m.ctx as string };
      if (m.type === 'heartbeat-resp') return { type: 'heartbeat-resp', ...base, ...ctx };
      if (!isCount(m.commit)) return 'heartbeat needs commit';
      return { type: 'heartbeat', ...base, commit: m.commit, ...ctx };
    }
    case 'timeout-now':
      return { type: 'timeout-now', ...base };
    case 'snap': {
      if (!isCount(m.index) || m.index === 0 || !isCount(m.snapTerm) || m.snapTerm === 0) return 'snap needs an index and snapTerm above 0';
      if (m.snapTerm > m.term) return 'snap snapTerm is above its term';
      if (!isCount(m.offset) || !isCount(m.total)) return 'snap needs offset and total';
      if (m.total > MAX_SNAPSHOT_CHARS) return `snap total is above ${MAX_SNAPSHOT_CHARS} characters`;
      if (typeof m.chunk !== 'string' || m.chunk.length > MAX_SNAPSHOT_CHUNK_CHARS) return `snap chunk must be a string of at most ${MAX_SNAPSHOT_CHUNK_CHARS} characters`;
      if (m.offset + m.chunk.length > m.total) return 'snap chunk runs past its total';
      // An empty chunk moves nothing forward: only an empty snapshot has one.
      if (m.chunk.length === 0 && m.total !== 0) return 'snap chunk is empty';
      const membership = parseMembership(m.membership);
      if (typeof membership === 'string') return membership;
      const prior = m.prior === undefined ? undefined : parseMembership(m.prior);
      if (typeof prior === 'string') return prior;
      return {
        type: 'snap', ...base, index: m.index, snapTerm: m.snapTerm, membership, ...(prior ? { prior } : {}), offset: m.offset, total: m.total, chunk: m.chunk,
      };
    }
    case 'snap-resp':
      if (!isCount(m.index) || !isCount(m.offset) || typeof m.reject !== 'boolean') return 'snap-resp needs index, offset and reject';
      if (m.offset > MAX_SNAPSHOT_CHARS) return `snap-resp offset is above ${MAX_SNAPSHOT_CHARS}`;
      return { type: 'snap-resp', ...base, index: m.index, offset: m.offset, reject: m.reject };
    default:
      return 'unknown message type';
  }
}

function parseEntries(u: unknown, prevIndex: number, prevTerm: number, term: number): Entry[] | string {
  if (!Array.isArray(u)) return 'app entries must be a list';
  if (u.length > MAX_ENTRIES_PER_MESSAGE) return `app holds more than ${MAX_ENTRIES_PER_MESSAGE} entries`;
  const out: Entry[] = [];
  let lastTerm = prevTerm;
  for (let i = 0; i < u.length; i++) {
    const e = u[i] as Record<string, unknown> | null;
    if (typeof e !== 'object' || e === null) return 'an entry is not an object';
    if (e.index !== prevIndex + 1 + i) return 'app entries must follow prevIndex without gaps';
    if (!isCount(e.term) || e.term < lastTerm || e.term > term) return 'app entry terms must not decrease nor exceed the message term';
    if (e.data !== null && (typeof e.data !== 'string' || Buffer.byteLength(e.data) > MAX_COMMAND_BYTES)) return `an entry's command must be a string of at most ${MAX_COMMAND_BYTES} bytes, or null`;
    lastTerm = e.term;
    if (e.conf === undefined) {
      out.push({ index: e.index as number, term: e.term, data: e.data as string | null });
      continue;
    }
    const conf = parseMembership(e.conf);
    if (typeof conf === 'string') return conf;
    if (e.data !== null) return 'a membership entry carries no command';
    out.push({ index: e.index as number, term: e.term, data: null, conf });
  }
  return out;
}

function parseMembership(u: unknown): Membership | string {
  if (typeof u !== 'object' || u === null) return 'a membership must be an object';
  const { voters, learners } = u as Record<string, unknown>;
  if (!Array.isArray(voters) || !Array.isArray(learners)) return 'a membership needs voters and learners';
  if (voters.length === 0 || voters.length + learners.length > MAX_MEMBERS) return `a membership has 1 to ${MAX_MEMBERS} members, voters among them`;
  if (![...voters, ...learners].every(isId)) return 'members must be server ids';
  if (new Set([...voters, ...learners]).size !== voters.length + learners.length) return 'a member is listed twice';
  return { voters: [...voters] as string[], learners: [...learners] as string[] };
}
