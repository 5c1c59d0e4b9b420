// Statistics and printing shared by the benchmarks. Pure: no clock, no I/O but the table.

/** The q-quantile (0..1) by linear interpolation between order statistics (type 7, what
 *  numpy and R use by default). With fewer than ~100 samples p99 lies between the two
 *  largest: the printed sample count says how much to trust it. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

export const median = (xs: readonly number[]) => quantile(xs, 0.5);
export const max = (xs: readonly number[]) => (xs.length === 0 ? NaN : Math.max(...xs));
export const min = (xs: readonly number[]) => (xs.length === 0 ? NaN : Math.min(...xs));
export const mean = (xs: readonly number[]) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

export function summarize(xs: readonly number[]): Summary {
  return { n: xs.length, p50: median(xs), p90: quantile(xs, 0.9), p99: quantile(xs, 0.99), min: min(xs), max: max(xs), mean: mean(xs) };
}

/** "12.3" for milliseconds below 100, "123" above; "–" for no data. */
export function ms(x: number): string {
  if (!Number.isFinite(x)) return '–';
  return x < 100 ? x.toFixed(1) : x.toFixed(0);
}

/** Seconds with two decimals. */
export function sec(xMs: number): string {
  return Number.isFinite(xMs) ? (xMs / 1000).toFixed(2) : '–';
}

export function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : '–';
}

/** Prints rows as a left-aligned text table with a header rule. */
export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}
