import { context, propagation, SpanKind, SpanStatusCode, trace, type TextMapSetter } from "@opentelemetry/api";
import { ConnectError } from "@connectrpc/connect";
import type { GrpcTransport } from "@shopmesh/sdk";
import { dependencyName } from "../client/dependency-errors.js";
import { endSpan, startSpan } from "./span-clock.js";
import { currentAttempt } from "./tracer.js";

const headerSetter: TextMapSetter<Headers> = { set: (headers, key, value) => headers.set(key, value) };

/**
 * Wraps the transport to a dependency so that every unary request is a
 * client span, child of the active span (the call being handled), with the
 * attempt it is and whether it is a hedge, and carries its context to the
 * dependency in a `traceparent` header (W3C trace context), where the
 * chassis continues the trace. A wrapper, not an interceptor, for the reason
 * given at hideDependencyErrors; the event streams are not traced (they
 * last for hours).
 */
export function traceDependencyCalls(transport: GrpcTransport): GrpcTransport {
  return {
    target: transport.target,
    close: () => transport.close(),
    unary: (method, signal, timeoutMs, header, message, contextValues) => {
      const attempt = currentAttempt();
      const span = startSpan(`${method.parent.typeName}/${method.name}`, {
        kind: SpanKind.CLIENT,
        attributes: {
          "rpc.system": "grpc",
          "rpc.service": method.parent.typeName,
          "rpc.method": method.name,
          "peer.service": dependencyName(method.parent),
          ...(attempt ? { "shopmesh.attempt": attempt.attempt, "shopmesh.hedge": attempt.hedge } : {}),
        },
      });
      const active = trace.setSpan(context.active(), span);
      const headers = new Headers(header);
      propagation.inject(active, headers, headerSetter);
      return context
        .with(active, () => transport.unary(method, signal, timeoutMs, headers, message, contextValues))
        .then(
          (response) => {
            span.setAttribute("rpc.grpc.status_code", 0);
            endSpan(span);
            return response;
          },
          (error: unknown) => {
            const failure = ConnectError.from(error);
            span.setAttribute("rpc.grpc.status_code", failure.code);
            span.setStatus({ code: SpanStatusCode.ERROR, message: failure.rawMessage });
            endSpan(span);
            throw error;
          },
        );
    },
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.stream(method, signal, timeoutMs, header, input, contextValues),
  };
}
