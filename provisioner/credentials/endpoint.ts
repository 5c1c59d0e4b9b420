// The EC2 API endpoint of a provider (`--endpoint`), for EC2-compatible clouds and the local
// EC2 double the tests run: where the provisioner sends requests signed with the provider's
// credentials. Pure.

/** Longer than any real endpoint; bounds what desired state and `weft provider ls` carry. */
export const MAX_ENDPOINT_LENGTH = 2048;

/**
 * Why `x` is not an acceptable endpoint (undefined: it is one).
 *
 * https anywhere. http only to a loopback or private address (127/8, 10/8, 172.16/12,
 * 192.168/16, ::1, fc00::/7, localhost): the tests' EC2 double and clouds on a private network
 * serve plain http, and there the path never leaves networks the operator runs. Elsewhere http
 * would let anyone on the path read what the provisioner sends (node user data carries the join
 * token), replay a signed request within SigV4's five minutes, and forge answers (instance ids
 * and addresses the provisioner then trusts). A name other than localhost is refused over http
 * because what it resolves to can change after this check.
 *
 * No user name or password in the URL: `weft provider ls` prints the endpoint, and credentials
 * belong in the sealed box. No query or fragment: the EC2 API takes its parameters in the body.
 */
export function endpointProblem(x: unknown): string | undefined {
  if (typeof x !== 'string' || x.length === 0 || x.length > MAX_ENDPOINT_LENGTH) return `an endpoint must be a URL of at most ${MAX_ENDPOINT_LENGTH} characters`;
  // The URL parser would drop these silently; the stored string must be the URL that is used.
  if (/[\s\x00-\x1f\x7f]/.test(x)) return 'the endpoint must not contain spaces or control characters';
  let url: URL;
  try {
    url = new URL(x);
  } catch {
    return 'the endpoint is not a URL: give one like https://ec2.example.com';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'the endpoint must be an https:// URL';
  if (url.username !== '' || url.password !== '') return 'the endpoint must not hold a user name or password: credentials are given separately, and sealed';
  if (url.search !== '' || url.hash !== '' || x.includes('?') || x.includes('#')) return 'the endpoint must not have a query or fragment';
  if (url.hostname === '') return 'the endpoint needs a host';
  if (url.protocol === 'http:' && !isLoopbackOrPrivate(url.hostname)) {
    return 'the endpoint must be https://, unless it is a loopback or private address (127.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, ::1, fc00::/7, localhost)';
  }
  return undefined;
}

/** `hostname` as WHATWG URL gives it: IPv4 in dotted decimal (it normalises 0x7f.1 and
 *  2130706433 to 127.0.0.1), IPv6 in brackets, lower case and compressed. */
function isLoopbackOrPrivate(hostname: string): boolean {
  if (hostname === 'localhost') return true;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(hostname);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
  }
  if (hostname === '[::1]') return true;
  // fc00::/7: a first group of four hex digits starting fc or fd (the serialiser drops leading
  // zeros, so "[fd::" is 0x00fd, not a unique local address).
  return /^\[f[cd][0-9a-f]{2}:/.test(hostname);
}
