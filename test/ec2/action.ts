// One EC2 action of the double: its name, the parameters it takes (any other is refused as
// UnknownParameter, so a caller relying on something the double does not model finds out
// here rather than on EC2), and what it does.

import type { QueryParams } from './query-parse.ts';
import type { World } from './world.ts';
import type { Part } from './xml.ts';

export interface ActionContext {
  readonly params: QueryParams;
  readonly world: World;
  /** Throws DryRunOperation when the request set DryRun: call it where checking ends and
   *  changing begins. */
  checkDryRun(): void;
}

export interface ActionRow {
  readonly name: string;
  /** Top-level parameters beyond Action, Version and DryRun. */
  readonly params: readonly string[];
  /** The response body, inside `<{name}Response>` after the request id. */
  handle(ctx: ActionContext): Part[];
}
