/**
 * A request stream the caller writes to as a conversation goes: `push` sends
 * a message, `close` half-closes. A bidi call reads it as its requests, so the
 * next request can depend on the last response.
 */
export class RequestQueue<T> implements AsyncIterable<T> {
  private readonly queued: T[] = [];
  private closed = false;
  private wake: (() => void) | undefined;

  push(message: T): void {
    this.queued.push(message);
    this.notify();
  }

  /** Ends the stream once the queued messages are read. */
  close(): void {
    this.closed = true;
    this.notify();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      const next = this.queued.shift();
      if (next !== undefined) yield next;
      else if (this.closed) return;
      else await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    this.wake?.();
    this.wake = undefined;
  }
}
