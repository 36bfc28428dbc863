import type { ServiceDefinition } from "@grpc/grpc-js";

/**
 * What a request deserializer returns instead of throwing when the bytes are
 * not a valid message. grpc-js answers a throwing deserializer with INTERNAL
 * "Error deserializing request", which reads as a server bug; the call gate
 * (see call-gate.ts) answers this value with INVALID_ARGUMENT instead, before
 * any handler sees it.
 */
export class UndecodableRequest {
  constructor(
    /** The status message, e.g. "request: cannot decode shopmesh.echo.v1.EchoRequest: premature EOF". */
    readonly details: string,
  ) {}
}

/** protobuf-es repeats the type in some of its messages; the status names it once. */
const repeatedPrefix = /^cannot decode (message )?\S+ from binary: /;

/**
 * The status message for a request of type `typeName` that does not decode,
 * in the same words on the gRPC port and the HTTP port.
 */
export function cannotDecodeMessage(typeName: string, reason: string): string {
  return `request: cannot decode ${typeName}: ${reason.replace(repeatedPrefix, "")}`;
}

/**
 * The status message for a call of `path` (`/pkg.Service/Method`) whose
 * request held no message, or more than one, where the method takes one:
 * one wording on every port and protocol.
 */
export function oneMessageRefusal(path: string, sent: "none" | "more than one"): string {
  return `request: ${path} takes one request message; this call sent ${sent}`;
}

/** Wraps `decode` so that undecodable bytes give an {@link UndecodableRequest} naming `typeName`. */
export function safeDeserializer<T>(
  typeName: string,
  decode: (bytes: Buffer) => T,
): (bytes: Buffer) => T | UndecodableRequest {
  return (bytes) => {
    try {
      return decode(bytes);
    } catch (error) {
      // A RangeError from a stack overflow lands here too: deep nesting is bad input, not a crash.
      const reason = error instanceof Error ? error.message : String(error);
      return new UndecodableRequest(cannotDecodeMessage(typeName, reason));
    }
  };
}

interface ProtoLoaderMethod {
  path: string;
  requestType?: { type?: { name?: unknown } };
}

/**
 * The request type of a method defined elsewhere (grpc-js definitions from
 * @grpc/proto-loader, such as server reflection's): proto-loader keeps only
 * the short name, and the package is the service's.
 */
function requestTypeName(method: ProtoLoaderMethod): string {
  const shortName = method.requestType?.type?.name;
  const service = method.path.split("/")[1] ?? "";
  if (typeof shortName !== "string") return `the request of ${method.path}`;
  const dot = service.lastIndexOf(".");
  return dot < 0 ? shortName : `${service.slice(0, dot + 1)}${shortName}`;
}

/** A copy of a grpc-js service definition whose request deserializers never throw. */
export function decodingSafely(definition: ServiceDefinition): ServiceDefinition {
  const safe: Record<string, ServiceDefinition[string]> = {};
  for (const [name, method] of Object.entries(definition)) {
    safe[name] = {
      ...method,
      requestDeserialize: safeDeserializer(requestTypeName(method), method.requestDeserialize),
    };
  }
  return safe;
}
