/**
 * How long a request may take to arrive whole before it may be cut for
 * memory. A request sent in one piece arrives within a few turns of the
 * event loop; this leaves room for a loop held up by garbage collection.
 */
export const arrivalGraceMs = 250;

/** How many requests still arriving a server keeps: as many as it holds calls, running and queued. */
export function maxRequestsArriving(admission: { maxCallsInFlight: number; maxCallsQueued: number }): number {
  return admission.maxCallsInFlight + admission.maxCallsQueued;
}

/** A request whose body has begun to arrive but not ended. */
export interface ArrivingRequest {
  /** When it began: its headers read (performance.now()). */
  readonly startedAt: number;
  /** Ends it for good, telling the caller why where the protocol still can. */
  cut(details: string, afterMs: number): void;
}

/**
 * The requests of one server still arriving, oldest first. A request that
 * has begun holds its stream or connection and what it has sent, up to
 * MAX_REQUEST_BYTES, and a caller may open many and never end them. So no
 * more of them are kept than the server would hold calls anyway (its slots
 * and its queue): past that, the oldest, once they have had
 * {@link arrivalGraceMs} to arrive, are cut. A request sent whole leaves
 * this set within a few turns of the event loop, so it is not the one cut,
 * and requests that never end cannot keep it from being answered.
 *
 * @internal
 */
export class RequestArrivals<T extends ArrivingRequest> {
  readonly #requests = new Set<T>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(
    readonly limit: number,
    readonly graceMs: number = arrivalGraceMs,
  ) {}

  add(request: T): void {
    this.#requests.add(request);
    if (this.#requests.size > this.limit) this.#cutOldest();
  }

  delete(request: T): void {
    this.#requests.delete(request);
  }

  #cutOldest(): void {
    const now = performance.now();
    // Deleting the entry a Set's iterator stands on is safe: iteration goes on with the next.
    for (const request of this.#requests) {
      if (this.#requests.size <= this.limit) return;
      const age = now - request.startedAt;
      if (age < this.graceMs) {
        this.#sweep ??= setTimeout(() => {
          this.#sweep = undefined;
          this.#cutOldest();
        }, this.graceMs - age).unref();
        return;
      }
      this.#requests.delete(request);
      request.cut(
        `request not complete after ${Math.round(age)} ms while ${this.#requests.size} others were also arriving (this server keeps at most ${this.limit}); send the whole request at once`,
        age,
      );
    }
  }
}
