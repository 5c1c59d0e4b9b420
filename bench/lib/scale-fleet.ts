// What bench/scale.ts needs of a system under test (weft peers or Serf agents, N of them on
// 127.0.1.1..N), so that both are measured by the same phase code.
import type { Proc } from './scale-procs.ts';

export interface Member {
  /** 1-based: the member's address is 127.0.1.<index>. */
  index: number;
  name: string;
  ip: string;
  proc: Proc | undefined;
}

/** A death seen by `observer`: `name` marked dead (weft) or failed (Serf), with its arrival
 *  time at the bench (its clock, `now()`). */
export interface Death {
  at: number;
  observer: string;
  name: string;
}

export interface Fleet {
  readonly system: 'weft' | 'serf';
  readonly members: readonly Member[];
  /** Log lines that mean a suspicion and a death, counted over the soak. */
  readonly suspectLine: RegExp;
  readonly deadLine: RegExp;
  /** What `suspectLine` counts, for the printout. */
  readonly suspectMeaning: string;
  /** Deaths pushed by every connected member since it was connected (appended to). */
  readonly deaths: Death[];
  /** Starts `m`'s process (it joins the first member, unless it is the first). */
  spawn(m: Member): void;
  /** Connects the bench to `m` (retried while it starts, up to `timeoutMs`) and subscribes
   *  to its deaths. Throws if the process exits or the time passes. */
  connect(m: Member, timeoutMs: number): Promise<void>;
  /** How many others `m` sees alive. */
  aliveOthers(m: Member): Promise<number>;
  /** Everyone's state as `m` sees it, by name. */
  view(m: Member): Promise<Map<string, string>>;
  /** Write trial `i`: from one member until all have it. Resolves with ms, or NaN if not
   *  everyone had it within `timeoutMs`. */
  write(i: number, timeoutMs: number): Promise<number>;
  /** What the members run, once started (printed with the figures). */
  describe(): string;
  /** Closes the bench's connections and kills every process of the fleet. */
  stop(): Promise<void>;
}

/** A member's state in `view` that says it is (still) up: the victims of a kill must be in
 *  it beforehand, or the pair is not timed. weft's suspect still has to turn dead. */
export const UP_STATES: ReadonlySet<string> = new Set(['alive', 'suspect']);
