// The loop both of the leader's reconcilers run (the scheduler's, the provisioner's): a round
// whenever something it watches changes, and at least every so often for what nothing announces;
// changes that come in a burst make one round after it; never two rounds at once, and a round
// asked for while one runs follows it. On a peer that does not lead, nothing runs and the
// reconciler forgets what a leader keeps in memory (a later term starts afresh).

export interface LeaderRoundsOptions {
  isLeader(): boolean;
  /** A round at least this often. */
  everyMs: number;
  /** After a change, wait this long for the rest of its burst. */
  settleMs: number;
  /** One round; resolves true when another should follow at once (its write was refused). */
  round(): Promise<boolean>;
  /** Called instead of a round on a peer that does not lead. */
  notLeader(): void;
}

export class LeaderRounds {
  private readonly o: LeaderRoundsOptions;
  private timer?: NodeJS.Timeout;
  private soon?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(o: LeaderRoundsOptions) {
    this.o = o;
  }

  /** Starts the periodic rounds; `subscriptions` are the watchers' unsubscribe functions. */
  start(subscriptions: readonly (() => void)[]): void {
    this.timer = setInterval(() => this.kick(), this.o.everyMs);
    this.timer.unref?.();
    this.unsubscribe.push(...subscriptions);
  }

  stop(): void {
    clearInterval(this.timer);
    clearTimeout(this.soon);
    for (const u of this.unsubscribe) u();
  }

  /** Asks for a round (after the settle time). */
  kick(): void {
    if (!this.o.isLeader()) {
      this.o.notLeader();
      return;
    }
    if (this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.run();
    }, this.o.settleMs);
  }

  private async run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      if (this.o.isLeader() && (await this.o.round())) this.again = true;
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    }
  }
}
