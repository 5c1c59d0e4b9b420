// The resolv.conf of each container weft serves, label-attached or on a weft Docker network:
// pointed at the peer's DNS (with the container's stack and the mesh domain to search), and
// given back as Docker wrote it when weft lets the container go (detach, leaving the weft
// network, `weft reset`). Docker's own text is kept in the peer's store, so a peer that
// restarted in between still gives it back.
//
// Why the file and not Docker's settings: a container on a user-defined network asks Docker's
// embedded resolver (127.0.0.11), which forwards what it does not know to servers fixed when
// the container starts, from the daemon's `dns` setting. Setting that would need a restart of
// dockerd and would send every container of the host, weft's or not, to the peer. The file
// changes only weft's containers, at once, and nothing of the host.

import { open, type FileHandle } from 'node:fs/promises';
import { RESOLV_ORIGINAL_PREFIX } from '../../keyspace.ts';
import { errorText, type Logger } from '../../log.ts';
import type { Store } from '../../store.ts';
import { WEFT_RESOLV_MARK } from './container-info.ts';

/** Docker's resolv.conf is a few lines. The file is writable from inside the container, so no
 *  more than this is ever read: a larger one is not Docker's and is not kept. */
const MAX_READ_BYTES = 16 * 1024;

interface Served {
  path: string;
  name: string;
  stack?: string;
}

export interface ContainerResolversOptions {
  store: Pick<Store, 'get' | 'put' | 'del'>;
  log: Logger;
  /** weft's resolv.conf for a container of this stack (none: the mesh domain only). */
  text: (stack: string | undefined) => string;
}

export class ContainerResolvers {
  private readonly o: ContainerResolversOptions;
  private readonly served = new Map<string, Served>();

  constructor(o: ContainerResolversOptions) {
    this.o = o;
  }

  /** Containers whose file weft keeps pointed at the peer. */
  ids(): string[] {
    return [...this.served.keys()];
  }

  /** Remembers the container's file without writing it (a restarted peer adopting a container
   *  whose file already says what it should). */
  remember(id: string, f: Served): void {
    this.served.set(id, f);
  }

  /** Remembers the container and writes weft's text, keeping Docker's first. */
  async point(id: string, f: Served): Promise<void> {
    this.served.set(id, f);
    await this.write(id);
  }

  /** Writes weft's text again (the second resolver changed). */
  async write(id: string): Promise<void> {
    const f = this.served.get(id);
    if (!f) return;
    try {
      const fh = await open(f.path, 'r+');
      try {
        const now = await readBounded(fh);
        const text = this.o.text(f.stack);
        if (now === text) return;
        // Docker wrote this one (a start or a network change since): it is what goes back.
        if (now !== undefined && !now.startsWith(WEFT_RESOLV_MARK)) await this.o.store.put(RESOLV_ORIGINAL_PREFIX + id, now);
        await overwrite(fh, text);
      } finally {
        await fh.close();
      }
    } catch (err) {
      this.o.log.warn('cannot set the container resolver', { container: f.name, err: errorText(err) });
    }
  }

  /** weft lets the container go: Docker's text goes back into a file that still holds weft's
   *  (a file Docker has rewritten since is Docker's already). A file that is gone is fine. */
  async release(id: string): Promise<void> {
    const f = this.served.get(id);
    this.served.delete(id);
    const original = await this.o.store.get<string>(RESOLV_ORIGINAL_PREFIX + id);
    if (f && typeof original === 'string') {
      try {
        const fh = await open(f.path, 'r+');
        try {
          if ((await readBounded(fh))?.startsWith(WEFT_RESOLV_MARK)) await overwrite(fh, original);
        } finally {
          await fh.close();
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.o.log.warn('cannot give the container its resolver back', { container: f.name, err: errorText(err) });
      }
    }
    if (original !== undefined) await this.o.store.del(RESOLV_ORIGINAL_PREFIX + id);
  }
}

/** The file's text, or undefined when it is longer than anything Docker or weft writes. */
async function readBounded(fh: FileHandle): Promise<string | undefined> {
  const buf = Buffer.alloc(MAX_READ_BYTES + 1);
  let n = 0;
  // Every read that does not end the loop adds a byte at least: buf.length reads are the most.
  for (let i = 0; i < buf.length && n < buf.length; i++) {
    const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
    if (bytesRead === 0) break;
    n += bytesRead;
  }
  return n > MAX_READ_BYTES ? undefined : buf.toString('utf8', 0, n);
}

/** Replaces a file's content in place: Docker bind-mounts resolv.conf into the container, so
 *  a new file renamed over it would go unseen. The new content goes over the old before the
 *  rest is cut, so a reader never finds it empty. */
async function overwrite(fh: FileHandle, text: string): Promise<void> {
  const bytes = Buffer.from(text);
  await fh.write(bytes, 0, bytes.length, 0);
  await fh.truncate(bytes.length);
}
