// What the Raft shell (raft-node.ts) reports and needs: its status, the managers as the
// leader sees them, its events, a query's answer, and the I/O the composition gives it.

import type { Logger } from '../../mesh/log.ts';
import type { Role } from '../raft/types.ts';
import type { StateObject } from './desired-state.ts';
import type { ManagerMessage } from './wire.ts';

/** A query's answer, with how fresh it is. */
export interface QueryAnswer {
  objects: StateObject[];
  /** For a backup: the whole state, serialized. */
  data?: string;
  /** The index the answering manager had applied. */
  applied: number;
  consistent: boolean;
  leader: string | null;
}

export interface NodeStatus {
  /** This peer's part: leader, follower, candidate..., or 'learner', or 'none' (not a manager). */
  role: Role | 'learner' | 'none';
  leader: string | null;
  term: number;
  commit: number;
  applied: number;
  voters: string[];
  learners: string[];
}

/** One manager as the leader sees it (`weft manager ls`). */
export interface ManagerView {
  id: string;
  voter: boolean;
  leader: boolean;
  /** The last log index known to be on that manager (the leader's own: its last index). */
  match: number;
  /** Milliseconds since the leader last heard from it (0 for the leader itself). */
  lastContactMs: number | null;
}

export type NodeEvent =
  | { type: 'leader-elected' | 'leader-lost'; term: number; leader: string | null }
  | { type: 'manager-added' | 'manager-removed' | 'manager-promoted'; peer: string };

export interface NodeIo {
  send(to: string, msg: ManagerMessage): void;
  /** A write of the disk failed: the node stops and the peer must exit. */
  onFatal(err: unknown): void;
  log: Logger;
}
