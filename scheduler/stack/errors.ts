// Errors and warnings of one stack file, as sentences for the person at the terminal: each names
// the file, the service and the key. Readers report into a Problems and go on, so that one run
// lists every error of the file (up to MAX_ERRORS); nothing is deployed from a file with any.

import { MAX_ERRORS } from './limits.ts';

export class Problems {
  readonly errors: string[] = [];
  /** Unsupported key → the services that use it ('' for a top-level key), in file order. */
  private readonly ignored = new Map<string, string[]>();
  private readonly notes: string[] = [];
  private truncated = false;

  readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  /** `weft: stackfile F: service "S": KEY DETAIL`; detail starts with the value, if any. */
  error(service: string | undefined, key: string, detail: string): void {
    this.add(`${this.prefix(service)}${key} ${detail}`);
  }

  /** An error about the file as a whole (it does not parse, it is too large...). */
  fileError(detail: string): void {
    this.add(`weft: stackfile ${this.file}: ${detail}`);
  }

  /** A key weft does not support: reported once per key, naming every service using it. */
  ignore(service: string | undefined, key: string): void {
    const services = this.ignored.get(key) ?? [];
    if (service !== undefined && !services.includes(service)) services.push(service);
    this.ignored.set(key, services);
  }

  /** A supported key whose meaning weft changes (the user should know). */
  warn(service: string | undefined, key: string, detail: string): void {
    this.notes.push(`${this.prefix(service)}${key} ${detail}`);
  }

  get ok(): boolean {
    return this.errors.length === 0;
  }

  warnings(): string[] {
    const out = [...this.notes];
    for (const [key, services] of this.ignored) {
      const where = services.length === 0 ? '' : ` (${services.length === 1 ? 'service' : 'services'} ${services.map((s) => `"${s}"`).join(', ')})`;
      out.push(`weft: stackfile ${this.file}: ${key} is not supported by weft and is ignored${where}`);
    }
    return out;
  }

  private prefix(service: string | undefined): string {
    return `weft: stackfile ${this.file}: ${service === undefined ? '' : `service "${service}": `}`;
  }

  private add(line: string): void {
    if (this.errors.length < MAX_ERRORS) this.errors.push(line);
    else if (!this.truncated) {
      this.truncated = true;
      this.errors.push(`weft: stackfile ${this.file}: more errors not shown (the first ${MAX_ERRORS} are above)`);
    }
  }
}

/** A value as it appears in a message: strings quoted, the rest as YAML would print them, cut. */
export function show(v: unknown): string {
  const MAX_SHOWN = 60; // enough to recognise the value, short enough for one line
  let s: string;
  if (typeof v === 'string') s = JSON.stringify(v);
  else if (v === null || v === undefined) s = 'null';
  else if (Array.isArray(v)) s = 'a list';
  else if (typeof v === 'object') s = 'a map';
  else s = String(v);
  return s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN)}...` : s;
}
