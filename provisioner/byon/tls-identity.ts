// The install listener's TLS identity: a fresh P-256 key and a self-signed certificate for it,
// and the pin of the key as curl takes it (`--pinnedpubkey sha256//<base64>`). The one-liner
// carries the pin, so curl talks only to the key that made it, with no certificate authority:
// a host on the path can neither read the install token, the bundle or the join token, nor
// stand in for the peer. The mesh's own transport (libp2p, Noise) is no help here: curl cannot
// speak it, and a fresh host has nothing else.
//
// Node can use a certificate but not make one, and weft adds no dependency for the ~40 lines of
// DER below: a version 3 certificate without extensions (RFC 5280 4.1), signed ECDSA-SHA256.

import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

/** The certificate's validity: curl checks the pin, not the dates (-k), but a peer's listener
 *  rarely lives longer than a month and a sane window costs nothing. An hour of slack before
 *  now covers clocks that disagree. */
const VALID_BEFORE_MS = 3600_000;
const VALID_FOR_MS = 30 * 24 * 3600_000;
/** A positive 128-bit serial (RFC 5280 asks for at most 20 octets, and positive). */
const SERIAL_BYTES = 16;

export interface TlsIdentity {
  /** PEM, for node:tls. */
  key: string;
  cert: string;
  /** `sha256//` + base64 of the SHA-256 of the DER SubjectPublicKeyInfo. */
  pin: string;
}

/** The pin of a public key, in curl's form. */
export function pinOf(publicKey: KeyObject): string {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return `sha256//${createHash('sha256').update(spki).digest('base64')}`;
}

export function selfSignedIdentity(now: Date, commonName = 'weft-install'): TlsIdentity {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const serial = randomBytes(SERIAL_BYTES);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01; // positive, and no leading zero octet to strip
  const name = seq(tlv(0x31, seq(oid('550403'), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))), // version 3
    tlv(0x02, serial),
    ECDSA_SHA256,
    name,
    seq(time(new Date(now.getTime() - VALID_BEFORE_MS)), time(new Date(now.getTime() + VALID_FOR_MS))),
    name,
    spki,
  );
  const signature = sign('sha256', tbs, privateKey); // DER ECDSA-Sig-Value for an EC key
  const der = seq(tbs, ECDSA_SHA256, tlv(0x03, Buffer.from([0]), signature));
  return {
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    cert: `-----BEGIN CERTIFICATE-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE-----\n`,
    pin: pinOf(publicKey),
  };
}

/** ecdsa-with-SHA256, 1.2.840.10045.4.3.2, as an AlgorithmIdentifier. */
const ECDSA_SHA256 = seq(oid('2a8648ce3d040302'));

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let m = n; m > 0; m = Math.floor(m / 256)) bytes.unshift(m & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

function seq(...parts: Buffer[]): Buffer {
  return tlv(0x30, ...parts);
}

function oid(hex: string): Buffer {
  return tlv(0x06, Buffer.from(hex, 'hex'));
}

/** UTCTime (YYMMDDHHMMSSZ) until 2049, GeneralizedTime after, as RFC 5280 4.1.2.5 says. */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}
