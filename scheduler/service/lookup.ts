// A service as users name it: `name` (in no stack), `stack/name`, or `name.stack` as its DNS
// name reads. Shared by the API's handlers.

import { UserError } from '../../mesh/api/request.ts';
import type { StateObject } from '../manager/desired-state.ts';
import type { RaftNode } from '../manager/raft-node.ts';

/** The service object a user's reference names, read consistently; a UserError if none. */
export async function lookupService(raft: RaftNode, ref: string): Promise<StateObject> {
  const name = ref.includes('.') && !ref.includes('/') ? ref.split('.').reverse().join('/') : ref;
  const o = (await raft.query({ q: 'get', kind: 'service', name }, true)).objects[0];
  if (!o) throw new UserError(`no service "${ref}" (see weft service ls)`);
  return o;
}
