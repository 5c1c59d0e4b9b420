// The API methods of bringing your own node (`weft node install-script`, `install-tokens`,
// `install-revoke`) as clients see them. The handlers are in install-server.ts.

import { method, text, v } from '../../mesh/api/method.ts';
import type { InstallTokenView } from './install-token.ts';
import { MAX_TAGS, NODE_NAME, TAG } from './install-script.ts';

/** A day: an install command is for a host being set up now; one that lives longer is a
 *  standing invitation into the mesh. */
export const MAX_EXPIRES_S = 24 * 3600;
/** An hour: time to open a console on the new host, not time for the command to wander. */
export const DEFAULT_EXPIRES_S = 3600;
/** Ids are 12 hex characters (install-token.ts); room for a clear error on a pasted token. */
const MAX_ID = 64;

export interface InstallScriptResult {
  /** The one-liner to run as root on the new host (null with userData). */
  command: string | null;
  /** With userData: the script itself, its join token embedded (a secret: give it to one host). */
  userData: string | null;
  /** The serving peer's install listener and the pin of its key (also in the command). */
  url: string;
  pin: string;
  token: { id: string; expiresAt: string };
  bundle: { sha256: string; bytes: number };
  name: string | null;
  tags: string[];
  dataplane: boolean;
}

export const nodeInstallScript = method<InstallScriptResult>()({
  name: 'node.install-script',
  // Not `admin`: the command's install token fetches a join token, which is the mesh key, and
  // API tokens never reach the mesh key (README, security model: an admin token may not make
  // a join token). Whoever may run this could take the join token for themselves.
  access: 'member',
  accessReason: 'an install command hands out a join token, which carries the mesh secret',
  params: v.strictObject({
    name: v.optional(v.pipe(v.string(), v.regex(NODE_NAME, 'a node name is a DNS label: letters, digits and inner hyphens, at most 63'))),
    tags: v.optional(v.pipe(v.array(v.pipe(v.string(), v.regex(TAG, 'tags are 1-128 letters, digits and . _ : = @ + / - (starting with a letter or digit)'))), v.maxLength(MAX_TAGS))),
    expiresSeconds: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_EXPIRES_S))),
    /** false: the node runs --no-dataplane and needs no Debian package. */
    dataplane: v.optional(v.boolean()),
    /** The script itself, with the join token in it, for a cloud's user data (cloud-init runs
     *  it at first boot), instead of a command that fetches both. */
    userData: v.optional(v.boolean()),
  }),
});

/** Install tokens this peer made: live ones and those ended in the last day (never their text). */
export const nodeInstallTokens = method<InstallTokenView[]>()({
  name: 'node.install-tokens', access: 'operator', params: v.strictObject({}),
});

/** Ends a live install token at once: its command stops working. Taking access away is safe
 *  for anyone who may otherwise change the mesh's membership. */
export const nodeInstallRevoke = method<{ id: string; revoked: true }>()({
  name: 'node.install-revoke', access: 'admin', params: v.strictObject({ id: text(MAX_ID) }),
});
