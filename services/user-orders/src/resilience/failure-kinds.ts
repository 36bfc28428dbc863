import { Code } from "@connectrpc/connect";

/**
 * Codes that say a dependency could not do its job, as opposed to codes that
 * answer the request (NOT_FOUND, PERMISSION_DENIED, ...). Only these count
 * towards opening a circuit breaker. Left out on purpose: ABORTED (a conflict
 * between writers that a healthy server detected), CANCELLED (we or our caller
 * gave up, or another hedged request won) and every caller-fault code.
 */
const outageCodes: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Internal,
  Code.Unknown,
]);

export function isOutageCode(code: Code): boolean {
  return outageCodes.has(code);
}

/**
 * Only UNAVAILABLE is retried: it means the request most likely never reached
 * a handler (no connection, server draining), so a second try can succeed
 * where the first could not. DEADLINE_EXCEEDED is not retried: the time is
 * gone. INTERNAL and the rest would fail the same way again.
 */
export function isRetryableCode(code: Code): boolean {
  return code === Code.Unavailable;
}
