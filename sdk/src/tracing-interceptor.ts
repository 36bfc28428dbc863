import { context, propagation, type TextMapSetter } from "@opentelemetry/api";
import type { Interceptor } from "@connectrpc/connect";

const headerSetter: TextMapSetter<Headers> = { set: (headers, key, value) => headers.set(key, value) };

/**
 * An interceptor that continues the caller's OpenTelemetry trace through the
 * mesh: every call carries the context active where it was made (the
 * application's current span) in a `traceparent` header (W3C trace
 * context, and `tracestate` when there is one), which shopmesh services
 * continue, so their spans become children of the caller's.
 *
 * Opt-in: `createTransport({ target, interceptors: [tracingInterceptor()] })`.
 * It uses only `@opentelemetry/api`, whose propagation is a no-op until the
 * application registers an OpenTelemetry SDK (a context manager and the W3C
 * propagator, as `NodeTracerProvider.register()` or `@opentelemetry/sdk-node`
 * do): without one, nothing is sent. A `traceparent` the call already
 * carries (set in its own headers) is kept.
 */
export function tracingInterceptor(): Interceptor {
  return (next) => (req) => {
    if (!req.header.has("traceparent")) propagation.inject(context.active(), req.header, headerSetter);
    return next(req);
  };
}
