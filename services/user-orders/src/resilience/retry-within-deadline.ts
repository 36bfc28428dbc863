import { setTimeout as sleep } from "node:timers/promises";
import type { IBackoff, IBackoffFactory } from "cockatiel";

/** Options for {@link retryWithinDeadline}. */
export interface RetryOptions {
  /** Retries after the first attempt; 0 turns retrying off. */
  retries: number;
  /** Delays between attempts (cockatiel's exponential backoff with jitter in production). */
  backoff: IBackoffFactory<unknown>;
  retryable(error: unknown): boolean;
  /** `performance.now()` time by which every attempt must have ended. */
  deadline: number;
  /** Least time an attempt needs to be worth starting. */
  minimumAttemptMs: number;
  /** Stops retrying (and any wait between attempts) when aborted. */
  signal: AbortSignal;
}

/**
 * Runs `attempt` and retries it on retryable failures, but never past the
 * deadline: a backoff that would leave an attempt less than
 * `minimumAttemptMs` before the deadline is not started, and the last failure
 * is thrown instead.
 *
 * Not cockatiel's RetryPolicy: it sleeps through an aborted signal and has no
 * way to refuse a backoff that would end after the deadline, and both matter
 * when a caller's budget is the limit. The jittered delays are cockatiel's.
 */
export async function retryWithinDeadline<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  let backoff: IBackoff<unknown> | undefined;
  for (let retry = 0; ; retry++) {
    try {
      return await attempt();
    } catch (error) {
      if (retry >= options.retries || options.signal.aborted || !options.retryable(error)) throw error;
      backoff = backoff ? backoff.next(undefined) : options.backoff.next(undefined);
      if (performance.now() + backoff.duration + options.minimumAttemptMs > options.deadline) throw error;
      try {
        await sleep(backoff.duration, undefined, { signal: options.signal });
      } catch {
        throw error;
      }
    }
  }
}
