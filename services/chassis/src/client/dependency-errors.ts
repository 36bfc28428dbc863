import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GrpcTransport } from "@shopmesh/sdk";
import type { Logger } from "../logger.js";
import { statusName } from "../server/call-status.js";

/**
 * What a caller is told when a dependency could not do its job, by code.
 * The message names the dependency and the status, nothing more: grpc-js
 * writes where the dependency lives into its own messages
 * (`connect ECONNREFUSED 127.0.0.1:50052`, `remote_addr=...`), and those
 * messages travel on to our callers inside degradations and wrapped errors.
 */
const outageWords: ReadonlyMap<Code, string> = new Map([
  [Code.Unavailable, "is unavailable"],
  [Code.DeadlineExceeded, "did not answer in time"],
  [Code.ResourceExhausted, "could not take the call"],
  [Code.Internal, "failed"],
  [Code.Unknown, "failed"],
]);

/**
 * Whether a code says a dependency could not do its job (UNAVAILABLE,
 * DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN), as opposed to a
 * code that answers the request (NOT_FOUND, PERMISSION_DENIED, ...).
 * ABORTED is left out on purpose: a conflict between writers that a healthy
 * server detected; and CANCELLED: we or our caller gave up.
 */
export function isOutageCode(code: Code): boolean {
  return outageWords.has(code);
}

/**
 * The short name of the service a contract belongs to, from its package:
 * `shopmesh.products.v1.ProductsService` is "products".
 */
export function dependencyName(service: DescService): string {
  const parts = service.typeName.split(".");
  const version = parts.findIndex((part) => /^v\d+/.test(part));
  return version > 0 ? parts[version - 1]! : service.name;
}

/**
 * Wraps the transport to a dependency: an outage-like failure (UNAVAILABLE,
 * DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN) is logged with
 * the dependency's address and what grpc-js or the dependency said, and
 * reaches the calling code with the same code and trailers but a message that
 * only names the dependency and the status, e.g. "products is unavailable
 * (UNAVAILABLE)". Failures that answer the request (INVALID_ARGUMENT,
 * NOT_FOUND, PERMISSION_DENIED, ...) and cancellations pass unchanged: a
 * dependency's handler wrote them for its callers.
 *
 * A wrapper rather than a Connect interceptor: with an interceptor, the SDK's
 * grpc-js transport makes a timer and an AbortController for every call so
 * that interceptors can see the deadline, and these calls are the hot path
 * of every view.
 */
export function hideDependencyErrors(transport: GrpcTransport, logger: Logger): GrpcTransport {
  const { target } = transport;
  const hide = (method: DescMethod, error: unknown): ConnectError => {
    const failure = ConnectError.from(error);
    const words = outageWords.get(failure.code);
    if (words === undefined) return failure;
    const dependency = dependencyName(method.parent);
    const code = statusName(failure.code);
    logger.warn(
      { dependency, target, method: `${method.parent.typeName}/${method.name}`, code, detail: failure.rawMessage },
      `call to ${dependency} failed`,
    );
    return new ConnectError(`${dependency} ${words} (${code})`, failure.code, failure.metadata, undefined, failure);
  };
  return {
    target,
    close: () => transport.close(),
    unary: (method, signal, timeoutMs, header, message, contextValues) =>
      transport.unary(method, signal, timeoutMs, header, message, contextValues).catch((error: unknown) => {
        throw hide(method, error);
      }),
    stream: async (method, signal, timeoutMs, header, input, contextValues) => {
      let res;
      try {
        res = await transport.stream(method, signal, timeoutMs, header, input, contextValues);
      } catch (error) {
        throw hide(method, error);
      }
      return { ...res, message: hideStreamErrors(res.message, (error) => hide(method, error)) };
    },
  };
}

async function* hideStreamErrors<T>(
  messages: AsyncIterable<T>,
  hide: (error: unknown) => ConnectError,
): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw hide(error);
  }
}
