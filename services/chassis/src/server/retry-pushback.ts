/** Options for {@link RetryPushback}. */
export interface RetryPushbackOptions {
  /** Shortest pushback, ms (default 50). */
  minMs?: number;
  /** Longest pushback, ms (default 10 s). */
  maxMs?: number;
  /** How often the pushback is adjusted, ms (default 500). */
  windowMs?: number;
  /** The clock, ms (default performance.now). */
  now?: () => number;
  /** A number in [0, 1) (default Math.random). */
  random?: () => number;
}

/**
 * How long a refused caller should wait before it tries again, sent with
 * each RESOURCE_EXHAUSTED as `grpc-retry-pushback-ms` (the pushback of
 * gRPC's retry design).
 *
 * A server cannot see how many callers are waiting to come back, only how
 * many it refused and how many it admitted. If callers honour the pushback,
 * those it refused in a window come back spread over the next pushback, so
 * the refusals per admission measure how far the pushback is from right:
 * each window, the pushback is multiplied by refused ÷ admitted (at most
 * ×4, at least ×½), so it grows while callers outnumber the slots and
 * shrinks as they thin out; a window with no refusal halves it. The aim is
 * about one refusal per admitted call, which costs little: a refusal is far
 * cheaper than a call.
 *
 * Each caller is told a value jittered ±50 %, so that the callers refused
 * together do not come back together. Callers that ignore the pushback are
 * still refused, as before; they only lose the hint.
 */
export class RetryPushback {
  readonly #minMs: number;
  readonly #maxMs: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #random: () => number;
  #pushbackMs: number;
  #windowStart: number;
  #admitted = 0;
  #refused = 0;

  constructor(options: RetryPushbackOptions = {}) {
    this.#minMs = options.minMs ?? 50;
    this.#maxMs = options.maxMs ?? 10_000;
    this.#windowMs = options.windowMs ?? 500;
    if (!(this.#minMs > 0 && this.#maxMs >= this.#minMs && this.#windowMs > 0))
      throw new RangeError("RetryPushback needs 0 < minMs <= maxMs and windowMs > 0");
    this.#now = options.now ?? (() => performance.now());
    this.#random = options.random ?? Math.random;
    this.#pushbackMs = this.#minMs;
    this.#windowStart = this.#now();
  }

  /** The pushback before jitter, ms. */
  get currentMs(): number {
    this.#roll();
    return this.#pushbackMs;
  }

  /** Counts a call that got a slot. */
  admitted(): void {
    this.#roll();
    this.#admitted++;
  }

  /** Counts a refused call and returns the pushback to send with it, ms (a whole number). */
  refused(): number {
    this.#roll();
    this.#refused++;
    return Math.round(this.#pushbackMs * (0.5 + this.#random()));
  }

  /** Closes the windows that have passed, adjusting the pushback once for each. */
  #roll(): void {
    const now = this.#now();
    while (now - this.#windowStart >= this.#windowMs) {
      const factor =
        this.#refused === 0 ? 0.5 : Math.min(4, Math.max(0.5, this.#refused / Math.max(1, this.#admitted)));
      this.#pushbackMs = Math.min(this.#maxMs, Math.max(this.#minMs, this.#pushbackMs * factor));
      this.#windowStart += this.#windowMs;
      this.#admitted = 0;
      this.#refused = 0;
      // After a long quiet spell, the remaining empty windows only halve it further.
      if (now - this.#windowStart >= this.#windowMs * 32) {
        this.#pushbackMs = this.#minMs;
        this.#windowStart = now;
      }
    }
  }
}
