import { maxTimerMs } from "../config.js";
import { RetryPushback } from "./retry-pushback.js";

/** How many calls a server runs at once, and how long others may wait for a turn. */
export interface AdmissionSettings {
  /** Calls running at once (MAX_CALLS_IN_FLIGHT); 0 turns admission control off. */
  maxCallsInFlight: number;
  /** Calls waiting for a slot at most (MAX_CALLS_QUEUED); more are refused at once. */
  maxCallsQueued: number;
  /**
   * Longest wait a call is queued for (MAX_QUEUE_WAIT). A call with a
   * deadline is queued for at most half of the time it arrived with,
   * whichever is shorter.
   */
  maxQueueWaitMs: number;
}

/** A call waiting for a slot. */
export interface Waiter {
  readonly admit: () => void;
  timer: NodeJS.Timeout | undefined;
}

/** Weight of the newest hold time in the running mean and variance: about the last 20 calls count. */
const holdWeight = 0.05;

/**
 * How many standard deviations of the wait a queued call is given on top of
 * its expected wait: a call queued on the mean alone waits past what it can
 * afford whenever the holds ahead of it run long.
 */
const waitSpread = 2;

/**
 * A queued call is refused after all only when no slot at all has come free
 * for this many times MAX_QUEUE_WAIT: the server is stuck (handlers that
 * never return), not busy, and a caller without a deadline would otherwise
 * wait for as long as it stays stuck.
 */
export const stuckQueueFactor = 4;

/**
 * Admission control: at most `maxCallsInFlight` calls run at once, at most
 * `maxCallsQueued` wait, first come first served.
 *
 * A call that finds every slot taken is queued only when it can expect a
 * slot within what it can afford to wait (`maxQueueWaitMs`, or half the time
 * its deadline gave it when that is shorter): past that it would start with
 * too little time to finish. Slots come free at about `maxCallsInFlight` per
 * mean hold time (a running mean of how long admitted calls held their
 * slot), so the n-th in the queue expects to wait n × mean hold ÷ slots,
 * give or take √n × the holds' standard deviation ÷ slots (the mean hold
 * is taken as at least the mean time the running calls have held theirs so
 * far); it is queued only when the expected wait plus twice that spread is
 * affordable, and refused at once otherwise. Before any call has given its slot back there is no
 * estimate, and nothing is queued.
 *
 * That decision is made when the call arrives, and only then. A refusal
 * while the caller still listens (RESOURCE_EXHAUSTED: try elsewhere, or
 * later) is of use to it; a refusal after a wait is not: the wait is lost,
 * and the call would have had its turn soon after. So a queued call keeps
 * its place until a slot comes free for it, however far its wait runs over
 * the estimate, unless its caller gives up (its deadline, or a cancel) or no
 * slot has come free for {@link stuckQueueFactor} × `maxQueueWaitMs`. What
 * the wait took counts against the call's own budget.
 *
 * The common case, a free slot and nobody waiting, is {@link tryAcquire} and
 * {@link release}: a counter, no objects. cockatiel's bulkhead has the same
 * slots and queue, but a waiting call that gives up keeps its queue place,
 * and it has neither a per-call wait limit nor an estimate of the wait.
 */
export class CallLimiter {
  #running = 0;
  /** When a slot last came free (performance.now()). */
  #lastReleaseAt = 0;
  /** The sum of the running calls' admission times (performance.now()), for their mean age. */
  #admittedAtSum = 0;
  #meanHoldMs = 0;
  #holdVariance = 0;
  readonly #queue: Waiter[] = [];

  constructor(
    readonly settings: AdmissionSettings,
    /** Tells each refused call how long to wait before trying again; counts admissions and refusals. */
    readonly pushback: RetryPushback = new RetryPushback(),
  ) {}

  /** Calls running now. */
  get running(): number {
    return this.#running;
  }

  /** Calls waiting for a slot now. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Running mean of how long an admitted call held its slot, in ms (0 before the first). */
  get meanHoldMs(): number {
    return this.#meanHoldMs;
  }

  /** Running standard deviation of those hold times, in ms. */
  get holdDeviationMs(): number {
    return Math.sqrt(this.#holdVariance);
  }

  /** Takes a slot when one is free and nobody waits for one; then {@link release} must follow. */
  tryAcquire(): boolean {
    if (this.#running >= this.settings.maxCallsInFlight || this.#queue.length > 0) return false;
    this.#admit();
    return true;
  }

  #admit(): void {
    this.#running++;
    this.#admittedAtSum += performance.now();
    this.pushback.admitted();
  }

  /** Frees the slot of a call admitted `heldMs` ago, and starts the next waiting call. */
  release(heldMs: number): void {
    this.#running--;
    this.#lastReleaseAt = performance.now();
    this.#admittedAtSum = this.#running === 0 ? 0 : this.#admittedAtSum - (this.#lastReleaseAt - heldMs);
    if (this.#meanHoldMs === 0) {
      this.#meanHoldMs = heldMs;
    } else {
      const difference = heldMs - this.#meanHoldMs;
      this.#meanHoldMs += holdWeight * difference;
      this.#holdVariance = (1 - holdWeight) * (this.#holdVariance + holdWeight * difference * difference);
    }
    while (this.#running < this.settings.maxCallsInFlight && this.#queue.length > 0) {
      const next = this.#queue.shift()!;
      clearTimeout(next.timer);
      this.#admit();
      next.admit();
    }
  }

  /**
   * Queues a call that {@link tryAcquire} did not admit, with `timeLeftMs`
   * until its deadline (undefined: none). Calls `admit` when it holds a slot
   * (then {@link release} must follow) or `refuse` with the status message
   * and how long the caller should wait before trying again (ms);
   * exactly one of them, at most once, and `refuse` maybe before this
   * returns. Returns the waiter, for {@link leave}, or undefined when refused
   * at once.
   */
  wait(
    timeLeftMs: number | undefined,
    admit: () => void,
    refuse: (details: string, pushbackMs: number) => void,
  ): Waiter | undefined {
    const { maxCallsInFlight, maxCallsQueued, maxQueueWaitMs } = this.settings;
    const affordableMs = Math.min(maxQueueWaitMs, timeLeftMs === undefined ? Infinity : timeLeftMs / 2);
    const position = this.#queue.length + 1;
    // The calls running now have held their slots this long on average already: when holds grow
    // (a slow dependency, a burst that takes the cores), that shows before their running mean does.
    const meanAgeMs = this.#running === 0 ? 0 : performance.now() - this.#admittedAtSum / this.#running;
    const expectedMs = (position * Math.max(this.#meanHoldMs, meanAgeMs)) / maxCallsInFlight;
    const spreadMs = (waitSpread * Math.sqrt(position * this.#holdVariance)) / maxCallsInFlight;
    if (
      position > maxCallsQueued ||
      affordableMs <= 0 ||
      this.#meanHoldMs === 0 ||
      expectedMs + spreadMs > affordableMs
    ) {
      const why =
        position > maxCallsQueued
          ? `${this.#queue.length} waiting`
          : this.#meanHoldMs === 0
            ? "no call has finished yet to tell how long a wait would be"
            : `a wait of about ${Math.round(expectedMs)} ms expected${spreadMs >= 0.5 ? ` (up to ${Math.round(expectedMs + spreadMs)} ms)` : ""}, ${Math.max(0, Math.round(affordableMs))} ms affordable`;
      refuse(`server overloaded: ${this.#running} calls in progress, ${why}`, this.pushback.refused());
      return undefined;
    }
    const waiter: Waiter = { admit, timer: undefined };
    const stuckMs = stuckQueueFactor * maxQueueWaitMs;
    const queuedAt = performance.now();
    const check = () => {
      const idleMs = performance.now() - Math.max(this.#lastReleaseAt, queuedAt);
      if (idleMs < stuckMs) {
        waiter.timer = setTimeout(check, Math.min(stuckMs - idleMs, maxTimerMs));
        return;
      }
      this.leave(waiter);
      refuse(
        `server overloaded: ${this.#running} calls in progress, and none has finished for ${Math.round(idleMs)} ms`,
        this.pushback.refused(),
      );
    };
    // Four times a MAX_QUEUE_WAIT near setTimeout's limit would pass it, and Node would fire the
    // check every millisecond for as long as the call waits.
    waiter.timer = setTimeout(check, Math.min(stuckMs, maxTimerMs));
    this.#queue.push(waiter);
    return waiter;
  }

  /** Gives up the queue place of a call that ended while waiting. */
  leave(waiter: Waiter): void {
    clearTimeout(waiter.timer);
    const index = this.#queue.indexOf(waiter);
    if (index >= 0) this.#queue.splice(index, 1);
  }
}
