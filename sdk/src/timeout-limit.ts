/**
 * The longest timeout a call is sent with: 99,999,999 ms, about 27.8 hours,
 * the most gRPC's grpc-timeout header carries in milliseconds (8 digits).
 * Past it, a grpc-js server misreads the header whichever way it is
 * written: connect-es writes milliseconds, of which the server reads only
 * the last 8 digits; grpc-js writes seconds or hours, which the server
 * multiplies into a 32-bit count of milliseconds that wraps around.
 */
export const maxSentTimeoutMs = 99_999_999;

/** A call's timeout as sent: at most {@link maxSentTimeoutMs}, none when none was asked for. */
export function boundedTimeoutMs(timeoutMs: number | undefined): number | undefined {
  return timeoutMs === undefined ? undefined : Math.min(timeoutMs, maxSentTimeoutMs);
}
