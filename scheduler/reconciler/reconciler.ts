// The reconciler's shell: on the leader only, a round (reconcile.ts) whenever desired or observed
// state changes and at least once a second, its changes written as one batch through Raft. A
// batch that finds the state changed under it (its compare-and-set fails) is dropped and the next
// round decides again from the new state. Also the one reading of service status every API call
// uses, on any peer (statusNow).

import { AGENT_STATE_KEY } from '../../mesh/keyspace.ts';
import type { Logger } from '../../mesh/log.ts';
import { isUp, type MeshView } from '../../mesh/mesh-view.ts';
import type { StateObject } from '../manager/desired-state.ts';
import type { RaftNode } from '../manager/raft-node.ts';
import type { StoredService } from '../service/schema.ts';
import { type AgentReport, decodeReport } from '../task/report.ts';
import type { TaskSpec } from '../task/task.ts';
import { drainedPeers } from './drain.ts';
import { placementNodes } from './nodes.ts';
import { LeaderRounds } from '../manager/leader-rounds.ts';
import type { Versioned } from './observed.ts';
import { reconcile, type RoundResult } from './reconcile.ts';

/** A round at least this often, for what no event announces (the grace period running out, an
 *  update's delay passing). */
export const RECONCILE_EVERY_MS = 1000;
/** Changes arrive in bursts (a batch applied, several agents reporting): one round after the
 *  burst, not one per change. */
const SETTLE_MS = 30;

export type SchedulerEvent = 'container-scheduled' | 'container-rescheduled' | 'container-redeployed' | 'container-unscheduled' | 'service-pending' | 'service-update-paused';

export interface ReconcilerOptions {
  raft: RaftNode;
  view: MeshView;
  log: Logger;
  emit(type: SchedulerEvent, detail: string): void;
}

export class Reconciler {
  private readonly o: ReconcilerOptions;
  private readonly rounds: LeaderRounds;
  private readonly downSince = new Map<string, number>();
  private readonly lastStep = new Map<string, number>();
  private readonly said = new Map<string, string>();
  /** The services as this leader's last round saw them (see services()). */
  private lastServices: RoundResult['services'] = [];

  constructor(o: ReconcilerOptions) {
    this.o = o;
    this.rounds = new LeaderRounds({
      isLeader: () => o.raft.isLeader(), everyMs: RECONCILE_EVERY_MS, settleMs: SETTLE_MS,
      round: () => this.round(),
      notLeader: () => {
        this.downSince.clear();
        this.lastStep.clear();
        this.lastServices = [];
      },
    });
  }

  start(): void {
    const kick = () => this.rounds.kick();
    this.rounds.start([
      this.o.raft.onChange(kick),
      this.o.view.onEntries((cs) => {
        if (cs.some((c) => c.key === AGENT_STATE_KEY)) kick();
      }),
      this.o.view.onLiveness(kick),
    ]);
  }

  stop(): void {
    this.rounds.stop();
  }

  /** One round; true when another should follow at once. */
  private async round(): Promise<boolean> {
    try {
      const tasks = this.o.raft.state.list('task');
      const result = this.compute(this.o.raft.state.list('service'), tasks, Date.now());
      this.lastServices = result.services;
      this.report(result);
      if (result.ops.length === 0) return false;
      const before = new Map(tasks.map((o) => [o.name, o.spec as TaskSpec]));
      const outcome = await this.o.raft.write({ op: 'batch', ops: result.ops, req: this.o.raft.requestId() });
      if (!outcome.ok) {
        this.o.log.debug('reconciler batch refused; deciding again', { error: outcome.error });
        return true;
      }
      const now = Date.now();
      for (const s of result.stepped) this.lastStep.set(s, now);
      this.announce(result, before);
    } catch (err) {
      this.o.log.debug('reconciler round failed', { err: String(err) });
    }
    return false;
  }

  /** The services as this leader's last round saw them, pending reasons included: at most a
   *  round (RECONCILE_EVERY_MS) old, and empty on a peer that does not lead. What the
   *  provisioner grows clusters for, without deciding a round of its own. */
  services(): RoundResult['services'] {
    return this.lastServices;
  }

  /** A round's decision from the given desired state and this peer's observed state. */
  compute(services: readonly StateObject[], tasks: readonly StateObject[], now: number): RoundResult {
    const reports = readReports(this.o.view);
    const members = this.o.view.members();
    for (const m of members) {
      if (isUp(m.state)) this.downSince.delete(m.id);
      else if (!this.downSince.has(m.id)) this.downSince.set(m.id, now);
    }
    const st = this.o.raft.status();
    const drained = drainedPeers(this.o.raft.state.list('drain'), this.o.raft.state.list('node'));
    const nodes = placementNodes(members, reports, (id) => (now - (this.downSince.get(id) ?? now)) / 1000, new Set([...st.voters, ...st.learners]), drained);
    return reconcile({
      services: services.map((o) => ({ name: o.name, version: o.version, spec: o.spec as StoredService })),
      tasks: tasks.map((o) => ({ name: o.name, version: o.version, spec: o.spec as TaskSpec }) satisfies Versioned<TaskSpec>),
      nodes,
      reports,
      now,
      lastStep: this.lastStep,
    });
  }

  /** Pending services and paused updates, said once each time they change. */
  private report(r: RoundResult): void {
    const seen = new Set<string>();
    for (const s of r.services) {
      seen.add(s.name);
      const line = s.pending ? `pending: ${s.pending}` : s.update.state === 'paused' ? `update paused: ${s.update.failed.task}: ${s.update.failed.error}` : '';
      if (line === (this.said.get(s.name) ?? '')) continue;
      this.said.set(s.name, line);
      if (s.pending) this.o.emit('service-pending', `${s.name}: ${s.pending}`);
      else if (s.update.state === 'paused') this.o.emit('service-update-paused', `${s.name}: ${s.update.failed.task} failed: ${s.update.failed.error}`);
    }
    for (const k of this.said.keys()) if (!seen.has(k)) this.said.delete(k);
  }

  private announce(r: RoundResult, before: ReadonlyMap<string, TaskSpec>): void {
    const names = new Map(this.o.view.members().map((m) => [m.id, m.name]));
    for (const op of r.ops) {
      if (op.kind !== 'task') continue;
      if (op.op === 'delete') {
        this.o.emit('container-unscheduled', op.name);
        continue;
      }
      const t = op.spec as TaskSpec;
      const was = before.get(op.name);
      const type = !was ? 'container-scheduled' : was.node === t.node ? 'container-redeployed' : 'container-rescheduled';
      const from = was && was.node !== t.node ? ` from ${names.get(was.node) ?? was.node}` : '';
      this.o.emit(type, `${op.name} on ${names.get(t.node) ?? t.node}${from} (epoch ${t.epoch})`);
    }
  }
}

/** Every node's agent report from gossip, by node id. */
export function readReports(view: MeshView): Map<string, AgentReport> {
  const out = new Map<string, AgentReport>();
  for (const e of view.entries(AGENT_STATE_KEY)) {
    if (e.key !== AGENT_STATE_KEY || e.value === null) continue;
    const r = decodeReport(e.value);
    if (r) out.set(e.owner, r);
  }
  return out;
}
