import { Metadata } from "@grpc/grpc-js";
import { decodeBinaryHeader, encodeBinaryHeader } from "@connectrpc/connect";

/** Anything the Fetch API `Headers` constructor accepts. */
export type HeadersLike = ConstructorParameters<typeof Headers>[0];

/**
 * Keys that belong to the gRPC protocol or to HTTP/2 itself. They are never
 * copied between Connect `Headers` and grpc-js `Metadata`: the transport sets
 * them, and application code must not. The one exception is
 * `grpc-retry-pushback-ms`, which a server's application sets to tell a
 * client when to try again (gRFC A6).
 */
function isProtocolKey(key: string): boolean {
  return (
    key.startsWith(":") ||
    (key.startsWith("grpc-") && key !== "grpc-retry-pushback-ms") ||
    key === "content-type" ||
    key === "te" ||
    key === "user-agent" ||
    key === "host" ||
    key === "connection"
  );
}

/**
 * Converts grpc-js metadata to Fetch API headers as Connect expects them:
 * binary (`-bin`) values are base64-encoded, repeated keys are joined.
 *
 * @internal
 */
export function metadataToHeaders(metadata: Metadata | undefined, target = new Headers()): Headers {
  if (!metadata) return target;
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    if (isProtocolKey(key)) continue;
    for (const value of values) {
      if (key.endsWith("-bin")) {
        target.append(key, encodeBinaryHeader(typeof value === "string" ? Buffer.from(value) : value));
      } else {
        target.append(key, value.toString());
      }
    }
  }
  return target;
}

/**
 * Converts Fetch API headers to grpc-js metadata. Binary (`-bin`) values are
 * decoded from base64; protocol headers are left to the transport.
 *
 * @internal
 */
export function headersToMetadata(headers: HeadersLike, target = new Metadata()): Metadata {
  if (!headers) return target;
  (headers instanceof Headers ? headers : new Headers(headers)).forEach((value, key) => {
    if (isProtocolKey(key)) return;
    if (key.endsWith("-bin")) {
      for (const part of value.split(",")) {
        target.add(key, Buffer.from(decodeBinaryHeader(part.trim())));
      }
    } else {
      target.add(key, value);
    }
  });
  return target;
}
