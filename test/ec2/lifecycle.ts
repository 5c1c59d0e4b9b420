// Moves instances through EC2's lifecycle on timers, and lets a test make an instance real:
// `onLaunch` is called (after the RunInstances answer has gone out) with the instance and its
// decoded user data, and may give it a private address (a test host's); the instance turns
// `running` once both the launch delay has passed and the hook has finished. `onTerminate` is
// called when it starts shutting down; it is `terminated` once that hook and the terminate
// delay are done, and stays listed for a while after, as on EC2. The double never runs user data.

import { isIpv4, type Network } from './network.ts';
import { type InstanceRecord, type InstanceView, toView } from './instances.ts';

/** An instance as the launch hook gets it: a snapshot, plus a way to set its address. */
export interface LaunchedInstance extends InstanceView {
  /** Replaces the private address the double gave it (say, with a test host's). */
  setPrivateIp(ip: string): void;
}

export type LaunchHook = (instance: LaunchedInstance) => void | Promise<void>;
export type TerminateHook = (instance: InstanceView) => void | Promise<void>;

export interface LifecycleOptions {
  network: Network;
  launchDelayMs: number;
  terminateDelayMs: number;
  terminatedVisibleMs: number;
  /** Where a hook's failure is reported (the instance itself fails to launch, as on EC2). */
  log: (message: string) => void;
}

export class Lifecycle {
  onLaunch: LaunchHook | undefined;
  onTerminate: TerminateHook | undefined;
  readonly #options: LifecycleOptions;
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Delays under way, so that stopping ends them instead of leaving their work hanging. */
  readonly #wakers = new Map<NodeJS.Timeout, () => void>();
  readonly #inFlight = new Set<Promise<void>>();
  #stopped = false;

  constructor(options: LifecycleOptions) {
    this.#options = options;
  }

  /** Starts a pending instance on its way to running. */
  launched(instance: InstanceRecord): void {
    this.#track(this.#launch(instance));
  }

  /** Starts an instance already marked shutting-down on its way to terminated. */
  terminating(instance: InstanceRecord): void {
    this.#track(this.#terminate(instance));
  }

  /** Resolves when every transition under way has finished. */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const [timer, wake] of this.#wakers) {
      clearTimeout(timer);
      wake();
    }
    this.#wakers.clear();
  }

  async #launch(instance: InstanceRecord): Promise<void> {
    await this.#delay(0); // the hook runs after the RunInstances answer is sent
    const hook = this.onLaunch;
    const launched: LaunchedInstance = {
      ...toView(instance),
      setPrivateIp: (ip: string) => {
        if (!isIpv4(ip)) throw new TypeError(`setPrivateIp: '${ip}' is not an IPv4 address`);
        if (instance.state === 'pending' || instance.state === 'running') instance.privateIpAddress = ip;
      },
    };
    const [hookError] = await Promise.all([
      Promise.resolve()
        .then(() => hook?.(launched))
        .then(() => undefined, (error: unknown) => error ?? new Error('launch hook failed')),
      this.#delay(this.#options.launchDelayMs),
    ]);
    if (this.#stopped || instance.state !== 'pending') return;
    if (hookError !== undefined) {
      this.#options.log(`ec2 double: launch hook failed for ${instance.instanceId}: ${String(hookError)}`);
      instance.stateReason = { code: 'Server.InternalError', message: 'Server.InternalError: Internal error on launch' };
      this.#ended(instance);
      return;
    }
    instance.state = 'running';
    instance.publicIpAddress = this.#options.network.allocatePublicIp();
  }

  async #terminate(instance: InstanceRecord): Promise<void> {
    const hook = this.onTerminate;
    const view = toView(instance);
    const [hookError] = await Promise.all([
      Promise.resolve()
        .then(() => hook?.(view))
        .then(() => undefined, (error: unknown) => error ?? new Error('terminate hook failed')),
      this.#delay(this.#options.terminateDelayMs),
    ]);
    if (hookError !== undefined) {
      this.#options.log(`ec2 double: terminate hook failed for ${instance.instanceId}: ${String(hookError)}`);
    }
    if (this.#stopped || instance.state !== 'shutting-down') return;
    this.#ended(instance);
  }

  #ended(instance: InstanceRecord): void {
    instance.state = 'terminated';
    instance.privateIpAddress = undefined;
    instance.publicIpAddress = undefined;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      instance.listed = false;
    }, this.#options.terminatedVisibleMs);
    timer.unref();
    this.#timers.add(timer);
  }

  #delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#stopped) return resolve();
      const timer = setTimeout(() => {
        this.#wakers.delete(timer);
        resolve();
      }, ms);
      this.#wakers.set(timer, resolve);
    });
  }

  #track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => this.#options.log(`ec2 double: lifecycle error: ${String(error)}`));
    this.#inFlight.add(tracked);
    void tracked.finally(() => this.#inFlight.delete(tracked));
  }
}
