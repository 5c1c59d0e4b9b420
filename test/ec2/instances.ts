// The double's instances and reservations: what RunInstances made, which client token made it,
// and where each instance is in EC2's lifecycle (pending → running → shutting-down →
// terminated). Pure state: the timers and hooks that move instances along live in lifecycle.ts.

export type InstanceStateName = 'pending' | 'running' | 'shutting-down' | 'terminated';

/** The low byte of EC2's InstanceState code, per the API reference's InstanceState type. */
export const STATE_CODES: Readonly<Record<InstanceStateName, number>> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
};

export interface StateReason {
  code: string;
  message: string;
}

export interface InstanceRecord {
  readonly instanceId: string;
  readonly reservationId: string;
  readonly imageId: string;
  readonly instanceType: string;
  readonly zone: string;
  readonly subnetId: string;
  readonly keyName: string | undefined;
  readonly securityGroupIds: readonly string[];
  /** Decoded from the request's base64. */
  readonly userData: Buffer | undefined;
  readonly clientToken: string | undefined;
  readonly launchTime: Date;
  readonly amiLaunchIndex: number;
  readonly tags: Map<string, string>;
  state: InstanceStateName;
  /** Assigned at launch, as EC2 does; gone once terminated. */
  privateIpAddress: string | undefined;
  /** Assigned when the instance runs (its public DNS name "is not available until the instance
   *  enters the running state", says the reference); gone once terminated. */
  publicIpAddress: string | undefined;
  stateReason: StateReason | undefined;
  /** EC2's `reason`: why the state last changed, e.g. "User initiated (… GMT)". */
  transitionReason: string;
  /** False once a terminated instance has aged out of DescribeInstances. */
  listed: boolean;
}

export interface ReservationRecord {
  readonly reservationId: string;
  readonly instanceIds: readonly string[];
  readonly clientToken: string | undefined;
  /** The request's parameters, to tell a repeat of it from another request with its token. */
  readonly fingerprint: string;
}

export class InstanceStore {
  /** Insertion order is launch order, which DescribeInstances keeps. */
  readonly #instances = new Map<string, InstanceRecord>();
  readonly #reservations = new Map<string, ReservationRecord>();
  readonly #byToken = new Map<string, ReservationRecord>();

  add(reservation: ReservationRecord, instances: readonly InstanceRecord[]): void {
    this.#reservations.set(reservation.reservationId, reservation);
    if (reservation.clientToken !== undefined) this.#byToken.set(reservation.clientToken, reservation);
    for (const instance of instances) this.#instances.set(instance.instanceId, instance);
  }

  get(instanceId: string): InstanceRecord | undefined {
    return this.#instances.get(instanceId);
  }

  /** An instance DescribeInstances would still show. */
  listedInstance(instanceId: string): InstanceRecord | undefined {
    const instance = this.#instances.get(instanceId);
    return instance?.listed ? instance : undefined;
  }

  byClientToken(token: string): ReservationRecord | undefined {
    return this.#byToken.get(token);
  }

  all(): InstanceRecord[] {
    return [...this.#instances.values()];
  }

  listed(): InstanceRecord[] {
    return this.all().filter((i) => i.listed);
  }

  /** Instances counted against the instance limit: every one not yet terminated. */
  liveCount(): number {
    return this.all().filter((i) => i.state !== 'terminated').length;
  }

  /** Instances that keep a security group in use: every one not yet terminated. */
  usingGroup(groupId: string): InstanceRecord[] {
    return this.all().filter((i) => i.state !== 'terminated' && i.securityGroupIds.includes(groupId));
  }
}

/** What a test sees of an instance: a snapshot, safe to keep. */
export interface InstanceView {
  instanceId: string;
  reservationId: string;
  imageId: string;
  instanceType: string;
  zone: string;
  state: InstanceStateName;
  privateIpAddress: string | undefined;
  publicIpAddress: string | undefined;
  keyName: string | undefined;
  securityGroupIds: string[];
  tags: Record<string, string>;
  userData: Buffer | undefined;
  /** The user data as UTF-8 text (a cloud-init script, say). */
  userDataText: string | undefined;
  clientToken: string | undefined;
  launchTime: Date;
  stateReason: StateReason | undefined;
  /** Whether DescribeInstances still shows it. */
  listed: boolean;
}

export function toView(record: InstanceRecord): InstanceView {
  return {
    instanceId: record.instanceId,
    reservationId: record.reservationId,
    imageId: record.imageId,
    instanceType: record.instanceType,
    zone: record.zone,
    state: record.state,
    privateIpAddress: record.privateIpAddress,
    publicIpAddress: record.publicIpAddress,
    keyName: record.keyName,
    securityGroupIds: [...record.securityGroupIds],
    tags: Object.fromEntries(record.tags),
    userData: record.userData && Buffer.from(record.userData),
    userDataText: record.userData?.toString('utf8'),
    clientToken: record.clientToken,
    launchTime: new Date(record.launchTime),
    stateReason: record.stateReason && { ...record.stateReason },
    listed: record.listed,
  };
}

/** EC2's timestamp in state transition reasons: `2024-05-01 12:00:00 GMT`. */
export function reasonTimestamp(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} GMT`;
}
