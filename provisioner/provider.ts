// What the provisioner needs of an infrastructure provider (`local` namespaces on this machine,
// `aws` EC2 and EC2-compatible clouds): create a node in a zone, find the nodes it owns, end one.
// Every call is idempotent, because a new leader repeats whatever its predecessor may or may not
// have finished: `create` with a client token already used returns that node, not a second one
// (EC2's ClientToken), and `terminate` of a node already gone succeeds.

/** A node as the provider sees it. */
export interface ProviderNode {
  /** The provider's id (an EC2 instance id, a local node's name). */
  id: string;
  /** The node slot it was made for (`cluster-index`), from its tags. */
  node: string;
  cluster: string;
  /** The client token it was created with. */
  clientToken: string;
  zone: string;
  /** `pending` until the provider says it runs; `running`; `stopped` (it exists but its machine
   *  or processes are not running: replace it); `terminated` (gone, or going). */
  state: 'pending' | 'running' | 'stopped' | 'terminated';
  /** Where its peer can be reached, once running. */
  address?: string;
}

export interface CreateRequest {
  /** The node slot: `cluster-index`, also its peer's name. */
  node: string;
  cluster: string;
  /** Unique per attempt; kept in desired state before the call (see the file comment). */
  clientToken: string;
  zone: string;
  nodeType: string;
  /** The deploy tags its peer announces (`--tags`). */
  tags: readonly string[];
  /** Provider options of its cluster (strings only, validated by the provider). */
  options: Readonly<Record<string, string>>;
}

/** A provider's refusal, with its own words, sorted into what the provisioner does about it:
 *  `capacity` (try another zone), `limit` and `credentials` and `parameters` (stop and say so:
 *  retrying cannot help), `transient` (retry with backoff). */
export class ProviderError extends Error {
  readonly kind: 'capacity' | 'limit' | 'credentials' | 'parameters' | 'transient';
  readonly code: string;
  constructor(kind: ProviderError['kind'], code: string, message: string) {
    super(message);
    this.kind = kind;
    this.code = code;
  }
}

export interface Provider {
  /** The zones nodes may be spread over, in a stable order. */
  zones(options: Readonly<Record<string, string>>): Promise<string[]>;
  create(req: CreateRequest): Promise<ProviderNode>;
  /** Every node this provider holds for the cluster (found by its tags), terminated ones
   *  included while the provider still lists them. */
  list(cluster: string, options: Readonly<Record<string, string>>): Promise<ProviderNode[]>;
  terminate(node: ProviderNode, options: Readonly<Record<string, string>>): Promise<void>;
}
