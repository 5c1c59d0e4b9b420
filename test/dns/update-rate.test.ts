// How often the registry's changes reach the zone: an isolated change at once (after the short
// debounce), a stream of changes in batches no closer than MIN_UPDATE_INTERVAL_MS, so that
// sustained churn costs the answering thread a few updates a second, not one per change.
import { afterEach, describe, expect, test, vi } from 'vitest';
import { MIN_UPDATE_INTERVAL_MS, REBUILD_DEBOUNCE_MS, RegistryRecordSource } from '../../dns/registry-source.ts';
import { MemoryRegistry } from './memory-mesh.ts';

afterEach(() => {
  vi.useRealTimers();
});

describe('update rate of the registry source', () => {
  test('an isolated change is applied after the debounce; ten a second are applied in batches', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const reg = new MemoryRegistry();
    const source = new RegistryRecordSource(reg.view('me'));
    const updates: number[] = [];
    source.subscribe(() => updates.push(Date.now()));
    reg.container('p1', { id: 'c0', name: 'web-0', addr: '10.32.0.10' });
    vi.advanceTimersByTime(REBUILD_DEBOUNCE_MS);
    expect(updates).toHaveLength(1);
    expect(source.current().names.has('web-0.weft.local')).toBe(true);
    // Quiet for longer than the interval: the next change goes out at once again.
    vi.advanceTimersByTime(MIN_UPDATE_INTERVAL_MS * 2);
    reg.container('p1', { id: 'c1', name: 'web-1', addr: '10.32.0.11' });
    vi.advanceTimersByTime(REBUILD_DEBOUNCE_MS);
    expect(updates).toHaveLength(2);
    // Sustained churn: 10 changes a second for 2 s.
    for (let i = 0; i < 20; i++) {
      reg.container('p1', { id: `m${i}`, name: `m-${i}`, addr: `10.32.1.${i + 1}` });
      vi.advanceTimersByTime(100);
    }
    vi.advanceTimersByTime(MIN_UPDATE_INTERVAL_MS);
    const during = updates.slice(2);
    expect(during.length).toBeLessThanOrEqual(Math.ceil(2000 / MIN_UPDATE_INTERVAL_MS) + 1);
    for (let i = 1; i < during.length; i++) expect(during[i]! - during[i - 1]!).toBeGreaterThanOrEqual(MIN_UPDATE_INTERVAL_MS);
    // Nothing is lost by batching.
    for (let i = 0; i < 20; i++) expect(source.current().names.has(`m-${i}.weft.local`)).toBe(true);
    source.close();
  });
});
