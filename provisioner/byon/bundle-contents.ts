// What weft's release bundle holds, decided from the running weft's layout and its lockfile.
// Pure. The bundle is everything a fresh host needs to run the very weft that serves it, with
// nothing fetched from anywhere else:
//
//   bin/node              the Node 24 binary the serving peer runs on (process.execPath)
//   bin/weft              a POSIX sh launcher (below): that Node, bin/weft's flags, the entry
//   weft-bundle.json      format, weft and Node versions, whether compiled
//   package.json          "type": "module", which both dist/ and the sources need
//   package-lock.json     so that a peer installed from the bundle can build the bundle in turn
//   dist/                 the compiled CLI and peer, when the peer runs compiled; otherwise
//   cli/ mesh/ dns/ scheduler/ provisioner/   the TypeScript sources, run by type stripping
//   node_modules/<pkg>    the packages needed at run time (the lockfile's non-dev ones)

/** Bumped when the layout changes, so a cached bundle of another layout is never reused. */
export const BUNDLE_FORMAT = 1;

/** The source folders of weft's code (ARCHITECTURE.md's layout; test/ and bench/ are not run). */
export const SOURCE_DIRS = ['cli', 'mesh', 'dns', 'scheduler', 'provisioner'] as const;

/** bin/weft's young-generation limit (see bin/weft and provisioner/local/weft-command.ts). */
const SEMI_SPACE_FLAG = '--max-semi-space-size=2';

export interface WeftLayout {
  /** The peer runs dist/ (compiled JavaScript) rather than the TypeScript sources. */
  compiled: boolean;
}

/** The paths under the weft root that hold its code. */
export function codePaths(l: WeftLayout): string[] {
  return l.compiled ? ['dist'] : [...SOURCE_DIRS];
}

/** The CLI's entry, relative to the bundle's root. */
export function entryOf(l: WeftLayout): string {
  return l.compiled ? 'dist/cli/main.js' : 'cli/main.ts';
}

/**
 * The top-level `node_modules/<name>` folders of the packages weft needs at run time, from an
 * npm lockfile (version 2 or 3): every package not marked `dev` (only for development) or
 * `devOptional` (only for development or an optional dependency of one). Nested copies
 * (`node_modules/a/node_modules/b`) come along inside their parent's folder.
 */
export function runtimePackages(lock: unknown): string[] {
  const packages = (lock as { packages?: unknown }).packages;
  if (typeof packages !== 'object' || packages === null) throw new Error('the lockfile has no "packages" (npm 7 or later writes them)');
  const out: string[] = [];
  for (const [path, entry] of Object.entries(packages as Record<string, unknown>)) {
    if (!path.startsWith('node_modules/')) continue;
    const name = path.slice('node_modules/'.length);
    if (name.includes('/node_modules/')) continue;
    if (!/^(?:@[a-z0-9._-]+\/)?[a-z0-9._-]+$/i.test(name)) throw new Error(`the lockfile names a package folder ${JSON.stringify(path)}`);
    const e = entry as { dev?: unknown; devOptional?: unknown; link?: unknown };
    if (e.dev === true || e.devOptional === true || e.link === true) continue;
    out.push(path);
  }
  return out.sort();
}

/** bin/weft of the bundle: found through any symlink (/usr/local/bin/weft), runs the bundle's
 *  own Node on the bundle's entry. */
export function launcher(l: WeftLayout): string {
  const flags = [SEMI_SPACE_FLAG, ...(l.compiled ? [] : ['--disable-warning=ExperimentalWarning'])].join(' ');
  return `#!/bin/sh
# weft, from its release bundle: the bundle's own Node 24 and code, wherever it was unpacked.
here=$(readlink -f "$0") || exit 1
root=\${here%/bin/weft}
exec "$root/bin/node" ${flags} "$root/${entryOf(l)}" "$@"
`;
}

export function manifest(o: { weftVersion: string; nodeVersion: string; layout: WeftLayout }): string {
  return `${JSON.stringify({ format: BUNDLE_FORMAT, weft: o.weftVersion, node: o.nodeVersion, compiled: o.layout.compiled, entry: entryOf(o.layout) }, null, 2)}\n`;
}
