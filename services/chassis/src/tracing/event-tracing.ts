import {
  context,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Link,
} from "@opentelemetry/api";
import { endSpan, startSpan } from "./span-clock.js";
import { tracingEnabled } from "./tracing-setup.js";

/**
 * The W3C trace context of the write that produced an event, as the
 * `traceparent` and `tracestate` headers carry it: stored with the event in
 * the outbox, sent in its envelope and in the headers of a relayed NATS
 * message.
 */
export interface ProducerTraceContext {
  traceparent: string;
  /** Absent, or empty, when the trace has no state. */
  tracestate?: string;
}

/**
 * The trace context active here, for an event written now, through the
 * registered propagator; undefined when tracing is off (checked first: the
 * outbox appends on every write) or no span is active.
 */
export function activeTraceContext(): ProducerTraceContext | undefined {
  if (!tracingEnabled()) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  const { traceparent, tracestate } = carrier;
  if (traceparent === undefined) return undefined;
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

/** The span a stored trace context names, as a link; none for a missing or malformed one. */
export function linksTo(producer: ProducerTraceContext | undefined): Link[] {
  if (!producer?.traceparent) return [];
  const carrier: Record<string, string> = { traceparent: producer.traceparent };
  if (producer.tracestate) carrier.tracestate = producer.tracestate;
  const spanContext = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, carrier));
  return spanContext !== undefined && isSpanContextValid(spanContext) ? [{ context: spanContext }] : [];
}

/**
 * Runs `work` (synchronous, like applying an event in a SQLite transaction)
 * in a span of its own, the active span while it runs, a child of the span
 * active here. With `producer`, the span is a consumer span with a link to
 * the producing write's span: the work happens later and in another trace,
 * so it is linked to that write, not a child of it. Call it only when
 * tracing is on ({@link tracingEnabled}), so that untraced processes make no
 * closure per event.
 */
export function inEventSpan<T>(
  name: string,
  attributes: Attributes,
  producer: ProducerTraceContext | undefined,
  work: () => T,
): T {
  const span = startSpan(name, {
    kind: producer === undefined ? SpanKind.INTERNAL : SpanKind.CONSUMER,
    attributes,
    links: linksTo(producer),
  });
  try {
    return context.with(trace.setSpan(context.active(), span), work);
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    throw error;
  } finally {
    endSpan(span);
  }
}
