import { ConnectError } from "@connectrpc/connect";

const pushbackHeader = "grpc-retry-pushback-ms";

/**
 * How long the server asked the caller to wait before trying again, in ms,
 * when it refused a call (RESOURCE_EXHAUSTED from a shopmesh server's
 * admission control carries `grpc-retry-pushback-ms`), or undefined when it
 * did not say. A caller that honours it keeps an overloaded server's
 * refusals cheap for both sides; one that retries at once only adds load.
 *
 * ```ts
 * const wait = retryPushbackMs(error);
 * if (wait !== undefined) await setTimeout(wait);
 * ```
 */
export function retryPushbackMs(error: unknown): number | undefined {
  if (!(error instanceof ConnectError)) return undefined;
  const value = error.metadata.get(pushbackHeader);
  // gRPC's retry design: anything but a non-negative whole number means "do not retry".
  if (value === null || !/^\d{1,9}$/.test(value.trim())) return undefined;
  return Number(value.trim());
}
