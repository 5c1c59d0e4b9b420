// From a request's decoded parameters to an action's answer: the Action and Version every
// Query request carries, the failures a test injected, the parameters the action takes, and
// DryRun. Authentication has already happened (ec2-double.ts).

import type { ActionContext } from './action.ts';
import { ACTIONS } from './actions/table.ts';
import { dryRunSucceeded, Ec2Error, invalidValue, missingParameter, unknownParameter } from './errors.ts';
import { QueryParams } from './query-parse.ts';
import type { World } from './world.ts';
import type { Part } from './xml.ts';

/** Query API versions are dates; the answer's namespace is named after the one asked for. */
const API_VERSION = /^\d{4}-\d{2}-\d{2}$/;

export interface Answer {
  action: string;
  version: string;
  body: Part[];
}

export function dispatch(form: ReadonlyMap<string, string>, world: World): Answer {
  const params = new QueryParams(form);
  const action = params.get('Action');
  if (action === undefined || action === '') {
    throw new Ec2Error('MissingAction', 'The request is missing an action or a required parameter.');
  }
  const version = params.get('Version');
  if (version === undefined || version === '') throw missingParameter('Version');
  if (!API_VERSION.test(version)) throw invalidValue(`Invalid value '${version}' for Version`);
  const row = ACTIONS.get(action);
  if (!row) throw new Ec2Error('InvalidAction', `The action ${action} is not valid for this web service.`);

  const injected = world.faults.failureFor(action, world.clock());
  if (injected) throw injected;
  const refusal = world.faults.tagSpecificationRefusal;
  if (refusal && params.has('TagSpecification')) {
    throw refusal === 'UnknownParameter'
      ? unknownParameter('TagSpecification')
      : invalidValue('The parameter TagSpecification is not supported for this resource type');
  }
  params.refuseUnknown(['Action', 'Version', 'DryRun', ...row.params]);
  const dryRun = params.bool('DryRun') === true;
  const ctx: ActionContext = {
    params,
    world,
    checkDryRun() {
      if (dryRun) throw dryRunSucceeded();
    },
  };
  return { action, version, body: row.handle(ctx) };
}
