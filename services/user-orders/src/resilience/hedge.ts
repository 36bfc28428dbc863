import { Code, ConnectError } from "@connectrpc/connect";

/** Sends one request with the given cancellation signal and timeout. */
export type Send<T> = (options: { signal: AbortSignal; timeoutMs: number }) => Promise<T>;

/** Options for {@link hedged}. */
export interface HedgeOptions {
  /** How long to wait for an answer before sending a second request; undefined: never. */
  delayMs: number | undefined;
  /** `performance.now()` time by which every request must have ended. */
  deadline: number;
  /** Least time a request needs to be worth sending. */
  minimumAttemptMs: number;
  /** Cancels every request when aborted. */
  signal: AbortSignal;
  /**
   * Whether a failure is an answer the other request would only repeat (say
   * PERMISSION_DENIED), so that there is no point waiting for it.
   */
  isAnswer(error: unknown): boolean;
  /** Called when the second request is sent. */
  onHedge(): void;
}

/**
 * Sends a request and, when no answer has come after `delayMs`, an identical
 * second one; the first success wins and the other request is cancelled. A
 * failure waits for the other request still in flight, unless it is an
 * answer. Both requests share one deadline: the second gets only what is left.
 */
export function hedged<T>(send: Send<T>, options: HedgeOptions): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const inFlight = new Set<AbortController>();
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      done = true;
      clearTimeout(timer);
      for (const controller of inFlight)
        controller.abort(new ConnectError("another request answered first", Code.Canceled));
    };
    const launch = () => {
      const timeoutMs = Math.max(1, Math.floor(options.deadline - performance.now()));
      if (options.delayMs === undefined) {
        // Never hedged: no other request to cancel, so the caller's signal is
        // enough (a controller and AbortSignal.any per call were a
        // measurable share of a view's CPU).
        send({ signal: options.signal, timeoutMs }).then(resolve, reject);
        return;
      }
      const controller = new AbortController();
      inFlight.add(controller);
      send({ signal: AbortSignal.any([options.signal, controller.signal]), timeoutMs }).then(
        (value) => {
          inFlight.delete(controller);
          if (done) return;
          finish();
          resolve(value);
        },
        (error: unknown) => {
          inFlight.delete(controller);
          if (done) return;
          if (inFlight.size > 0 && !options.isAnswer(error)) return;
          finish();
          reject(error);
        },
      );
    };
    launch();
    if (options.delayMs !== undefined) {
      timer = setTimeout(() => {
        if (done || options.signal.aborted) return;
        if (options.deadline - performance.now() < options.minimumAttemptMs) return;
        options.onHedge();
        launch();
      }, options.delayMs);
    }
  });
}
