import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type TextMapGetter,
} from "@opentelemetry/api";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { endSpan, startSpan } from "./span-clock.js";

const headerGetter: TextMapGetter<Headers> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key) ?? undefined,
};

/** Codes that mark a server span as failed (OpenTelemetry's gRPC conventions): the server's fault, not the caller's. */
const serverFaults = new Set<Code>([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

/**
 * Where the chassis finds a call's server span after the call: the line it
 * logs about the call is written once the span has ended, outside it, and
 * carries its ids all the same (see reportCall).
 */
export const serverSpanKey = createContextKey<Span | undefined>(undefined, { description: "server span" });

/**
 * The Connect interceptor that gives every call a server span, continuing
 * the caller's trace from its `traceparent` header (W3C trace context), and
 * makes it the active span while the handler runs: downstream calls become
 * its children and log lines carry its ids. Added by the chassis only when
 * tracing is on.
 */
export const serverTracingInterceptor: Interceptor = (next) => async (req) => {
  const parent = propagation.extract(ROOT_CONTEXT, req.header, headerGetter);
  const span = startSpan(
    `${req.service.typeName}/${req.method.name}`,
    {
      kind: SpanKind.SERVER,
      attributes: { "rpc.system": "grpc", "rpc.service": req.service.typeName, "rpc.method": req.method.name },
    },
    parent,
  );
  const active = trace.setSpan(parent, span);
  req.contextValues.set(serverSpanKey, span);
  let response: Awaited<ReturnType<typeof next>>;
  try {
    response = await context.with(active, () => next(req));
  } catch (error) {
    endServerSpan(span, ConnectError.from(error));
    throw error;
  }
  if (!response.stream) {
    endServerSpan(span, undefined);
    return response;
  }
  // Replaced in place: the chassis tells its own response from one an interceptor made by identity.
  (response as { message: AsyncIterable<unknown> }).message = endingWith(response.message, span);
  return response;
};

async function* endingWith<T>(messages: AsyncIterable<T>, span: Span): AsyncIterable<T> {
  let failure: ConnectError | undefined = new ConnectError("the stream was not read to its end", Code.Canceled);
  try {
    yield* messages;
    failure = undefined;
  } catch (error) {
    failure = ConnectError.from(error);
    throw error;
  } finally {
    endServerSpan(span, failure);
  }
}

function endServerSpan(span: Span, failure: ConnectError | undefined): void {
  span.setAttribute("rpc.grpc.status_code", failure?.code ?? 0);
  if (failure && serverFaults.has(failure.code)) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: failure.rawMessage });
  }
  endSpan(span);
}
