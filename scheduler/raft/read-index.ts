// The leader's reads under way (ReadIndex, thesis §6.4): each waits for a quorum of voters to
// answer a heartbeat round sent after it was asked, which proves the leader still led then.
// Answers come in order of rounds, so a quorum for one read also confirms every earlier one.

export interface ConfirmedRead {
  ctx: string;
  /** Serve once the state machine has applied this index. */
  index: number;
}

export class ReadIndexQueue {
  private reads: { ctx: string; index: number; acks: Set<string> }[] = [];

  /** A read asked when the commit index was `index`; `self` counts as the first answer. */
  add(ctx: string, index: number, self: string): void {
    this.reads.push({ ctx, index, acks: new Set([self]) });
  }

  /** The newest read's context, carried by a periodic round so a lost one is retried. */
  newest(): string | undefined {
    return this.reads.at(-1)?.ctx;
  }

  /** A voter answered the round of `ctx`: the reads confirmed by it, oldest first. */
  ack(ctx: string, voter: string, quorum: number): ConfirmedRead[] {
    const at = this.reads.findIndex((r) => r.ctx === ctx);
    if (at < 0) return [];
    const read = this.reads[at] as (typeof this.reads)[number];
    read.acks.add(voter);
    if (read.acks.size < quorum) return [];
    return this.reads.splice(0, at + 1).map((r) => ({ ctx: r.ctx, index: r.index }));
  }

  /** Leadership lost: the reads are dropped (their askers retry). */
  clear(): void {
    this.reads = [];
  }
}
