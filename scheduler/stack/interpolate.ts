// Compose's variable substitution, done by docker-compose before anything else reads the file:
// `$VAR` and `${VAR}` take the variable's value ('' if unset, with a warning, as docker-compose
// does), `${VAR:-default}` / `${VAR-default}` a default when unset or empty / unset,
// `${VAR:?message}` / `${VAR?message}` make an error, and `$$` is a literal `$`. Applied to every
// string value of a Compose file (not to keys); the variables come from the caller.

export interface Interpolated {
  value: unknown;
  /** Variables used but not set (each once). */
  unset: string[];
  /** `${VAR:?message}` errors, as "VAR: message". */
  errors: string[];
}

const REF = /\$(?:(\$)|([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|(\{[^}]*\}?))/g;

export function interpolate(value: unknown, variables: Readonly<Record<string, string>>): Interpolated {
  const unset = new Set<string>();
  const errors: string[] = [];
  const get = (name: string): string | undefined => (Object.hasOwn(variables, name) ? variables[name] : undefined);
  const str = (s: string): string =>
    s.replace(REF, (whole, dollar: string | undefined, bare: string | undefined, braced: string | undefined, op: string | undefined, arg: string | undefined, bad: string | undefined) => {
      if (dollar !== undefined) return '$';
      if (bad !== undefined) {
        errors.push(`"${whole}" is not a valid variable reference`);
        return '';
      }
      const name = (bare ?? braced) as string;
      const v = get(name);
      const empty = v === undefined || (op?.startsWith(':') === true && v === '');
      if (op === undefined || !empty) {
        if (v === undefined) unset.add(name);
        return v ?? '';
      }
      if (op.endsWith('-')) return arg ?? '';
      errors.push(`${name}: ${arg === undefined || arg === '' ? 'is not set' : arg}`);
      return '';
    });
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return v.includes('$') ? str(v) : v;
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return { value: walk(value), unset: [...unset], errors };
}
