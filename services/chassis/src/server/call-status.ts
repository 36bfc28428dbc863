import { Metadata, status as GrpcStatus } from "@grpc/grpc-js";
import { Code, ConnectError } from "@connectrpc/connect";
import { headersToMetadata } from "@shopmesh/sdk/internal";

/** The status a call ends with, as grpc-js sends it. */
export interface CallStatus {
  code: GrpcStatus;
  details: string;
  metadata: Metadata;
  /** The original error when it was not a ConnectError: log it, never send it. */
  internal?: unknown;
}

/** Canonical upper-case names of the gRPC status codes, by number. */
export const statusNames: readonly string[] = Object.freeze(
  Object.entries(GrpcStatus)
    .filter(([, value]) => typeof value === "number")
    .sort(([, a], [, b]) => (a as number) - (b as number))
    .map(([name]) => name),
);

/** Canonical name of a gRPC (or Connect) status code, e.g. "UNAVAILABLE". */
export function statusName(code: number): string {
  return statusNames[code] ?? `CODE_${code}`;
}

/**
 * Maps what a handler threw to the status the client receives. A ConnectError
 * keeps its code, message and metadata. Anything else becomes INTERNAL with a
 * generic message, so that no stack trace or SQL leaks to callers; the
 * original error is returned as `internal` for the log. When the call was
 * already aborted (deadline or cancellation: `abortReason`), the abort reason wins, since
 * whatever the handler threw is a consequence of it. `trailer` is what the
 * handler set as response trailer, if anything; the error's own metadata is
 * added to it.
 */
export function toCallStatus(error: unknown, abortReason: unknown, trailer: Metadata | undefined): CallStatus {
  let connectError: ConnectError | undefined;
  let internal: unknown;
  if (error instanceof ConnectError) {
    connectError = error;
  } else if (abortReason instanceof ConnectError) {
    connectError = abortReason;
  } else {
    internal = error;
    connectError = new ConnectError("internal error", Code.Internal);
  }
  const metadata = trailer ?? new Metadata();
  headersToMetadata(connectError.metadata, metadata);
  return {
    code: connectError.code as number as GrpcStatus,
    details: boundedDetails(connectError.rawMessage),
    metadata,
    internal,
  };
}

/** Characters of a status message sent in full; see {@link boundedDetails}. */
export const maxDetailsLength = 1_000;

/**
 * A status message cut to {@link maxDetailsLength} characters, saying how
 * much was left out. It travels percent-encoded in the grpc-message trailer:
 * a message that echoes a long input (an unknown health service name of
 * 100 KB) made trailers larger than the client would take, and the call,
 * with every later call on its connection, never ended.
 */
export function boundedDetails(message: string): string {
  if (message.length <= maxDetailsLength) return message;
  // Not between the two halves of a surrogate pair.
  const end = /[\uD800-\uDBFF]/.test(message[maxDetailsLength - 1]!) ? maxDetailsLength - 1 : maxDetailsLength;
  return `${message.slice(0, end)}… (${message.length - end} more characters)`;
}
