/** How many calls a server runs at once, and how long others may wait for a turn. */
export interface AdmissionSettings {
  /** Calls running at once (MAX_CALLS_IN_FLIGHT); 0 turns admission control off. */
  maxCallsInFlight: number;
  /** Calls waiting for a slot at most (MAX_CALLS_QUEUED); more are refused at once. */
  maxCallsQueued: number;
  /**
   * Longest wait for a slot (MAX_QUEUE_WAIT). A call with a deadline waits at
   * most half of the time it arrived with, whichever is shorter.
   */
  maxQueueWaitMs: number;
}

interface Waiter {
  admit: () => void;
  timer: NodeJS.Timeout | undefined;
  state: "waiting" | "running" | "done";
}

const nothing = () => undefined;

/**
 * Admission control: at most `maxCallsInFlight` calls run at once, at most
 * `maxCallsQueued` wait, first come first served, and a waiting call is
 * refused once it has waited `maxQueueWaitMs` or half of the time its
 * deadline gave it, whichever comes first. Past that point it would start
 * with too little time to finish, and a refusal while the caller still
 * listens (RESOURCE_EXHAUSTED: try elsewhere, or later) is more use to it
 * than a DEADLINE_EXCEEDED that looks like a slow server.
 *
 * cockatiel's bulkhead has the same slots and queue, but a waiting call that
 * gives up keeps its queue place until it reaches the head, and it has no
 * per-call wait limit; refusing at the right time would need a timer and an
 * AbortSignal per waiting call around it anyway. This is the whole of it.
 */
export class CallLimiter {
  #running = 0;
  readonly #queue: Waiter[] = [];

  constructor(readonly settings: AdmissionSettings) {}

  /** Calls running now. */
  get running(): number {
    return this.#running;
  }

  /** Calls waiting for a slot now. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Asks for a slot for a call with `timeLeftMs` until its deadline
   * (undefined: no deadline). Calls `admit` when the call may run, now or
   * later, or `refuse` with the status message when it may not; exactly one
   * of them, at most once. Returns the function to call when the call ends
   * (however it ends, also while it waits): it frees the slot or the place
   * in the queue, once.
   */
  request(timeLeftMs: number | undefined, admit: () => void, refuse: (details: string) => void): () => void {
    const { maxCallsInFlight, maxCallsQueued, maxQueueWaitMs } = this.settings;
    if (maxCallsInFlight === 0) {
      admit();
      return nothing;
    }
    if (this.#running < maxCallsInFlight && this.#queue.length === 0) {
      this.#running++;
      admit();
      return this.#releaser({ admit, timer: undefined, state: "running" });
    }
    const waitMs = Math.min(maxQueueWaitMs, timeLeftMs === undefined ? Infinity : timeLeftMs / 2);
    if (this.#queue.length >= maxCallsQueued || waitMs <= 0) {
      refuse(`server overloaded: ${this.#running} calls in progress, ${this.#queue.length} waiting`);
      return nothing;
    }
    const waiter: Waiter = { admit, timer: undefined, state: "waiting" };
    waiter.timer = setTimeout(() => {
      this.#remove(waiter);
      waiter.state = "done";
      refuse(`server overloaded: ${this.#running} calls in progress; no slot came free within ${Math.round(waitMs)} ms`);
    }, waitMs);
    this.#queue.push(waiter);
    return this.#releaser(waiter);
  }

  #releaser(waiter: Waiter): () => void {
    return () => {
      if (waiter.state === "waiting") {
        clearTimeout(waiter.timer);
        this.#remove(waiter);
      } else if (waiter.state === "running") {
        this.#running--;
        this.#startWaiting();
      }
      waiter.state = "done";
    };
  }

  #remove(waiter: Waiter): void {
    const index = this.#queue.indexOf(waiter);
    if (index >= 0) this.#queue.splice(index, 1);
  }

  #startWaiting(): void {
    while (this.#running < this.settings.maxCallsInFlight && this.#queue.length > 0) {
      const next = this.#queue.shift()!;
      clearTimeout(next.timer);
      next.state = "running";
      this.#running++;
      next.admit();
    }
  }
}
