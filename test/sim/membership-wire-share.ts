// What the membership world's network carries: a message's JSON text, and what JSON.parse made
// of it once a receiver read it. A peer's table goes out whole to many peers within the same
// few milliseconds while a mesh forms (each connection of a dial round, each digest that
// disagrees): four fifths of the bytes at N = 200, N^3 in all, ~13 GB in the first 200 ms at
// N = 1,000. Each copy held and parsed on its own was a third of the run's time and more memory
// than the machine has; one shared text, parsed once, is neither. Every message is still
// stringified: comparing messages as objects cost more than that.

export interface Wire {
  readonly text: string;
  /** JSON.parse(text), made by the first receiver and kept for the copies still on their way.
   *  Shared: the decoder only reads it and builds fresh objects of its own, so every receiver
   *  may start from the same value. */
  json?: unknown;
  /** Copies handed to the network and not yet received (lost ones stay counted: their JSON
   *  then goes when the Wire does). */
  pending: number;
}

/** Shorter texts are not looked for among a sender's recent ones: pings, acks and single
 *  updates cost little to parse and are seldom sent twice alike. */
const REUSE_MIN_CHARS = 2048;
/** Large messages remembered per sender: a table of more than MAX_RECORDS goes out in two
 *  chunks, and an update or a sync may come between two copies of it. */
const REUSE_PER_SENDER = 4;
/** A remembered message is let go this long after it was last sent: copies come within the same
 *  sub-step or the next few, and what is kept pins its text and parsed JSON in memory. */
const REUSE_KEEP_MS = 100;

interface Sent {
  wire: Wire;
  at: number;
}

/** Encodes messages, handing out the same Wire for a text its sender sent lately. */
export class WireEncoder {
  private readonly recent = new Map<string, Sent[]>();

  encode(from: string, msg: unknown, now: number): Wire {
    const text = JSON.stringify(msg);
    if (text.length < REUSE_MIN_CHARS) return { text, pending: 0 };
    let sent = this.recent.get(from);
    if (!sent) this.recent.set(from, (sent = []));
    // A comparison of two strings stops at their lengths or the first difference: cheap.
    const same = sent.find((s) => s.wire.text === text);
    if (same) {
      same.at = now;
      return same.wire;
    }
    const wire = { text, pending: 0 };
    sent.push({ wire, at: now });
    if (sent.length > REUSE_PER_SENDER) sent.shift();
    return wire;
  }

  /** Lets go of what is too old to be sent again soon. */
  sweep(now: number): void {
    for (const [from, sent] of this.recent) {
      const keep = sent.filter((s) => now - s.at <= REUSE_KEEP_MS);
      if (keep.length === 0) this.recent.delete(from);
      else if (keep.length < sent.length) this.recent.set(from, keep);
    }
  }
}

/** A copy of `w` was handed to the network. */
export function sent(w: Wire): void {
  w.pending++;
}

/** A copy of `w` arrived: what JSON.parse makes of its text. */
export function received(w: Wire): unknown {
  const json = (w.json ??= JSON.parse(w.text));
  if (--w.pending <= 0) delete w.json;
  return json;
}
