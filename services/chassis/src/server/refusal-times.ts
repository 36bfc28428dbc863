/** Upper bounds of the buckets, ms; the last bucket holds the rest. */
const boundsMs = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000] as const;

/**
 * How long after arriving the calls refused for overload were refused, as
 * the server saw it (from the moment the call's request had arrived whole,
 * when the call gate asks for its slot, to the refusal): a client's figure
 * also holds the time the call spent on the network and in both event
 * loops' queues. Counts in fixed
 * buckets, so recording costs no allocation.
 */
export class RefusalTimes {
  readonly #counts = new Array<number>(boundsMs.length + 1).fill(0);
  #count = 0;
  #maxMs = 0;

  record(ms: number): void {
    let bucket = 0;
    while (bucket < boundsMs.length && ms > boundsMs[bucket]!) bucket++;
    this.#counts[bucket]!++;
    this.#count++;
    if (ms > this.#maxMs) this.#maxMs = ms;
  }

  get count(): number {
    return this.#count;
  }

  /** The upper bound of the bucket holding quantile `q` (0 to 1), ms; Infinity beyond the last bound; 0 with no refusals. */
  quantileMs(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let bucket = 0; bucket < this.#counts.length; bucket++) {
      seen += this.#counts[bucket]!;
      if (seen >= rank) return bucket < boundsMs.length ? boundsMs[bucket]! : Infinity;
    }
    return Infinity;
  }

  /** Share of refusals within `ms` (a bucket bound), 0 to 1. */
  shareWithin(ms: (typeof boundsMs)[number]): number {
    if (this.#count === 0) return 0;
    let within = 0;
    for (let bucket = 0; bucket < boundsMs.length && boundsMs[bucket]! <= ms; bucket++) within += this.#counts[bucket]!;
    return within / this.#count;
  }

  /** What the server logs at its stop. */
  summary(): { refused: number; p50Ms: number; p99Ms: number; maxMs: number; within10Ms: number } {
    return {
      refused: this.#count,
      p50Ms: this.quantileMs(0.5),
      p99Ms: this.quantileMs(0.99),
      maxMs: Math.round(this.#maxMs * 10) / 10,
      within10Ms: this.shareWithin(10),
    };
  }
}
