// Zone rebuilds in slices: answers keep coming from the previous zone while a build runs,
// and a burst of changes during a build costs one more build, not one per change.

import { expect, test } from 'vitest';
import { SlicedRebuild } from '../../dns/rebuild.ts';
import { buildZone } from '../../dns/zone-builder.ts';
import type { Zone } from '../../dns/zone.ts';

const zoneNamed = (serial: number): Zone => buildZone({ names: new Map() }, { serial });
function* slowBuild(serial: number, slices: number, log: string[]): Generator<void, Zone, void> {
  log.push(`start ${serial}`);
  for (let i = 0; i < slices; i++) {
    const t = performance.now();
    while (performance.now() - t < 0.2); // work that takes time
    yield;
  }
  return zoneNamed(serial);
}
const turn = () => new Promise((r) => setImmediate(r));

test('builds run across turns of the event loop; changes meanwhile cost one more build', async () => {
  const installed: number[] = [];
  const log: string[] = [];
  const r = new SlicedRebuild((z) => installed.push(z!.serial), (err) => log.push(`failed ${String(err)}`));
  r.request(() => slowBuild(1, 20, log));
  await turn();
  expect(log).toEqual(['start 1']);
  expect(installed).toEqual([]); // 20 slices of 0.2 ms do not fit one turn
  r.request(() => slowBuild(2, 2, log));
  r.request(() => slowBuild(3, 2, log));
  for (let i = 0; i < 100 && r.busy; i++) await turn();
  expect(installed).toEqual([1, 3]);
  expect(log).toEqual(['start 1', 'start 3']);
});

test('a build that throws leaves the previous zone and does not stop later builds', async () => {
  const installed: number[] = [];
  const failures: string[] = [];
  const r = new SlicedRebuild((z) => installed.push(z!.serial), (err) => failures.push((err as Error).message));
  r.request(function* () {
    yield;
    throw new Error('bad records');
  });
  for (let i = 0; i < 10 && r.busy; i++) await turn();
  r.request(() => slowBuild(5, 1, []));
  for (let i = 0; i < 10 && r.busy; i++) await turn();
  expect(failures).toEqual(['bad records']);
  expect(installed).toEqual([5]);
  r.stop();
  r.request(() => slowBuild(6, 1, []));
  await turn();
  expect(installed).toEqual([5]);
});
