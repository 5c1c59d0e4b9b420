// The usual vitest wiring of a harness: one per describe block, created before its tests,
// cleaned up after them, with every process log printed when a test fails.
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { Harness, type HarnessOptions } from './harness.ts';

/** Returns a getter for the describe block's harness (it exists only once beforeAll ran). */
export function useHarness(opts: HarnessOptions): () => Harness {
  let mesh: Harness | undefined;
  beforeAll(async () => {
    mesh = await Harness.create(opts);
  });
  afterAll(async () => {
    await mesh?.cleanup();
  });
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      if (mesh !== undefined) console.error(mesh.dumpLogs());
    });
  });
  return () => {
    if (mesh === undefined) throw new Error('useHarness: the harness is created in beforeAll; use it inside a test');
    return mesh;
  };
}
