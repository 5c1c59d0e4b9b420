// EC2's request-rate throttling, as its developer guide describes it: a bucket of tokens per
// API action, one token per request, refilled at a fixed rate up to the bucket's size; a
// request that finds the bucket empty fails with RequestLimitExceeded. Pure: the caller owns time.

export class TokenBucket {
  readonly #capacity: number;
  readonly #refillPerMs: number;
  #tokens: number;
  #updatedAt: number;

  constructor(capacity: number, refillPerSecond: number, nowMs: number) {
    this.#capacity = capacity;
    this.#refillPerMs = refillPerSecond / 1000;
    this.#tokens = capacity;
    this.#updatedAt = nowMs;
  }

  /** Takes a token if there is one. */
  take(nowMs: number): boolean {
    const elapsed = Math.max(0, nowMs - this.#updatedAt);
    this.#tokens = Math.min(this.#capacity, this.#tokens + elapsed * this.#refillPerMs);
    this.#updatedAt = nowMs;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
