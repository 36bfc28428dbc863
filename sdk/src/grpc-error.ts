import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { Code, ConnectError } from "@connectrpc/connect";
import { metadataToHeaders } from "./metadata.js";

/**
 * What grpc-js says, as the details of an INTERNAL status, when the HTTP/2
 * connection under a call went away rather than the server answering:
 *
 * - the server closed the session with an error code (a GOAWAY carrying
 *   INTERNAL_ERROR, say): grpc-js reports "Received RST_STREAM with code 2
 *   triggered by internal client error: Session closed with error code 2";
 * - any other failure of the session or its socket that grpc-js saw as an
 *   error on the stream ("triggered by internal client error: ...");
 * - the session was already closed or draining when the call was started,
 *   so the request was never sent ("Failed to start HTTP/2 stream with
 *   error ...").
 *
 * gRPC reads a dropped connection as UNAVAILABLE (and grpc-js itself says so
 * for a plain socket close or a REFUSED_STREAM), which tells a client that an
 * idempotent call may be tried again. A RST_STREAM with INTERNAL_ERROR on a
 * connection that stays up is the server failing that one call, and stays
 * INTERNAL, as the gRPC HTTP/2 mapping has it.
 */
const connectionLost = [
  /triggered by internal client error/,
  /^Failed to start HTTP\/2 stream/,
  /Session closed with error code/,
];

/** Whether a grpc-js INTERNAL status is really a connection that was torn down. */
export function isConnectionLoss(code: number, details: string): boolean {
  return code === GrpcStatus.INTERNAL && connectionLost.some((pattern) => pattern.test(details));
}

/**
 * Turns a grpc-js error into a ConnectError with the same code, except that
 * a torn-down connection becomes UNAVAILABLE (see {@link isConnectionLoss}).
 * The details and trailers are kept.
 */
export function toConnectError(error: ServiceError): ConnectError {
  // gRPC and Connect number their codes alike; OK (0) never arrives as an
  // error, and anything unknown stays UNKNOWN.
  const code = isConnectionLoss(error.code, error.details)
    ? Code.Unavailable
    : error.code > GrpcStatus.OK && error.code <= GrpcStatus.UNAUTHENTICATED
      ? (error.code as number as Code)
      : Code.Unknown;
  return new ConnectError(error.details, code, metadataToHeaders(error.metadata), undefined, error);
}
