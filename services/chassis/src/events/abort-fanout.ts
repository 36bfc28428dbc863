/**
 * Listens to long-lived signals (a server's "stopping") for many
 * short-lived subscribers (its open streams) with one listener per signal.
 * A listener per subscriber would pass Node's limit of ten per signal and
 * warn of a leak with a dozen streams open; AbortSignal.any would keep a
 * registration per stream ever opened (Node 20 never removes them).
 */
export class AbortFanout {
  readonly #subscribers = new Map<AbortSignal, { listener: () => void; callbacks: Set<() => void> }>();

  /**
   * Calls `onAbort` when `signal` aborts, at once if it has. Returns the
   * function that unsubscribes; the signal is let go of with its last
   * subscriber.
   */
  subscribe(signal: AbortSignal, onAbort: () => void): () => void {
    if (signal.aborted) {
      onAbort();
      return () => undefined;
    }
    let entry = this.#subscribers.get(signal);
    if (!entry) {
      const callbacks = new Set<() => void>();
      const listener = () => {
        this.#subscribers.delete(signal);
        for (const callback of callbacks) callback();
      };
      entry = { listener, callbacks };
      this.#subscribers.set(signal, entry);
      signal.addEventListener("abort", listener, { once: true });
    }
    const { callbacks, listener } = entry;
    callbacks.add(onAbort);
    return () => {
      if (!callbacks.delete(onAbort) || callbacks.size > 0) return;
      if (this.#subscribers.get(signal)?.callbacks === callbacks) this.#subscribers.delete(signal);
      signal.removeEventListener("abort", listener);
    };
  }
}
