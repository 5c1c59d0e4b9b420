// Desired state: the replicated state machine the managers apply Raft's committed entries to.
// Typed, versioned objects (kind, name, version, spec), changed only by commands that were
// validated before they were proposed and are checked again when applied (a command committed
// by a buggy or older leader must still not corrupt the state: it fails, deterministically, on
// every manager alike). Pure: no clock, no I/O; the same entries give the same state anywhere.

import { clusterSpecProblem } from '../../provisioner/cluster/cluster-spec.ts';
import { nodeRecordProblem, timelineProblem } from '../../provisioner/cluster/node-record.ts';
import { providerObjectProblem } from '../../provisioner/credentials/provider-record.ts';
import { drainProblem } from '../reconciler/drain.ts';
import { type StoredService, storedServiceProblem } from '../service/schema.ts';
import { stackRecordProblem } from '../stack/record.ts';
import { serviceObjectName, taskProblem } from '../task/task.ts';

/** The kinds of object there are. `config`: users' own settings (`weft config`); `node-role`:
 *  an operator's promote/demote of a peer, which the autopilot obeys (name = the peer's id);
 *  `service`: a service (scheduler/service/schema.ts, name `stack/service`); `task`: one of its
 *  containers assigned to a node by the reconciler (scheduler/task/task.ts, name
 *  `stack/service/n`); `stack`: a deployed stack file's name and services; `nodecluster`: a node
 *  cluster as the user asked for it, `node`: one of its node slots as the provisioner keeps it
 *  (`cluster/index`), `timeline`: a cluster's recent events (provisioner/cluster/), `provider`:
 *  a cloud provider and its credentials, sealed (provisioner/credentials/); `drain`: a node
 *  drained by `weft node drain` (name = its peer id; scheduler/reconciler/drain.ts). The
 *  provisioner's records are validated here like the scheduler's: desired state checks every
 *  kind it holds, so this is the one arrow from scheduler/ to provisioner/'s pure records. */
export const KINDS = ['config', 'node-role', 'service', 'task', 'stack', 'nodecluster', 'node', 'timeline', 'provider', 'drain'] as const;
export type Kind = (typeof KINDS)[number];

/** Names are DNS-label-like so they print, sort and type safely; 253 is a DNS name's length. */
export const MAX_NAME_LENGTH = 253;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;
/** A config value is a setting, not a file store: 64 KiB keeps every snapshot and every Raft
 *  message small (swarm limits configs to 500 KB; ours ride in Raft entries of ≤ 1 MiB). */
export const MAX_CONFIG_VALUE_BYTES = 64 * 1024;
/** Request ids are made by the proposing peer (its id and a counter). */
export const MAX_REQUEST_ID_LENGTH = 200;
/** Results of this many recent requests are remembered, so a write retried across a leader
 *  change (with the same request id) applies once: a client retries within seconds, and even
 *  at thousands of writes per second that is far inside this window. */
export const REMEMBERED_REQUESTS = 10_000;

export interface StateObject {
  kind: Kind;
  name: string;
  /** 1 when created, +1 on every change: what compare-and-set compares. */
  version: number;
  spec: unknown;
  /** The Raft index of the change that made this version. */
  index: number;
}

/** A restore carries a whole backup in one Raft entry, under the 1 MiB a command may be
 *  (scheduler/raft/wire.ts), with room for the envelope. */
export const MAX_RESTORE_BYTES = 900 * 1024;

export type Command =
  | { op: 'put'; kind: Kind; name: string; spec: unknown; expect?: number; req: string }
  | { op: 'delete'; kind: Kind; name: string; expect?: number; req: string }
  /** Replaces every object with a backup's (`weft state restore`); remembered requests stay,
   *  so a write retried across the restore still applies once. */
  | { op: 'restore'; data: string; req: string }
  /** Several puts and deletes applied together or not at all: a stack deploy, one round of the
   *  reconciler. Every `expect` is checked before anything changes. */
  | { op: 'batch'; ops: BatchOp[]; req: string };

export type BatchOp =
  | { op: 'put'; kind: Kind; name: string; spec: unknown; expect?: number }
  | { op: 'delete'; kind: Kind; name: string; expect?: number };

/** A batch is one Raft entry (≤ 1 MiB); a stack's services or a round's tasks are far fewer. */
export const MAX_BATCH_OPS = 2000;

export type Outcome = { ok: true; object: StateObject | null } | { ok: false; error: string };

/** One applied change, for watchers. `object` null: deleted. */
export interface StateChange {
  index: number;
  kind: Kind;
  name: string;
  object: StateObject | null;
}

const key = (kind: string, name: string) => `${kind}\u0000${name}`;

/** Why `c` is not a command (undefined: it is one). Run before proposing and again on apply. */
export function validateCommand(c: unknown): string | undefined {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'a command must be an object';
  const m = c as Record<string, unknown>;
  if (m.op === 'restore') return validateRestore(m);
  if (m.op === 'batch') return validateBatch(m);
  if (m.op !== 'put' && m.op !== 'delete') return 'op must be put, delete, batch or restore';
  if (typeof m.kind !== 'string' || !(KINDS as readonly string[]).includes(m.kind)) return `kind must be one of ${KINDS.join(', ')}`;
  if (typeof m.name !== 'string' || m.name.length === 0 || m.name.length > MAX_NAME_LENGTH || !NAME.test(m.name)) {
    return `name must be 1-${MAX_NAME_LENGTH} characters of letters, digits, ".", "_", "/" and "-", starting with a letter or digit`;
  }
  if (typeof m.req !== 'string' || m.req.length === 0 || m.req.length > MAX_REQUEST_ID_LENGTH) return 'req must be a request id';
  if (m.expect !== undefined && !(Number.isSafeInteger(m.expect) && (m.expect as number) >= 0)) return 'expect must be a version (0: must not exist)';
  const allowed = m.op === 'put' ? ['op', 'kind', 'name', 'spec', 'expect', 'req'] : ['op', 'kind', 'name', 'expect', 'req'];
  const extra = Object.keys(m).find((k) => !allowed.includes(k));
  if (extra !== undefined) return `unknown field "${extra}"`;
  if (m.op === 'put') return validateSpec(m.kind as Kind, m.name, m.spec);
  return undefined;
}

function validateBatch(m: Record<string, unknown>): string | undefined {
  if (typeof m.req !== 'string' || m.req.length === 0 || m.req.length > MAX_REQUEST_ID_LENGTH) return 'req must be a request id';
  const extra = Object.keys(m).find((k) => !['op', 'ops', 'req'].includes(k));
  if (extra !== undefined) return `unknown field "${extra}"`;
  if (!Array.isArray(m.ops) || m.ops.length === 0 || m.ops.length > MAX_BATCH_OPS) return `a batch has 1-${MAX_BATCH_OPS} operations`;
  const seen = new Set<string>();
  for (const [i, op] of (m.ops as unknown[]).entries()) {
    if (typeof op !== 'object' || op === null || Array.isArray(op)) return `batch operation ${i + 1}: not an object`;
    const o = op as Record<string, unknown>;
    if (o.op !== 'put' && o.op !== 'delete') return `batch operation ${i + 1}: op must be put or delete`;
    if ('req' in o) return `batch operation ${i + 1}: unknown field "req" (the batch has one)`;
    const invalid = validateCommand({ ...o, req: m.req });
    if (invalid) return `batch operation ${i + 1}: ${invalid}`;
    const k = key(String(o.kind), String(o.name));
    if (seen.has(k)) return `batch operation ${i + 1}: ${String(o.kind)} "${String(o.name)}" twice in one batch`;
    seen.add(k);
  }
  return undefined;
}

function validateRestore(m: Record<string, unknown>): string | undefined {
  if (typeof m.req !== 'string' || m.req.length === 0 || m.req.length > MAX_REQUEST_ID_LENGTH) return 'req must be a request id';
  const extra = Object.keys(m).find((k) => !['op', 'data', 'req'].includes(k));
  if (extra !== undefined) return `unknown field "${extra}"`;
  if (typeof m.data !== 'string' || Buffer.byteLength(m.data) > MAX_RESTORE_BYTES) return `a restore needs the backup's data, at most ${MAX_RESTORE_BYTES} bytes`;
  try {
    new DesiredState().restore(m.data);
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

function validateSpec(kind: Kind, name: string, spec: unknown): string | undefined {
  switch (kind) {
    case 'config':
      if (typeof spec !== 'string') return 'a config value must be a string';
      if (Buffer.byteLength(spec) > MAX_CONFIG_VALUE_BYTES) return `a config value must be at most ${MAX_CONFIG_VALUE_BYTES} bytes`;
      return undefined;
    case 'node-role':
      if (spec !== 'manager' && spec !== 'worker') return 'a node role must be manager or worker';
      return undefined;
    case 'service': {
      const problem = storedServiceProblem(spec);
      if (problem !== undefined) return problem;
      const named = serviceObjectName((spec as StoredService).spec);
      return named === name ? undefined : `a service of stack "${(spec as StoredService).spec.stack}" named "${(spec as StoredService).spec.name}" is stored as "${named}", not "${name}"`;
    }
    case 'task':
      return taskProblem(spec);
    case 'stack':
      return stackRecordProblem(spec);
    case 'nodecluster':
      return clusterSpecProblem(name, spec);
    case 'node':
      return nodeRecordProblem(name, spec);
    case 'timeline':
      return timelineProblem(spec);
    case 'provider':
      return providerObjectProblem(name, spec);
    case 'drain':
      return drainProblem(spec);
  }
}

export class DesiredState {
  private readonly objects = new Map<string, StateObject>();
  /** Request id -> its outcome, oldest first (Map keeps insertion order). */
  private readonly recent = new Map<string, Outcome>();
  /** The index of the last entry applied. */
  applied = 0;

  get(kind: Kind, name: string): StateObject | undefined {
    return this.objects.get(key(kind, name));
  }

  /** Objects of a kind, by name. */
  list(kind: Kind, prefix = ''): StateObject[] {
    return [...this.objects.values()].filter((o) => o.kind === kind && o.name.startsWith(prefix)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Every object, by kind and name. */
  all(): StateObject[] {
    return KINDS.flatMap((k) => this.list(k));
  }

  size(): number {
    return this.objects.size;
  }

  /** The outcome of a request already applied, if it is still remembered. */
  outcomeOf(req: string): Outcome | undefined {
    return this.recent.get(req);
  }

  /** Applies the entry at `index` (a command as JSON); returns its outcome and the change it
   *  made. The same entry applied to the same state gives the same result on every manager. */
  apply(index: number, data: string): { req?: string; outcome: Outcome; changes: StateChange[] } {
    this.applied = index;
    let c: unknown;
    try {
      c = JSON.parse(data);
    } catch {
      return { outcome: { ok: false, error: 'the entry is not JSON' }, changes: [] };
    }
    const invalid = validateCommand(c);
    const req = typeof (c as { req?: unknown })?.req === 'string' ? (c as { req: string }).req : undefined;
    if (invalid) return { req, outcome: { ok: false, error: invalid }, changes: [] };
    const cmd = c as Command;
    const seen = this.recent.get(cmd.req);
    if (seen) return { req: cmd.req, outcome: seen, changes: [] };
    const { outcome, changes } = this.execute(index, cmd);
    this.remember(cmd.req, outcome);
    return { req: cmd.req, outcome, changes };
  }

  private execute(index: number, cmd: Command): { outcome: Outcome; changes: StateChange[] } {
    if (cmd.op === 'restore') return this.replaceObjects(index, cmd.data);
    if (cmd.op === 'batch') return this.executeBatch(index, cmd.ops);
    return this.executeOne(index, cmd);
  }

  /** All or nothing: every expectation is checked first, then every operation applied. */
  private executeBatch(index: number, ops: readonly BatchOp[]): { outcome: Outcome; changes: StateChange[] } {
    for (const op of ops) {
      const current = this.objects.get(key(op.kind, op.name));
      const failed = this.expectationFailure(op, current);
      if (failed) return { outcome: { ok: false, error: failed }, changes: [] };
      if (op.op === 'delete' && !current) return { outcome: { ok: false, error: `${op.kind} "${op.name}" does not exist` }, changes: [] };
    }
    const changes = ops.flatMap((op) => this.executeOne(index, op).changes);
    return { outcome: { ok: true, object: null }, changes };
  }

  private expectationFailure(cmd: BatchOp, current: StateObject | undefined): string | undefined {
    if (cmd.expect === undefined || (current?.version ?? 0) === cmd.expect) return undefined;
    const has = current ? `version ${current.version}` : 'no such object';
    return `${cmd.kind} "${cmd.name}": expected version ${cmd.expect}, found ${has}`;
  }

  private executeOne(index: number, cmd: BatchOp): { outcome: Outcome; changes: StateChange[] } {
    const k = key(cmd.kind, cmd.name);
    const current = this.objects.get(k);
    const failed = this.expectationFailure(cmd, current);
    if (failed) return { outcome: { ok: false, error: failed }, changes: [] };
    if (cmd.op === 'delete') {
      if (!current) return { outcome: { ok: false, error: `${cmd.kind} "${cmd.name}" does not exist` }, changes: [] };
      this.objects.delete(k);
      return { outcome: { ok: true, object: null }, changes: [{ index, kind: cmd.kind, name: cmd.name, object: null }] };
    }
    const object: StateObject = { kind: cmd.kind, name: cmd.name, version: (current?.version ?? 0) + 1, spec: cmd.spec, index };
    this.objects.set(k, object);
    return { outcome: { ok: true, object }, changes: [{ index, kind: cmd.kind, name: cmd.name, object }] };
  }

  /** Every object replaced by a backup's, each change reported (a deletion or a new version). */
  private replaceObjects(index: number, data: string): { outcome: Outcome; changes: StateChange[] } {
    const backup = new DesiredState();
    backup.restore(data);
    const wanted = new Map([...backup.objects].map(([k, o]) => [k, o]));
    const changes: StateChange[] = [];
    for (const [k, o] of this.objects) {
      if (!wanted.has(k)) {
        this.objects.delete(k);
        changes.push({ index, kind: o.kind, name: o.name, object: null });
      }
    }
    for (const [k, o] of wanted) {
      const current = this.objects.get(k);
      if (current && JSON.stringify(current.spec) === JSON.stringify(o.spec)) continue;
      const object: StateObject = { kind: o.kind, name: o.name, version: (current?.version ?? 0) + 1, spec: o.spec, index };
      this.objects.set(k, object);
      changes.push({ index, kind: o.kind, name: o.name, object });
    }
    return { outcome: { ok: true, object: null }, changes };
  }

  private remember(req: string, outcome: Outcome): void {
    this.recent.set(req, outcome);
    if (this.recent.size > REMEMBERED_REQUESTS) this.recent.delete(this.recent.keys().next().value as string);
  }

  /** The whole state as one string (for snapshots and backups). */
  serialize(): string {
    return JSON.stringify({ applied: this.applied, objects: [...this.objects.values()], recent: [...this.recent] });
  }

  /** Replaces the state with a serialized one; throws on anything that is not one. */
  restore(data: string): void {
    const bad = (why: string) => new Error(`not a desired-state snapshot: ${why}`);
    let s: { applied?: unknown; objects?: unknown; recent?: unknown };
    try {
      s = JSON.parse(data) as typeof s;
    } catch {
      throw bad('not JSON');
    }
    if (typeof s !== 'object' || s === null || !isIndex(s.applied) || !Array.isArray(s.objects) || !Array.isArray(s.recent)) throw bad('applied, objects and recent are required');
    // Checked whole before anything changes: a refused snapshot leaves the state as it was.
    const objects = new Map<string, StateObject>();
    for (const o of s.objects as StateObject[]) {
      if (typeof o !== 'object' || o === null) throw bad('an object is not one');
      const invalid = validateCommand({ op: 'put', kind: o.kind, name: o.name, spec: o.spec, req: 'restore' });
      if (invalid) throw bad(invalid);
      if (!Number.isSafeInteger(o.version) || o.version < 1 || !isIndex(o.index)) throw bad(`${o.kind} "${o.name}" has no valid version and index`);
      objects.set(key(o.kind, o.name), { kind: o.kind, name: o.name, version: o.version, spec: o.spec, index: o.index });
    }
    const recent = new Map<string, Outcome>();
    for (const r of s.recent as unknown[]) {
      if (!Array.isArray(r) || typeof r[0] !== 'string' || !isOutcome(r[1])) throw bad('a remembered request is not a request id and its outcome');
      recent.set(r[0], r[1]);
    }
    this.objects.clear();
    for (const [k, o] of objects) this.objects.set(k, o);
    this.recent.clear();
    for (const [k, o] of recent) this.recent.set(k, o);
    this.applied = s.applied as number;
  }
}

function isIndex(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}

function isOutcome(x: unknown): x is Outcome {
  if (typeof x !== 'object' || x === null) return false;
  const o = x as Record<string, unknown>;
  return (o.ok === true && (o.object === null || (typeof o.object === 'object' && o.object !== null))) || (o.ok === false && typeof o.error === 'string');
}
