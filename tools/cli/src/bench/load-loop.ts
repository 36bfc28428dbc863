import { retryPushbackMs } from "@shopmesh/sdk";
import * as hdr from "hdr-histogram-js";
import { setTimeout as sleep } from "node:timers/promises";

/** A latency histogram in microseconds, from 1 µs to one minute, 3 significant digits. */
export type LatencyHistogram = hdr.Histogram;

export function newHistogram(): LatencyHistogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

/** What one closed-loop run did. */
export interface LoopResult {
  calls: number;
  errors: number;
  /** The first error's message, if any call failed. */
  firstError: string | undefined;
  elapsedMs: number;
}

/**
 * Keeps `concurrency` calls in flight for `ms`: each of `concurrency` loops
 * makes one call, waits for its answer and makes the next (a closed loop, so
 * the load adapts to what the server sustains). Successful calls' latencies go
 * into `histogram` (µs) when one is given; failed calls are counted, not timed.
 * A loop whose call was refused with a retry pushback (admission control's
 * RESOURCE_EXHAUSTED) pauses that long before its next call, as a caller
 * that honours it would, rather than sending the refused call straight back
 * and measuring a retry storm.
 */
export async function closedLoop(
  call: () => Promise<unknown>,
  concurrency: number,
  ms: number,
  histogram?: LatencyHistogram,
): Promise<LoopResult> {
  const started = performance.now();
  const end = started + ms;
  let calls = 0;
  let errors = 0;
  let firstError: string | undefined;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const callStarted = performance.now();
        try {
          await call();
          calls++;
          histogram?.recordValue(Math.max(1, Math.round((performance.now() - callStarted) * 1000)));
        } catch (error) {
          errors++;
          firstError ??= error instanceof Error ? error.message : String(error);
          const pushback = retryPushbackMs(error);
          if (pushback !== undefined) await pauseUntil(Math.min(performance.now() + pushback, end));
        }
      }
    }),
  );
  return { calls, errors, firstError, elapsedMs: performance.now() - started };
}

/**
 * Waits until `performance.now()` reaches `until`. One timer is not enough:
 * Node.js counts timers in whole milliseconds of the event loop's clock, so
 * a sleep can end up to a millisecond before that time, and a loop would
 * send its next call before the pushback was over.
 */
export async function pauseUntil(until: number): Promise<void> {
  for (let left = until - performance.now(); left > 0; left = until - performance.now()) await sleep(left);
}
