// Runs zone updates (zone-builder.ts) in slices, so that a large registry changing
// often never holds up answers for long: each turn of the event loop gives the build at most
// SLICE_MS, then queries are answered (from the previous zone) before the next slice. Changes
// that arrive during a build are taken up by one more build when it finishes: never more than
// one waits, and a build is never abandoned (under a constant stream of changes an abandoned
// build would never finish).

import type { Zone } from './zone.ts';

/** Work per turn of the event loop: a query waits at most about this long behind a build. */
export const SLICE_MS = 0.1;

/** A build: yields between slices, returns the zone (undefined: nothing changed). */
export type ZoneBuild = () => Generator<void, Zone | undefined, void>;

export class SlicedRebuild {
  private readonly install: (zone: Zone | undefined) => void;
  private readonly fail: (err: unknown) => void;
  private running: Generator<void, Zone | undefined, void> | undefined;
  private next: ZoneBuild | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private stopped = false;

  /** `install` receives each finished zone; `fail` a build that threw (the previous zone
   *  stays). */
  constructor(install: (zone: Zone | undefined) => void, fail: (err: unknown) => void) {
    this.install = install;
    this.fail = fail;
  }

  /** Builds with `build` after the current build (if any), replacing any build waiting. */
  request(build: ZoneBuild): void {
    if (this.stopped) return;
    this.next = build;
    if (!this.running && !this.immediate) this.schedule();
  }

  get busy(): boolean {
    return this.running !== undefined || this.next !== undefined;
  }

  stop(): void {
    this.stopped = true;
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    this.running = undefined;
    this.next = undefined;
  }

  private schedule(): void {
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.slice();
    });
  }

  private slice(): void {
    if (this.stopped) return;
    const until = performance.now() + SLICE_MS;
    do {
      if (!this.running) {
        if (!this.next) return;
        try {
          this.running = this.next();
        } catch (err) {
          this.next = undefined;
          this.fail(err);
          continue;
        }
        this.next = undefined;
      }
      let r: IteratorResult<void, Zone | undefined>;
      try {
        r = this.running.next();
      } catch (err) {
        this.running = undefined;
        this.fail(err);
        continue;
      }
      if (r.done) {
        this.running = undefined;
        try {
          this.install(r.value);
        } catch (err) {
          // Runs in setImmediate: a throw would end the process.
          this.fail(err);
        }
      }
    } while (performance.now() < until && (this.running || this.next));
    if (this.running || this.next) this.schedule();
  }
}
