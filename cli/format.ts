import type { IpamStatus } from '../mesh/ipam/ipam.ts';

/** Plain-text tables for the terminal; --json output bypasses these. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

export function ago(iso: string | null): string {
  if (!iso) return '-';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 1) return 'now';
  if (s < 120) return `${Math.round(s)}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** `weft status ipam`, from the IpamStatus the peer returns. */
export function formatIpamStatus(s: IpamStatus): string {
  const lines = [
    `range:       ${s.range} (${s.size} addresses)`,
    `state:       ${s.message === s.state ? s.state : `${s.state}: ${s.message}`}`,
  ];
  if (s.state === 'ready') {
    lines.push(
      `owned here:  ${s.owned} (${s.free} free, ${s.inUse} in use, ${s.reserved} reserved for identities)`,
      `unreachable: ${s.unreachable} owned by peers not reachable now`,
      `ring:        ${s.peers} peers, ${s.tokens} ranges`,
    );
  }
  if (s.pending) lines.push(`waiting:     ${s.pending} allocation(s)`);
  for (const r of s.removals ?? []) {
    lines.push(`removal:     ${r.dead} -> ${r.heir ?? 'pending'}${r.waitingFor.length ? ` (waiting for ${r.waitingFor.join(', ')})` : ''}`);
  }
  return lines.join('\n');
}
