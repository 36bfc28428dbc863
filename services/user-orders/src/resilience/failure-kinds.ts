import { Code } from "@connectrpc/connect";

/**
 * Only outage codes (the chassis' isOutageCode) count towards opening a
 * circuit breaker; codes that answer the request do not.
 */
export { isOutageCode } from "@shopmesh/chassis";

/**
 * Only UNAVAILABLE is retried: it means the request most likely never reached
 * a handler (no connection, server draining), so a second try can succeed
 * where the first could not. DEADLINE_EXCEEDED is not retried: the time is
 * gone. INTERNAL and the rest would fail the same way again.
 */
export function isRetryableCode(code: Code): boolean {
  return code === Code.Unavailable;
}
