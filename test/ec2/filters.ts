// DescribeX's `Filter.N.Name` / `Filter.N.Value.M`: values of one filter are alternatives, the
// filters together must all hold, values may use the wildcards * and ? (escaped with \), and
// matching is case-sensitive, as the API reference says. `tag:<key>`, `tag-key` and `tag-value`
// work on every resource that has tags. An unknown filter name is refused, as EC2 does.

import { invalidValue, missingParameter } from './errors.ts';
import type { QueryParams } from './query-parse.ts';

export interface Filter {
  name: string;
  values: string[];
}

/** How a filter name reads an item: the values it has for it. */
export type FilterTable<T> = Readonly<Record<string, (item: T) => readonly (string | undefined)[]>>;

export function parseFilters(params: QueryParams): Filter[] {
  return params.structs('Filter', ['Name', 'Value']).map((filter) => {
    const name = filter.get('Name');
    if (name === undefined || name === '') throw missingParameter(filter.fullName('Name'));
    return { name, values: filter.list('Value') };
  });
}

/** The items every filter matches. Checks the filter names even when there are no items. */
export function applyFilters<T>(
  items: readonly T[],
  filters: readonly Filter[],
  table: FilterTable<T>,
  tagsOf: (item: T) => ReadonlyMap<string, string>,
): T[] {
  const predicates = filters.map((filter) => {
    const read = reader(filter.name, table, tagsOf);
    const patterns = filter.values.map(globToRegExp);
    return (item: T) => read(item).some((value) => value !== undefined && patterns.some((p) => p.test(value)));
  });
  return items.filter((item) => predicates.every((matches) => matches(item)));
}

function reader<T>(
  name: string,
  table: FilterTable<T>,
  tagsOf: (item: T) => ReadonlyMap<string, string>,
): (item: T) => readonly (string | undefined)[] {
  if (name.startsWith('tag:')) {
    const key = name.slice('tag:'.length);
    return (item) => [tagsOf(item).get(key)];
  }
  if (name === 'tag-key') return (item) => [...tagsOf(item).keys()];
  if (name === 'tag-value') return (item) => [...tagsOf(item).values()];
  const read = Object.hasOwn(table, name) ? table[name] : undefined;
  if (!read) throw invalidValue(`The filter '${name}' is invalid`);
  return read;
}

/** EC2's filter wildcards: `*` any run of characters, `?` one, `\` escapes the next. */
export function globToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '\\' && i + 1 < pattern.length) source += escapeRegExp(pattern[++i] ?? '');
    else if (c === '*') source += '[\\s\\S]*';
    else if (c === '?') source += '[\\s\\S]';
    else source += escapeRegExp(c);
  }
  return new RegExp(`^${source}$`, 'u');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
