// A stack file's text → the services it describes, with every default filled, or every error
// it has. Pure: text and options in, a result out; no file, network or clock. Nothing is
// deployed from a file with any error, so the result has services or errors, never both.

import type { ServiceSpec } from '../service/spec.ts';
import { readCompose } from './compose.ts';
import { Problems } from './errors.ts';
import { checkLinkTargets } from './links.ts';
import { MAX_SERVICES } from './limits.ts';
import { serviceNameProblem } from './names.ts';
import { detectForm, parseYaml, type StackForm } from './parse.ts';
import type { Draft } from './service.ts';
import { readTutum } from './tutum.ts';
import type { At } from './values.ts';

export interface ReadOptions {
  /** The file as the user named it; every message starts with it. */
  file: string;
  /** The stack's name: a DNS label, the `stack` of every service. */
  stack: string;
  /** Values for Compose's `${VAR}` and for environment entries given by name only; the CLI
   *  passes its own environment, tests pass what they mean. Default: none set. */
  variables?: Readonly<Record<string, string>>;
}

export type StackResult =
  | { ok: true; form: StackForm; services: ServiceSpec[]; warnings: string[] }
  | { ok: false; errors: string[] };

export function readStack(text: string, options: ReadOptions): StackResult {
  const p = new Problems(options.file);
  const variables = options.variables ?? {};
  const stackProblem = serviceNameProblem(options.stack);
  if (stackProblem !== undefined) p.fileError(`the stack name "${options.stack}" ${stackProblem}`);

  const parsed = parseYaml(text);
  if (!parsed.ok) {
    p.fileError(parsed.error);
    return { ok: false, errors: p.errors };
  }
  const detected = detectForm(parsed.value);
  if ('error' in detected) {
    p.fileError(detected.error);
    return { ok: false, errors: p.errors };
  }
  const doc = parsed.value as Record<string, unknown>;
  const count = Object.keys(detected.form === 'compose' ? (doc['services'] as object) : doc).length;
  if (count > MAX_SERVICES) {
    p.fileError(`has ${count} services; a stack has at most ${MAX_SERVICES}`);
    return { ok: false, errors: p.errors };
  }
  const at = { p, variables };
  const drafts = detected.form === 'compose' ? readCompose(at, doc, options.stack) : readTutum(at, doc, options.stack);
  if (drafts.length === 0 && p.ok) p.fileError('has no services');
  checkAcross(at, drafts);
  if (!p.ok) return { ok: false, errors: p.errors };
  return { ok: true, form: detected.form, services: drafts.map((d) => d.spec), warnings: p.warnings() };
}

/** What needs every service: names, and the services links and depends_on name. */
function checkAcross(at: Omit<At, 'service'>, drafts: readonly Draft[]): void {
  const names = new Set(drafts.map((d) => d.spec.name));
  for (const d of drafts) {
    const here: At = { ...at, service: d.spec.name };
    const bad = serviceNameProblem(d.spec.name);
    if (bad !== undefined) at.p.error(d.spec.name, 'name', bad);
    checkLinkTargets(here, d.spec.links, names);
    for (const dep of d.dependsOn) if (!names.has(dep)) at.p.error(d.spec.name, 'depends_on', `"${dep}" is not a service of this stack`);
  }
}
