import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createGunzip } from "node:zlib";

/** A span's kind as OTLP numbers it (SPAN_KIND_SERVER is 2, and so on). */
export type SpanKindName = "unspecified" | "internal" | "server" | "client" | "producer" | "consumer";
const kindNames: readonly SpanKindName[] = ["unspecified", "internal", "server", "client", "producer", "consumer"];

/** What a span event (a fallback taken, a dependency not called) carries. */
export interface ReceivedEvent {
  name: string;
  /** Milliseconds since the Unix epoch, to the microsecond. */
  timeMs: number;
  attributes: Record<string, unknown>;
}

/** One span as exported to the receiver, with the service that sent it. */
export interface ReceivedSpan {
  /** The resource's `service.name`. */
  service: string;
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  kind: SpanKindName;
  /** Milliseconds since the Unix epoch, to the microsecond. */
  startMs: number;
  endMs: number;
  attributes: Record<string, unknown>;
  events: ReceivedEvent[];
  /** OTLP's status: "error" only when the service marked the span failed. */
  status: { code: "unset" | "ok" | "error"; message: string };
  /** The spans this one links to (not its parent): for work caused by another trace's. */
  links: { traceId: string; spanId: string }[];
}

/** An OTLP/HTTP trace endpoint on loopback that keeps the spans sent to it, by trace. */
export interface OtlpReceiver {
  /** `http://127.0.0.1:port`, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint: string;
  /** The spans of a trace received so far, in the order they came. */
  trace(traceId: string): ReceivedSpan[];
  /** Every span received so far, in the order they came. */
  spans(): ReceivedSpan[];
  /** How many spans came in all. */
  readonly received: number;
  /**
   * Resolves with a trace's spans once `complete` holds for them, checked
   * whenever spans of it arrive; rejects, naming what did arrive, when it
   * does not within `timeoutMs`.
   */
  waitForTrace(
    traceId: string,
    complete: (spans: ReceivedSpan[]) => boolean,
    timeoutMs: number,
  ): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

// OTLP's JSON encoding (the protobuf messages in proto3's JSON mapping, ids in hex, 64-bit integers as strings).
interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}
type Nanos = string | number;
interface JsonSpan {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
  kind?: number;
  startTimeUnixNano?: Nanos;
  endTimeUnixNano?: Nanos;
  attributes?: KeyValue[];
  events?: { name?: string; timeUnixNano?: Nanos; attributes?: KeyValue[] }[];
  status?: { code?: number; message?: string };
  links?: { traceId?: string; spanId?: string }[];
}
interface ExportTraceServiceRequest {
  resourceSpans?: { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: JsonSpan[] }[] }[];
}

/** Largest request body taken: a batch of the SDK's default 512 spans is well under it. */
const maxBodyBytes = 16 * 1024 * 1024;

function plain(value: AnyValue | undefined): unknown {
  if (value === undefined) return undefined;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(plain);
  return undefined;
}

const attributesOf = (list: KeyValue[] = []) => Object.fromEntries(list.map((kv) => [kv.key, plain(kv.value)]));

/** Nanoseconds since the epoch (a decimal string past 2^53) as milliseconds, keeping the microseconds. */
function nanosToMs(nanos: Nanos | undefined): number {
  if (nanos === undefined) return Number.NaN;
  return Number(BigInt(nanos) / 1000n) / 1000;
}

const statusCodes = ["unset", "ok", "error"] as const;

/** The spans of one export request, flattened, each with its service's name. */
export function spansOf(request: ExportTraceServiceRequest): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const resourceSpans of request.resourceSpans ?? []) {
    const service = String(attributesOf(resourceSpans.resource?.attributes)["service.name"] ?? "unknown");
    for (const scope of resourceSpans.scopeSpans ?? []) {
      for (const span of scope.spans ?? []) {
        if (typeof span.traceId !== "string" || typeof span.spanId !== "string") {
          throw new TypeError("a span without traceId or spanId");
        }
        spans.push({
          service,
          traceId: span.traceId,
          spanId: span.spanId,
          parentSpanId: span.parentSpanId ?? "",
          name: span.name ?? "",
          kind: kindNames[span.kind ?? 0] ?? "unspecified",
          startMs: nanosToMs(span.startTimeUnixNano),
          endMs: nanosToMs(span.endTimeUnixNano),
          attributes: attributesOf(span.attributes),
          events: (span.events ?? []).map((event) => ({
            name: event.name ?? "",
            timeMs: nanosToMs(event.timeUnixNano),
            attributes: attributesOf(event.attributes),
          })),
          status: { code: statusCodes[span.status?.code ?? 0] ?? "unset", message: span.status?.message ?? "" },
          links: (span.links ?? []).map((link) => ({ traceId: link.traceId ?? "", spanId: link.spanId ?? "" })),
        });
      }
    }
  }
  return spans;
}

/** An OTLP/HTTP export's body as text, gunzipped when sent so; a RangeError past `limitBytes`. */
export async function readOtlpBody(req: IncomingMessage, limitBytes = maxBodyBytes): Promise<string> {
  const source = req.headers["content-encoding"] === "gzip" ? req.pipe(createGunzip()) : req;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) throw new RangeError(`request body over ${limitBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** An OTLP error answer: a google.rpc.Status in JSON, as the specification asks of a refusal. */
function refuse(res: ServerResponse, httpStatus: number, message: string): void {
  res.writeHead(httpStatus, { "content-type": "application/json" }).end(JSON.stringify({ code: 3, message }));
}

/**
 * Starts an OTLP/HTTP trace receiver on 127.0.0.1, on a free port. It takes
 * OTLP's JSON encoding (what @opentelemetry/exporter-trace-otlp-http sends,
 * gzip-compressed or not) at POST /v1/traces and answers 200 with an empty
 * ExportTraceServiceResponse (every span accepted). Protobuf bodies are
 * refused with 415, so that a change of encoding fails loudly rather than
 * losing spans; a body that does not parse gets 400.
 */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const traces = new Map<string, ReceivedSpan[]>();
  const all: ReceivedSpan[] = [];
  const waiters = new Set<() => unknown>();
  let received = 0;

  const server = createServer((req, res) => {
    if (req.url !== "/v1/traces") {
      refuse(res, 404, `no such endpoint: ${req.url}; spans go to POST /v1/traces`);
      return;
    }
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      refuse(res, 405, "spans are sent with POST");
      return;
    }
    const type = req.headers["content-type"] ?? "";
    if (!type.startsWith("application/json")) {
      refuse(res, 415, `content-type ${type || "(none)"}: this receiver takes OTLP's JSON encoding (application/json)`);
      return;
    }
    readOtlpBody(req)
      .then((body) => spansOf(JSON.parse(body) as ExportTraceServiceRequest))
      .then(
        (spans) => {
          for (const span of spans) {
            all.push(span);
            const trace = traces.get(span.traceId);
            if (trace) trace.push(span);
            else traces.set(span.traceId, [span]);
          }
          received += spans.length;
          res.writeHead(200, { "content-type": "application/json" }).end("{}");
          for (const wake of [...waiters]) wake();
        },
        (error: unknown) => refuse(res, 400, `not an OTLP JSON trace export: ${(error as Error).message}`),
      );
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const trace = (traceId: string) => [...(traces.get(traceId) ?? [])];

  return {
    endpoint: `http://127.0.0.1:${port}`,
    trace,
    spans: () => [...all],
    get received() {
      return received;
    },
    waitForTrace(traceId, complete, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const spans = trace(traceId);
          if (!complete(spans)) return false;
          stop();
          resolve(spans);
          return true;
        };
        const timer = setTimeout(() => {
          stop();
          const spans = trace(traceId).map((s) => `${s.service} ${s.kind} ${s.name}`);
          reject(new Error(`trace ${traceId} not complete after ${timeoutMs} ms; received ${JSON.stringify(spans)}`));
        }, timeoutMs);
        const stop = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        if (!check()) waiters.add(check);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
