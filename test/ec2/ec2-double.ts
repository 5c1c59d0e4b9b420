// An EC2 Query API test double: a node:http server that speaks EC2's wire protocol (form-encoded
// POST, SigV4, XML answers and error documents) for the actions weft's provisioner uses, so
// that the real @aws-sdk/client-ec2 can be pointed at it with `endpoint`. Tests drive its state
// and failures through the object `start` returns. It runs no instances: a test that wants an
// instance to be real does that in `onLaunch`, with the decoded user data.
//
//   const ec2 = await start({ credentials: { AKIDTEST: 'secret' }, zones: ['us-east-1a', 'us-east-1b'] });
//   const client = new EC2Client({ region: ec2.region, endpoint: ec2.url, credentials: {...} });

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Faults, type FailNextOptions, type TagSpecificationRefusal, type ThrottleSpec } from './faults.ts';
import { answerRequest, type CallRecord } from './http-answer.ts';
import { type InstanceStateName, InstanceStore, type InstanceView, toView } from './instances.ts';
import { type LaunchHook, Lifecycle, type TerminateHook } from './lifecycle.ts';
import { Network } from './network.ts';
import { SecurityGroupStore } from './security-groups.ts';
import type { World } from './world.ts';

export type { LaunchedInstance, LaunchHook, TerminateHook } from './lifecycle.ts';
export type { InstanceStateName, InstanceView } from './instances.ts';
export type { FailNextOptions, TagSpecificationRefusal, ThrottleSpec } from './faults.ts';
export type { CallRecord } from './http-answer.ts';
export { signSigV4 } from './sigv4.ts';
export { MAX_REQUEST_BODY_BYTES } from './http-body.ts';

/** Short, so tests run fast, but not zero, so a caller meets `pending` before `running` as it
 *  does on EC2 (where launches take tens of seconds). */
const DEFAULT_LAUNCH_DELAY_MS = 50;
const DEFAULT_TERMINATE_DELAY_MS = 50;
/** EC2 keeps terminated instances in DescribeInstances for about an hour. */
const DEFAULT_TERMINATED_VISIBLE_MS = 60 * 60_000;
/** EC2's long-standing default On-Demand instance limit. */
const DEFAULT_INSTANCE_LIMIT = 20;
/** A made-up account id of the 12-digit form EC2 uses. */
const DEFAULT_ACCOUNT_ID = '123456789012';
/** How long `waitForState` waits unless told otherwise. */
const DEFAULT_WAIT_MS = 10_000;
/** Polling the double's own memory costs nothing; 10 ms keeps waits tight. */
const WAIT_POLL_MS = 10;

export interface Ec2DoubleOptions {
  /** Where to listen; 127.0.0.1 and a free port by default. */
  host?: string;
  port?: number;
  region?: string;
  /** Zone names, in order; `<region>a` and `<region>b` by default. */
  zones?: readonly string[];
  /** Access key id → secret access key. */
  credentials: Readonly<Record<string, string>>;
  accountId?: string;
  /** Time from RunInstances to `running` (after `onLaunch` has also finished). */
  launchDelayMs?: number;
  /** Time from `shutting-down` to `terminated` (after `onTerminate` has also finished). */
  terminateDelayMs?: number;
  /** How long a terminated instance stays in DescribeInstances. */
  terminatedVisibleMs?: number;
  /** Instances not yet terminated that the account may have at once. */
  instanceLimit?: number;
  /** AMIs that exist; any well-formed `ami-` id by default. */
  images?: readonly string[];
  /** Key pairs that exist; any name by default. */
  keyPairs?: readonly string[];
  onLaunch?: LaunchHook;
  onTerminate?: TerminateHook;
  /** The double's clock (signature skew, throttling, timestamps); Date.now by default. */
  clock?: () => number;
  /** Holds the answer to an action this long after it is carried out (none by default). */
  holdAnswerMs?: (action: string | undefined) => number;
  /** Where hook failures and internal errors are reported; stderr by default. */
  log?: (line: string) => void;
}

export interface SecurityGroupView {
  groupId: string;
  groupName: string;
  description: string;
  tags: Record<string, string>;
  ingress: { protocol: string; fromPort?: number; toPort?: number; cidr?: string; groupId?: string }[];
}

export interface Ec2Double {
  /** The endpoint to give the SDK: `http://host:port`. */
  readonly url: string;
  readonly region: string;
  readonly zones: readonly string[];
  readonly accountId: string;
  readonly vpcId: string;
  stop(): Promise<void>;
  /** Every instance launched, terminated ones included (`listed` says whether EC2 would still show it). */
  instances(): InstanceView[];
  instance(instanceId: string): InstanceView | undefined;
  securityGroups(): SecurityGroupView[];
  /** Requests naming this action (whatever their outcome), or all requests. */
  calls(action?: string): number;
  callLog(): readonly CallRecord[];
  resetCalls(): void;
  /** The next `count` calls (of `options.action`, or any) fail with `code`. */
  failNext(count: number, code: string, options?: FailNextOptions): void;
  /** EC2's per-action token buckets; `undefined` turns throttling off. */
  throttle(spec: ThrottleSpec | undefined): void;
  /** Instances that can still be launched in a zone (0: InsufficientInstanceCapacity there);
   *  `undefined` for no limit. */
  setZoneCapacity(zone: string, instances: number | undefined): void;
  setInstanceLimit(limit: number): void;
  /** Makes the endpoint refuse TagSpecification, as one without tag-on-create does. */
  rejectTagSpecifications(refusal: TagSpecificationRefusal | undefined): void;
  onLaunch(hook: LaunchHook | undefined): void;
  onTerminate(hook: TerminateHook | undefined): void;
  /** Resolves with the instance once it is in `state`; rejects after `timeoutMs`. */
  waitForState(instanceId: string, state: InstanceStateName, timeoutMs?: number): Promise<InstanceView>;
  /** Resolves when no launch or termination is under way. */
  idle(): Promise<void>;
}

export async function start(options: Ec2DoubleOptions): Promise<Ec2Double> {
  const region = options.region ?? 'us-east-1';
  const zoneNames = options.zones ?? [`${region}a`, `${region}b`];
  if (zoneNames.length === 0) throw new TypeError('the EC2 double needs at least one zone');
  const accountId = options.accountId ?? DEFAULT_ACCOUNT_ID;
  const clock = options.clock ?? Date.now;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const credentials = new Map(Object.entries(options.credentials));
  const network = new Network(region, zoneNames);
  const lifecycle = new Lifecycle({
    network,
    launchDelayMs: options.launchDelayMs ?? DEFAULT_LAUNCH_DELAY_MS,
    terminateDelayMs: options.terminateDelayMs ?? DEFAULT_TERMINATE_DELAY_MS,
    terminatedVisibleMs: options.terminatedVisibleMs ?? DEFAULT_TERMINATED_VISIBLE_MS,
    log,
  });
  lifecycle.onLaunch = options.onLaunch;
  lifecycle.onTerminate = options.onTerminate;
  const world: World = {
    region,
    accountId,
    network,
    instances: new InstanceStore(),
    groups: new SecurityGroupStore(network.vpcId, accountId),
    faults: new Faults(),
    lifecycle,
    images: options.images && new Set(options.images),
    keyPairs: options.keyPairs && new Set(options.keyPairs),
    instanceLimit: options.instanceLimit ?? DEFAULT_INSTANCE_LIMIT,
    clock,
  };
  let calls: CallRecord[] = [];

  const server = createServer((req, res) => {
    answerRequest(req, res, {
      world,
      credentials,
      record: (call) => calls.push(call),
      log,
      ...(options.holdAnswerMs ? { holdMs: options.holdAnswerMs } : {}),
    }).catch((error: unknown) => log(`ec2 double: could not answer: ${String(error)}`));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  const double: Ec2Double = {
    url: `http://${host}:${address.port}`,
    region,
    zones: [...zoneNames],
    accountId,
    vpcId: network.vpcId,
    async stop() {
      lifecycle.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
    instances: () => world.instances.all().map(toView),
    instance(instanceId) {
      const record = world.instances.get(instanceId);
      return record && toView(record);
    },
    securityGroups: () =>
      world.groups.all().map((g) => ({
        groupId: g.groupId,
        groupName: g.groupName,
        description: g.description,
        tags: Object.fromEntries(g.tags),
        ingress: g.ingress.map((r) => ({
          protocol: r.protocol,
          fromPort: r.fromPort,
          toPort: r.toPort,
          ...(r.peer.kind === 'cidr' ? { cidr: r.peer.cidr } : { groupId: r.peer.groupId }),
        })),
      })),
    calls: (action) => (action === undefined ? calls.length : calls.filter((c) => c.action === action).length),
    callLog: () => [...calls],
    resetCalls() {
      calls = [];
    },
    failNext: (count, code, failOptions) => world.faults.failNext(count, code, failOptions),
    throttle: (spec) => world.faults.throttle(spec),
    setZoneCapacity(zone, instances) {
      if (!network.zone(zone)) throw new TypeError(`the EC2 double has no zone ${zone}`);
      if (instances === undefined) world.faults.zoneCapacity.delete(zone);
      else world.faults.zoneCapacity.set(zone, instances);
    },
    setInstanceLimit(limit) {
      world.instanceLimit = limit;
    },
    rejectTagSpecifications(refusal) {
      world.faults.tagSpecificationRefusal = refusal;
    },
    onLaunch(hook) {
      lifecycle.onLaunch = hook;
    },
    onTerminate(hook) {
      lifecycle.onTerminate = hook;
    },
    async waitForState(instanceId, state, timeoutMs = DEFAULT_WAIT_MS) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const record = world.instances.get(instanceId);
        if (record?.state === state) return toView(record);
        if (Date.now() > deadline) {
          throw new Error(`instance ${instanceId} is ${record?.state ?? 'unknown'}, not ${state}, after ${timeoutMs} ms`);
        }
        await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
      }
    },
    idle: () => lifecycle.idle(),
  };
  return double;
}
