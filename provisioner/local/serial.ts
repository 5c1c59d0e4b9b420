// Runs async sections one at a time, per key: a node's create and destroy never overlap, and
// address allocation, namespace creation and the bridge's removal happen one at a time.
export class Serial {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `fn` after every earlier section of `key` has settled; its result is the section's. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn); // tails never reject
    const tail = next.catch(() => {});
    this.tails.set(key, tail);
    // Forget the key once nothing is queued behind this section: the map stays small.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}
