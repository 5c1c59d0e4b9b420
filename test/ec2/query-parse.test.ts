// EC2's flattened list and structure encoding, read back strictly.

import { expect, test } from 'vitest';
import { decodeForm, MAX_PARAMETERS, QueryParams } from './query-parse.ts';

const params = (body: string) => new QueryParams(decodeForm(body));

test('lists, lists of structures and nested lists come back in index order', () => {
  const p = params(
    'InstanceId.2=i-b&InstanceId.1=i-a&InstanceId.10=i-j' +
      '&Filter.1.Name=tag%3Aweft%3Acluster&Filter.1.Value.2=db&Filter.1.Value.1=web' +
      '&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.2.Key=node&TagSpecification.1.Tag.2.Value=web-1' +
      '&TagSpecification.1.Tag.1.Key=cluster&TagSpecification.1.Tag.1.Value=a+b',
  );
  expect(p.list('InstanceId')).toEqual(['i-a', 'i-b', 'i-j']);
  const [filter] = p.structs('Filter', ['Name', 'Value']);
  expect(filter?.get('Name')).toBe('tag:weft:cluster');
  expect(filter?.list('Value')).toEqual(['web', 'db']);
  const [spec] = p.structs('TagSpecification');
  expect(spec?.get('ResourceType')).toBe('instance');
  expect(spec?.structs('Tag').map((t) => [t.get('Key'), t.get('Value')])).toEqual([
    ['cluster', 'a b'],
    ['node', 'web-1'],
  ]);
  expect(spec?.fullName('ResourceType')).toBe('TagSpecification.1.ResourceType');
});

test('an empty value and a missing one differ', () => {
  const p = params('Tag.1.Key=a&Tag.1.Value=&Tag.2.Key=b');
  const [first, second] = p.structs('Tag');
  expect(first?.get('Value')).toBe('');
  expect(second?.get('Value')).toBeUndefined();
});

test('misshapen indexes and members are refused as UnknownParameter', () => {
  expect(() => params('InstanceId.0=i-a').list('InstanceId')).toThrow(/InstanceId\.0 is not recognized/);
  expect(() => params('InstanceId.01=i-a').list('InstanceId')).toThrow(/not recognized/);
  expect(() => params('InstanceId.1.Extra=i-a').list('InstanceId')).toThrow(/not recognized/);
  expect(() => params('InstanceId=i-a').list('InstanceId')).toThrow(/InstanceId is not recognized/);
  expect(() => params('Filter.1.Name=x&Filter.1.Nmae=y').structs('Filter', ['Name', 'Value'])).toThrow(/Filter\.1\.Nmae/);
});

test('decoding is strict and bounded', () => {
  expect(() => decodeForm('a=%G0')).toThrow(/syntax error/);
  expect(() => decodeForm('a=%C3%28')).toThrow(/syntax error/); // not UTF-8
  expect(() => decodeForm('=x')).toThrow(/no name/);
  expect(() => decodeForm('a=1&a=2')).toThrow(/more than once/);
  expect(() => decodeForm(Array.from({ length: MAX_PARAMETERS + 1 }, (_, i) => `p${i}=1`).join('&'))).toThrow(/more than/);
  expect(decodeForm('a=%E2%9C%93&b=x%2By&c')).toEqual(new Map([['a', '✓'], ['b', 'x+y'], ['c', '']]));
});
