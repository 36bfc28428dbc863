import * as hdr from "hdr-histogram-js";

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
        }
      }
    }),
  );
  return { calls, errors, firstError, elapsedMs: performance.now() - started };
}
