// Everything the double knows, in one place for the actions to read and change.

import type { Faults } from './faults.ts';
import type { InstanceStore } from './instances.ts';
import type { Lifecycle } from './lifecycle.ts';
import type { Network } from './network.ts';
import type { SecurityGroupStore } from './security-groups.ts';

export interface World {
  readonly region: string;
  readonly accountId: string;
  readonly network: Network;
  readonly instances: InstanceStore;
  readonly groups: SecurityGroupStore;
  readonly faults: Faults;
  readonly lifecycle: Lifecycle;
  /** The AMIs that exist; any well-formed id when absent. */
  readonly images: ReadonlySet<string> | undefined;
  /** The key pairs that exist; any name when absent. */
  readonly keyPairs: ReadonlySet<string> | undefined;
  /** Instances (not yet terminated) the account may have at once. */
  instanceLimit: number;
  readonly clock: () => number;
}
