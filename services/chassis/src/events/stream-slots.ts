import { Code, ConnectError } from "@connectrpc/connect";

/** How many event streams a server holds open at once. */
export interface StreamLimits {
  /** Open streams in total (EVENTS_MAX_STREAMS). */
  maxStreams: number;
  /** Open streams of one caller, the service its certificate names (EVENTS_MAX_STREAMS_PER_CALLER). */
  maxStreamsPerCaller: number;
}

export const defaultStreamLimits: StreamLimits = { maxStreams: 64, maxStreamsPerCaller: 4 };

/**
 * Counts the event streams open on one log, in total and per caller, and
 * refuses one past either cap with RESOURCE_EXHAUSTED. Each open stream
 * holds a batch of events, a heartbeat timer and an HTTP/2 stream's buffers
 * on the server, so the caps are what bounds that memory; the per-caller cap
 * keeps one caller from taking every slot.
 */
export class StreamSlots {
  readonly #perCaller = new Map<string, number>();
  #open = 0;

  constructor(readonly limits: StreamLimits = defaultStreamLimits) {}

  /** Streams open now. */
  get open(): number {
    return this.#open;
  }

  /** Streams `caller` has open now. */
  openFor(caller: string): number {
    return this.#perCaller.get(caller) ?? 0;
  }

  /**
   * Takes a slot for `caller`, or throws RESOURCE_EXHAUSTED naming the cap
   * it would pass. Returns the function that gives the slot back; calling it
   * again does nothing.
   */
  acquire(caller: string): () => void {
    const held = this.openFor(caller);
    if (held >= this.limits.maxStreamsPerCaller) {
      throw new ConnectError(
        `too many event streams for this caller (limit ${this.limits.maxStreamsPerCaller})`,
        Code.ResourceExhausted,
      );
    }
    if (this.#open >= this.limits.maxStreams) {
      throw new ConnectError(
        `too many event streams on this server (limit ${this.limits.maxStreams})`,
        Code.ResourceExhausted,
      );
    }
    this.#perCaller.set(caller, held + 1);
    this.#open++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#open--;
      const left = this.openFor(caller) - 1;
      // Callers come and go; an entry per caller ever seen would grow without end.
      if (left > 0) this.#perCaller.set(caller, left);
      else this.#perCaller.delete(caller);
    };
  }
}
