// Domain names as the DNS core handles them: normalized text for people and records, and a
// map key that is the name's wire form, lowercased, read as latin1. The query decoder
// produces the same key straight from the packet bytes, so a lookup needs no text decoding,
// no splitting and no allocation beyond one short string.

import { MESH_DOMAIN } from '../mesh/naming.ts';
import { isIPv4 } from 'node:net';

/** RFC 1035 §2.3.4: a name is at most 255 octets on the wire, a label at most 63. */
export const MAX_NAME_WIRE = 255;
export const MAX_LABEL = 63;

/** The domain answered unless a test or benchmark gives another: the mesh's. */
export const DEFAULT_DOMAIN = MESH_DOMAIN;

/** Labels we accept in records: letters, digits, hyphen and underscore (Docker container
 *  names and Compose services use `_`; SRV owners start with `_`). Anything else in a
 *  container name is a mistake upstream of DNS and is reported, not served. */
const LABEL_RE = /^[a-z0-9_-]{1,63}$/;

/** Whether `label` is one label we accept in records (lowercase; see LABEL_RE). */
export function isLabel(label: string): boolean {
  return LABEL_RE.test(label);
}

/** `Web.Shop.weft.local.` → `web.shop.weft.local`; the root is `""`. Throws a sentence. */
export function normalizeName(name: string): string {
  let n = name.trim().toLowerCase();
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (n === '') return '';
  const labels = n.split('.');
  for (const l of labels) {
    if (l.length > MAX_LABEL) throw new Error(`"${name}" has a label longer than ${MAX_LABEL} characters`);
    if (!LABEL_RE.test(l)) throw new Error(`"${name}" is not a valid DNS name (labels are letters, digits, "-" and "_", 1 to ${MAX_LABEL} long)`);
  }
  if (wireLength(n) > MAX_NAME_WIRE) throw new Error(`"${name}" is longer than ${MAX_NAME_WIRE} octets`);
  return n;
}

/** Whether a name is already normalized (lowercase, valid labels, no trailing dot): the
 *  common case, checked in one pass without allocating. */
export function isNormalName(name: string): boolean {
  const n = name.length;
  if (n === 0 || n > MAX_NAME_WIRE - 2) return false;
  let label = 0;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x2e) {
      if (label === 0) return false;
      label = 0;
    } else if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f) {
      if (++label > MAX_LABEL) return false;
    } else {
      return false;
    }
  }
  return label > 0;
}

/** Octets of the wire form: one length octet per label plus the label, plus the root. */
export function wireLength(normalized: string): number {
  return normalized === '' ? 1 : normalized.length + 2;
}

/** Wire form (uncompressed) of a normalized name. */
export function nameToWire(normalized: string): Buffer {
  const out = Buffer.allocUnsafe(wireLength(normalized));
  let o = 0;
  if (normalized !== '') {
    for (const l of normalized.split('.')) {
      out[o++] = l.length;
      o += out.write(l, o, 'latin1');
    }
  }
  out[o] = 0;
  return out;
}

/** The lookup key of a normalized name: its wire form as a latin1 string. */
export function nameKey(normalized: string): string {
  return nameToWire(normalized).toString('latin1');
}

/** A key back to text, for logs and tests (`\x03web\x04shop…` → `web.shop…`). Non-printable
 *  octets are escaped as `\DDD` (RFC 1035 master-file style) so hostile names log safely. */
export function keyToName(key: string): string {
  const labels: string[] = [];
  let i = 0;
  while (i < key.length) {
    const len = key.charCodeAt(i);
    if (len === 0) break;
    let label = '';
    for (let j = i + 1; j <= i + len && j < key.length; j++) {
      const c = key.charCodeAt(j);
      label += c > 0x20 && c < 0x7f && c !== 0x2e && c !== 0x5c ? key[j] : `\\${String(c).padStart(3, '0')}`;
    }
    labels.push(label);
    i += len + 1;
  }
  return labels.join('.');
}

/** Whether `key` is `suffixKey` or ends with it at a label boundary (so `xweft.local` is not
 *  under `weft.local`, and neither is a binary label that happens to contain `\x04weft`). */
export function keyIsUnder(key: string, suffixKey: string): boolean {
  if (key.length < suffixKey.length || !key.endsWith(suffixKey)) return false;
  const cut = key.length - suffixKey.length;
  let i = 0;
  while (i < cut) i += key.charCodeAt(i) + 1;
  return i === cut;
}

/** The labels of a key, first to last (root excluded), as raw strings. */
export function keyLabels(key: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < key.length) {
    const len = key.charCodeAt(i);
    if (len === 0) break;
    out.push(key.slice(i + 1, i + 1 + len));
    i += len + 1;
  }
  return out;
}

/**
 * A name as the user or a record source wrote it, made absolute: a trailing dot or the
 * domain at its end means absolute; a single label is relative to the domain (`db` →
 * `db.weft.local`); anything else with dots is taken as written (`db.example.com`).
 */
export function qualify(name: string, domain: string): string {
  const trimmed = name.trim();
  if (trimmed.endsWith('.')) return normalizeName(trimmed);
  const n = normalizeName(trimmed);
  const d = normalizeName(domain);
  if (n === d || n.endsWith('.' + d) || n.includes('.')) return n;
  return `${n}.${d}`;
}

/** `10.32.0.1` → `1.0.32.10.in-addr.arpa`. */
export function reverseName(ipv4: string): string {
  if (!isIPv4(ipv4)) throw new Error(`"${ipv4}" is not an IPv4 address`);
  return ipv4.split('.').reverse().join('.') + '.in-addr.arpa';
}

