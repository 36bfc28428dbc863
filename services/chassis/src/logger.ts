import { trace } from "@opentelemetry/api";
import { pino, type DestinationStream, type Logger, type LoggerOptions } from "pino";

export type { Logger };

/**
 * Structured JSON logs, one object a line on standard output, with the
 * service name on every line, and the trace and span ids of the span active
 * where the line was written (the call being handled, when tracing is on).
 */
export function createLogger(service: string, level: string = "info", destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: traceIds,
  };
  // Written synchronously: pino's asynchronous destination flushes at exit with a loop that
  // retries a failed write forever, so a process whose log reader had gone (a supervisor that
  // died: EPIPE) never exited on SIGTERM. A broken pipe here just ends the logging.
  return pino(options, destination ?? pino.destination({ dest: 1, sync: true }));
}

const noIds = {};

function traceIds(): object {
  const span = trace.getActiveSpan();
  if (span === undefined) return noIds;
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}
