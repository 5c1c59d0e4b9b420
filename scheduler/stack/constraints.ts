// Compose's deploy.placement.constraints as deploy tags (a node must carry every tag):
//
//   node.labels.K==V, engine.labels.K==V   → tag `K=V`         (a node launched with --tags K=V)
//   node.role==manager|worker              → tag `role=manager` / `role=worker`
//   node.hostname==H                       → tag `hostname=H`
//   node.platform.arch==A                  → tag `arch=A`
//   node.platform.os==linux                → no tag (every weft node runs Linux)
//
// Which tags a node carries besides its --tags (role, hostname, arch) is for the node model to
// provide. A `!=` constraint is an error, not a warning: tags can only require, and ignoring
// the constraint would place containers where the file says they must not go. So are
// node.id (weft's node ids are not swarm's) and an os other than linux (never placeable).

import { show } from './errors.ts';
import { MAX_TAG_LENGTH } from './limits.ts';
import { type At, fail, stringList } from './values.ts';

const CONSTRAINT = /^\s*([A-Za-z0-9_.-]+)\s*(==|!=)\s*(.+?)\s*$/;

export function constraintTags(at: At, key: string, v: unknown): string[] | undefined {
  const items = stringList(at, key, v);
  if (items === undefined) return undefined;
  const tags: string[] = [];
  for (const c of items) {
    const tag = one(at, key, c);
    if (tag === undefined) return undefined;
    if (tag !== '' && !tags.includes(tag)) tags.push(tag);
  }
  return tags;
}

/** The tag for one constraint ('' for none), or undefined after an error. */
function one(at: At, key: string, c: string): string | undefined {
  const m = CONSTRAINT.exec(c);
  if (m === null) return fail(at, key, `${show(c)} is not a constraint like "node.labels.zone==a"`);
  const [, field, op, value] = m as unknown as [string, string, string, string];
  if (op === '!=') return fail(at, key, `"${c}" excludes nodes, which deploy tags cannot express; weft supports == constraints only`);
  let tag: string | undefined;
  const label = /^(?:node|engine)\.labels\.(.+)$/.exec(field);
  if (label !== null) tag = `${label[1]}=${value}`;
  else if (field === 'node.role') {
    if (value !== 'manager' && value !== 'worker') return fail(at, key, `"${c}" names role "${value}"; a node is a manager or a worker`);
    tag = `role=${value}`;
  } else if (field === 'node.hostname') tag = `hostname=${value}`;
  else if (field === 'node.platform.arch') tag = `arch=${value}`;
  else if (field === 'node.platform.os') {
    if (value.toLowerCase() !== 'linux') return fail(at, key, `"${c}" can never be met: every weft node runs Linux`);
    return '';
  } else return fail(at, key, `"${c}" constrains ${field}, which weft does not support (node.labels.*, engine.labels.*, node.role, node.hostname, node.platform.*)`);
  if (tag.length > MAX_TAG_LENGTH || tag.includes(',')) return fail(at, key, `"${c}" makes the tag "${tag}", longer than ${MAX_TAG_LENGTH} characters or holding a comma`);
  return tag;
}
