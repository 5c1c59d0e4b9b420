// Redaction of provider error messages before they reach events, logs, API errors or status.
// A cloud's error text is not ours: an SDK may quote a request, a misconfigured proxy may echo
// headers, an EC2-compatible cloud may print what it was given. Every message from a provider
// call goes through here first. Pure.
//
// The secret access key and the session token are replaced by REDACTED. The access key id is
// replaced by its hint (AKIA…WXYZ), not removed: it is not a secret in AWS's model (every signed
// request carries it in the clear, and AWS's own errors name it so the user knows which key was
// refused), so the hint keeps that use; but it is half of the pair, and showing only what
// `weft provider ls` shows means a log never holds more of it than the listing does.

import { type AwsCredentials, accessKeyIdHint } from './aws-credentials.ts';

export const REDACTED = '[redacted]';

/** Every occurrence of each secret in `text` replaced by REDACTED, in the forms a message may
 *  quote it: as is, URL-encoded (in a quoted query string or form body) and JSON-escaped.
 *  Overlapping occurrences (one secret's end running into another's start) become one REDACTED,
 *  so no part of either survives. Empty secrets are ignored. */
export function redact(text: string, secrets: readonly string[]): string {
  return replaceSpans(text, secrets.flatMap(forms), REDACTED);
}

/** `text` with the credentials' secret and session token redacted and then the access key id
 *  replaced by its hint (see the file comment). */
export function redactCredentials(text: string, c: AwsCredentials): string {
  const secrets = c.sessionToken === undefined ? [c.secretAccessKey] : [c.secretAccessKey, c.sessionToken];
  return replaceSpans(redact(text, secrets), forms(c.accessKeyId), accessKeyIdHint(c.accessKeyId));
}

/** The message of anything a provider call threw, redacted: only the message, because an SDK
 *  error's other fields (its cause, the raw response, the stack with its arguments) are not
 *  ours to pass on. */
export function redactedMessage(err: unknown, c: AwsCredentials): string {
  const message = err instanceof Error ? err.message : typeof err === 'string' ? err : 'the provider failed without a message';
  return redactCredentials(message, c);
}

function forms(secret: string): string[] {
  if (secret === '') return [];
  return [...new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)])];
}

/** Replaces the union of every occurrence of every needle, overlapping ones included. (A
 *  left-to-right regular expression would replace the first of two overlapping occurrences and
 *  leave the rest of the second in the text.) */
function replaceSpans(text: string, needles: readonly string[], replacement: string): string {
  const spans: Array<[number, number]> = [];
  for (const needle of needles) {
    if (needle === '') continue;
    for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) spans.push([at, at + needle.length]);
  }
  if (spans.length === 0) return text;
  spans.sort((a, b) => a[0] - b[0]);
  let out = '';
  let done = 0;
  let [start, end] = spans[0] as [number, number];
  for (const [s, e] of spans.slice(1)) {
    if (s <= end) {
      end = Math.max(end, e);
      continue;
    }
    out += text.slice(done, start) + replacement;
    done = end;
    [start, end] = [s, e];
  }
  return out + text.slice(done, start) + replacement + text.slice(end);
}
