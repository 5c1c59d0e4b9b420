// DescribeAvailabilityZones: the double's zones, all `available`, by name, id or filter.

import type { ActionRow } from '../action.ts';
import { invalidValue } from '../errors.ts';
import { applyFilters, type FilterTable, parseFilters } from '../filters.ts';
import type { Zone } from '../network.ts';
import type { World } from '../world.ts';
import { el, itemSet } from '../xml.ts';

const NO_TAGS: ReadonlyMap<string, string> = new Map();

function zoneFilters(world: World): FilterTable<Zone> {
  return {
    'zone-name': (z) => [z.name],
    'zone-id': (z) => [z.zoneId],
    'region-name': () => [world.region],
    state: () => ['available'],
    'zone-type': () => ['availability-zone'],
    'opt-in-status': () => ['opt-in-not-required'],
    'group-name': () => [world.region],
  };
}

export const describeAvailabilityZones: ActionRow = {
  name: 'DescribeAvailabilityZones',
  params: ['ZoneName', 'ZoneId', 'Filter', 'AllAvailabilityZones'],
  handle(ctx) {
    const { params, world } = ctx;
    params.bool('AllAvailabilityZones');
    const names = params.list('ZoneName');
    const ids = params.list('ZoneId');
    for (const name of names) {
      if (!world.network.zone(name)) throw invalidValue(`Invalid availability zone: [${name}]`);
    }
    for (const id of ids) {
      if (!world.network.zones.some((z) => z.zoneId === id)) throw invalidValue(`Invalid availability zone ID: [${id}]`);
    }
    const named = world.network.zones.filter(
      (z) => (names.length === 0 && ids.length === 0) || names.includes(z.name) || ids.includes(z.zoneId),
    );
    const zones = applyFilters(named, parseFilters(params), zoneFilters(world), () => NO_TAGS);
    ctx.checkDryRun();
    return [
      itemSet(
        'availabilityZoneInfo',
        zones.map((zone) => [
          el('zoneName', zone.name),
          el('zoneState', 'available'),
          el('regionName', world.region),
          el('zoneId', zone.zoneId),
          el('zoneType', 'availability-zone'),
          el('optInStatus', 'opt-in-not-required'),
          el('groupName', world.region),
          el('networkBorderGroup', world.region),
          el('messageSet'),
        ]),
      ),
    ];
  },
};
