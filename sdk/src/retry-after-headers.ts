import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import type { DescMethod } from "@bufbuild/protobuf";
import type { Metadata } from "@grpc/grpc-js";

/**
 * The `retry` option, checked, with its defaults filled in.
 *
 * grpc-js follows gRPC's retry design, which commits a call to its attempt
 * as soon as the server's response headers arrive: a server that dies
 * between its headers and its trailers (killed while writing the answer)
 * fails the call with UNAVAILABLE and no retry. For a method whose contract
 * says it has no side effects or is idempotent, sending it again is as safe
 * then as before, so the SDK does it for the methods named in `retry`, with
 * the same attempt budget and backoff, cut off by the deadline.
 *
 * @internal
 */
export interface RetryPlan {
  /** Services (`pkg.Service`) and methods (`pkg.Service/Method`) named. */
  readonly names: readonly { service: string; method?: string }[];
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

/**
 * Whether a unary call of `method` may be sent again after its connection
 * broke once the response headers had arrived: it is named in the plan and
 * its contract says that repeating it is safe.
 *
 * @internal
 */
export function retriesAfterHeaders(method: DescMethod, plan: RetryPlan): boolean {
  if (method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN) return false;
  return plan.names.some(
    (name) => name.service === method.parent.typeName && (name.method === undefined || name.method === method.name),
  );
}

/**
 * How many attempts grpc-js made for a call whose response headers arrived:
 * its own retries say so in `grpc-previous-rpc-attempts`.
 *
 * @internal
 */
export function attemptsBehind(headers: Metadata): number {
  const previous = Number(headers.get("grpc-previous-rpc-attempts")[0] ?? 0);
  return Number.isInteger(previous) && previous > 0 ? previous + 1 : 1;
}

/**
 * The wait before the next attempt after `attempts` so far: jittered, from
 * the initial backoff doubling up to the longest, as grpc-js waits.
 *
 * @internal
 */
export function backoffMs(plan: RetryPlan, attempts: number): number {
  const ceiling = Math.min(plan.initialBackoffMs * 2 ** Math.max(0, attempts - 1), plan.maxBackoffMs);
  return Math.random() * ceiling;
}
