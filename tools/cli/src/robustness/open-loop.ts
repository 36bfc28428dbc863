/** What an open loop did. */
export interface OpenLoopResult {
  started: number;
  /** Calls due while `maxInFlight` were already waiting: not sent, counted. */
  skipped: number;
}

/**
 * Starts `call` at `rate` a second for `durationMs`, whatever the answers
 * take (an open loop, as independent callers would), with at most
 * `maxInFlight` waiting at once; resolves when the last call has ended. At
 * most rate × duration calls are made.
 */
export async function openLoop(options: {
  rate: number;
  durationMs: number;
  maxInFlight: number;
  call: () => Promise<void>;
}): Promise<OpenLoopResult> {
  const { rate, durationMs, maxInFlight, call } = options;
  const started = performance.now();
  const total = Math.floor((rate * durationMs) / 1000);
  let issued = 0;
  let skipped = 0;
  let inFlight = 0;
  const pending = new Set<Promise<void>>();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const elapsed = performance.now() - started;
      const due = Math.min(total, Math.floor((elapsed * rate) / 1000));
      while (issued + skipped < due) {
        if (inFlight >= maxInFlight) {
          skipped++;
          continue;
        }
        issued++;
        inFlight++;
        const running: Promise<void> = call()
          .catch(() => undefined)
          .finally(() => {
            inFlight--;
            pending.delete(running);
          });
        pending.add(running);
      }
      if (elapsed >= durationMs || issued + skipped >= total) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, 5);
  });
  while (pending.size > 0) await Promise.all([...pending]);
  return { started: issued, skipped };
}
