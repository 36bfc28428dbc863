import { trace } from "@opentelemetry/api";
import { detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider, type SpanExporter } from "@opentelemetry/sdk-trace-node";
import { envReader } from "../config.js";

/** The process's tracing, once started. */
export interface Tracing {
  /** Whether spans are recorded and exported; false costs nothing per call. */
  readonly enabled: boolean;
  /** Exports what is buffered now. */
  flush(): Promise<void>;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

let current: Tracing = { enabled: false, flush: async () => undefined, shutdown: async () => undefined };

/** Whether this process records spans: the chassis adds its tracing hooks only then. */
export function tracingEnabled(): boolean {
  return current.enabled;
}

/** Options for {@link startTracing}. */
export interface StartTracingOptions {
  /** `service.name` unless OTEL_SERVICE_NAME says otherwise. */
  serviceName: string;
  env?: NodeJS.ProcessEnv;
  /** Where spans go; by default OTLP over HTTP as the OTEL_EXPORTER_OTLP_* variables say. */
  exporter?: SpanExporter;
}

/**
 * Starts OpenTelemetry tracing for the process, configured by the standard
 * OTEL_* variables, when there is somewhere to send spans: an
 * OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), or an
 * exporter given here; OTEL_SDK_DISABLED=true turns it off regardless.
 * Otherwise nothing is registered, and the API's no-op tracer and context
 * leave every call as it was.
 *
 * Registers the W3C trace-context propagator and an AsyncLocalStorage
 * context manager, so that the span of the call being handled is the active
 * one in its handler, its downstream calls and its log lines.
 */
export async function startTracing(options: StartTracingOptions): Promise<Tracing> {
  const env = options.env ?? process.env;
  const read = envReader(env);
  const endpoint =
    read.optionalString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ?? read.optionalString("OTEL_EXPORTER_OTLP_ENDPOINT");
  if (read.bool("OTEL_SDK_DISABLED", false) || (endpoint === undefined && options.exporter === undefined)) {
    return current;
  }
  // The exporter's modules are loaded only by a process that exports.
  const exporter =
    options.exporter ?? new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter();
  const resource = resourceFromAttributes({ "service.name": options.serviceName }).merge(
    detectResources({ detectors: [envDetector] }),
  );
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
  provider.register();
  current = {
    enabled: true,
    flush: () => provider.forceFlush(),
    async shutdown() {
      await provider.shutdown();
      trace.disable();
    },
  };
  return current;
}
