// The thin reader the CLI uses: a path → readStack's result. It only reads the file (refusing
// one too large before reading it all) and passes the text on; it decides nothing.

import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { MAX_DOCUMENT_BYTES } from './limits.ts';
import { readStack, type StackResult } from './read.ts';

export interface ReadFileOptions {
  /** The stack's name; default: the file's name without its extension (`shop.yml` → `shop`). */
  stack?: string;
  variables?: Readonly<Record<string, string>>;
}

export async function readStackFile(path: string, options: ReadFileOptions = {}): Promise<StackResult> {
  const stack = options.stack ?? basename(path).replace(/\.[^.]*$/, '');
  let text: string;
  try {
    const fh = await open(path, 'r');
    try {
      // Read one byte past the limit, not the whole file: a 10 GB file costs 1 MiB here.
      const buf = Buffer.alloc(MAX_DOCUMENT_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      if (bytesRead > MAX_DOCUMENT_BYTES) return { ok: false, errors: [`weft: stackfile ${path}: is larger than ${MAX_DOCUMENT_BYTES / 1024 / 1024} MiB`] };
      text = new TextDecoder('utf-8', { fatal: false }).decode(buf.subarray(0, bytesRead));
    } finally {
      await fh.close();
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    return { ok: false, errors: [`weft: stackfile ${path}: cannot be read (${why})`] };
  }
  return readStack(text, { file: path, stack, ...(options.variables === undefined ? {} : { variables: options.variables }) });
}
