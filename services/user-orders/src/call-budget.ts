import { downstreamTimeoutMs } from "@shopmesh/chassis";

/**
 * Least time worth giving a downstream call: with less, even a loopback call
 * cannot be answered, and the attempt would only add load.
 */
export const minimumCallMs = 5;

/**
 * The time one GetUserOrders call may spend: the caller's deadline, or a
 * default budget when the caller set none. Every downstream call asks it for
 * its timeout at the moment it starts, so that a later call gets only what
 * the earlier ones left.
 */
export class CallBudget {
  readonly #end: number;

  constructor(
    totalMs: number,
    /** Kept back from every downstream call for building and sending the answer. */
    readonly reserveMs: number,
  ) {
    this.#end = performance.now() + totalMs;
  }

  /** A budget of the caller's remaining time, or `defaultMs` when the caller set no deadline. */
  static of(callerTimeoutMs: number | undefined, defaultMs: number, reserveMs: number): CallBudget {
    return new CallBudget(callerTimeoutMs ?? defaultMs, reserveMs);
  }

  remainingMs(): number {
    return this.#end - performance.now();
  }

  /**
   * The timeout a downstream call may have now: its own timeout, cut to the
   * remaining budget less the reserve. Throws DEADLINE_EXCEEDED when less than
   * {@link minimumCallMs} is left.
   */
  timeoutFor(ownTimeoutMs: number): number {
    return downstreamTimeoutMs({ timeoutMs: () => this.remainingMs() }, ownTimeoutMs, this.reserveMs, minimumCallMs);
  }
}
