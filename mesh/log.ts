/** Structured one-line logs (logfmt) on stderr: `ts=… level=info comp=mesh msg="…" key=value`.
 *  One line per event so that `grep` and log shippers need no parser of their own. */

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LOG_LEVELS)[number];
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(comp: string): Logger;
}

export interface LogSink {
  write(line: string): void;
}

let threshold: Level = (process.env.WEFT_LOG_LEVEL as Level | undefined) ?? 'info';
let sink: LogSink = { write: (line) => process.stderr.write(line) };

export function setLogLevel(level: string): void {
  if (!(level in RANK)) throw new Error(`log level "${level}" is not one of ${Object.keys(RANK).join(', ')}`);
  threshold = level as Level;
}

/** Tests capture lines here to check, for instance, that no secret is ever logged. */
export function setLogSink(s: LogSink): void {
  sink = s;
}

function quote(v: string): string {
  return /^[\w.:/@+-]+$/.test(v) ? v : JSON.stringify(v);
}

export function formatLine(level: Level, comp: string, msg: string, fields: Fields = {}): string {
  let line = `ts=${new Date().toISOString()} level=${level} comp=${comp} msg=${quote(msg)}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v === null) continue;
    line += ` ${k}=${quote(String(v))}`;
  }
  return line + '\n';
}

export function logger(comp: string): Logger {
  const emit = (level: Level) => (msg: string, fields?: Fields) => {
    if (RANK[level] < RANK[threshold]) return;
    sink.write(formatLine(level, comp, msg, fields));
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (sub) => logger(`${comp}.${sub}`),
  };
}

/** An error's message for a log line, without a stack. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
