// CreateTags and DeleteTags on the double's taggable resources: instances and security groups.
// Both check every resource and tag before changing any, so a refused request changes nothing.

import type { ActionRow } from '../action.ts';
import { Ec2Error, groupNotFound, instancesNotFound, missingParameter } from '../errors.ts';
import { isWellFormedId } from '../ids.ts';
import { parseTags, replaceTags, withTags } from '../tags.ts';
import type { World } from '../world.ts';
import { el } from '../xml.ts';

/** The tag map of each resource named by `ResourceId.N`. */
function resourceTags(ids: readonly string[], world: World): Map<string, string>[] {
  if (ids.length === 0) throw missingParameter('ResourceId');
  return ids.map((id) => {
    if (isWellFormedId('i', id)) {
      const instance = world.instances.listedInstance(id);
      if (!instance) throw instancesNotFound([id]);
      return instance.tags;
    }
    if (isWellFormedId('sg', id)) {
      const group = world.groups.byId(id);
      if (!group) throw groupNotFound(id);
      return group.tags;
    }
    throw new Ec2Error('InvalidID', `The ID '${id}' is not valid`);
  });
}

export const createTags: ActionRow = {
  name: 'CreateTags',
  params: ['ResourceId', 'Tag'],
  handle(ctx) {
    const { params, world } = ctx;
    const targets = resourceTags(params.list('ResourceId'), world);
    const tags = parseTags(params.structs('Tag', ['Key', 'Value']));
    if (tags.length === 0) throw missingParameter('Tag');
    const updated = targets.map((current) => withTags(current, tags));
    ctx.checkDryRun();
    targets.forEach((target, i) => replaceTags(target, updated[i] ?? target));
    return [el('return', true)];
  },
};

/** Without tags it deletes every tag; a tag with a value only when the value matches; a tag
 *  without one whatever its value, as the reference describes. */
export const deleteTags: ActionRow = {
  name: 'DeleteTags',
  params: ['ResourceId', 'Tag'],
  handle(ctx) {
    const { params, world } = ctx;
    const targets = resourceTags(params.list('ResourceId'), world);
    const tags = parseTags(params.structs('Tag', ['Key', 'Value']));
    ctx.checkDryRun();
    for (const target of targets) {
      if (tags.length === 0) target.clear();
      for (const { key, value } of tags) {
        if (value === undefined || target.get(key) === value) target.delete(key);
      }
    }
    return [el('return', true)];
  },
};
