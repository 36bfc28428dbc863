/**
 * The longest timeout a call is sent with: 99,999,999 ms, about 27.8 hours,
 * the most gRPC's grpc-timeout header carries in milliseconds (8 digits).
 * Past it, a grpc-js server misreads the header either way it can be
 * written: connect-es writes milliseconds, and the server reads only the
 * last 8 digits (30 days became 13 hours); grpc-js writes seconds or hours,
 * and the server multiplies them into 32-bit milliseconds, which wrap
 * around past 24.8 days (the call ended at once with DEADLINE_EXCEEDED).
 */
export const maxTimeoutMs = 99_999_999;

/** A call's timeout as sent: at most {@link maxTimeoutMs}, none when none was asked for. */
export function boundedTimeoutMs(timeoutMs: number | undefined): number | undefined {
  return timeoutMs === undefined ? undefined : Math.min(timeoutMs, maxTimeoutMs);
}
