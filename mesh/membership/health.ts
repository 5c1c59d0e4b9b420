// Local health awareness, after Lifeguard (Dadgar et al., 2018): before accusing others, a peer
// asks whether it is itself the slow one. Two mechanisms:
//  - a live clock that stands still while our event loop was stalled, so the time we could
//    not read our sockets never counts as anyone's silence;
//  - a penalty score, raised by signs of our own trouble and forgiven slowly, that stretches
//    our timeouts while it lasts.

/** A gap between calls from the shell longer than this means our event loop was stalled
 *  (ticks come every 100 ms; Node timers under load run late by tens of ms, not hundreds). */
export const STALL_THRESHOLD_MS = 350;
/** After a stall, decide nothing for this long: the messages that queued while we were stalled
 *  are still being delivered, and until they are, silence means nothing. */
export const STALL_GRACE_MS = 200;
/** Steps of penalty (Lifeguard's multiplier): at most doubling our timeouts keeps detection
 *  within a few seconds even while we doubt ourselves. */
export const HEALTH_MAX = 4;
/** One step of penalty is forgiven per this period without a new sign of trouble. */
export const HEALTH_DECAY_MS = 5000;

export interface HealthOptions {
  tickMs: number;
  stallThresholdMs: number;
  stallGraceMs: number;
  healthMax: number;
  healthDecayMs: number;
}

export class LocalHealth {
  private readonly o: HealthOptions;
  /** Total time found stalled; `live(now)` subtracts it. */
  private paused = 0;
  private lastCall: number;
  private called = false;
  private graceUntil = -Infinity;
  private score = 0;
  private scoreAt = 0;
  private lastBump = -Infinity;

  constructor(o: HealthOptions, now: number) {
    this.o = o;
    this.lastCall = now;
  }

  /** Called at the start of every call from the shell. Returns how long nobody called us if
   *  that was a stall, else 0. */
  observe(now: number): number {
    const gap = now - this.lastCall;
    let stalled = 0;
    // The first call measures nothing: the shell builds the core, then spends a while starting
    // its transport, and that is no stall.
    if (this.called && gap > this.o.stallThresholdMs) {
      // Nobody called us for `gap` ms: our event loop was not running (GC, CPU starvation, a
      // suspended VM). Heartbeats that arrived meanwhile sit unread in socket buffers, so that
      // time must not count as anyone's silence: stop the live clock for it (all but the one
      // tick that would have passed anyway), and judge nobody until the backlog has been read.
      // A wall clock stepped forward (NTP) looks the same and is handled just as safely.
      this.paused += gap - this.o.tickMs;
      this.graceUntil = now + this.o.stallGraceMs;
      this.bump(now);
      stalled = gap;
    }
    this.lastCall = Math.max(this.lastCall, now);
    this.called = true;
    return stalled;
  }

  /** The shell's clock minus the time we were stalled: every silence, suspicion and probe
   *  deadline is measured on it. */
  live(now: number): number {
    return now - this.paused;
  }

  /** Whether we may judge others now (not right after a stall). */
  judging(now: number): boolean {
    return now >= this.graceUntil;
  }

  /** A sign that we, not the others, are the unhealthy one: we stalled, we were suspected and
   *  had to refute, or nobody could confirm a silence we saw. At most one step per call, so one
   *  bad moment seen through many members counts once. */
  bump(now: number): void {
    if (now === this.lastBump) return;
    this.lastBump = now;
    this.score = Math.min(this.o.healthMax, this.score + 1);
    this.scoreAt = now;
  }

  decay(now: number): void {
    while (this.score > 0 && now - this.scoreAt >= this.o.healthDecayMs) {
      this.score--;
      this.scoreAt += this.o.healthDecayMs;
    }
  }

  /** Factor for our timeouts: 1 when healthy, up to 2 at the worst. */
  stretch(): number {
    return 1 + this.score / this.o.healthMax;
  }

  /** The time of the last call from the shell (the latest `now` we were given). */
  get lastSeen(): number {
    return this.lastCall;
  }
}
