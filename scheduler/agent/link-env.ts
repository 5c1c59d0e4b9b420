// Docker-links compatibility: the environment variables a container gets for a link, as
// Docker sets them for a legacy link (`docker run --link db:db`), plus Tutum's per-container
// variables for a linked service of several containers (`DB_1_PORT_...`, `DB_2_PORT_...`).
// The scheduler calls this when it creates a container with links; names resolve through
// DNS, so the variables are only for programs written against links.
//
// Docker's rules (moby daemon/links): ALIAS is the link alias upper-cased, "-" → "_".
// ALIAS_PORT is the lowest exposed port (tcp before udp at the same number); for every port,
// in that order, ALIAS_PORT_<port>_<PROTO> = proto://addr:port and its _ADDR, _PORT and _PROTO;
// a run of consecutive ports of one protocol also gives _START, _END, _PORT_START and _PORT_END at
// its first port; ALIAS_NAME = /<linking container>/<alias>; ALIAS_ENV_<K> for every K=V of
// the linked container's environment except HOME and PATH.
//
// Not reproduced, on purpose: the /etc/hosts lines Docker writes for links (the mesh's DNS
// answers the same names, and follows redeploys, which /etc/hosts does not); and variables
// of the linked container's image environment that the registry does not observe (the
// caller passes the environment it knows: the service's desired env). Per container, Tutum's
// variables carry no _NAME (Tutum's docs list only _PORT... and _ENV_ per container).
// Pure.

export interface LinkedPort {
  port: number;
  proto: 'tcp' | 'udp';
}

export interface LinkedContainer {
  /** What the variables point at: the container's address, or a DNS name that resolves to it
   *  (`db-1`: the variables then stay right when the container is redeployed elsewhere). */
  addr: string;
  /** Its number in the service (`db-2` → 2); default its position, from 1. */
  number?: number;
  ports: readonly LinkedPort[];
  /** `K=V` strings as Docker keeps them, or a map. */
  env: readonly string[] | Readonly<Record<string, string>>;
}

export interface LinkSpec {
  /** The link's alias (`--link db:ALIAS`, or the service name). */
  alias: string;
  /** The name of the container that gets the variables (for ALIAS_NAME). */
  linker: string;
  /** The linked service's containers, the first lowest-numbered. */
  containers: readonly LinkedContainer[];
  /** What the service-wide variables point at: default the first container's `addr` (what
   *  Docker does for its one container); for a service, its DNS name (round-robin). */
  serviceAddr?: string;
  /** Tutum's ALIAS_<n>_... per container; default true. */
  perContainer?: boolean;
}

/** Docker skips these of the linked container's environment (set by every image build). */
const SKIPPED_ENV = new Set(['HOME', 'PATH']);

/** The link variables, in Docker's order (service-wide first, then per container). */
export function linkEnvironment(spec: LinkSpec): Record<string, string> {
  const alias = envName(spec.alias);
  const containers = [...spec.containers]
    .map((c, i) => ({ ...c, number: c.number ?? i + 1 }))
    .sort((a, b) => a.number - b.number);
  const out: Record<string, string> = {};
  const first = containers[0];
  if (!first) return out;
  const ports = new Map<string, LinkedPort>();
  for (const c of containers) for (const p of c.ports) ports.set(`${p.port}/${p.proto}`, p);
  portVariables(out, alias, spec.serviceAddr ?? first.addr, [...ports.values()]);
  out[`${alias}_NAME`] = `/${spec.linker.replace(/^\//, '')}/${spec.alias}`;
  envVariables(out, alias, first.env);
  if (spec.perContainer ?? true) {
    for (const c of containers) {
      const a = `${alias}_${c.number}`;
      portVariables(out, a, c.addr, c.ports);
      envVariables(out, a, c.env);
    }
  }
  return out;
}

/** `my-db` → `MY_DB`, as Docker names link variables. */
export function envName(alias: string): string {
  return alias.toUpperCase().replace(/-/g, '_');
}

/** Docker's port order: by number, tcp first at the same number. */
function sortPorts(ports: readonly LinkedPort[]): LinkedPort[] {
  return [...ports].sort((a, b) => a.port - b.port || (a.proto === b.proto ? 0 : a.proto === 'tcp' ? -1 : 1));
}

function portVariables(out: Record<string, string>, alias: string, addr: string, unsorted: readonly LinkedPort[]): void {
  const ports = sortPorts(unsorted);
  const first = ports[0];
  if (!first) return;
  out[`${alias}_PORT`] = `${first.proto}://${addr}:${first.port}`;
  // Runs of consecutive ports of one protocol (an `--expose 8000-8010`).
  let start = 0;
  for (let i = 1; i <= ports.length; i++) {
    const p = ports[i];
    const prev = ports[i - 1]!;
    if (p && p.port === prev.port + 1 && p.proto === prev.proto) continue;
    if (i - 1 > start) {
      const s = ports[start]!;
      const base = `${alias}_PORT_${s.port}_${s.proto.toUpperCase()}`;
      out[`${base}_START`] = `${s.proto}://${addr}:${s.port}`;
      out[`${base}_ADDR`] = addr;
      out[`${base}_PORT_START`] = String(s.port);
      out[`${base}_END`] = `${s.proto}://${addr}:${prev.port}`;
      out[`${base}_PORT_END`] = String(prev.port);
      out[`${base}_PROTO`] = s.proto;
    }
    start = i;
  }
  for (const p of ports) {
    const base = `${alias}_PORT_${p.port}_${p.proto.toUpperCase()}`;
    out[base] = `${p.proto}://${addr}:${p.port}`;
    out[`${base}_ADDR`] = addr;
    out[`${base}_PORT`] = String(p.port);
    out[`${base}_PROTO`] = p.proto;
  }
}

function envVariables(out: Record<string, string>, alias: string, env: LinkedContainer['env']): void {
  const pairs: [string, string][] = Array.isArray(env)
    ? (env as readonly string[]).flatMap((kv) => {
        const i = kv.indexOf('=');
        return i < 0 ? [] : [[kv.slice(0, i), kv.slice(i + 1)] as [string, string]];
      })
    : Object.entries(env as Record<string, string>);
  for (const [k, v] of pairs) if (!SKIPPED_ENV.has(k)) out[`${alias}_ENV_${k}`] = v;
}
