// The naming scheme of harness instances. Every name a harness creates outside its own temp
// directory derives from its instance id, so a later run can find and sweep leftovers.

/** Prefix of every namespace ("wt<id>sw", "wt<id>h<n>") and of the cgroup and state names.
 *  Short, because interface and namespace names end up in 15-byte kernel fields. */
export const PREFIX = 'wt';

/** Instance ids are the third octet of the instance's subnet 10.250.<id>.0/24, so 1..254
 *  instances can exist at once. 10.250/16 is far from the container range 10.32/12, and
 *  nothing is routed in the root namespace, so it cannot collide with the machine's own. */
export const MIN_ID = 1;
export const MAX_ID = 254;
export const SUBNET_PREFIX = '10.250';

/** Host addresses are .1 .. .MAX_HOSTS; 200 leaves room for test-made extra addresses. */
export const MAX_HOSTS = 200;

/** Where instance records (owner pid, temp dir) live: /run is a tmpfs, wiped at boot
 *  exactly like the namespaces it describes. */
export const STATE_DIR = '/run/weft-harness';

/** Environment variable set on every process the harness starts: "<prefix><id>:<owner pid>".
 *  Lets a test (or a person with `grep -l` on /proc/<pid>/environ) see whose process it is. */
export const OWNER_ENV = 'WEFT_HARNESS_OWNER';

export const HOST_IFACE = 'eth0';
export const MAIN_BRIDGE = 'br0';

export function instanceTag(id: number): string {
  return `${PREFIX}${id}`;
}

export function switchNs(id: number): string {
  return `${PREFIX}${id}sw`;
}

export function hostNs(id: number, n: number): string {
  return `${PREFIX}${id}h${n}`;
}

export function hostName(n: number): string {
  return `h${n}`;
}

export function hostIp(id: number, n: number): string {
  return `${SUBNET_PREFIX}.${id}.${n}`;
}

/** The host's port on the switch bridge, inside the switch namespace. */
export function switchPort(n: number): string {
  return `p${n}`;
}

/** Bridge of partition segment k (0 is the main bridge). */
export function segmentBridge(k: number): string {
  return `br${k}`;
}

/** Fixed, locally administered MACs: the static neighbour entries need them before the
 *  links exist, and logs and captures stay readable ("02:77:00:<id>:00:<n>"). */
export function hostMac(id: number, n: number): string {
  const hex = (v: number) => v.toString(16).padStart(2, '0');
  return `02:77:00:${hex(id)}:00:${hex(n)}`;
}

/** The abstract unix socket whose binding is the lock on an instance id (see lease.ts). */
export function leaseSocket(id: number): string {
  return `\0weft-harness-${id}`;
}

export function recordPath(id: number): string {
  return `${STATE_DIR}/${instanceTag(id)}.json`;
}

const NS_PATTERN = new RegExp(`^${PREFIX}(\\d{1,3})(?:sw|h\\d{1,3})$`);

/** The instance id a namespace name belongs to, or undefined if it is not a harness name. */
export function idOfNamespace(name: string): number | undefined {
  const m = NS_PATTERN.exec(name);
  if (!m) return undefined;
  const id = Number(m[1]);
  return id >= MIN_ID && id <= MAX_ID ? id : undefined;
}
