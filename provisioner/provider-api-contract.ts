// The API methods of providers (`weft provider ...`). Credentials travel only inside the API's
// encrypted channel (the unix socket, or Noise over the mesh), are sealed by the peer that takes
// them before anything is written, and are never sent back: `ls` shows a hint of the key id.

import { method, NONE, text, v } from '../mesh/api/method.ts';
import type { ProviderView } from './credentials/provider-record.ts';

const name = v.pipe(v.string(), v.regex(/^[a-z][a-z0-9-]{0,31}$/, 'a provider name is a lowercase label of at most 32 characters'));
/** Bounds only, no pattern: a schema's message may quote what it refused, and a secret must
 *  never be quoted (the access key id is checked by the handler, which words its own errors). */
const credentials = v.strictObject({
  accessKeyId: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  secretAccessKey: v.pipe(v.string(), v.minLength(1), v.maxLength(512)),
  sessionToken: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(8192))),
});
const SEALS = 'adding or changing cloud credentials is for admin tokens';

export type ProviderRow = ProviderView & { name: string; clusters: string[] };

export const providerAdd = method<ProviderRow>()({
  name: 'provider.add', access: 'admin', accessReason: SEALS,
  params: v.strictObject({ name, type: v.literal('aws'), region: text(64), endpoint: v.optional(text(2048)), credentials }),
});
export const providerList = method<ProviderRow[]>()({ name: 'provider.ls', access: 'operator', params: NONE });
export const providerRotate = method<ProviderRow>()({
  name: 'provider.rotate', access: 'admin', accessReason: SEALS, params: v.strictObject({ name, credentials }),
});
export const providerRemove = method<{ removed: string }>()({
  name: 'provider.rm', access: 'admin', accessReason: SEALS, params: v.strictObject({ name }),
});
