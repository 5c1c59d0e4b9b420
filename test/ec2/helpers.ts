// What the EC2 double's tests share: a double per test that is always stopped, an SDK client
// pointed at it, and a refusal read the way a caller reads one (code, HTTP status, message).

import { EC2Client, RunInstancesCommand, type RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { afterEach } from 'vitest';
import { type Ec2Double, type Ec2DoubleOptions, start } from './ec2-double.ts';

export const ACCESS_KEY_ID = 'AKIAWEFTTESTDOUBLE01';
export const SECRET = 'weft-test-secret-not-a-real-one';

const running: Ec2Double[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((double) => double.stop()));
});

/** A double on loopback with one credential, stopped after the test. */
export async function startDouble(options: Partial<Ec2DoubleOptions> = {}): Promise<Ec2Double> {
  const double = await start({
    credentials: { [ACCESS_KEY_ID]: SECRET },
    zones: ['us-east-1a', 'us-east-1b'],
    launchDelayMs: 20,
    terminateDelayMs: 20,
    log: () => {},
    ...options,
  });
  running.push(double);
  return double;
}

/** The real SDK client, as weft's provider would make it. `maxAttempts: 1` unless a test is
 *  about the SDK's own retries, so call counts say what the caller did. */
export function clientFor(
  double: Ec2Double,
  opts: { accessKeyId?: string; secret?: string; region?: string; maxAttempts?: number } = {},
): EC2Client {
  return new EC2Client({
    region: opts.region ?? double.region,
    endpoint: double.url,
    credentials: { accessKeyId: opts.accessKeyId ?? ACCESS_KEY_ID, secretAccessKey: opts.secret ?? SECRET },
    maxAttempts: opts.maxAttempts ?? 1,
  });
}

export interface Refusal {
  code: string;
  status: number | undefined;
  message: string;
  fault: string | undefined;
}

/** The error a call ends in, as the SDK reports it; fails the test if the call succeeds. */
export async function refusal(call: Promise<unknown>): Promise<Refusal> {
  try {
    await call;
  } catch (error) {
    const e = error as { name: string; message: string; $fault?: string; $metadata?: { httpStatusCode?: number } };
    return { code: e.name, status: e.$metadata?.httpStatusCode, message: e.message, fault: e.$fault };
  }
  throw new Error('expected the call to be refused, and it succeeded');
}

export const IMAGE = 'ami-0abcdef1234567890';

/** A RunInstances of one small instance, with whatever a test changes. */
export const launch = (extra: Partial<RunInstancesCommandInput> = {}): RunInstancesCommand =>
  new RunInstancesCommand({ ImageId: IMAGE, InstanceType: 't3.small', MinCount: 1, MaxCount: 1, ...extra });

/** Tag-on-create for an instance of a weft node cluster, as the provisioner tags its nodes. */
export const clusterTags = (cluster: string, node: string) => [
  { ResourceType: 'instance' as const, Tags: [{ Key: 'weft:cluster', Value: cluster }, { Key: 'weft:node', Value: node }] },
];
