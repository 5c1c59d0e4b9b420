// Tag-on-create with its fallback. EC2 takes tags in the creating call (TagSpecifications), so
// a resource is never seen untagged; some EC2-compatible clouds refuse that parameter, and then
// the resource is created without it and tagged with CreateTags straight after. What the
// endpoint said is remembered, so later creates skip the refused attempt.

import type { Tag, TagSpecification } from '@aws-sdk/client-ec2';
import type { Logger } from '../../../mesh/log.ts';
import { rejectsTagSpecifications } from './ec2-errors.ts';
import { Ec2CallError, type Ec2Connection } from './ec2-connection.ts';

/** CreateTags right after a create may not find the new id yet (the API reference's "eventual
 *  consistency": InvalidInstanceID.NotFound, InvalidGroup.NotFound); it is asked again after
 *  these pauses, doubling as the reference advises, 7.5 s in all. */
export const TAG_RETRY_DELAYS_MS: readonly number[] = [500, 1000, 2000, 4000];

/** The codes that mean "not visible yet" right after a create. */
export const NOT_YET_VISIBLE = new Set(['InvalidInstanceID.NotFound', 'InvalidGroup.NotFound', 'InvalidID']);

export class Tagging {
  private readonly conn: Ec2Connection;
  private readonly log: Logger;
  private readonly delays: readonly number[];
  /** False once the endpoint refused TagSpecification. */
  private onCreate = true;

  constructor(conn: Ec2Connection, log: Logger, delays: readonly number[] = TAG_RETRY_DELAYS_MS) {
    this.conn = conn;
    this.log = log;
    this.delays = delays;
  }

  /** Runs `create` with the tag specifications, or without them where the endpoint refuses
   *  them (then `untagged` is true and the caller tags with `tag`). A create refused for its
   *  tags created nothing, so the repeat (with the same client token, where the call has one)
   *  cannot make a second resource. */
  async create<T>(specs: TagSpecification[], create: (specs: TagSpecification[] | undefined) => Promise<T>): Promise<{ result: T; untagged: boolean }> {
    if (this.onCreate) {
      try {
        return { result: await create(specs), untagged: false };
      } catch (err) {
        if (!(err instanceof Ec2CallError && rejectsTagSpecifications(err.failure))) throw err;
        this.onCreate = false;
        this.log.info('the EC2 endpoint does not take TagSpecification: tagging with CreateTags after each create', { code: err.code });
      }
    }
    return { result: await create(undefined), untagged: true };
  }

  /** CreateTags, asked again while the new resource is not visible yet. */
  async tag(ids: string[], tags: Tag[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.conn.call('CreateTags', (s, c) => c.send(new s.CreateTagsCommand({ Resources: ids, Tags: tags })));
        return;
      } catch (err) {
        const delay = this.delays[attempt];
        if (!(err instanceof Ec2CallError && NOT_YET_VISIBLE.has(err.code)) || delay === undefined) throw err;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
}
