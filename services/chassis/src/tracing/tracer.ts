import { context, trace, type Tracer } from "@opentelemetry/api";
import { tracingEnabled } from "./tracing-setup.js";

/** The chassis' tracer, from whatever provider is registered (the no-op one when tracing is off). */
export function tracer(): Tracer {
  return trace.getTracer("@shopmesh/chassis");
}

/** Which request of a guarded call is being sent: the attempt (1 first, then each retry), and whether it is a hedge. */
export interface RequestAttempt {
  attempt: number;
  hedge: boolean;
}

const attemptKey = Symbol.for("shopmesh.request-attempt");

/**
 * Runs `send` with `attempt` in the active context, where the client span
 * of the request it makes finds it. With tracing off `send` just runs.
 */
export function withAttempt<T>(attempt: RequestAttempt, send: () => T): T {
  if (!tracingEnabled()) return send();
  return context.with(context.active().setValue(attemptKey, attempt), send);
}

/** The attempt {@link withAttempt} set, if any. */
export function currentAttempt(): RequestAttempt | undefined {
  return context.active().getValue(attemptKey) as RequestAttempt | undefined;
}
