// Checksums for IPAM gossip: two peers compare them to decide whether to send each other their
// state. A collision only delays a repair until the next periodic full exchange, so FNV-1a in
// two 32-bit lanes (cheap, deterministic, no dependencies) is enough.

export function fnv1a64(s: string): string {
  let a = 0x811c9dc5;
  let b = 0x2545f491;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ (c + 0x9e), 0x01000193);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}
