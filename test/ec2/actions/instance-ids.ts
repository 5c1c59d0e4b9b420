// Instance ids as requests give them (`InstanceId.N`): well-formed, and known to DescribeInstances.

import { instancesNotFound, malformedId } from '../errors.ts';
import { isWellFormedId } from '../ids.ts';
import type { InstanceRecord } from '../instances.ts';
import type { QueryParams } from '../query-parse.ts';
import type { World } from '../world.ts';

/** The listed instances named by `InstanceId.N`, each once, or the error EC2 gives: Malformed
 *  for an id that cannot be one, NotFound naming every id it does not know. */
export function namedInstances(params: QueryParams, world: World): InstanceRecord[] {
  const ids = [...new Set(params.list('InstanceId'))];
  for (const id of ids) if (!isWellFormedId('i', id)) throw malformedId('InvalidInstanceID.Malformed', id);
  const missing = ids.filter((id) => !world.instances.listedInstance(id));
  if (missing.length > 0) throw instancesNotFound(missing);
  return ids.flatMap((id) => world.instances.listedInstance(id) ?? []);
}
