// IPv4 addresses as text and as unsigned 32-bit numbers: the one parser for every part of weft
// that reads an address (IPAM, the data plane, the Docker plugin, DNS). Strict dotted quads
// only: no leading zeros (inet_aton would read 010 as octal), no shorthand forms.

/** A dotted-quad IPv4 address as an unsigned integer, or undefined. A loop over char codes:
 *  zone builds parse every registered address, so it avoids a regex and its allocations. */
export function parseIPv4(s: string): number | undefined {
  let value = 0;
  let octet = -1;
  let parts = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (octet < 0 || parts === 4) return undefined;
      value = value * 256 + octet;
      parts++;
      octet = -1;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && octet === 0) return undefined; // no leading zeros
      octet = (octet < 0 ? 0 : octet * 10) + (c - 0x30);
      if (++digits > 3 || octet > 255) return undefined;
    } else {
      return undefined;
    }
  }
  return parts === 4 ? value : undefined;
}

export function formatIPv4(n: number): string {
  return `${Math.floor(n / 16777216) % 256}.${Math.floor(n / 65536) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`;
}

/** Orders addresses numerically (10.0.0.9 before 10.0.0.10); text that is not an address
 *  sorts last, as text. */
export function compareIPv4(a: string, b: string): number {
  const x = parseIPv4(a);
  const y = parseIPv4(b);
  if (x !== undefined && y !== undefined) return x - y;
  if (x !== undefined) return -1;
  if (y !== undefined) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
