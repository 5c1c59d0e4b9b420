// Memory sizes as Docker and Compose write them: `512m`, `50M`, `1g`, `1.5gb`, `100000m`, or a
// number of bytes. Units are powers of 1024, as Docker's own parser reads them.

const UNIT: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, t: 1024 ** 4, tb: 1024 ** 4 };
const SIZE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/;

/** 1 TiB per container is above any host weft runs on; larger is a typo. */
export const MAX_MEMORY_BYTES = 1024 ** 4;

/** Bytes, or undefined if `v` is not a size up to MAX_MEMORY_BYTES. Docker refuses a limit
 *  under 6 MiB, but that is Docker's to say when the container is created. */
export function parseMemory(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= MAX_MEMORY_BYTES ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = SIZE.exec(v.trim().toLowerCase());
  if (m === null) return undefined;
  const unit = UNIT[m[2] as string];
  if (unit === undefined) return undefined;
  const bytes = Math.floor(Number(m[1]) * unit);
  return bytes <= MAX_MEMORY_BYTES ? bytes : undefined;
}
