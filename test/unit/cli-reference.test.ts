// The CLI reference says what the code does: `weft launch`'s options come from one table
// (cli/launch-options.ts), and the README and `--help` must say what it says, flag by flag,
// default by default; `weft events` lists the event types membership reports.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { LAUNCH_OPTIONS } from '../../cli/launch-options.ts';
import { MEMBERSHIP_EVENT_TYPES } from '../../mesh/membership/member.ts';
import { CONTROL_EVENT_TYPES } from '../../mesh/events.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const flagName = (flags: string) => flags.split(/[ <]/)[0] as string;

/** The rows of the README table that follows "`weft launch` options:". */
function readmeRows(): Array<{ option: string; default: string }> {
  const text = readFileSync(`${ROOT}/README.md`, 'utf8');
  const start = text.indexOf('`weft launch` options:');
  expect(start).toBeGreaterThan(0);
  const rows: Array<{ option: string; default: string }> = [];
  for (const line of text.slice(start).split('\n').slice(1)) {
    if (line.trim() === '') { if (rows.length) break; continue; }
    if (!line.startsWith('|')) break;
    const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    if (cells[0] === 'option' || /^-+$/.test(cells[0] ?? '')) continue;
    rows.push({ option: cells[0] ?? '', default: cells[1] ?? '' });
  }
  return rows;
}

describe('weft launch options', () => {
  test('the README lists every option, in order, with its default and environment variables', () => {
    const rows = readmeRows();
    expect(rows.map((r) => /`(--[a-z-]+)/.exec(r.option)?.[1])).toEqual(LAUNCH_OPTIONS.map((o) => flagName(o.flags)));
    LAUNCH_OPTIONS.forEach((o, i) => {
      const row = rows[i]!;
      expect(row.default, flagName(o.flags)).toBe(o.readmeDefault ?? `\`${o.default}\``);
      for (const env of o.env ?? []) expect(row.option, flagName(o.flags)).toContain(`\`${env}\``);
    });
  });

  test('--help names every option with its default', () => {
    const r = spawnSync(`${ROOT}/bin/weft`, ['launch', '--help'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(0);
    const help = r.stdout.replace(/\s+/g, ' ');
    for (const o of LAUNCH_OPTIONS) {
      expect(help).toContain(o.flags);
      if (o.default !== undefined) expect(help, o.flags).toContain(`default: "${o.default}")`);
      for (const env of o.env ?? []) expect(help, o.flags).toContain(env);
    }
  });
});

describe('weft events', () => {
  test('the README and --help list exactly the event types membership reports', () => {
    const readme = readFileSync(`${ROOT}/README.md`, 'utf8');
    const row = /^\| `weft events \[--follow\]` \| membership events: ([a-z, ]+); control plane events: ([a-z, -]+) \|$/m.exec(readme);
    expect(row?.[1]?.split(', ')).toEqual([...MEMBERSHIP_EVENT_TYPES]);
    expect(row?.[2]?.split(', ')).toEqual([...CONTROL_EVENT_TYPES]);
    const r = spawnSync(`${ROOT}/bin/weft`, ['--help'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stdout.replace(/\s+/g, ' ')).toContain(`membership events: ${MEMBERSHIP_EVENT_TYPES.join(', ')}; control plane events: ${CONTROL_EVENT_TYPES.join(', ')}`);
  });
});
