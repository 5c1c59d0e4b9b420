// Tags as EC2 takes them: `Tag.N.Key` / `Tag.N.Value` lists (CreateTags, DeleteTags) and
// `TagSpecification.N.ResourceType` + `TagSpecification.N.Tag.M.*` (tag on create), with
// EC2's limits on keys, values and tags per resource.

import { Ec2Error, invalidValue, missingParameter } from './errors.ts';
import type { QueryParams } from './query-parse.ts';
import { el, itemSet, type Xml } from './xml.ts';

/** EC2's documented tag limits: 50 per resource, keys up to 128 characters, values up to 256. */
export const MAX_TAGS_PER_RESOURCE = 50;
export const MAX_TAG_KEY_LENGTH = 128;
export const MAX_TAG_VALUE_LENGTH = 256;

/** The prefix EC2 reserves for its own tags. */
const RESERVED_PREFIX = 'aws:';

export interface TagInput {
  key: string;
  /** Absent when the request gave none: CreateTags stores "", DeleteTags then matches any value. */
  value: string | undefined;
}

export function parseTags(items: readonly QueryParams[]): TagInput[] {
  return items.map((item) => {
    const key = item.get('Key');
    if (key === undefined || key === '') throw missingParameter(item.fullName('Key'));
    const value = item.get('Value');
    if ([...key].length > MAX_TAG_KEY_LENGTH) {
      throw invalidValue(`Tag key exceeds the maximum length of ${MAX_TAG_KEY_LENGTH} characters`);
    }
    if (value !== undefined && [...value].length > MAX_TAG_VALUE_LENGTH) {
      throw invalidValue(`Tag value exceeds the maximum length of ${MAX_TAG_VALUE_LENGTH} characters`);
    }
    if (key.toLowerCase().startsWith(RESERVED_PREFIX)) {
      throw invalidValue(`Tag keys starting with '${RESERVED_PREFIX}' are reserved for internal use`);
    }
    return { key, value };
  });
}

/** Tag specifications by resource type. `types` are the types this action can tag. */
export function parseTagSpecifications(params: QueryParams, types: readonly string[]): Map<string, TagInput[]> {
  const byType = new Map<string, TagInput[]>();
  for (const spec of params.structs('TagSpecification', ['ResourceType', 'Tag'])) {
    const type = spec.get('ResourceType');
    if (type === undefined || type === '') throw missingParameter(spec.fullName('ResourceType'));
    if (!types.includes(type)) throw invalidValue(`'${type}' is not a valid taggable resource type for this operation.`);
    if (byType.has(type)) throw invalidValue(`The resource type '${type}' is given in more than one tag specification`);
    byType.set(type, parseTags(spec.structs('Tag', ['Key', 'Value'])));
  }
  return byType;
}

/** The tags a resource would have after these are set; throws before anything changes. */
export function withTags(current: ReadonlyMap<string, string>, tags: readonly TagInput[]): Map<string, string> {
  const next = new Map(current);
  for (const { key, value } of tags) next.set(key, value ?? '');
  if (next.size > MAX_TAGS_PER_RESOURCE) {
    throw new Ec2Error('TagLimitExceeded', 'The maximum number of Tags for a resource has been reached.');
  }
  return next;
}

export function replaceTags(target: Map<string, string>, next: ReadonlyMap<string, string>): void {
  target.clear();
  for (const [key, value] of next) target.set(key, value);
}

/** `<tagSet>`, left out when there are no tags, as EC2 does. */
export function tagSetXml(tags: ReadonlyMap<string, string>): Xml | undefined {
  if (tags.size === 0) return undefined;
  return itemSet('tagSet', [...tags].map(([key, value]) => [el('key', key), el('value', value)]));
}
