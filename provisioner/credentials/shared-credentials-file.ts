// The AWS shared credentials file (~/.aws/credentials), read the way the AWS SDK for JavaScript
// reads it (parseIni in @smithy/core's shared-ini-file-loader), so that a file that works with
// the AWS CLI and SDKs works here too: INI sections named for profiles (`[default]`, `[work]`:
// without the word "profile", which belongs to ~/.aws/config), `name = value` lines, a comment
// from `#` or `;` at the start of a line or after whitespace, whitespace around names and values
// ignored, indented lines under a `name =` with no value belonging to that nested setting. Pure:
// the caller reads the file; this only parses text.

/** A credentials file holds a few profiles of three short settings each: even hundreds of
 *  profiles stay far under this. Anything larger is not a credentials file (a wrong path, a
 *  device), and is refused before it is split into lines. */
export const MAX_CREDENTIALS_FILE_CHARS = 1024 * 1024;

/** One section of the file: its settings (names lower-cased, as the AWS CLI's configparser
 *  does), and whether the file is ambiguous about it. */
export interface Profile {
  settings: Map<string, string>;
  /** The section appears twice, or sets one setting twice. The AWS CLI refuses such a file and
   *  the SDK silently takes the last value; credentials are the wrong place to guess, so the
   *  resolver refuses a repeated profile it was asked to use. */
  repeated: boolean;
}

/** The file's sections by their name as written between the brackets (trimmed), so that a
 *  `[profile work]` section is kept under "profile work" and the resolver can say why `work`
 *  was not found. A Map, so that a section called `__proto__` is only a name. */
export type CredentialsFile = Map<string, Profile>;

const COMMENT = /(^|\s)[;#]/;
/** A UTF-8 byte order mark, which Windows editors put at the start of a saved file. */
const BOM = '\uFEFF';

/** Parses the text of a shared credentials file. Never throws; lines it cannot read are skipped,
 *  as the SDK skips them. */
export function parseCredentialsFile(text: string): CredentialsFile {
  const file: CredentialsFile = new Map();
  let section: Profile | undefined;
  let nested = false;
  const body = text.startsWith(BOM) ? text.slice(BOM.length) : text;
  for (const raw of body.split(/\r?\n/)) {
    const line = (raw.split(COMMENT)[0] ?? '').trim();
    if (line.startsWith('[') && line.endsWith(']') && line.length >= 2) {
      const name = line.slice(1, -1).trim();
      const existing = file.get(name);
      if (existing) existing.repeated = true;
      section = existing ?? { settings: new Map(), repeated: false };
      file.set(name, section);
      nested = false;
      continue;
    }
    if (section === undefined || line === '') continue;
    // An indented line under `s3 =` is a nested setting of s3, not one of the profile's own.
    if (nested && raw.trimStart() !== raw) continue;
    nested = false;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const name = line.slice(0, eq).trim().toLowerCase();
    const value = line.slice(eq + 1).trim();
    if (value === '') {
      nested = true;
      continue;
    }
    if (section.settings.has(name)) section.repeated = true;
    section.settings.set(name, value);
  }
  return file;
}
