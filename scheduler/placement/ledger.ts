// What each node holds while a plan is built: reserved memory, containers of all services, and
// containers per service. Kept containers are entered first, then each creation as it is
// decided, so every choice sees the ones before it. Pure.

import type { PlacementNode } from './node.ts';

export class Ledger {
  private readonly memory = new Map<string, number>();
  private readonly count = new Map<string, number>();
  private readonly perService = new Map<string, number>();

  private readonly nodes: ReadonlyMap<string, PlacementNode>;

  constructor(nodes: ReadonlyMap<string, PlacementNode>) {
    this.nodes = nodes;
  }

  /** Whether `bytes` more fits on the node. A container reserving nothing always fits. */
  fits(node: string, bytes: number): boolean {
    if (bytes <= 0) return true;
    const cap = this.nodes.get(node)?.memoryBytes ?? 0;
    return this.memoryUsed(node) + bytes <= cap;
  }

  add(node: string, service: string, bytes: number): void {
    this.memory.set(node, this.memoryUsed(node) + Math.max(0, bytes));
    this.count.set(node, this.containers(node) + 1);
    const k = `${service}\n${node}`;
    this.perService.set(k, (this.perService.get(k) ?? 0) + 1);
  }

  memoryUsed(node: string): number {
    return this.memory.get(node) ?? 0;
  }

  /** Unreserved memory; never below 0 (a node may report less than it already holds). */
  memoryFree(node: string): number {
    return Math.max(0, (this.nodes.get(node)?.memoryBytes ?? 0) - this.memoryUsed(node));
  }

  /** Containers of every service on the node. */
  containers(node: string): number {
    return this.count.get(node) ?? 0;
  }

  /** Containers of one service on the node. */
  ofService(service: string, node: string): number {
    return this.perService.get(`${service}\n${node}`) ?? 0;
  }
}
