// A service as desired state holds it: what to run, how many, where and how to keep it
// running (Tutum's service definition, with Compose's names where they differ only in
// spelling). Stackfiles and Compose files are read into this (scheduler/stack/), placement
// decides where each container goes (scheduler/placement/), the agent runs them. Types only.

export const DEPLOYMENT_STRATEGIES = ['EMPTIEST_NODE', 'HIGH_AVAILABILITY', 'EVERY_NODE'] as const;
export type DeploymentStrategy = (typeof DEPLOYMENT_STRATEGIES)[number];
export const AUTORESTART = ['OFF', 'ON_FAILURE', 'ALWAYS'] as const;
export type Autorestart = (typeof AUTORESTART)[number];
export const AUTODESTROY = ['OFF', 'ON_SUCCESS', 'ALWAYS'] as const;
export type Autodestroy = (typeof AUTODESTROY)[number];

export interface PortSpec {
  /** The container's port. */
  container: number;
  protocol: 'tcp' | 'udp';
  /** Published on the host at this port; undefined: exposed only (SRV records). */
  host?: number;
}

export interface HealthCheck {
  /** Docker's form: ['CMD', ...] or ['CMD-SHELL', '...']. */
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export interface LinkSpec {
  /** The linked service: `name` in this stack, or `stack.name` across stacks. */
  service: string;
  /** The name it is known by in this service's containers (default: the service's). */
  alias: string;
}

export interface UpdateConfig {
  parallelism: number;
  delayMs: number;
  onFailure: 'pause' | 'continue' | 'rollback';
}

export interface ServiceSpec {
  /** DNS-label name, unique in its stack; containers are `<name>-<n>`. */
  name: string;
  /** The stack it belongs to (a service created alone belongs to none: ''). */
  stack: string;
  image: string;
  command?: string[];
  entrypoint?: string[];
  environment: Record<string, string>;
  ports: PortSpec[];
  targetNumContainers: number;
  /** A node must carry every one of these tags. */
  tags: string[];
  deploymentStrategy: DeploymentStrategy;
  autorestart: Autorestart;
  autodestroy: Autodestroy;
  sequentialDeployment: boolean;
  links: LinkSpec[];
  healthcheck?: HealthCheck;
  /** Bytes; what placement reserves on a node per container (0: no reservation). */
  memoryBytes: number;
  /** CPU shares (Docker's relative weight; 0: default). */
  cpuShares: number;
  labels: Record<string, string>;
  /** Named volumes: `name:/path[:ro]`. */
  volumes: string[];
  /** Seconds a dead node's containers wait before they are recreated elsewhere. */
  rescheduleAfterSeconds: number;
  update: UpdateConfig;
  /** Indexes whose container `autodestroy` removed (the count went down by one each): no
   *  container is made for them again, so the others keep their names. Kept by desired state,
   *  not written in files; a new count (`weft service scale`) starts afresh. */
  retiredIndexes?: number[];
}
