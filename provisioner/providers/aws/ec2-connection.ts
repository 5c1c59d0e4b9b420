// The EC2 API as the aws provider calls it: @aws-sdk/client-ec2 loaded on first use (a mesh
// without aws clusters never loads it), one client per provider, and every refusal turned into
// a ProviderError whose words went through redaction (provisioner/credentials/redact.ts).
// Decides nothing about what to call.

import type { EC2Client } from '@aws-sdk/client-ec2';
import type { Logger } from '../../../mesh/log.ts';
import type { AwsCredentials } from '../../credentials/aws-credentials.ts';
import { redact, redactCredentials, redactedMessage } from '../../credentials/redact.ts';
import { ProviderError } from '../../provider.ts';
import { classifyEc2Failure, type Ec2Failure, ec2Failure } from './ec2-errors.ts';

type Sdk = typeof import('@aws-sdk/client-ec2');

/** One try per call: the SDK's own retries (3 by default) would hide from the provisioner how
 *  often it asked, and its backoff (backoffMs in reconcile.ts) is the one that spaces attempts. */
const MAX_ATTEMPTS = 1;
/** A connection that is not up in this long will not come up: a wrong endpoint or a black hole. */
export const CONNECT_TIMEOUT_MS = 5_000;
/** Under the shell's LIST_TIMEOUT_MS (30 s), so that a hung call fails as itself, and long
 *  enough for RunInstances, EC2's slowest answer here (a few seconds). */
export const REQUEST_TIMEOUT_MS = 20_000;

/** A refusal, with EC2's code and redacted words kept for the provider's own decisions (a
 *  duplicate rule is success; TagSpecification refused means tagging afterwards). */
export class Ec2CallError extends ProviderError {
  readonly failure: Ec2Failure;
  constructor(kind: ProviderError['kind'], code: string, message: string, failure: Ec2Failure) {
    super(kind, code, message);
    this.failure = failure;
  }
}

export interface Ec2ConnectionOptions {
  /** The provider's name, for messages. */
  name: string;
  region: string;
  endpoint?: string;
  credentials: AwsCredentials;
  log: Logger;
}

export class Ec2Connection {
  private readonly o: Ec2ConnectionOptions;
  private loaded?: Promise<{ sdk: Sdk; client: EC2Client }>;

  constructor(o: Ec2ConnectionOptions) {
    this.o = o;
  }

  /** Calls EC2: `f` gets the SDK module and the client. Throws an Ec2CallError, with the
   *  credentials and any of `secrets` (a node's user data, which holds a join token) redacted:
   *  an endpoint may quote a request's parameters in its refusal. */
  async call<T>(action: string, f: (sdk: Sdk, client: EC2Client) => Promise<T>, secrets: readonly string[] = []): Promise<T> {
    const { sdk, client } = await this.load();
    try {
      return await f(sdk, client);
    } catch (err) {
      throw this.refusal(action, err, secrets);
    }
  }

  /** The error for anything a call threw; only its code, status and message are kept. */
  refusal(action: string, err: unknown, secrets: readonly string[] = []): Ec2CallError {
    const failure = ec2Failure(err, redact(redactedMessage(err, this.o.credentials), secrets));
    const c = classifyEc2Failure(failure, { provider: this.o.name, action });
    return new Ec2CallError(c.kind, c.code, this.redact(c.message, secrets), failure);
  }

  /** Any text about to leave the provider, with the credentials (and `secrets`) redacted. */
  redact(text: string, secrets: readonly string[] = []): string {
    return redactCredentials(redact(text, secrets), this.o.credentials);
  }

  close(): void {
    void this.loaded?.then(({ client }) => client.destroy(), () => undefined);
    this.loaded = undefined;
  }

  private load(): Promise<{ sdk: Sdk; client: EC2Client }> {
    this.loaded ??= (async () => {
      let sdk: Sdk;
      try {
        sdk = await import('@aws-sdk/client-ec2');
      } catch (err) {
        this.loaded = undefined;
        throw new ProviderError('parameters', 'SdkMissing', `the AWS SDK (@aws-sdk/client-ec2) cannot be loaded on this peer: ${this.redact(String((err as Error).message ?? err))}; reinstall weft`);
      }
      const client = new sdk.EC2Client({
        region: this.o.region,
        ...(this.o.endpoint !== undefined ? { endpoint: this.o.endpoint } : {}),
        // Given as they are: the object prints as its hint if the SDK ever logs it.
        credentials: this.o.credentials,
        maxAttempts: MAX_ATTEMPTS,
        requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, throwOnRequestTimeout: true },
      });
      return { sdk, client };
    })();
    return this.loaded;
  }
}
