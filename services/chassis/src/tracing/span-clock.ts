import { context, trace, type Attributes, type Context, type Span, type SpanOptions } from "@opentelemetry/api";
import { tracer } from "./tracer.js";

/**
 * Where a local tree of spans reads its time: the wall clock once, when its
 * root started, and the monotonic clock since.
 */
interface Anchor {
  wallMs: number;
  monotonicMs: number;
}

const anchors = new WeakMap<Span, Anchor>();

function timeOn(anchor: Anchor): number {
  return anchor.wallMs + (performance.now() - anchor.monotonicMs);
}

/**
 * Starts a span on the clock of its parent when the parent was started here
 * in this process, and on a new anchor otherwise (a call that came in, an
 * event applied). The SDK anchors every span on its own `Date.now()`, in
 * whole milliseconds, and times its end and events from there, so two spans
 * of one call could disagree by up to a millisecond: more than many calls
 * here last, enough to draw a request ending after the fallback it caused.
 * On one anchor, the spans, events and ends of one call keep the order they
 * happened in, and each call still starts from the wall clock.
 *
 * @internal
 */
export function startSpan(name: string, options: SpanOptions, parent: Context = context.active()): Span {
  const parentSpan = trace.getSpan(parent);
  const anchor = (parentSpan && anchors.get(parentSpan)) ?? { wallMs: Date.now(), monotonicMs: performance.now() };
  const span = tracer().startSpan(name, { ...options, startTime: timeOn(anchor) }, parent);
  if (span.isRecording()) anchors.set(span, anchor);
  return span;
}

/** The time now on `span`'s clock; undefined (the SDK's own) for a span not started by {@link startSpan}. */
function timeOf(span: Span): number | undefined {
  const anchor = anchors.get(span);
  return anchor === undefined ? undefined : timeOn(anchor);
}

/**
 * Ends a span from {@link startSpan} on its clock: once given a start time,
 * the SDK would time its end with `Date.now()`.
 *
 * @internal
 */
export function endSpan(span: Span): void {
  span.end(timeOf(span));
}

/**
 * Records an event (a breaker refusing a call, a fallback taken) on the
 * span of the call being handled; nothing when there is none.
 */
export function addSpanEvent(name: string, attributes: Attributes): void {
  const span = trace.getActiveSpan();
  span?.addEvent(name, attributes, timeOf(span));
}
