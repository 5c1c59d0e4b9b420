// Hostile and broken requests over raw HTTP (node fetch, a form-encoded POST, signed with the
// double's own SigV4 signer where the request must get past authentication). Each gets an EC2
// error document with the right code and status, and the double goes on answering.

import { expect, test } from 'vitest';
import { type Ec2Double, MAX_REQUEST_BODY_BYTES, signSigV4 } from './ec2-double.ts';
import { ACCESS_KEY_ID, clientFor, SECRET, startDouble } from './helpers.ts';
import { DescribeAvailabilityZonesCommand } from '@aws-sdk/client-ec2';

const ERROR_DOCUMENT =
  /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<Response><Errors><Error><Code>([^<]+)<\/Code><Message>([^<]*)<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/;

interface RawAnswer {
  status: number;
  code: string | undefined;
  message: string | undefined;
  contentType: string | null;
}

async function post(ec2: Ec2Double, body: string | Buffer, opts: { sign?: boolean; date?: Date; method?: string } = {}): Promise<RawAnswer> {
  const url = new URL(ec2.url + '/');
  const method = opts.method ?? 'POST';
  const base = { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' };
  const headers: Record<string, string> =
    opts.sign === false
      ? { ...base }
      : signSigV4({
          method,
          url,
          headers: base,
          body,
          accessKeyId: ACCESS_KEY_ID,
          secretAccessKey: SECRET,
          region: ec2.region,
          service: 'ec2',
          date: opts.date ?? new Date(),
        });
  const { host: _host, ...sendable } = headers; // fetch sets Host itself, to the same value
  const payload = typeof body === 'string' ? body : new Uint8Array(body);
  const res = await fetch(url, { method, headers: sendable, body: method === 'GET' ? undefined : payload });
  const text = await res.text();
  const m = ERROR_DOCUMENT.exec(text);
  return { status: res.status, code: m?.[1], message: m?.[2], contentType: res.headers.get('content-type') };
}

async function stillAnswers(ec2: Ec2Double): Promise<void> {
  const out = await clientFor(ec2).send(new DescribeAvailabilityZonesCommand({}));
  expect(out.AvailabilityZones).toHaveLength(2);
}

test('an unsigned request is MissingAuthenticationToken', async () => {
  const ec2 = await startDouble();
  expect(await post(ec2, 'Action=DescribeInstances&Version=2016-11-15', { sign: false })).toMatchObject({
    status: 401,
    code: 'MissingAuthenticationToken',
    contentType: 'text/xml;charset=UTF-8',
  });
});

test('a bad percent-escape and bytes that are not UTF-8 are MalformedQueryString', async () => {
  const ec2 = await startDouble();
  expect(await post(ec2, 'Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=%ZZ')).toMatchObject({
    status: 400,
    code: 'MalformedQueryString',
  });
  expect(await post(ec2, 'Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=%FF%FE')).toMatchObject({
    status: 400,
    code: 'MalformedQueryString',
  });
  expect(await post(ec2, Buffer.from([0x41, 0x3d, 0xff, 0xfe]))).toMatchObject({ status: 400, code: 'MalformedQueryString' });
  expect(await post(ec2, 'Action=DescribeInstances&Action=RunInstances&Version=2016-11-15')).toMatchObject({
    status: 400,
    code: 'MalformedQueryString',
  });
  await stillAnswers(ec2);
});

test('a body over the bound is refused with an error document, and the double goes on', async () => {
  const ec2 = await startDouble();
  const huge = `Action=DescribeInstances&Version=2016-11-15&Junk=${'x'.repeat(4 * MAX_REQUEST_BODY_BYTES)}`;
  const answer = await post(ec2, huge, { sign: false });
  expect(answer).toMatchObject({ status: 413, code: 'MalformedQueryString' });
  expect(answer.message).toContain(`${MAX_REQUEST_BODY_BYTES} bytes`);
  await stillAnswers(ec2);
});

test('a body past what is worth draining has its connection cut, and the double goes on', async () => {
  const ec2 = await startDouble();
  const flood = Buffer.alloc(12 * 1024 * 1024, 'x');
  await expect(post(ec2, flood, { sign: false })).rejects.toThrow();
  await stillAnswers(ec2);
  expect(ec2.callLog().map((c) => c.code)).toEqual(['ClientGone', undefined]);
});

test('an unknown action is InvalidAction, a missing one MissingAction, a missing Version MissingParameter', async () => {
  const ec2 = await startDouble();
  expect(await post(ec2, 'Action=LaunchRockets&Version=2016-11-15')).toMatchObject({
    status: 400,
    code: 'InvalidAction',
    message: 'The action LaunchRockets is not valid for this web service.',
  });
  expect(await post(ec2, 'Version=2016-11-15')).toMatchObject({ status: 400, code: 'MissingAction' });
  expect(await post(ec2, 'Action=DescribeInstances')).toMatchObject({
    status: 400,
    code: 'MissingParameter',
    message: 'The request must contain the parameter Version',
  });
  expect(ec2.calls('LaunchRockets')).toBe(1);
});

test('unknown and misshapen parameters are UnknownParameter; a bad value InvalidParameterValue', async () => {
  const ec2 = await startDouble();
  expect(await post(ec2, 'Action=DescribeInstances&Version=2016-11-15&Frobnicate=1')).toMatchObject({
    code: 'UnknownParameter',
    message: 'The parameter Frobnicate is not recognized',
  });
  expect(await post(ec2, 'Action=DescribeInstances&Version=2016-11-15&InstanceId.x=i-12345678')).toMatchObject({
    code: 'UnknownParameter',
  });
  expect(await post(ec2, 'Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag-key&Filter.1.Colour=red')).toMatchObject({
    code: 'UnknownParameter',
    message: 'The parameter Filter.1.Colour is not recognized',
  });
  expect(await post(ec2, 'Action=RunInstances&Version=2016-11-15&ImageId=ami-12345678&MinCount=one&MaxCount=1')).toMatchObject({
    status: 400,
    code: 'InvalidParameterValue',
  });
  expect(await post(ec2, 'Action=RunInstances&Version=2016-11-15&ImageId=ami-12345678&MaxCount=1')).toMatchObject({
    code: 'MissingParameter',
    message: 'The request must contain the parameter MinCount',
  });
  expect(await post(ec2, 'Action=DescribeInstances&Version=2016-11-15&DryRun=maybe')).toMatchObject({
    code: 'InvalidParameterValue',
  });
  expect(ec2.instances()).toHaveLength(0);
});

test('signatures: a stale date is RequestExpired, a garbled header IncompleteSignature, a changed body SignatureDoesNotMatch', async () => {
  const ec2 = await startDouble();
  const body = 'Action=DescribeInstances&Version=2016-11-15';
  expect(await post(ec2, body, { date: new Date(Date.now() - 20 * 60_000) })).toMatchObject({ status: 400, code: 'RequestExpired' });

  const url = new URL(ec2.url + '/');
  const garbled = await fetch(url, { method: 'POST', headers: { authorization: 'AWS4-HMAC-SHA256 Credential=x' }, body });
  expect(garbled.status).toBe(400);
  expect(ERROR_DOCUMENT.exec(await garbled.text())?.[1]).toBe('IncompleteSignature');

  const { host: _host, ...signed } = signSigV4({
    method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body,
    accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET, region: ec2.region, service: 'ec2', date: new Date(),
  });
  const tampered = await fetch(url, { method: 'POST', headers: signed, body: body.replace('DescribeInstances', 'DescribeSecurityGroups') });
  expect(tampered.status).toBe(403);
  expect(ERROR_DOCUMENT.exec(await tampered.text())?.[1]).toBe('SignatureDoesNotMatch');
  await stillAnswers(ec2);
});

test('only POST is taken', async () => {
  const ec2 = await startDouble();
  expect(await post(ec2, '', { method: 'GET', sign: false })).toMatchObject({ status: 405, code: 'UnsupportedOperation' });
});

test('a successful answer is in the namespace of the version asked for', async () => {
  const ec2 = await startDouble();
  const url = new URL(ec2.url + '/');
  const body = 'Action=DescribeAvailabilityZones&Version=2016-11-15&ZoneName.1=us-east-1a';
  const { host: _host, ...headers } = signSigV4({
    method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body,
    accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET, region: ec2.region, service: 'ec2', date: new Date(),
  });
  const res = await fetch(url, { method: 'POST', headers, body });
  const text = await res.text();
  expect(res.status).toBe(200);
  expect(text).toMatch(
    /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<DescribeAvailabilityZonesResponse xmlns="http:\/\/ec2\.amazonaws\.com\/doc\/2016-11-15\/"><requestId>[0-9a-f-]{36}<\/requestId><availabilityZoneInfo><item><zoneName>us-east-1a<\/zoneName>/,
  );
});
