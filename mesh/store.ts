import { ClassicLevel } from 'classic-level';

/**
 * The peer's LevelDB (classic-level) in its data dir: identity, known peer addresses,
 * membership and replicated state. Keys are `section/name`; values JSON.
 * Writes that the peer acknowledges to a user are synced to disk (`sync: true`) so a
 * kill -9 right after the acknowledgement loses nothing.
 */
export class Store {
  private readonly db: ClassicLevel<string, unknown>;

  private constructor(db: ClassicLevel<string, unknown>) {
    this.db = db;
  }

  static async open(dir: string): Promise<Store> {
    const db = new ClassicLevel<string, unknown>(dir, { valueEncoding: 'json' });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause?.message ?? '';
      if (/lock/i.test(cause)) {
        throw new Error(`the data dir ${dir} is in use by another weft peer (stop it first, or choose another --data-dir)`);
      }
      throw new Error(`cannot open the peer's database in ${dir}: ${cause || (err as Error).message}`);
    }
    return new Store(db);
  }

  async get<T>(key: string): Promise<T | undefined> {
    return (await this.db.get(key)) as T | undefined;
  }

  async put(key: string, value: unknown, durable = true): Promise<void> {
    await this.db.put(key, value, { sync: durable });
  }

  async del(key: string, durable = true): Promise<void> {
    await this.db.del(key, { sync: durable });
  }

  /** Applies puts (value defined) and deletes (value undefined) atomically. */
  async batch(ops: { key: string; value?: unknown }[], durable = true): Promise<void> {
    if (ops.length === 0) return;
    await this.db.batch(
      ops.map((o) => (o.value === undefined ? { type: 'del' as const, key: o.key } : { type: 'put' as const, key: o.key, value: o.value })),
      { sync: durable },
    );
  }

  /** All entries whose key starts with `prefix`. */
  async scan<T>(prefix: string): Promise<{ key: string; value: T }[]> {
    const out: { key: string; value: T }[] = [];
    for await (const [key, value] of this.db.iterator({ gte: prefix, lt: prefix + '\xff' })) {
      out.push({ key, value: value as T });
    }
    return out;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
