// The failures a test can put into the double: the next N calls failing with a code of its
// choice, EC2's per-action throttling, a zone with no capacity left, and an endpoint that does
// not know TagSpecification (as some EC2-compatible clouds do not), so that a caller's fallback
// to CreateTags is exercised.

import { Ec2Error, statusFor } from './errors.ts';
import { TokenBucket } from './token-bucket.ts';

export interface FailNextOptions {
  /** Only calls of this action fail (and count down); any action when absent. */
  action?: string;
  message?: string;
  /** The HTTP status; EC2's status for the code when absent. */
  status?: number;
}

export interface ThrottleSpec {
  /** The actions throttled, each with its own bucket as on EC2; every action when absent. */
  actions?: readonly string[];
  /** Requests a full bucket allows at once. */
  capacity: number;
  refillPerSecond: number;
}

/** How an endpoint without tag-on-create support refuses TagSpecification: as a parameter it
 *  does not know (UnknownParameter), or as a value it does not accept (InvalidParameterValue). */
export type TagSpecificationRefusal = 'UnknownParameter' | 'InvalidParameterValue';

interface PendingFailure {
  remaining: number;
  code: string;
  options: FailNextOptions;
}

export class Faults {
  readonly #pending: PendingFailure[] = [];
  #throttle: { spec: ThrottleSpec; buckets: Map<string, TokenBucket> } | undefined;
  /** Zone → instances that can still be launched there; absent means no limit. */
  readonly zoneCapacity = new Map<string, number>();
  tagSpecificationRefusal: TagSpecificationRefusal | undefined;

  failNext(count: number, code: string, options: FailNextOptions = {}): void {
    if (count > 0) this.#pending.push({ remaining: count, code, options });
  }

  throttle(spec: ThrottleSpec | undefined): void {
    this.#throttle = spec && { spec, buckets: new Map() };
  }

  /** The injected failure this call meets, if any: throttling first, as EC2 throttles before it
   *  looks at a request, then the queue of failures in the order they were asked for. */
  failureFor(action: string, nowMs: number): Ec2Error | undefined {
    const throttle = this.#throttle;
    if (throttle && (!throttle.spec.actions || throttle.spec.actions.includes(action))) {
      let bucket = throttle.buckets.get(action);
      if (!bucket) {
        bucket = new TokenBucket(throttle.spec.capacity, throttle.spec.refillPerSecond, nowMs);
        throttle.buckets.set(action, bucket);
      }
      if (!bucket.take(nowMs)) return new Ec2Error('RequestLimitExceeded', 'Request limit exceeded.');
    }
    const index = this.#pending.findIndex((p) => !p.options.action || p.options.action === action);
    const pending = this.#pending[index];
    if (!pending) return undefined;
    pending.remaining -= 1;
    if (pending.remaining === 0) this.#pending.splice(index, 1);
    return new Ec2Error(
      pending.code,
      pending.options.message ?? `Injected ${pending.code} for ${action}`,
      pending.options.status ?? statusFor(pending.code),
    );
  }
}
