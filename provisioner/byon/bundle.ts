// Builds weft's release bundle (bundle-contents.ts says what is in it) as a gzipped tar in the
// peer's data dir, with its SHA-256, and keeps it while nothing it is made of changes. Drives
// GNU tar (Essential on Debian) for the archive and Node's zlib and sha256 for the rest; decides
// nothing about who may fetch it.
//
//   <data-dir>/install/            0700 (inside the data dir, itself 0700)
//     bundle-<fingerprint>.tar.gz  the bundle
//     bundle-<fingerprint>.json    {"sha256", "bytes"}
//
// The fingerprint covers what the bundle is made of (the Node binary, the lockfile, the code's
// files by size and time), so a peer upgraded in place builds a new one; the hash of a kept one
// is checked again before it is handed out, so a file changed on disk is rebuilt, not served.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { errorText, type Logger } from '../../mesh/log.ts';
import { BUNDLE_FORMAT, codePaths, launcher, manifest, runtimePackages, type WeftLayout } from './bundle-contents.ts';

/** gzip level 1: ~70 MB where level 6 gives ~61 MB, in half the time (4 s against 8 s here for
 *  ~240 MB of Node, node_modules and code); the build is on the path of the admin's command,
 *  and 15 % more bytes over a LAN or a cloud network cost less than that wait. */
const GZIP_LEVEL = 1;
/** Far above a real bundle (~70 MB): a wrong root that would archive half a disk stops here. */
export const MAX_BUNDLE_BYTES = 512 * 1024 * 1024;
/** Characters of the fingerprint in file names: enough to tell a peer's few builds apart. */
const FINGERPRINT_CHARS = 16;
/** What of tar's complaints is kept for the error. */
const MAX_STDERR = 4096;

export interface Bundle {
  path: string;
  sha256: string;
  bytes: number;
}

/** Where the running weft is and how it runs. */
export interface WeftSource {
  /** The folder holding package.json, node_modules and the code (dist/ or the sources). */
  root: string;
  layout: WeftLayout;
  /** The Node binary to ship: the one this peer runs on. */
  node: string;
}

/** The weft this module is part of: compiled when it runs as dist/provisioner/byon/bundle.js. */
export function runningWeft(): WeftSource {
  const compiled = import.meta.url.endsWith('.js');
  const root = fileURLToPath(new URL(compiled ? '../../../' : '../../', import.meta.url));
  return { root, layout: { compiled }, node: process.execPath };
}

export class BundleBuilder {
  private readonly dir: string;
  private readonly source: WeftSource;
  private readonly log: Logger;
  private building: Promise<Bundle> | undefined;

  constructor(o: { dir: string; log: Logger; source?: WeftSource }) {
    this.dir = o.dir;
    this.source = o.source ?? runningWeft();
    this.log = o.log;
  }

  /** The current bundle, built if needed; concurrent callers share one build. */
  get(): Promise<Bundle> {
    this.building ??= this.current().finally(() => {
      this.building = undefined;
    });
    return this.building;
  }

  /** Removes bundles other than these paths (those that outstanding tokens may still fetch). */
  async prune(keep: ReadonlySet<string>): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    const kept = new Set([...keep].map((p) => p.replace(/\.tar\.gz$/, '')));
    for (const n of names) {
      const m = /^(bundle-[0-9a-f]+)\.(tar\.gz|json|partial)$/.exec(n);
      if (!m || kept.has(join(this.dir, m[1] as string))) continue;
      await rm(join(this.dir, n), { force: true });
    }
  }

  private async current(): Promise<Bundle> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    const lock = JSON.parse(await readFile(join(this.source.root, 'package-lock.json'), 'utf8')) as unknown;
    const packages: string[] = [];
    for (const p of runtimePackages(lock)) {
      // An optional package for another platform is in the lockfile but not on disk.
      if (await exists(join(this.source.root, p))) packages.push(p);
    }
    const fingerprint = await this.fingerprint(packages);
    const base = join(this.dir, `bundle-${fingerprint}`);
    const kept = await this.kept(base);
    if (kept) return kept;
    return this.build(base, packages);
  }

  /** A kept bundle, if its file still has the hash recorded when it was built. */
  private async kept(base: string): Promise<Bundle | undefined> {
    let rec: { sha256?: unknown; bytes?: unknown };
    try {
      rec = JSON.parse(await readFile(`${base}.json`, 'utf8')) as typeof rec;
    } catch {
      return undefined;
    }
    const path = `${base}.tar.gz`;
    try {
      const { sha256, bytes } = await hashFile(path);
      if (sha256 === rec.sha256 && bytes === rec.bytes) return { path, sha256, bytes };
      this.log.warn('the kept weft bundle changed on disk since it was built: building it again', { path });
    } catch {
      // gone: build it
    }
    return undefined;
  }

  private async build(base: string, packages: readonly string[]): Promise<Bundle> {
    const started = Date.now();
    const { root, layout, node } = this.source;
    const stage = join(this.dir, `stage-${randomBytes(6).toString('hex')}`);
    const partial = `${base}.partial`;
    try {
      await mkdir(join(stage, 'bin'), { recursive: true, mode: 0o700 });
      await copyFile(node, join(stage, 'bin', 'node'));
      await chmod(join(stage, 'bin', 'node'), 0o755);
      await writeFile(join(stage, 'bin', 'weft'), launcher(layout), { mode: 0o755 });
      const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version?: string };
      await writeFile(join(stage, 'weft-bundle.json'), manifest({ weftVersion: pkg.version ?? 'unknown', nodeVersion: process.version, layout }));
      const args = [
        '-cf', '-', '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mode=go-w',
        '-C', stage, 'bin', 'weft-bundle.json',
        '-C', root, 'package.json', 'package-lock.json', ...codePaths(layout), ...packages,
      ];
      const { sha256, bytes } = await tarGz(args, partial);
      await rename(partial, `${base}.tar.gz`);
      await writeFile(`${base}.json`, `${JSON.stringify({ sha256, bytes })}\n`);
      this.log.info('built the weft bundle', { sha256, bytes, packages: packages.length, compiled: layout.compiled, ms: Date.now() - started });
      return { path: `${base}.tar.gz`, sha256, bytes };
    } catch (err) {
      await rm(partial, { force: true });
      throw new Error(`cannot build weft's bundle in ${this.dir}: ${errorText(err)}`);
    } finally {
      await rm(stage, { recursive: true, force: true });
    }
  }

  /** A hash of what the bundle would be made of, by file sizes and times (not contents: the
   *  Node binary alone is 120 MB). */
  private async fingerprint(packages: readonly string[]): Promise<string> {
    const { root, layout, node } = this.source;
    const h = createHash('sha256');
    h.update(`format ${BUNDLE_FORMAT} compiled ${layout.compiled} node ${process.version}\n`);
    for (const f of [node, join(root, 'package.json'), join(root, 'package-lock.json'), join(root, 'node_modules', '.package-lock.json')]) {
      const s = await stat(f).catch(() => undefined);
      h.update(`${f} ${s?.size ?? '-'} ${s?.mtimeMs ?? '-'}\n`);
    }
    h.update(`${packages.join(' ')}\n`);
    for (const p of codePaths(layout)) {
      for (const [rel, s] of await walk(root, p)) h.update(`${rel} ${s}\n`);
    }
    return h.digest('hex').slice(0, FINGERPRINT_CHARS);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** Every file below root/rel with "size mtime", sorted. */
async function walk(root: string, rel: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  const entries = await readdir(join(root, rel), { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = join(rel, e.name);
    if (e.isDirectory()) out.push(...(await walk(root, p)));
    else {
      const s = await stat(join(root, p)).catch(() => undefined);
      if (s) out.push([p, `${s.size} ${s.mtimeMs}`]);
    }
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** A stream step that hashes and counts what passes, and stops past MAX_BUNDLE_BYTES. */
function hashing(): { tap: Transform; result: () => { sha256: string; bytes: number } } {
  const h = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > MAX_BUNDLE_BYTES) return done(new Error(`the bundle passed ${MAX_BUNDLE_BYTES} bytes: is weft's root (${runningWeft().root}) the project's folder?`));
      h.update(chunk);
      done(null, chunk);
    },
  });
  return { tap, result: () => ({ sha256: h.digest('hex'), bytes }) };
}

async function hashFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const { tap, result } = hashing();
  await pipeline(createReadStream(path), tap, async function* (src) {
    for await (const _ of src) { /* drained: the tap hashed it */ }
  });
  return result();
}

/** Runs tar with args (writing the archive to stdout), gzips it into out, hashes the result. */
async function tarGz(args: readonly string[], out: string): Promise<{ sha256: string; bytes: number }> {
  const tar = spawn('tar', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  tar.stderr.on('data', (b: Buffer) => {
    if (stderr.length < MAX_STDERR) stderr += b.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    tar.once('error', (err) => reject(new Error(`cannot run tar: ${err.message} (install GNU tar)`)));
    tar.once('close', (code) => resolve(code));
  });
  const { tap, result } = hashing();
  try {
    await pipeline(tar.stdout, createGzip({ level: GZIP_LEVEL }), tap, createWriteStream(out, { mode: 0o600 }));
  } catch (err) {
    tar.kill('SIGKILL');
    await exited.catch(() => undefined);
    throw err;
  }
  const code = await exited;
  if (code !== 0) throw new Error(`tar failed (exit ${code}): ${stderr.trim().split('\n').slice(-3).join('; ')}`);
  return result();
}
